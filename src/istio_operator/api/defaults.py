"""Defaults of the `Istio` and `RemoteIstio` specs, applied in one place.

The models keep `None` for every field the resource leaves unset;
`apply_defaults` returns a copy in which every field that has a default in the
reference API is set. Defaults are applied in memory on every reconcile and
never written back to the resource. Images are not defaulted here: they
depend on the Istio version and are filled by `istio_operator.versions`.

Fields of the 1.3 family are defaulted for both families; a 1.2 renderer
ignores them.

Deliberate differences from the reference:
- `proxy.resources`, when unset, is the user's `defaultResources` if the
  resource sets one, else the proxy default (100m/128Mi, limits 2000m/1024Mi).
  The reference then uses its package default (10m) instead of the user's value.
- `sidecarInjector.initCNIConfiguration.excludeNamespaces` defaults to the
  resource's namespace, so it needs the namespace (`namespace=`); without one
  it stays unset. `tracing.zipkin.address` likewise defaults to
  `zipkin.<namespace>:9411` and falls back to `zipkin.istio-system:9411`.
- A bool that the reference declares as a plain (non-pointer) Go bool defaults
  to `false`, its Go zero value, so renderers never see `None` for a switch.

Fields that may still be `None` after `apply_defaults`:
- every image field (`*.image`, `gateways.*.sds.image`,
  `istioCoreDNS.pluginImage`), filled by `versions.resolve_images`, and
  `proxy.coreDumpImage` (no default at all);
- per-component `resources` (the renderer falls back to `defaultResources`),
  `nodeSelector`, `affinity`, `tolerations`, and `gateways.*.sds.resources`;
- `citadel.caSecretName` (unset means a self-signed CA), `citadel.healthCheck`,
  `citadel.workloadCertTTL`, `citadel.maxWorkloadCertTTL`;
- `gateways.*.loadBalancerIP`, `serviceAnnotations`, `serviceLabels`,
  `applicationPorts`, `requestedNetworkView`;
- `sds.udsPath`, `sds.customTokenDirectory`;
- `autoInjectionNamespaces`, `sidecarInjector.neverInjectSelector`,
  `alwaysInjectSelector`, `initCNIConfiguration.affinity`;
- `proxy.envoyStatsD/envoyMetricsService/envoyAccessLogService` `host`, `port`
  and the ALS `tlsSettings`/`tcpKeepalive`;
- `tracing.lightstep.*` (only `lightstep` itself is set), `localityLB`;
- all `policy.*` and `telemetry.*` fields that inherit a `None` from `mixer.*`.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from istio_operator.api.common import ServicePort
from istio_operator.api.istio import IstioSpec
from istio_operator.api.remoteistio import RemoteIstioSpec

DEFAULT_NAMESPACE: Final = "istio-system"

DEFAULT_RESOURCES: Final[dict[str, Any]] = {"requests": {"cpu": "10m"}}
PROXY_RESOURCES: Final[dict[str, Any]] = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "2000m", "memory": "1024Mi"},
}
INIT_RESOURCES: Final[dict[str, Any]] = {
    "requests": {"cpu": "10m", "memory": "10Mi"},
    "limits": {"cpu": "100m", "memory": "50Mi"},
}

INGRESS_PORTS: Final[tuple[ServicePort, ...]] = (
    ServicePort(name="status-port", port=15020, targetPort=15020, nodePort=31460),
    ServicePort(name="http2", port=80, targetPort=80, nodePort=31380),
    ServicePort(name="https", port=443, targetPort=443, nodePort=31390),
    ServicePort(name="tls", port=15443, targetPort=15443, nodePort=31450),
)
EGRESS_PORTS: Final[tuple[ServicePort, ...]] = (
    ServicePort(name="http2", port=80, targetPort=80),
    ServicePort(name="https", port=443, targetPort=443),
    ServicePort(name="tls", port=15443, targetPort=15443),
)


def _ports(ports: tuple[ServicePort, ...]) -> list[dict[str, Any]]:
    return [p.model_dump(exclude_none=True) for p in ports]


def _replicas(prefix: str) -> tuple[tuple[str, Any], ...]:
    return (
        (f"{prefix}.replicaCount", 1),
        (f"{prefix}.minReplicas", 1),
        (f"{prefix}.maxReplicas", 5),
    )


# (field path, default), applied in this order to fields left unset.
# Values are copied before use, so the lists and dicts here are never shared.
SPEC_DEFAULTS: Final[tuple[tuple[str, Any], ...]] = (
    ("includeIPRanges", "*"),
    ("excludeIPRanges", ""),
    ("controlPlaneSecurityEnabled", False),
    ("sds.enabled", False),
    ("sds.tokenAudience", "istio-ca"),
    ("sds.useTrustworthyJwt", False),
    ("sds.useNormalJwt", False),
    ("pilot.enabled", True),
    ("pilot.sidecar", True),
    *_replicas("pilot"),
    ("pilot.traceSampling", 1.0),
    ("pilot.enableProtocolSniffing", True),
    # pilot.enableProtocolSniffingOutbound: a copy of enableProtocolSniffing (see below).
    ("pilot.enableProtocolSniffingInbound", False),
    ("citadel.enabled", True),
    ("citadel.enableNamespacesByDefault", True),
    ("galley.enabled", True),
    ("galley.replicaCount", 1),
    ("galley.configValidation", True),
    ("gateways.enabled", True),
    ("gateways.ingress.enabled", True),
    *_replicas("gateways.ingress"),
    ("gateways.ingress.serviceType", "LoadBalancer"),
    ("gateways.ingress.ports", _ports(INGRESS_PORTS)),
    ("gateways.ingress.sds.enabled", False),
    ("gateways.egress.enabled", True),
    *_replicas("gateways.egress"),
    ("gateways.egress.serviceType", "ClusterIP"),
    ("gateways.egress.ports", _ports(EGRESS_PORTS)),
    ("gateways.egress.sds.enabled", False),
    ("gateways.k8singress.enabled", False),
    ("mixer.enabled", True),
    *_replicas("mixer"),
    ("mixer.reportBatchMaxEntries", 100),
    ("mixer.reportBatchMaxTime", "1s"),
    ("mixer.sessionAffinityEnabled", False),
    ("mixer.checksEnabled", False),
    ("mixer.multiClusterSupport", False),
    ("mixer.stdioAdapterEnabled", False),
    # Set before inheritance, so mixer.checksEnabled never reaches policy.
    ("policy.checksEnabled", False),
    ("sidecarInjector.enabled", True),
    ("sidecarInjector.replicaCount", 1),
    ("sidecarInjector.init.resources", INIT_RESOURCES),
    ("sidecarInjector.initCNIConfiguration.enabled", False),
    ("sidecarInjector.initCNIConfiguration.binDir", "/opt/cni/bin"),
    ("sidecarInjector.initCNIConfiguration.confDir", "/etc/cni/net.d"),
    ("sidecarInjector.initCNIConfiguration.logLevel", "info"),
    ("sidecarInjector.rewriteAppHTTPProbe", False),
    ("sidecarInjector.autoInjectionPolicyEnabled", True),
    ("sidecarInjector.enableNamespacesByDefault", False),
    ("nodeAgent.enabled", False),
    ("proxy.accessLogFile", "/dev/stdout"),
    ("proxy.accessLogFormat", ""),
    ("proxy.accessLogEncoding", "TEXT"),
    ("proxy.privileged", False),
    ("proxy.enableCoreDump", False),
    ("proxy.logLevel", "warning"),
    ("proxy.componentLogLevel", "misc:error"),
    ("proxy.dnsRefreshRate", "300s"),
    ("proxy.clusterDomain", "cluster.local"),
    ("proxy.envoyStatsD.enabled", False),
    ("proxy.envoyMetricsService.enabled", False),
    ("proxy.envoyAccessLogService.enabled", False),
    ("proxy.protocolDetectionTimeout", "100ms"),
    # proxy.resources: see _default_proxy_resources.
    ("watchOneNamespace", False),
    ("useMCP", True),
    ("defaultConfigVisibility", ""),
    ("watchAdapterCRDs", False),
    ("defaultPodDisruptionBudget.enabled", False),
    ("outboundTrafficPolicy.mode", "ALLOW_ANY"),
    ("tracing.enabled", True),
    ("tracing.tracer", "zipkin"),
    # tracing.zipkin.address: zipkin.<namespace>:9411 (see below).
    ("tracing.datadog.address", "$(HOST_IP):8126"),
    ("tracing.lightstep", {}),
    ("tracing.stackdriver", {}),
    ("imagePullPolicy", "IfNotPresent"),
    ("meshExpansion", False),
    ("multiMesh", False),
    ("istioCoreDNS.enabled", False),
    ("istioCoreDNS.replicaCount", 1),
    ("clusterName", ""),
    ("meshID", ""),
    ("mixerlessTelemetry.enabled", False),
    ("trustDomain", "cluster.local"),
)

# Settings of mixer that policy and telemetry take when they leave them unset.
_K8S_RESOURCE_FIELDS: Final = (
    "enabled",
    "image",
    "replicaCount",
    "minReplicas",
    "maxReplicas",
    "resources",
    "nodeSelector",
    "affinity",
    "tolerations",
)
POLICY_INHERITED: Final[tuple[str, ...]] = (*_K8S_RESOURCE_FIELDS, "sessionAffinityEnabled")
TELEMETRY_INHERITED: Final[tuple[str, ...]] = (
    *_K8S_RESOURCE_FIELDS,
    "reportBatchMaxEntries",
    "reportBatchMaxTime",
)

REMOTE_SPEC_DEFAULTS: Final[tuple[tuple[str, Any], ...]] = (
    ("includeIPRanges", "*"),
    ("sidecarInjector.replicaCount", 1),
)


def get_path(data: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of a dumped spec, or None."""
    node: Any = data
    for key in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def set_default(data: dict[str, Any], path: str, value: Any) -> None:
    """Set the value at a dotted path unless it is set, creating objects on the way."""
    *parents, leaf = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    if node.get(leaf) is None:
        node[leaf] = copy.deepcopy(value)


def _dump(spec: IstioSpec | RemoteIstioSpec) -> dict[str, Any]:
    return spec.model_dump(by_alias=True, exclude_none=True)


def apply_defaults(spec: IstioSpec, namespace: str | None = None) -> IstioSpec:
    """A copy of `spec` with every unset field that has a default set to it.

    `namespace` is the namespace of the `Istio` resource; the defaults that
    name it (CNI excluded namespaces, the Zipkin address) need it.
    Idempotent: `apply_defaults(apply_defaults(s)) == apply_defaults(s)`.
    """
    data = _dump(spec)
    user_set_default_resources = data.get("defaultResources") is not None
    for path, value in SPEC_DEFAULTS:
        set_default(data, path, value)
    set_default(
        data,
        "pilot.enableProtocolSniffingOutbound",
        get_path(data, "pilot.enableProtocolSniffing"),
    )
    set_default(
        data,
        "proxy.resources",
        data["defaultResources"] if user_set_default_resources else PROXY_RESOURCES,
    )
    set_default(data, "defaultResources", DEFAULT_RESOURCES)
    set_default(data, "tracing.zipkin.address", f"zipkin.{namespace or DEFAULT_NAMESPACE}:9411")
    if namespace:
        set_default(data, "sidecarInjector.initCNIConfiguration.excludeNamespaces", [namespace])
    _inherit(data, "policy", POLICY_INHERITED)
    _inherit(data, "telemetry", TELEMETRY_INHERITED)
    return IstioSpec.model_validate(data)


def _inherit(data: dict[str, Any], target: str, fields: tuple[str, ...]) -> None:
    mixer = data["mixer"]
    for name in fields:
        if name in mixer:
            set_default(data, f"{target}.{name}", mixer[name])
    data.setdefault(target, {})


def apply_remote_defaults(spec: RemoteIstioSpec) -> RemoteIstioSpec:
    """A copy of a `RemoteIstio` spec with its own defaults set.

    Only `includeIPRanges` (`*`) and `sidecarInjector.replicaCount` (1) have
    defaults; every other field is an optional override of the primary's value.
    """
    data = _dump(spec)
    for path, value in REMOTE_SPEC_DEFAULTS:
        set_default(data, path, value)
    return RemoteIstioSpec.model_validate(data)
