"""The `Istio` custom resource (`istio.banzaicloud.io/v1beta1`).

One model per Go type of the reference API (`IstioSpec` and the
`*Configuration` types it holds). The spec is the union of the 1.2 and 1.3
families' fields: fields that only one family reads are accepted for both and
ignored by the renderer of the other (see `istio_operator.versions`).

Attribute names are the JSON names. The one exception is `from` (a Python
keyword) in the locality load-balancing settings: the attribute is `from_`,
with the alias `from`; dump with `by_alias=True` to get the JSON shape.
"""

# Annotations are evaluated as the classes are made (no `from __future__ import annotations`):
# pydantic would otherwise parse each string annotation again, at every command's start.
from typing import Annotated, Any, Final, Literal

from pydantic import BeforeValidator, ConfigDict, Field, WithJsonSchema

from istio_operator.api.common import (
    AffinityObject,
    Annotations,
    ApiModel,
    Count,
    KubeObject,
    Labels,
    LabelSelectors,
    ObjectMeta,
    PortNumber,
    Resources,
    ServicePorts,
    Tolerations,
)
from istio_operator.api.kubetypes import DNS_LABEL_PATTERN, Image, Version

ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]
OutboundTrafficPolicyMode = Literal["ALLOW_ANY", "REGISTRY_ONLY"]
Tracer = Literal["zipkin", "lightstep", "datadog", "stackdriver"]
ImagePullPolicy = Literal["Always", "Never", "IfNotPresent"]
AccessLogFile = Literal["", "/dev/stdout"]
AccessLogEncoding = Literal["JSON", "TEXT"]
ProxyLogLevel = Literal["trace", "debug", "info", "warning", "error", "critical", "off"]
CNILogLevel = Literal["debug", "info", "warn", "warning", "error"]


class SDSConfiguration(ApiModel):
    """Secret discovery service settings for workloads."""

    enabled: bool | None = None
    udsPath: str | None = None
    tokenAudience: str | None = None
    customTokenDirectory: str | None = None
    # 1.2 family only; the 1.3 family uses tokenAudience instead.
    useTrustworthyJwt: bool | None = None
    useNormalJwt: bool | None = None


class PilotConfiguration(ApiModel):
    """Pilot (istio-pilot Deployment)."""

    enabled: bool | None = None
    image: Image | None = None
    sidecar: bool | None = None
    replicaCount: Count | None = None
    minReplicas: Count | None = None
    maxReplicas: Count | None = None
    traceSampling: Annotated[float, Field(ge=0, le=100)] | None = None
    enableProtocolSniffing: bool | None = None
    enableProtocolSniffingOutbound: bool | None = None
    enableProtocolSniffingInbound: bool | None = None
    resources: Resources | None = None
    nodeSelector: Labels | None = None
    affinity: AffinityObject | None = None
    tolerations: Tolerations | None = None


class CitadelConfiguration(ApiModel):
    """Citadel, the certificate authority (istio-citadel Deployment)."""

    enabled: bool | None = None
    image: Image | None = None
    caSecretName: str | None = None
    healthCheck: bool | None = None
    workloadCertTTL: str | None = None
    maxWorkloadCertTTL: str | None = None
    enableNamespacesByDefault: bool | None = None
    resources: Resources | None = None
    nodeSelector: Labels | None = None
    affinity: AffinityObject | None = None
    tolerations: Tolerations | None = None


class GalleyConfiguration(ApiModel):
    """Galley, configuration validation and distribution (istio-galley Deployment)."""

    enabled: bool | None = None
    image: Image | None = None
    replicaCount: Count | None = None
    configValidation: bool | None = None
    resources: Resources | None = None
    nodeSelector: Labels | None = None
    affinity: AffinityObject | None = None
    tolerations: Tolerations | None = None


def _joined_network_view(value: Any) -> Any:
    """A list of network names as the comma-separated string the reference takes."""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ",".join(value)
    return value


# The reference API's `requestedNetworkView` is a string, passed verbatim to the
# gateway proxy as ISTIO_META_REQUESTED_NETWORK_VIEW (pilot splits it at commas).
# A list of names is also read (joined with commas); the CRD declares the string.
NetworkView = Annotated[
    str,
    BeforeValidator(_joined_network_view),
    WithJsonSchema({"type": "string"}),
]


class GatewaySDSConfiguration(ApiModel):
    """The SDS sidecar of a gateway."""

    enabled: bool | None = None
    image: Image | None = None
    resources: Resources | None = None


class GatewayConfiguration(ApiModel):
    """An ingress or egress gateway (Deployment, Service, HPA, PDB)."""

    enabled: bool | None = None
    replicaCount: Count | None = None
    minReplicas: Count | None = None
    maxReplicas: Count | None = None
    serviceType: ServiceType | None = None
    loadBalancerIP: str | None = None
    serviceAnnotations: Annotations | None = None
    serviceLabels: Labels | None = None
    sds: GatewaySDSConfiguration | None = None
    resources: Resources | None = None
    ports: ServicePorts | None = None
    applicationPorts: str | None = None
    requestedNetworkView: NetworkView | None = None
    nodeSelector: Labels | None = None
    affinity: AffinityObject | None = None
    tolerations: Tolerations | None = None


class K8sIngressConfiguration(ApiModel):
    """The Kubernetes Ingress gateway (an Istio Gateway serving Ingress objects)."""

    enabled: bool | None = None


class GatewaysConfiguration(ApiModel):
    """All gateways."""

    enabled: bool | None = None
    ingress: GatewayConfiguration | None = None
    egress: GatewayConfiguration | None = None
    k8singress: K8sIngressConfiguration | None = None


class K8sResourceConfiguration(ApiModel):
    """Deployment settings shared by mixer, policy and telemetry."""

    image: Image | None = None
    replicaCount: Count | None = None
    minReplicas: Count | None = None
    maxReplicas: Count | None = None
    resources: Resources | None = None
    nodeSelector: Labels | None = None
    affinity: AffinityObject | None = None
    tolerations: Tolerations | None = None


class MixerConfiguration(K8sResourceConfiguration):
    """Mixer. In the 1.3 family its settings are inherited by policy and telemetry;
    in the 1.2 family it is the single switch for both Deployments."""

    enabled: bool | None = None
    checksEnabled: bool | None = None
    sessionAffinityEnabled: bool | None = None
    reportBatchMaxEntries: Count | None = None
    reportBatchMaxTime: str | None = None
    multiClusterSupport: bool | None = None
    stdioAdapterEnabled: bool | None = None


class PolicyConfiguration(K8sResourceConfiguration):
    """Mixer policy (istio-policy Deployment), 1.3 family."""

    enabled: bool | None = None
    checksEnabled: bool | None = None
    sessionAffinityEnabled: bool | None = None


class TelemetryConfiguration(K8sResourceConfiguration):
    """Mixer telemetry (istio-telemetry Deployment), 1.3 family."""

    enabled: bool | None = None
    reportBatchMaxEntries: Count | None = None
    reportBatchMaxTime: str | None = None


class SidecarInjectorInitConfiguration(ApiModel):
    """The istio-init container injected into workloads."""

    resources: Resources | None = None


class CNIConfiguration(ApiModel):
    """The Istio CNI plugin (istio-cni-node DaemonSet), replacing istio-init."""

    enabled: bool | None = None
    image: Image | None = None
    binDir: str | None = None
    confDir: str | None = None
    excludeNamespaces: list[str] | None = None
    logLevel: CNILogLevel | None = None
    affinity: AffinityObject | None = None


# The reference's Go name for the same type.
InitCNIConfiguration = CNIConfiguration


class SidecarInjectorConfiguration(ApiModel):
    """The sidecar injector webhook (istio-sidecar-injector Deployment)."""

    enabled: bool | None = None
    image: Image | None = None
    replicaCount: Count | None = None
    resources: Resources | None = None
    init: SidecarInjectorInitConfiguration | None = None
    initCNIConfiguration: CNIConfiguration | None = None
    rewriteAppHTTPProbe: bool | None = None
    autoInjectionPolicyEnabled: bool | None = None
    enableNamespacesByDefault: bool | None = None
    neverInjectSelector: LabelSelectors | None = None
    alwaysInjectSelector: LabelSelectors | None = None
    nodeSelector: Labels | None = None
    affinity: AffinityObject | None = None
    tolerations: Tolerations | None = None


class NodeAgentConfiguration(ApiModel):
    """The SDS node agent (istio-nodeagent DaemonSet)."""

    enabled: bool | None = None
    image: Image | None = None
    resources: Resources | None = None
    nodeSelector: Labels | None = None
    affinity: AffinityObject | None = None
    tolerations: Tolerations | None = None


class EnvoyServiceCommonConfiguration(ApiModel):
    """A host:port the proxies report to."""

    enabled: bool | None = None
    host: str | None = None
    port: PortNumber | None = None


class EnvoyStatsD(EnvoyServiceCommonConfiguration):
    """StatsD sink of the proxies (1.3 family)."""


class EnvoyMetricsService(EnvoyServiceCommonConfiguration):
    """Envoy metrics service of the proxies (1.3 family)."""


class TLSSettings(ApiModel):
    """TLS settings for the connection to the access log service."""

    mode: str | None = None
    clientCertificate: str | None = None
    privateKey: str | None = None
    caCertificates: str | None = None
    sni: str | None = None
    subjectAltNames: list[str] | None = None


class TCPKeepalive(ApiModel):
    """TCP keepalive for the connection to the access log service."""

    probes: Count | None = None
    time: str | None = None
    interval: str | None = None


class EnvoyAccessLogService(EnvoyServiceCommonConfiguration):
    """Envoy gRPC access log service of the proxies (1.3 family)."""

    tlsSettings: TLSSettings | None = None
    tcpKeepalive: TCPKeepalive | None = None


class ProxyConfiguration(ApiModel):
    """The istio-proxy sidecar and gateway proxies."""

    image: Image | None = None
    accessLogFile: AccessLogFile | None = None
    accessLogFormat: str | None = None
    accessLogEncoding: AccessLogEncoding | None = None
    privileged: bool | None = None
    enableCoreDump: bool | None = None
    coreDumpImage: Image | None = None
    logLevel: ProxyLogLevel | None = None
    componentLogLevel: str | None = None
    dnsRefreshRate: Annotated[str, Field(pattern=r"^[0-9]{1,5}s$")] | None = None
    clusterDomain: str | None = None
    envoyStatsD: EnvoyStatsD | None = None
    envoyMetricsService: EnvoyMetricsService | None = None
    envoyAccessLogService: EnvoyAccessLogService | None = None
    protocolDetectionTimeout: str | None = None
    resources: Resources | None = None


class ProxyInitConfiguration(ApiModel):
    """The istio-init container image."""

    image: Image | None = None


class PDBConfiguration(ApiModel):
    """PodDisruptionBudgets for the control-plane Deployments."""

    enabled: bool | None = None


class OutboundTrafficPolicyConfiguration(ApiModel):
    """What sidecars do with traffic to hosts outside the service registry."""

    mode: OutboundTrafficPolicyMode | None = None


class ZipkinConfiguration(ApiModel):
    """Zipkin tracer."""

    address: str | None = None


class LightstepConfiguration(ApiModel):
    """LightStep tracer."""

    address: str | None = None
    accessToken: str | None = None
    secure: bool | None = None
    cacertPath: str | None = None


class DatadogConfiguration(ApiModel):
    """Datadog tracer."""

    address: str | None = None


class StackdriverConfiguration(ApiModel):
    """Stackdriver tracer (1.3 family). It has no settings."""


class TracingConfiguration(ApiModel):
    """Distributed tracing."""

    enabled: bool | None = None
    tracer: Tracer | None = None
    zipkin: ZipkinConfiguration | None = None
    lightstep: LightstepConfiguration | None = None
    datadog: DatadogConfiguration | None = None
    stackdriver: StackdriverConfiguration | None = None


class IstioCoreDNS(ApiModel):
    """Istio CoreDNS, resolving `*.global` names for multi-mesh."""

    enabled: bool | None = None
    image: Image | None = None
    pluginImage: Image | None = None
    replicaCount: Count | None = None
    resources: Resources | None = None
    nodeSelector: Labels | None = None
    affinity: AffinityObject | None = None
    tolerations: Tolerations | None = None


class LocalityLBDistribute(ApiModel):
    """Traffic weights from one locality to others."""

    from_: str | None = Field(default=None, alias="from")
    to: dict[str, Annotated[int, Field(ge=0, le=2**32 - 1)]] | None = None


class LocalityLBFailover(ApiModel):
    """Failover from one region to another."""

    from_: str | None = Field(default=None, alias="from")
    to: str | None = None


class LocalityLBConfiguration(ApiModel):
    """Locality-weighted load balancing."""

    enabled: bool | None = None
    distribute: list[LocalityLBDistribute] | None = None
    failover: list[LocalityLBFailover] | None = None


class MixerlessTelemetryConfiguration(ApiModel):
    """In-proxy (Mixer-less) telemetry, 1.3 family."""

    enabled: bool | None = None


UpdateStrategyType = Literal["InPlace", "RevisionBased"]
# A revision tag's name: a label value that is also part of object names.
TagName = Annotated[str, Field(min_length=1, max_length=30, pattern=DNS_LABEL_PATTERN)]
ProfileName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]


class WorkloadMigration(ApiModel):
    """Restarting the workloads an older revision injected, in batches, once the new
    revision is active (istiod family, `RevisionBased`; off unless `enabled`)."""

    enabled: bool | None = None
    batchSize: Annotated[int, Field(ge=1, le=1000)] | None = None
    delaySeconds: Annotated[int, Field(ge=0, le=86400)] | None = None
    readinessTimeoutSeconds: Annotated[int, Field(ge=1, le=86400)] | None = None


class UpdateStrategy(ApiModel):
    """How a change of `spec.version` reaches the control plane (istiod family).

    `InPlace` upgrades istiod where it stands; `RevisionBased` installs each version as a
    revision beside the running one, moves the revision tags once it is ready, and
    removes the old revision when nothing has used it for the grace period.
    """

    type: UpdateStrategyType | None = None
    inactiveRevisionDeletionGracePeriodSeconds: Annotated[int, Field(ge=0)] | None = None
    tags: list[TagName] | None = None
    workloadMigration: WorkloadMigration | None = None


class IstioSpec(ApiModel):
    """The desired Istio control plane."""

    version: Version
    # Required by the classic family (1.2/1.3); the istiod family does not read it.
    mtls: bool | None = None
    # The istiod family (Istio's own charts): the profile, Helm values passed through, and
    # how a version change is rolled out.
    profile: ProfileName | None = None
    values: KubeObject | None = None
    updateStrategy: UpdateStrategy | None = None
    includeIPRanges: str | None = None
    excludeIPRanges: str | None = None
    autoInjectionNamespaces: list[str] | None = None
    controlPlaneSecurityEnabled: bool | None = None
    defaultResources: Resources | None = None
    sds: SDSConfiguration | None = None
    pilot: PilotConfiguration | None = None
    citadel: CitadelConfiguration | None = None
    galley: GalleyConfiguration | None = None
    gateways: GatewaysConfiguration | None = None
    mixer: MixerConfiguration | None = None
    policy: PolicyConfiguration | None = None
    telemetry: TelemetryConfiguration | None = None
    sidecarInjector: SidecarInjectorConfiguration | None = None
    nodeAgent: NodeAgentConfiguration | None = None
    proxy: ProxyConfiguration | None = None
    proxyInit: ProxyInitConfiguration | None = None
    watchOneNamespace: bool | None = None
    useMCP: bool | None = None
    defaultConfigVisibility: str | None = None
    watchAdapterCRDs: bool | None = None
    defaultPodDisruptionBudget: PDBConfiguration | None = None
    outboundTrafficPolicy: OutboundTrafficPolicyConfiguration | None = None
    tracing: TracingConfiguration | None = None
    imagePullPolicy: ImagePullPolicy | None = None
    meshExpansion: bool | None = None
    multiMesh: bool | None = None
    istioCoreDNS: IstioCoreDNS | None = None
    localityLB: LocalityLBConfiguration | None = None
    clusterName: str | None = None
    meshID: str | None = None
    mixerlessTelemetry: MixerlessTelemetryConfiguration | None = None
    trustDomain: str | None = None


class Istio(ApiModel):
    """An `Istio` resource: one control plane on the primary cluster."""

    # Top-level keys other than these (`status`) are not part of the desired state.
    model_config = ConfigDict(extra="ignore", strict=True, populate_by_name=True)

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: IstioSpec


# Descriptions by the last segments of a path; `[]` marks the items of a list.
SUFFIX_DOCS: Final[dict[str, str]] = {
    "enabled": "Whether the component is installed.",
    "image": "Container image. Unset, the image of `spec.version` is used.",
    "replicaCount": "Replicas of the Deployment.",
    "minReplicas": "Lower bound of the Deployment's HorizontalPodAutoscaler (at least 1).",
    "maxReplicas": "Upper bound of the Deployment's HorizontalPodAutoscaler (at least "
    "`minReplicas`).",
    **{
        f"{scaled}.replicaCount": "Accepted for compatibility: this Deployment is scaled "
        "by its HorizontalPodAutoscaler (`minReplicas` to `maxReplicas`), which owns "
        "`replicas`."
        for scaled in ("pilot", "ingress", "egress", "mixer", "policy", "telemetry")
    },
    "resources": "Kubernetes `ResourceRequirements` of the container. Unset, "
    "`defaultResources` applies.",
    "nodeSelector": "Kubernetes node selector of the pods.",
    "affinity": "Kubernetes `Affinity` of the pods.",
    "tolerations": "Kubernetes `Toleration`s of the pods.",
    "ports[].name": "Port name.",
    "ports[].protocol": "Port protocol.",
    "ports[].port": "Port of the Service.",
    "ports[].targetPort": "Port (number or name) of the pods.",
    "ports[].nodePort": "Node port, for `NodePort` and `LoadBalancer` Services.",
    "sds": "The SDS sidecar of this gateway.",
    "sds.enabled": "Run an SDS sidecar (node agent) next to the gateway proxy, so that "
    "the gateway gets its TLS certificates through SDS.",
    "sds.image": "Image of the gateway's SDS sidecar. Unset, the node-agent image of "
    "`spec.version`.",
    "sds.resources": "Kubernetes `ResourceRequirements` of the gateway's SDS sidecar.",
    "serviceType": "Type of the gateway's Service.",
    "loadBalancerIP": "`loadBalancerIP` of a `LoadBalancer` Service.",
    "serviceAnnotations": "Annotations of the gateway's Service (cloud load-balancer "
    "settings, for example).",
    "serviceLabels": "Extra labels of the gateway's Service.",
    "ports": "Ports of the gateway's Service.",
    "applicationPorts": "Comma-separated ports passed to the gateway proxy as "
    "`--applicationPorts`.",
    "requestedNetworkView": "Comma-separated networks this gateway's proxy sees (the "
    "`ISTIO_META_REQUESTED_NETWORK_VIEW` environment variable); a list of names is "
    "read as well.",
    "host": "Host to report to.",
    "port": "Port to report to.",
    "reportBatchMaxEntries": "Telemetry reports a proxy batches before sending them.",
    "reportBatchMaxTime": "Longest time a proxy holds a batch of telemetry reports.",
    "checksEnabled": "Whether sidecars call Mixer policy checks (mesh `disablePolicyChecks` "
    "is its negation).",
    "sessionAffinityEnabled": "Session affinity from sidecars to Mixer telemetry (mesh "
    "`sidecarToTelemetrySessionAffinity`).",
    "from": "The source locality (`region/zone/subzone`, `*` wildcards).",
}

# Descriptions by full path (they take precedence over SUFFIX_DOCS).
FIELD_DOCS: Final[dict[str, str]] = {
    "version": "Istio version to run, `MAJOR.MINOR.PATCH` (optionally `-suffix`). It "
    "picks the family: 1.2.x and 1.3.x the classic one (the operator's own renderers), a "
    "version in the chart catalogue the istiod one (Istio's own charts). A version "
    "neither accepts is refused and nothing changes, as is a change from one family to "
    "the other. Changing it upgrades (or rolls back) the control plane: in place, or by "
    "revision (istiod family, `updateStrategy`).",
    "mtls": "Mutual TLS between workloads: the mesh-wide authentication policy and the "
    "default DestinationRules. Required by the classic family; not read by the istiod one.",
    "profile": "istiod family: the Istio profile (`default`, `minimal`, `demo`, `ambient`, "
    "or any the version's charts have). It picks the components (ingress and egress "
    "gateways, CNI, ztunnel) as istioctl's profile does, and is passed to the charts as "
    "their `profile` value. Default `default`.",
    "values": "istiod family: Helm values passed through to Istio's charts: `cni`, "
    "`ztunnel`, `ingressGateway` and `egressGateway` to those charts, `global` to every "
    "chart, the rest to the istiod and base charts. The operator sets `revision`, "
    "`revisionTags`, `defaultRevision`, `global.tag` (the version) and "
    "`global.istioNamespace` itself, whatever is given here.",
    "updateStrategy": "istiod family: how a change of `version` reaches the control plane.",
    "updateStrategy.type": "`InPlace` (default): istiod is upgraded where it stands. "
    "`RevisionBased`: each version is a revision (`<name>-<version>`, dots as dashes) "
    "installed beside the running one; the revision tags and the gateways move to it "
    "once its istiod is available.",
    "updateStrategy.inactiveRevisionDeletionGracePeriodSeconds": "`RevisionBased`: how "
    "long an older revision is kept once nothing uses it (no namespace labelled for it or "
    "for a tag pointing at it, no pod it injected). Default 30.",
    "updateStrategy.workloadMigration": "`RevisionBased`: the operator restarts the "
    "workloads an older revision injected, in batches, once the new revision is active "
    "(namespaces labelled for an older revision are labelled for the new one first). "
    "Progress is in `status.migration`.",
    "updateStrategy.workloadMigration.enabled": "Migrate workloads (default false: they "
    "move when they are next restarted).",
    "updateStrategy.workloadMigration.batchSize": "Workloads restarted at once (default 1).",
    "updateStrategy.workloadMigration.delaySeconds": "Seconds between one batch being ready "
    "and the next starting (default 0).",
    "updateStrategy.workloadMigration.readinessTimeoutSeconds": "A restarted workload not "
    "ready within this many seconds stops the migration, named in `status.migration` "
    "(default 300).",
    "updateStrategy.tags": "Revision tags that follow the active revision (namespaces "
    "labelled `istio.io/rev=<tag>`). With `RevisionBased` the `default` tag (namespaces "
    "labelled `istio-injection=enabled`) always does.",
    "includeIPRanges": "Outbound IP ranges (CIDRs, comma-separated) redirected to the "
    "sidecar; `*` means all.",
    "excludeIPRanges": "Outbound IP ranges (CIDRs, comma-separated) that bypass the sidecar.",
    "autoInjectionNamespaces": "Namespaces the operator labels `istio-injection=enabled`. "
    "The label is taken back from a namespace that leaves the list; namespaces labelled "
    "by hand are left alone.",
    "controlPlaneSecurityEnabled": "Mutual TLS between control-plane components (secure "
    "ports 15011 for pilot and 15004 for mixer, mesh `controlPlaneAuthPolicy` MUTUAL_TLS).",
    "defaultResources": "Kubernetes `ResourceRequirements` of every control-plane "
    "container that sets no `resources` of its own.",
    "sds": "Secret discovery service for workload certificates.",
    "sds.enabled": "Deliver workload certificates through SDS (with the node agent) "
    "instead of Secrets mounted into the sidecars.",
    "sds.udsPath": "Unix domain socket of the SDS server.",
    "sds.tokenAudience": "Audience of the service-account token the proxies present to "
    "the SDS server (1.3 line).",
    "sds.customTokenDirectory": "Directory of a custom token file for SDS.",
    "sds.useTrustworthyJwt": "Use trustworthy (projected) service-account tokens for SDS "
    "(1.2 line).",
    "sds.useNormalJwt": "Use normal service-account tokens for SDS (1.2 line).",
    "pilot": "Pilot, the service discovery and proxy configuration server.",
    "pilot.sidecar": "Run an istio-proxy sidecar in the pilot pod.",
    "pilot.traceSampling": "Percentage of requests traced (`PILOT_TRACE_SAMPLING`).",
    "pilot.enableProtocolSniffing": "Protocol detection for traffic on ports whose "
    "protocol is not declared (1.3 line).",
    "pilot.enableProtocolSniffingOutbound": "Protocol detection for outbound traffic (1.3 line).",
    "pilot.enableProtocolSniffingInbound": "Protocol detection for inbound traffic (1.3 line).",
    "citadel": "Citadel, the certificate authority of the mesh.",
    "citadel.caSecretName": "Secret holding a CA certificate and key for citadel to sign "
    "with. Unset, citadel creates and uses a self-signed CA.",
    "citadel.healthCheck": "Citadel's liveness probe (it checks its CA with a certificate "
    "signing request).",
    "citadel.workloadCertTTL": "Lifetime of the workload certificates citadel issues "
    "(a duration such as `2160h`).",
    "citadel.maxWorkloadCertTTL": "Longest workload certificate lifetime citadel grants.",
    "citadel.enableNamespacesByDefault": "Whether citadel issues certificates in every "
    "namespace that does not opt out (1.3 line).",
    "galley": "Galley, which validates Istio configuration and distributes it (MCP).",
    "galley.configValidation": "Galley's validating webhook for Istio configuration "
    "(1.3 line; the 1.2 line always validates).",
    "gateways": "Ingress, egress and Kubernetes Ingress gateways.",
    "gateways.enabled": "Whether any gateway is installed.",
    "gateways.ingress": "The ingress gateway (`istio-ingressgateway`).",
    "gateways.ingress.enabled": "Whether the ingress gateway is installed. With "
    "`meshExpansion` it is always installed on remotes.",
    "gateways.egress": "The egress gateway (`istio-egressgateway`).",
    **{
        f"gateways.{kind}.resources": "Kubernetes `ResourceRequirements` of the gateway's "
        "`istio-proxy`. Unset, `proxy.resources` applies."
        for kind in ("ingress", "egress")
    },
    "gateways.k8singress": "An Istio Gateway that serves Kubernetes Ingress objects.",
    "gateways.k8singress.enabled": "Serve Kubernetes Ingress objects through the ingress "
    "gateway (needs the ingress gateway).",
    "mixer": "Mixer: policy and telemetry.",
    "mixer.enabled": "Whether Mixer is installed. In the 1.2 line it switches policy and "
    "telemetry together; in the 1.3 line `policy.enabled` and `telemetry.enabled` "
    "inherit it.",
    "mixer.image": "Mixer image (policy and telemetry run it). Unset, the mixer image of "
    "`spec.version`.",
    "mixer.checksEnabled": "Accepted for compatibility; policy checks follow "
    "`policy.checksEnabled`, which does not inherit this field.",
    "mixer.multiClusterSupport": "Mixer attributes for multi-cluster telemetry (the "
    "`attributes` configuration).",
    "mixer.stdioAdapterEnabled": "Install the stdio adapter and its rules (1.3 line; the "
    "1.2 line always installs them).",
    "policy": "Mixer policy (`istio-policy`), 1.3 line. Unset fields take `mixer`'s.",
    "policy.image": "Image of `istio-policy`.",
    "telemetry": "Mixer telemetry (`istio-telemetry`), 1.3 line. Unset fields take `mixer`'s.",
    "telemetry.image": "Image of `istio-telemetry`.",
    "sidecarInjector": "The sidecar injector webhook.",
    "sidecarInjector.init": "The `istio-init` container injected into workloads.",
    "sidecarInjector.init.resources": "Kubernetes `ResourceRequirements` of the injected "
    "`istio-init` container.",
    "sidecarInjector.initCNIConfiguration": "The Istio CNI plugin, which sets up traffic "
    "redirection instead of the privileged `istio-init` container.",
    "sidecarInjector.initCNIConfiguration.enabled": "Install the CNI plugin "
    "(`istio-cni-node` DaemonSet) and stop injecting `istio-init`.",
    "sidecarInjector.initCNIConfiguration.image": "Image of the CNI installer. Unset, "
    "the install-cni image of `spec.version`.",
    "sidecarInjector.initCNIConfiguration.binDir": "Directory of CNI binaries on the nodes.",
    "sidecarInjector.initCNIConfiguration.confDir": "Directory of CNI configuration on the nodes.",
    "sidecarInjector.initCNIConfiguration.excludeNamespaces": "Namespaces whose pods the "
    "CNI plugin leaves alone.",
    "sidecarInjector.initCNIConfiguration.logLevel": "Log level of the CNI plugin.",
    "sidecarInjector.initCNIConfiguration.affinity": "Kubernetes `Affinity` of the CNI "
    "DaemonSet's pods.",
    "sidecarInjector.rewriteAppHTTPProbe": "Rewrite the workloads' HTTP liveness and "
    "readiness probes to go through the sidecar.",
    "sidecarInjector.autoInjectionPolicyEnabled": "Inject by default in enabled namespaces "
    "(injector policy `enabled`); off, pods must ask with an annotation.",
    "sidecarInjector.enableNamespacesByDefault": "Inject in every namespace not labelled "
    "`istio-injection=disabled` (except the control plane's and `kube-system`), not only "
    "those labelled `istio-injection=enabled`.",
    "sidecarInjector.neverInjectSelector": "Kubernetes `LabelSelector`s of pods never injected.",
    "sidecarInjector.alwaysInjectSelector": "Kubernetes `LabelSelector`s of pods always injected.",
    "nodeAgent": "The SDS node agent (`istio-nodeagent` DaemonSet), with `sds.enabled`.",
    "nodeAgent.enabled": "Whether the node agent is installed.",
    "nodeAgent.image": "Node agent image. Unset, the node-agent image of `spec.version`.",
    "proxy": "The `istio-proxy` container of sidecars and gateways.",
    "proxy.image": "Proxy image (sidecars and gateways). Unset, the proxyv2 image of "
    "`spec.version`: an upgrade changes the injected proxy too.",
    "proxy.accessLogFile": "Where proxies write access logs; empty turns them off (1.3 line).",
    "proxy.accessLogFormat": "Access log format; empty means Envoy's default (1.3 line).",
    "proxy.accessLogEncoding": "Access log encoding (1.3 line).",
    "proxy.privileged": "Run `istio-proxy` privileged.",
    "proxy.enableCoreDump": "Add an init container that enables core dumps for the proxy.",
    "proxy.coreDumpImage": "Image of the core-dump init container (1.3 line; the 1.2 "
    "line uses `proxyInit.image`). It has no default.",
    "proxy.logLevel": "Envoy log level.",
    "proxy.componentLogLevel": "Per-component Envoy log levels (`component:level,...`).",
    "proxy.dnsRefreshRate": "How often Envoy refreshes DNS results (`<seconds>s`).",
    "proxy.clusterDomain": "DNS domain of the cluster (1.3 line; the 1.2 line always uses "
    "`cluster.local`).",
    "proxy.envoyStatsD": "A StatsD sink for the proxies' statistics (1.3 line).",
    "proxy.envoyStatsD.enabled": "Whether proxies send statistics to StatsD.",
    "proxy.envoyMetricsService": "An Envoy metrics service the proxies report to (1.3 line).",
    "proxy.envoyMetricsService.enabled": "Whether proxies report to the metrics service.",
    "proxy.envoyAccessLogService": "A gRPC access log service the proxies stream access "
    "logs to (1.3 line).",
    "proxy.envoyAccessLogService.enabled": "Whether proxies stream access logs to it.",
    "proxy.envoyAccessLogService.tlsSettings": "TLS for the connection to the service.",
    "proxy.envoyAccessLogService.tlsSettings.mode": "TLS mode (`DISABLE`, `SIMPLE`, "
    "`MUTUAL` or `ISTIO_MUTUAL`).",
    "proxy.envoyAccessLogService.tlsSettings.clientCertificate": "Path of the client certificate.",
    "proxy.envoyAccessLogService.tlsSettings.privateKey": "Path of the client key.",
    "proxy.envoyAccessLogService.tlsSettings.caCertificates": "Path of the CA bundle.",
    "proxy.envoyAccessLogService.tlsSettings.sni": "Server name sent in the TLS handshake.",
    "proxy.envoyAccessLogService.tlsSettings.subjectAltNames": "Accepted subject "
    "alternative names of the server.",
    "proxy.envoyAccessLogService.tcpKeepalive": "TCP keepalive for the connection.",
    "proxy.envoyAccessLogService.tcpKeepalive.probes": "Unanswered probes before the "
    "connection is dropped.",
    "proxy.envoyAccessLogService.tcpKeepalive.time": "Idle time before the first probe.",
    "proxy.envoyAccessLogService.tcpKeepalive.interval": "Time between probes.",
    "proxy.protocolDetectionTimeout": "How long a proxy waits for a client's first bytes "
    "to detect the protocol (1.3 line).",
    "proxy.resources": "Kubernetes `ResourceRequirements` of the injected `istio-proxy` sidecars.",
    "proxyInit": "The `istio-init` container.",
    "proxyInit.image": "Image of the injected `istio-init` container. Unset, the "
    "proxy_init image of `spec.version`.",
    "watchOneNamespace": "Pilot watches only the control plane's namespace (`-a`).",
    "useMCP": "Pilot and Mixer read configuration from Galley over MCP instead of from the "
    "API server.",
    "defaultConfigVisibility": "Visibility of the Mixer DestinationRules: empty is "
    "unrestricted, `.` is their own namespace only, any other value means all namespaces.",
    "watchAdapterCRDs": "Mixer watches the legacy adapter CRDs (1.2 line; the 1.3 line "
    "always turns them off).",
    "defaultPodDisruptionBudget": "PodDisruptionBudgets of the control-plane Deployments.",
    "defaultPodDisruptionBudget.enabled": "Give each control-plane Deployment a "
    "PodDisruptionBudget.",
    "outboundTrafficPolicy": "What sidecars do with traffic to hosts they do not know.",
    "outboundTrafficPolicy.mode": "`ALLOW_ANY` passes it through; `REGISTRY_ONLY` blocks it.",
    "tracing": "Distributed tracing by the proxies.",
    "tracing.enabled": "Whether proxies trace requests.",
    "tracing.tracer": "Tracer the proxies report to (`stackdriver`: 1.3 line).",
    "tracing.zipkin": "Zipkin settings.",
    "tracing.zipkin.address": "Zipkin collector, `host:port`.",
    "tracing.lightstep": "LightStep settings.",
    "tracing.lightstep.address": "LightStep satellite, `host:port`.",
    "tracing.lightstep.accessToken": "LightStep access token.",
    "tracing.lightstep.secure": "Connect to LightStep over TLS.",
    "tracing.lightstep.cacertPath": "Path of the CA certificate for the TLS connection.",
    "tracing.datadog": "Datadog settings.",
    "tracing.datadog.address": "Datadog agent, `host:port`.",
    "tracing.stackdriver": "Stackdriver settings (there are none).",
    "imagePullPolicy": "Image pull policy of every control-plane container.",
    "meshExpansion": "Multi-network mesh: remote sidecars reach the control plane through "
    "the primary's ingress gateway (the mesh `meshNetworks` lists each cluster's "
    "gateway) instead of by pod IP over a flat network.",
    "multiMesh": "Settings for joining several meshes (with Istio CoreDNS for `*.global` names).",
    "istioCoreDNS": "Istio CoreDNS, which resolves `*.global` names (multi-mesh).",
    "istioCoreDNS.enabled": "Whether Istio CoreDNS is installed.",
    "istioCoreDNS.image": "CoreDNS image (not an Istio release: it does not follow "
    "`spec.version`).",
    "istioCoreDNS.pluginImage": "Image of Istio's CoreDNS plugin (does not follow `spec.version`).",
    "localityLB": "Locality-weighted load balancing in the mesh configuration.",
    "localityLB.enabled": "Whether locality load balancing is configured.",
    "localityLB.distribute": "Traffic weights by locality. When set, `failover` is ignored.",
    "localityLB.distribute[].to": "Weights (percent) by destination locality.",
    "localityLB.failover": "Region failover, used when `distribute` is unset.",
    "localityLB.failover[].from": "The source region.",
    "localityLB.failover[].to": "The region to fail over to.",
    "clusterName": "Name of this cluster in the mesh, given to the sidecar injector (1.3 line).",
    "meshID": "Identifier of the mesh (1.3 line).",
    "mixerlessTelemetry": "In-proxy telemetry without Mixer (1.3 line).",
    "mixerlessTelemetry.enabled": "Install the Envoy filters of in-proxy telemetry.",
    "trustDomain": "Trust domain of workload identities (1.3 line).",
}
