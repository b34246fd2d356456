"""The resolved mesh plan: every setting of one cluster's control plane, defaulted.

One class per section of the `Istio` spec, with the same attribute names (the
JSON names). No field is optional: a setting that is off is a value (`""`, an
empty mapping, `False`), never `None`. Defaults are declared on the fields:
a plain default is the value, a derived one names its `Rule` in the field's
metadata (an image that follows the version, a setting inherited from mixer,
the resources that fall back to `defaultResources`). `plan.resolve` builds
the plan from a resource by reading these declarations, and the generated
configuration reference reads the same declarations.

Kubernetes-typed settings (resources, affinity, tolerations, selectors) are
the resource's values, typed as read-only mappings and sequences.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import FrozenInstanceError, field
from typing import Any, TypeVar, dataclass_transform

from istio_operator.plan.rules import (
    CLUSTER_NAMESPACE_LIST,
    DEFAULT_RESOURCES,
    FIXED_IMAGE,
    FROM_MIXER,
    FROM_PROXY,
    SAME_AS,
    TARGET_PORT,
    VERSIONED_IMAGE,
    ZIPKIN_ADDRESS,
    Rule,
)

_Record = TypeVar("_Record")


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(field,))
def record(cls: type[_Record]) -> type[_Record]:
    """A frozen, keyword-only dataclass whose methods other than `__init__` are shared
    by every record. `@dataclass(frozen=True)` compiles six methods per class: about
    1 ms a class at import, a tenth of what `istio-operator render` may take."""
    made = dataclasses.dataclass(cls, kw_only=True, eq=False, repr=False)
    shared: dict[str, Callable[..., Any]] = {
        "__setattr__": _assign_once,
        "__delattr__": _refuse_deletion,
        "__eq__": _same_fields,
        "__hash__": _hash_of_fields,
        "__repr__": _fields_shown,
    }
    for name, method in shared.items():
        setattr(made, name, method)
    return made


def _values(obj: Any) -> tuple[Any, ...]:
    return tuple(getattr(obj, f.name) for f in dataclasses.fields(obj))


def _assign_once(obj: Any, name: str, value: Any) -> None:
    if name in obj.__dict__:  # `__init__` sets each field once; nothing sets it again
        raise FrozenInstanceError(f"cannot assign to field {name!r}")
    object.__setattr__(obj, name, value)


def _refuse_deletion(obj: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _same_fields(obj: Any, other: Any) -> Any:  # a bool, or NotImplemented
    if other.__class__ is not obj.__class__:
        return NotImplemented
    return _values(obj) == _values(other)


def _hash_of_fields(obj: Any) -> int:
    return hash(_values(obj))


def _fields_shown(obj: Any) -> str:
    shown = ", ".join(f"{f.name}={getattr(obj, f.name)!r}" for f in dataclasses.fields(obj))
    return f"{obj.__class__.__qualname__}({shown})"


Resources = Mapping[str, Any]
Json = Mapping[str, Any]

PROXY_RESOURCES: Resources = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "2000m", "memory": "1024Mi"},
}
INIT_RESOURCES: Resources = {
    "requests": {"cpu": "10m", "memory": "10Mi"},
    "limits": {"cpu": "100m", "memory": "50Mi"},
}
BASE_RESOURCES: Resources = {"requests": {"cpu": "10m"}}


def derived(rule: Rule, *args: str, empty_is_unset: bool = False) -> Any:
    """A field whose default a rule computes when the resource leaves it unset."""
    return field(metadata={"rule": rule, "args": args, "empty_is_unset": empty_is_unset})


def _frozen_default(value: Any) -> Any:
    return field(default_factory=lambda: copy.deepcopy(value))


def default_when_empty(value: Any) -> Any:
    """A field whose default also replaces an empty value the resource gives."""
    return field(default=value, metadata={"empty_is_unset": True})


def empty_map() -> Any:
    return field(default_factory=dict)


def empty_list() -> Any:
    return field(default_factory=list)


@record
class Placement:
    """Where a component's pods run."""

    nodeSelector: Mapping[str, str] = empty_map()
    affinity: Json = empty_map()
    tolerations: Sequence[Json] = empty_list()


@record
class SDS:
    """Secret discovery service for workload certificates."""

    enabled: bool = False
    udsPath: str = ""
    tokenAudience: str = "istio-ca"
    customTokenDirectory: str = ""
    useTrustworthyJwt: bool = False
    useNormalJwt: bool = False


@record
class Pilot(Placement):
    """Pilot, service discovery and proxy configuration (istio-pilot)."""

    enabled: bool = True
    image: str = derived(VERSIONED_IMAGE, "pilot")
    resources: Resources = derived(DEFAULT_RESOURCES)
    sidecar: bool = True
    replicaCount: int = 1
    minReplicas: int = 1
    maxReplicas: int = 5
    traceSampling: float = 1.0
    enableProtocolSniffing: bool = True
    enableProtocolSniffingOutbound: bool = derived(SAME_AS, "enableProtocolSniffing")
    enableProtocolSniffingInbound: bool = False


@record
class Citadel(Placement):
    """Citadel, the mesh certificate authority (istio-citadel)."""

    enabled: bool = True
    image: str = derived(VERSIONED_IMAGE, "citadel")
    # "" is a self-signed CA.
    caSecretName: str = ""
    healthCheck: bool = False
    workloadCertTTL: str = ""
    maxWorkloadCertTTL: str = ""
    enableNamespacesByDefault: bool = True
    resources: Resources = derived(DEFAULT_RESOURCES)


@record
class Galley(Placement):
    """Galley, configuration validation and distribution (istio-galley)."""

    enabled: bool = True
    image: str = derived(VERSIONED_IMAGE, "galley")
    replicaCount: int = 1
    configValidation: bool = True
    resources: Resources = derived(DEFAULT_RESOURCES)


@record
class GatewaySDS:
    """A gateway's SDS sidecar."""

    enabled: bool = False
    image: str = derived(VERSIONED_IMAGE, "node-agent-k8s")
    resources: Resources = derived(DEFAULT_RESOURCES)


@record
class Port:
    """A Service port; "" is no name."""

    name: str = ""
    protocol: str = "TCP"
    port: int
    targetPort: int | str = derived(TARGET_PORT)
    # 0 leaves the node port to the API server.
    nodePort: int = 0


def _ports(*ports: tuple[str, int, int]) -> Any:
    return field(
        default_factory=lambda: [
            Port(name=name, port=number, targetPort=number, nodePort=node_port)
            for name, number, node_port in ports
        ]
    )


@record
class Gateway(Placement):
    """An ingress or egress gateway: Deployment, Service, autoscaler, disruption budget."""

    enabled: bool = True
    replicaCount: int = 1
    minReplicas: int = 1
    maxReplicas: int = 5
    serviceType: str = "ClusterIP"
    loadBalancerIP: str = ""
    serviceAnnotations: Mapping[str, str] = empty_map()
    serviceLabels: Mapping[str, str] = empty_map()
    sds: GatewaySDS
    # The gateway's istio-proxy: unset, the proxy's resources (as the reference's
    # gateway Deployment falls back to `proxy.resources`).
    resources: Resources = derived(FROM_PROXY)
    ports: Sequence[Port] = empty_list()
    applicationPorts: str = ""
    requestedNetworkView: str = ""


@record
class IngressGateway(Gateway):
    """The ingress gateway: a LoadBalancer with the mesh ports by default."""

    serviceType: str = "LoadBalancer"
    ports: Sequence[Port] = _ports(
        ("status-port", 15020, 31460),
        ("http2", 80, 31380),
        ("https", 443, 31390),
        ("tls", 15443, 31450),
    )


@record
class EgressGateway(Gateway):
    """The egress gateway."""

    ports: Sequence[Port] = _ports(("http2", 80, 0), ("https", 443, 0), ("tls", 15443, 0))


@record
class K8sIngress:
    """The Istio Gateway serving Kubernetes Ingress objects."""

    enabled: bool = False


@record
class Gateways:
    """The ingress and egress gateways, and the Istio Gateway for Kubernetes Ingress."""

    enabled: bool = True
    ingress: IngressGateway
    egress: EgressGateway
    k8singress: K8sIngress


@record
class Mixer(Placement):
    """Mixer's settings, which policy and telemetry inherit (in the 1.2 line, theirs)."""

    enabled: bool = True
    image: str = derived(VERSIONED_IMAGE, "mixer")
    replicaCount: int = 1
    minReplicas: int = 1
    maxReplicas: int = 5
    resources: Resources = derived(DEFAULT_RESOURCES)
    checksEnabled: bool = False
    sessionAffinityEnabled: bool = False
    reportBatchMaxEntries: int = 100
    reportBatchMaxTime: str = "1s"
    multiClusterSupport: bool = False
    stdioAdapterEnabled: bool = False


@record
class MixerPart(Placement):
    """Policy or telemetry: what it leaves unset, it takes from mixer."""

    enabled: bool = derived(FROM_MIXER)
    image: str = derived(FROM_MIXER)
    replicaCount: int = derived(FROM_MIXER)
    minReplicas: int = derived(FROM_MIXER)
    maxReplicas: int = derived(FROM_MIXER)
    resources: Resources = derived(FROM_MIXER)
    nodeSelector: Mapping[str, str] = derived(FROM_MIXER)
    affinity: Json = derived(FROM_MIXER)
    tolerations: Sequence[Json] = derived(FROM_MIXER)


@record
class Policy(MixerPart):
    """Mixer policy (istio-policy)."""

    # Not inherited: mixer.checksEnabled never reaches policy.
    checksEnabled: bool = False
    sessionAffinityEnabled: bool = derived(FROM_MIXER)


@record
class Telemetry(MixerPart):
    """Mixer telemetry (istio-telemetry)."""

    reportBatchMaxEntries: int = derived(FROM_MIXER)
    reportBatchMaxTime: str = derived(FROM_MIXER)


@record
class SidecarInit:
    """The istio-init container injected into workloads."""

    resources: Resources = _frozen_default(INIT_RESOURCES)


@record
class CNI:
    """The Istio CNI plugin (istio-cni-node), instead of istio-init."""

    enabled: bool = False
    image: str = derived(VERSIONED_IMAGE, "install-cni")
    binDir: str = "/opt/cni/bin"
    confDir: str = "/etc/cni/net.d"
    # Empty is the default too: the control plane is never redirected through CNI.
    excludeNamespaces: Sequence[str] = derived(CLUSTER_NAMESPACE_LIST, empty_is_unset=True)
    logLevel: str = "info"
    affinity: Json = empty_map()


@record
class SidecarInjector(Placement):
    """The sidecar injector webhook (istio-sidecar-injector)."""

    enabled: bool = True
    image: str = derived(VERSIONED_IMAGE, "sidecar_injector")
    replicaCount: int = 1
    resources: Resources = derived(DEFAULT_RESOURCES)
    init: SidecarInit
    initCNIConfiguration: CNI
    rewriteAppHTTPProbe: bool = False
    autoInjectionPolicyEnabled: bool = True
    enableNamespacesByDefault: bool = False
    neverInjectSelector: Sequence[Json] = empty_list()
    alwaysInjectSelector: Sequence[Json] = empty_list()


@record
class NodeAgent(Placement):
    """The SDS node agent (istio-nodeagent)."""

    enabled: bool = False
    image: str = derived(VERSIONED_IMAGE, "node-agent-k8s")
    resources: Resources = derived(DEFAULT_RESOURCES)


@record
class EnvoyService:
    """A host:port the proxies report to."""

    enabled: bool = False
    host: str = ""
    port: int = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port or ''}"


@record
class EnvoyAccessLogService(EnvoyService):
    # Passed through to the proxies as given; empty when unset.
    tlsSettings: Json = empty_map()
    tcpKeepalive: Json = empty_map()


@record
class Proxy:
    """The istio-proxy of sidecars, gateways and control-plane pods."""

    image: str = derived(VERSIONED_IMAGE, "proxyv2")
    accessLogFile: str = "/dev/stdout"
    accessLogFormat: str = ""
    accessLogEncoding: str = "TEXT"
    privileged: bool = False
    enableCoreDump: bool = False
    # "" is the family's choice (see `plan.resolve`).
    coreDumpImage: str = ""
    logLevel: str = "warning"
    # Empty is the default too: an empty flag value would reach the proxies.
    componentLogLevel: str = default_when_empty("misc:error")
    dnsRefreshRate: str = "300s"
    clusterDomain: str = "cluster.local"
    envoyStatsD: EnvoyService
    envoyMetricsService: EnvoyService
    envoyAccessLogService: EnvoyAccessLogService
    protocolDetectionTimeout: str = "100ms"
    # The user's `defaultResources` when set, else the proxy's own default.
    resources: Resources = derived(DEFAULT_RESOURCES, "proxy")


@record
class ProxyInit:
    """The istio-init image."""

    image: str = derived(VERSIONED_IMAGE, "proxy_init")


@record
class PDB:
    """PodDisruptionBudgets of the control-plane Deployments."""

    enabled: bool = False


@record
class OutboundTrafficPolicy:
    """What sidecars do with traffic to hosts outside the registry."""

    mode: str = "ALLOW_ANY"


@record
class Zipkin:
    """The Zipkin collector."""

    address: str = derived(ZIPKIN_ADDRESS)


@record
class Lightstep:
    """The LightStep tracer."""

    # The settings the resource gives, passed to the mesh config as they are.
    settings: Json = empty_map()
    cacertPath: str = ""


@record
class Datadog:
    """The Datadog agent."""

    address: str = "$(HOST_IP):8126"


@record
class Tracing:
    """Distributed tracing."""

    enabled: bool = True
    tracer: str = "zipkin"
    zipkin: Zipkin
    lightstep: Lightstep
    datadog: Datadog


@record
class LocalityLB:
    """Locality-weighted load balancing."""

    enabled: bool = False
    # The mesh's localityLbSetting as given (`distribute` wins over `failover`).
    distribute: Sequence[Json] = empty_list()
    failover: Sequence[Json] = empty_list()


@record
class MixerlessTelemetry:
    """In-proxy (Mixer-less) telemetry, 1.3 line."""

    enabled: bool = False


@record
class CoreDNS(Placement):
    """Istio CoreDNS, resolving the `*.global` names of a multi-mesh."""

    enabled: bool = False
    image: str = derived(FIXED_IMAGE, "coredns/coredns:1.1.2")
    pluginImage: str = derived(FIXED_IMAGE, "docker.io/istio/coredns-plugin:0.2-istio-1.1")
    replicaCount: int = 1
    resources: Resources = derived(DEFAULT_RESOURCES)


@record
class MeshPlan:
    """Every setting of one cluster's control plane (see the module docstring)."""

    version: str
    mtls: bool
    includeIPRanges: str = "*"
    excludeIPRanges: str = ""
    autoInjectionNamespaces: Sequence[str] = empty_list()
    controlPlaneSecurityEnabled: bool = False
    defaultResources: Resources = _frozen_default(BASE_RESOURCES)
    sds: SDS
    pilot: Pilot
    citadel: Citadel
    galley: Galley
    gateways: Gateways
    mixer: Mixer
    policy: Policy
    telemetry: Telemetry
    sidecarInjector: SidecarInjector
    nodeAgent: NodeAgent
    proxy: Proxy
    proxyInit: ProxyInit
    watchOneNamespace: bool = False
    useMCP: bool = True
    defaultConfigVisibility: str = ""
    watchAdapterCRDs: bool = False
    defaultPodDisruptionBudget: PDB
    outboundTrafficPolicy: OutboundTrafficPolicy
    tracing: Tracing
    imagePullPolicy: str = "IfNotPresent"
    meshExpansion: bool = False
    multiMesh: bool = False
    istioCoreDNS: CoreDNS
    localityLB: LocalityLB
    clusterName: str = ""
    meshID: str = ""
    mixerlessTelemetry: MixerlessTelemetry
    # "" when the family passes no trust domain to its components.
    trustDomain: str = "cluster.local"
