"""The istiod family: today's Istio, rendered from Istio's own Helm charts.

Unlike a classic family, it is not one minor line: a version belongs to it when the
chart catalogue (`istio_operator.charts`) holds its charts, wherever they came from.
What the operator needs to know of the family is declared here, as data: which charts
it installs and in which order, which `spec` fields it reads (every other field is the
classic families' and is refused with an istiod version), the profiles' components when
a version's charts carry no istioctl profiles, and the defaults of its own fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from istio_operator.charts import Catalogue, CatalogueError, ChartVersion

IN_PLACE = "InPlace"
REVISION_BASED = "RevisionBased"


@dataclass(frozen=True)
class Components:
    """What a profile installs beside istiod (istioctl's `components` of the profile)."""

    ingress_gateway: bool = True
    egress_gateway: bool = False
    cni: bool = False
    ztunnel: bool = False


@dataclass(frozen=True)
class IstiodFamily:
    name: str
    renderer: str
    # The charts of a version, in the order they roll out (see `render.istiod`).
    charts: tuple[str, ...]
    # `spec` fields (dotted, from `spec`) the family reads; any other field set is refused.
    fields: frozenset[str]
    # `spec` fields only this family reads: set with a classic version, they are refused.
    own_fields: frozenset[str]
    default_profile: str
    default_hub: str
    default_grace_period_s: int
    # The components of istioctl's profiles, for versions whose charts carry no
    # `profiles/` (as released charts pulled from a Helm repository): default, minimal,
    # demo, ambient, empty (everything else: default's).
    profile_components: Mapping[str, Components] = field(default_factory=dict)

    @staticmethod
    def release(version: str, catalogue: Catalogue | None = None) -> ChartVersion | None:
        """The charts of `version`, or None when the catalogue does not hold it."""
        try:
            return (catalogue or Catalogue.default()).get(version)
        except CatalogueError:
            return None

    @staticmethod
    def versions(catalogue: Catalogue | None = None) -> list[str]:
        return [v.version for v in (catalogue or Catalogue.default()).versions()]


ISTIOD = IstiodFamily(
    name="istiod",
    renderer="istiod",
    charts=("base", "istiod", "gateway", "cni", "ztunnel"),
    fields=frozenset(
        {
            "version",
            "profile",
            "values",
            "updateStrategy",
            "autoInjectionNamespaces",
            "gateways.ingress.enabled",
            "gateways.egress.enabled",
            "clusterName",
            "meshID",
        }
    ),
    own_fields=frozenset({"profile", "values", "updateStrategy"}),
    default_profile="default",
    default_hub="docker.io/istio",
    default_grace_period_s=30,
    profile_components={
        "default": Components(),
        "minimal": Components(ingress_gateway=False),
        "empty": Components(ingress_gateway=False),
        "demo": Components(egress_gateway=True),
        "ambient": Components(ingress_gateway=False, cni=True, ztunnel=True),
        "remote": Components(ingress_gateway=False),
    },
)


@dataclass(frozen=True)
class Selected:
    """The family `spec.version` belongs to, and for the istiod one its charts."""

    renderer: str  # "classic" or "istiod"
    charts: ChartVersion | None = None


def select_family(version: str, catalogue: Catalogue | None = None) -> Selected:
    """The classic family if one accepts `version`, else the istiod one if the catalogue
    holds its charts; `UnsupportedVersionError` (naming both) otherwise."""
    from istio_operator.versions.families import FAMILIES, UnsupportedVersionError

    if any(family.accepts(version) for family in FAMILIES):
        return Selected("classic")
    charts = ISTIOD.release(version, catalogue)
    if charts is None:
        raise UnsupportedVersionError(version)
    return Selected("istiod", charts)


def renderer_of(version: str) -> str:
    """The family a version in effect was installed by, whether or not it is still known."""
    from istio_operator.versions.families import FAMILIES

    return "classic" if any(f.accepts(version) for f in FAMILIES) else "istiod"
