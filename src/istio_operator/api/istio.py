"""The `Istio` custom resource (`istio.banzaicloud.io/v1beta1`).

One model per Go type of the reference API (`IstioSpec` and the
`*Configuration` types it holds). The spec is the union of the 1.2 and 1.3
families' fields: fields that only one family reads are accepted for both and
ignored by the renderer of the other (see `istio_operator.versions`).

Attribute names are the JSON names. The one exception is `from` (a Python
keyword) in the locality load-balancing settings: the attribute is `from_`,
with the alias `from`; dump with `by_alias=True` to get the JSON shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

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
