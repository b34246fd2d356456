"""The plan of an istiod-family control plane: the resource read once, every choice made.

The charts are Istio's; what the operator decides is which charts, with which values:
the profile (and so the components: gateways, CNI, ztunnel), the revision, the image
hub and tag, the revision tags. `spec.values` is passed through to the charts; what the
operator sets itself wins over it (`OPERATOR_SET`), so the version is always the
resource's.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from istio_operator.api.errors import SpecError
from istio_operator.api.istio import Istio, IstioSpec
from istio_operator.api.remoteistio import RemoteIstio
from istio_operator.charts import ChartVersion
from istio_operator.versions.istiod import ISTIOD, REVISION_BASED, Components

DEFAULT_NAMESPACE = "istio-system"
PRIMARY_CLUSTER_NAME = "primary"
DEFAULT_MESH_ID = "mesh"
REMOTE_PROFILE = "remote"
DEFAULT_TAG = "default"
# Helm values the operator sets whatever `spec.values` says (documented in configuration.md).
MIGRATION_DEFAULTS = {"batch_size": 1, "delay_s": 0, "readiness_timeout_s": 300}
OPERATOR_SET = (
    "revision",
    "revisionTags",
    "defaultRevision",
    "global.tag",
    "global.istioNamespace",
)


@dataclass(frozen=True)
class MigrationPlan:
    batch_size: int
    delay_s: int
    readiness_timeout_s: int


@dataclass(frozen=True)
class IstiodPlan:
    """One istiod-family control plane, resolved."""

    owner: str
    namespace: str
    version: str
    profile: str
    # The profile's `profile` value for the charts ("" when they have no such file).
    chart_profile: str
    values: Mapping[str, Any]
    hub: str
    components: Components
    revision_based: bool
    grace_period_s: int
    # Named revision tags that follow the active revision (`default` comes with RevisionBased).
    tags: tuple[str, ...]
    injection_namespaces: tuple[str, ...]
    # Workload migration in batches, when asked for (RevisionBased only).
    migration: MigrationPlan | None = None
    # Multi-cluster: this cluster's name, network and the mesh's ID; on the primary, the
    # remotes (an east-west gateway then exposes istiod to them); on a remote, its
    # RemoteIstio's name and the address its istiod Services point at (the primary's
    # east-west gateway).
    cluster_name: str = ""
    network: str = ""
    mesh_id: str = ""
    remotes: tuple[str, ...] = ()
    remote: str = ""
    remote_pilot_address: str = ""
    # On the primary: the revisions the east-west gateway routes to (each its own istiod),
    # and whether a remote is on another network (the gateway then exposes the services).
    exposed_revisions: tuple[str, ...] = ()
    cross_network: bool = False
    # The revision the tags point at while they wait for the active one to be ready on
    # every cluster of the mesh (None: the active one).
    held_tags_at: str | None = None

    @property
    def revision(self) -> str:
        """The revision this version installs: "" (the default one) in place, else
        `<owner>-<version>` with dots as dashes (`mesh-1-31-1`)."""
        return revision_name(self.owner, self.version) if self.revision_based else ""

    @property
    def revision_tags(self) -> tuple[str, ...]:
        """The tags the active revision serves: `default` first when revision-based; none
        while they are held at another revision."""
        if self.tags_held:
            return ()
        if not self.revision_based:
            return self.tags
        return (DEFAULT_TAG, *(t for t in self.tags if t != DEFAULT_TAG))

    @property
    def tags_held(self) -> bool:
        return self.held_tags_at is not None and self.held_tags_at != self.revision

    @property
    def tag_revision(self) -> str:
        """The revision the tags (and the default validator) point at."""
        return self.held_tags_at if self.held_tags_at is not None else self.revision


def revision_name(owner: str, version: str) -> str:
    """A revision's name: a DNS label (object names end with it, labels carry it)."""
    name = re.sub(r"[^a-z0-9-]+", "-", f"{owner}-{version}".lower()).strip("-")
    return name[:63].rstrip("-")


def classic_only_fields(spec: IstioSpec) -> list[str]:
    """The fields `spec` sets that the istiod family does not read."""
    return sorted(p for p in _set_paths(spec.model_dump(exclude_none=True)) if not _read(p))


def _read(path: str) -> bool:
    plain = path.removeprefix("spec.")
    return any(plain == f or plain.startswith(f"{f}.") for f in ISTIOD.fields)


def _set_paths(given: Mapping[str, Any], prefix: str = "spec") -> list[str]:
    """Dotted paths of what is set, down to the fields the family reads in part."""
    paths = []
    for key, value in given.items():
        path = f"{prefix}.{key}"
        plain = path.removeprefix("spec.")
        partly_read = any(f.startswith(f"{plain}.") for f in ISTIOD.fields)
        if partly_read and isinstance(value, Mapping):
            paths += _set_paths(value, path)
        else:
            paths.append(path)
    return paths


def resolve_istiod(istio: Istio, charts: ChartVersion) -> IstiodPlan:
    """The plan of `istio` for the istiod family, with `charts` its version's charts.

    Raises `SpecError` naming every classic-only field set, or an unknown profile.
    """
    spec = istio.spec
    refused = classic_only_fields(spec)
    if refused:
        raise SpecError(
            refused[0],
            f"not read by the istiod family (Istio {spec.version}); remove " + ", ".join(refused),
        )
    profile = spec.profile or ISTIOD.default_profile
    components = profile_components(charts, profile)
    values = dict(spec.values or {})
    strategy = spec.updateStrategy
    return IstiodPlan(
        owner=istio.metadata.name,
        namespace=istio.metadata.namespace or DEFAULT_NAMESPACE,
        version=spec.version,
        profile=profile,
        chart_profile=profile if profile in charts.chart_profiles() else "",
        values=values,
        hub=str((values.get("global") or {}).get("hub") or ISTIOD.default_hub),
        components=_with_gateways(components, spec),
        revision_based=bool(strategy and strategy.type == REVISION_BASED),
        grace_period_s=_grace_period(spec),
        tags=tuple(strategy.tags or ()) if strategy else (),
        injection_namespaces=tuple(spec.autoInjectionNamespaces or ()),
        migration=_migration(spec),
        cluster_name=spec.clusterName or PRIMARY_CLUSTER_NAME,
        network=str((values.get("global") or {}).get("network") or ""),
        mesh_id=spec.meshID or DEFAULT_MESH_ID,
    )


def with_remotes(
    plan: IstiodPlan, remotes: Mapping[str, str], revisions: Collection[str]
) -> IstiodPlan:
    """The primary's plan with its remotes (name -> network, "" for the primary's): an
    east-west gateway exposes istiod, one route per revision still running (`revisions`,
    the active one included), and the services too when a remote is on another network."""
    exposed = tuple(sorted({plan.revision, *revisions}))
    cross = any(network and network != plan.network for network in remotes.values())
    return dataclasses.replace(
        plan, remotes=tuple(sorted(remotes)), exposed_revisions=exposed, cross_network=cross
    )


def resolve_istiod_remote(
    istio: Istio, remote: RemoteIstio, charts: ChartVersion, pilot_address: str
) -> IstiodPlan:
    """A remote's plan: the primary's version, revision, tags and values, Istio's `remote`
    profile (no istiod of its own: its webhooks and istiod Services point at
    `pilot_address`, the primary's east-west gateway), its own name and network."""
    primary = resolve_istiod(istio, charts)
    own = remote.spec
    return dataclasses.replace(
        primary,
        profile=REMOTE_PROFILE,
        chart_profile=REMOTE_PROFILE if REMOTE_PROFILE in charts.chart_profiles() else "",
        components=Components(ingress_gateway=False),
        cluster_name=own.clusterName or remote.metadata.name,
        network=own.network or primary.network,
        remote=remote.metadata.name,
        remote_pilot_address=pilot_address,
        injection_namespaces=tuple(own.autoInjectionNamespaces or primary.injection_namespaces),
        migration=None,
    )


def _migration(spec: IstioSpec) -> MigrationPlan | None:
    strategy = spec.updateStrategy
    given = strategy.workloadMigration if strategy else None
    if given is None or not given.enabled or strategy is None or strategy.type != REVISION_BASED:
        return None
    return MigrationPlan(
        batch_size=given.batchSize or MIGRATION_DEFAULTS["batch_size"],
        delay_s=MIGRATION_DEFAULTS["delay_s"] if given.delaySeconds is None else given.delaySeconds,
        readiness_timeout_s=given.readinessTimeoutSeconds
        or MIGRATION_DEFAULTS["readiness_timeout_s"],
    )


def _grace_period(spec: IstioSpec) -> int:
    given = (
        spec.updateStrategy.inactiveRevisionDeletionGracePeriodSeconds
        if spec.updateStrategy
        else None
    )
    return ISTIOD.default_grace_period_s if given is None else given


def profile_components(charts: ChartVersion, profile: str) -> Components:
    """What `profile` installs: from istioctl's profile in the version's charts, over its
    default profile, as istioctl reads them; else the family's table."""
    overlay = charts.istioctl_profile(profile)
    if overlay is not None:
        base = charts.istioctl_profile("default") or {}
        return _components_of([base, overlay])
    if profile in ISTIOD.profile_components:
        return ISTIOD.profile_components[profile]
    if profile in charts.chart_profiles():
        return ISTIOD.profile_components[ISTIOD.default_profile]
    known = sorted({*ISTIOD.profile_components, *charts.chart_profiles(), *charts.profiles()})
    raise SpecError(
        "spec.profile",
        f"unknown profile {profile!r}; Istio {charts.version} has: {', '.join(known)}",
    )


def _components_of(layers: list[Mapping[str, Any]]) -> Components:
    found = {"ingress_gateway": False, "egress_gateway": False, "cni": False, "ztunnel": False}
    for layer in layers:
        components = layer.get("components") or {}
        for key, name in (("cni", "cni"), ("ztunnel", "ztunnel")):
            if isinstance(components.get(key), Mapping) and "enabled" in components[key]:
                found[name] = bool(components[key]["enabled"])
        for key, name in (
            ("ingressGateways", "ingress_gateway"),
            ("egressGateways", "egress_gateway"),
        ):
            for gateway in components.get(key) or ():
                if "enabled" in gateway:
                    found[name] = bool(gateway["enabled"])
    return Components(**found)


def _with_gateways(components: Components, spec: IstioSpec) -> Components:
    """`spec.gateways.{ingress,egress}.enabled` over the profile's choice."""
    gateways = spec.gateways
    ingress = gateways.ingress.enabled if gateways and gateways.ingress else None
    egress = gateways.egress.enabled if gateways and gateways.egress else None
    return Components(
        ingress_gateway=components.ingress_gateway if ingress is None else ingress,
        egress_gateway=components.egress_gateway if egress is None else egress,
        cni=components.cni,
        ztunnel=components.ztunnel,
    )
