"""Supported Istio release families and the version gate.

A family is one Istio minor release line (1.2.x, 1.3.x) that this operator
renders. The reference operator supports one minor line per operator release;
this one supports both, selecting what differs by the family of
`spec.version`. Unlike the reference's unescaped `^1.3` regular expression,
the gate requires a full `MAJOR.MINOR.PATCH` version (optionally with a
pre-release suffix such as `-rc.1`), so `1.30` or `1.3` alone are refused.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

UNSUPPORTED_VERSION_MESSAGE = (
    "intended Istio version is unsupported by this version of the operator"
)

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z][0-9A-Za-z.-]*)?$")


class UnsupportedVersionError(ValueError):
    """The intended Istio version is not one this operator can install."""

    def __init__(self, version: str) -> None:
        super().__init__(
            f"{UNSUPPORTED_VERSION_MESSAGE}: got {version!r}{_hint(version)} "
            f"(supported: {supported_ranges()})"
        )
        self.version = version


def _hint(version: str) -> str:
    """`; did you mean 1.3.0?` when a supported version is near the one given."""
    near = suggest_version(version)
    return f"; did you mean {near}?" if near else ""


@dataclass(frozen=True)
class Family:
    """One supported Istio minor release line, declared as data.

    What it accepts (`major.minor.patch` from `min_patch`), what it renders with
    (`renderer`) and which components, which images, and the behaviour switches
    that tell its control plane from another family's. Everything that lists,
    gates or documents versions reads `FAMILIES`: the version gate and its
    message, the RBAC the operator needs, the demo, the docs.
    """

    name: str
    major: int
    minor: int
    min_patch: int
    # The newest patch release the reference operator shipped for this line: the
    # version the RBAC derivation and examples render.
    reference_version: str
    # The renderer of this family's objects ("classic": the operator's own renderers).
    renderer: Literal["classic"]
    # Primary-cluster components, in render order (objects are then ordered by phase).
    components: tuple[str, ...]
    # Components installed on a remote cluster, in render order.
    remote_components: tuple[str, ...]
    # Image key (named by the plan's image fields) -> repository, tagged with the version.
    images: Mapping[str, str]
    # Mixer runs as separate policy and telemetry components with their own
    # settings; otherwise `mixer.*` drives both Deployments with one switch.
    policy_telemetry_split: bool
    # `mixer.stdioAdapterEnabled` switches the stdio adapter objects; otherwise
    # they are always present.
    stdio_adapter_switch: bool
    # Pilot protocol sniffing settings and the mesh `protocolDetectionTimeout`.
    protocol_sniffing: bool
    # `--trust-domain` on control-plane components and mesh `trustDomain`.
    trust_domain: bool
    # `proxy.clusterDomain` is honoured; otherwise `cluster.local` everywhere.
    cluster_domain: bool
    # SDS token: `sds.tokenAudience` (1.3) or `useTrustworthyJwt`/`useNormalJwt` (1.2).
    sds_token: Literal["audience", "trustworthy-jwt"]
    # StatsD, metrics service and access log service settings of the proxies.
    envoy_services: bool
    # `proxy.accessLogFile/Format/Encoding`; otherwise constants.
    access_log_settings: bool
    galley_config_validation: bool
    citadel_namespaces_by_default: bool
    # Which sidecar injection template (and istio-init arguments) to render.
    injector_template: Literal["1.2", "1.3"]
    # Image of the core-dump init container: `proxyInit.image` or `proxy.coreDumpImage`.
    core_dump_image_from: Literal["proxyInit", "proxy"]
    # `clusterName` and `meshID` reach the injector and the remote's spec.
    cluster_name: bool

    def image(self, key: str, version: str) -> str:
        """The image of a component at a version: `docker.io/istio/pilot:1.3.0`."""
        return f"{self.images[key]}:{version}"

    def accepts(self, version: str) -> bool:
        """Whether `version` belongs to this family."""
        parsed = parse_version(version)
        if parsed is None:
            return False
        major, minor, patch = parsed
        return (major, minor) == (self.major, self.minor) and patch >= self.min_patch

    @property
    def range(self) -> str:
        """The accepted versions, for messages: `1.3.x from 1.3.0`."""
        return f"{self.name}.x from {self.name}.{self.min_patch}"


def parse_version(version: str) -> tuple[int, int, int] | None:
    """`(major, minor, patch)` of a version string, or None if it is not one."""
    match = _VERSION.match(version)
    if match is None:
        return None
    return int(match[1]), int(match[2]), int(match[3])


HUB = "docker.io/istio"
_REMOTE_COMPONENTS = ("common", "citadel", "sidecarinjector", "gateways", "nodeagent", "cni")
_CLASSIC_IMAGES = {
    name: f"{HUB}/{name}"
    for name in (
        "pilot",
        "citadel",
        "galley",
        "mixer",
        "sidecar_injector",
        "install-cni",
        "node-agent-k8s",
        "proxyv2",
        "proxy_init",
    )
}

ISTIO_1_2 = Family(
    name="1.2",
    major=1,
    minor=2,
    min_patch=0,
    reference_version="1.2.8",
    renderer="classic",
    components=(
        "crds",
        "common",
        "citadel",
        "galley",
        "pilot",
        "mixer",
        "sidecarinjector",
        "gateways",
        "nodeagent",
        "cni",
        "istiocoredns",
    ),
    remote_components=_REMOTE_COMPONENTS,
    images=_CLASSIC_IMAGES,
    policy_telemetry_split=False,
    stdio_adapter_switch=False,
    protocol_sniffing=False,
    trust_domain=False,
    cluster_domain=False,
    sds_token="trustworthy-jwt",
    envoy_services=False,
    access_log_settings=False,
    galley_config_validation=False,
    citadel_namespaces_by_default=False,
    injector_template="1.2",
    core_dump_image_from="proxyInit",
    cluster_name=False,
)

# The 1.3 line: the 1.2 line with every switch on, its own SDS token, injection template
# and core-dump image, and Mixer-less telemetry.
_SWITCHES_ON: dict[str, Any] = dict.fromkeys(
    (
        "policy_telemetry_split",
        "stdio_adapter_switch",
        "protocol_sniffing",
        "trust_domain",
        "cluster_domain",
        "envoy_services",
        "access_log_settings",
        "galley_config_validation",
        "citadel_namespaces_by_default",
        "cluster_name",
    ),
    True,
)
ISTIO_1_3 = dataclasses.replace(
    ISTIO_1_2,
    name="1.3",
    minor=3,
    reference_version="1.3.8",
    components=(*ISTIO_1_2.components, "mixerlesstelemetry"),
    sds_token="audience",
    injector_template="1.3",
    core_dump_image_from="proxy",
    **_SWITCHES_ON,
)

FAMILIES: tuple[Family, ...] = (ISTIO_1_2, ISTIO_1_3)


def classic_ranges() -> str:
    """The classic families' versions: `1.2.x from 1.2.0, 1.3.x from 1.3.0`."""
    return ", ".join(family.range for family in FAMILIES)


def supported_ranges() -> str:
    """The supported versions, for messages: `1.2.x from 1.2.0, 1.3.x from 1.3.0`, and
    the istiod family's versions the chart catalogue holds."""
    from istio_operator.versions.istiod import ISTIOD

    classic = classic_ranges()
    istiod = ISTIOD.versions()
    return f"{classic}; istiod family: {', '.join(istiod)}" if istiod else classic


_LEADING_NUMBERS = re.compile(r"^\s*[vV]?(\d+)(?:\.(\d+))?(?:\.(\d+))?")


def known_versions() -> list[str]:
    """Versions to suggest: each classic family's patches up to its reference version,
    and the istiod versions the chart catalogue holds."""
    from istio_operator.versions.istiod import ISTIOD

    known: list[str] = []
    for family in FAMILIES:
        newest = parse_version(family.reference_version)
        last = newest[2] if newest else family.min_patch
        known += [f"{family.name}.{patch}" for patch in range(family.min_patch, last + 1)]
    return known + ISTIOD.versions()


def suggest_version(version: str, known: list[str] | None = None) -> str | None:
    """The known version nearest to `version`: the same numbers written plainly (`v1.3.0`,
    `1.3`), else the closest by major, then minor, then patch. None for no numbers at all."""
    match = _LEADING_NUMBERS.match(version)
    if match is None:
        return None
    wanted = tuple(int(part or 0) for part in match.groups())
    candidates = [(parsed, v) for v in known or known_versions() if (parsed := parse_version(v))]
    if not candidates:
        return None

    def distance(candidate: tuple[tuple[int, int, int], str]) -> tuple[int, int, int]:
        (major, minor, patch), _ = candidate
        same_line = (major, minor) == wanted[:2]
        # On another minor line, patch numbers do not compare: its newest is nearest.
        return (
            abs(major - wanted[0]),
            abs(minor - wanted[1]),
            abs(patch - wanted[2]) if same_line else -patch,
        )

    plain = ".".join(map(str, wanted))
    if plain != version and any(f.accepts(plain) for f in FAMILIES):
        return plain
    return min(candidates, key=distance)[1]


def unsupported_example() -> str:
    """A well-formed version no family accepts: the minor after the newest family's."""
    newest = max(FAMILIES, key=lambda family: (family.major, family.minor))
    return f"{newest.major}.{newest.minor + 1}.0"


def family_for(version: str) -> Family:
    """The family that renders `version`; `UnsupportedVersionError` if none does."""
    for family in FAMILIES:
        if family.accepts(version):
            return family
    raise UnsupportedVersionError(version)
