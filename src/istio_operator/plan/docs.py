"""The configuration reference of `Istio.spec` and `RemoteIstio.spec`, as Markdown.

Generated from the models: the field tree, types and enums come from the
structural schema the CRDs are made of (`api.crd.structural_schema`), the
object descriptions from the models' docstrings, and every default from the
declarations of the resolved plan (`plan.model`): a plain default is shown as
its value, a derived one with its rule's note and its value in a plan resolved
from an empty spec, the version shown as `<version>`.

What the models cannot say (what a field does) is in the tables below, keyed
by field path: `FIELD_DOCS` by full path, `SUFFIX_DOCS` by the last segments
of a path (the most specific match wins). The unit tests check that every
field has a description and every entry names a field. The committed
`docs/configuration.md` is this module's output (`make docs`).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from istio_operator.api.crd import structural_schema
from istio_operator.api.istio import IstioSpec
from istio_operator.api.kubetypes import (
    DNS_LABEL_PATTERN,
    LABEL_SELECTOR_PATTERN,
    LABEL_VALUE_PATTERN,
    MAX_FREE_FORM_DEPTH,
    MAX_FREE_FORM_SIZE,
    VERSION_PATTERN,
)
from istio_operator.api.remoteistio import RemoteIstioSpec
from istio_operator.plan import model
from istio_operator.plan.resolve import build, item_section_type, section_type
from istio_operator.plan.rules import Rule, Scope
from istio_operator.versions import families

# Placeholders the defaults are computed with, shown as they are in the reference.
VERSION_PLACEHOLDER: Final = "<version>"
NAMESPACE_PLACEHOLDER: Final = "<namespace>"

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

# RemoteIstio descriptions by full path, checked before the Istio tables.
REMOTE_FIELD_DOCS: Final[dict[str, str]] = {
    "network": "istiod family: the remote's network (`topology.istio.io/network`). Unset, "
    "the primary's (`values.global.network`, else `network1`): then remotes reach the "
    "primary's workloads directly, else through the east-west gateways.",
    "enabledServices": "Primary-cluster Services the remote's sidecars reach (pilot, "
    "policy, telemetry, ...). Each becomes a Service on the remote whose endpoints are "
    "the primary's pod IPs (flat network) or the primary's ingress gateway "
    "(`meshExpansion`).",
    "enabledServices[].name": "Name of the Service, in the primary's control-plane namespace.",
    "enabledServices[].labelSelector": "Label selector (`key=value,...`) of the primary's "
    "pods behind the Service (flat network). Unset, the primary Service's selector.",
    "enabledServices[].podIPs": "Extra endpoint IPs, added to the primary's ready pod IPs "
    "(flat network).",
    "enabledServices[].ports": "Ports of the mirrored Service. Unset, the primary Service's ports.",
    "autoInjectionNamespaces": "Namespaces of the remote labelled "
    "`istio-injection=enabled`. Empty or unset, the primary's list.",
    "defaultResources": "`defaultResources` on the remote. Unset, the primary's.",
    "citadel": "Citadel on the remote. Only the fields marked used are read.",
    "citadel.caSecretName": "Secret on the remote holding citadel's signing CA. Unset, "
    "the operator copies the primary's CA to the remote, so both clusters share one root.",
    "sidecarInjector": "The sidecar injector on the remote. Only the fields marked used are read.",
    "sidecarInjector.replicaCount": "Replicas of the remote's sidecar injector.",
    "proxy": "Sidecars on the remote. Only the fields marked used are read.",
    "proxy.privileged": "Run the remote's `istio-proxy` privileged. Unset, the primary's.",
    "proxy.resources": "`ResourceRequirements` of the remote's sidecars. Unset, the primary's.",
    "proxyInit": "Ignored: the remote uses the primary's.",
    "clusterName": "Name of the remote cluster in the mesh.",
}

# Paths of a RemoteIstio spec that the operator reads. Every other field
# (below citadel, sidecarInjector, proxy, proxyInit) is the primary's.
REMOTE_USED: Final[frozenset[str]] = frozenset(
    {
        "enabledServices",
        "autoInjectionNamespaces",
        "defaultResources",
        "clusterName",
        "citadel.caSecretName",
        "citadel.nodeSelector",
        "citadel.affinity",
        "citadel.tolerations",
        "sidecarInjector.replicaCount",
        "sidecarInjector.nodeSelector",
        "sidecarInjector.affinity",
        "sidecarInjector.tolerations",
        "sidecarInjector.initCNIConfiguration.affinity",
        "proxy.privileged",
        "proxy.resources",
    }
)

# Defaults of the RemoteIstio fields, where it has one.
REMOTE_DEFAULT_NOTES: Final[dict[str, str]] = {
    "sidecarInjector.replicaCount": "`1`",
    "autoInjectionNamespaces": "the primary's",
    "defaultResources": "the primary's",
    "citadel.caSecretName": "the primary's CA, copied",
    "proxy.privileged": "the primary's",
    "proxy.resources": "the primary's",
}


@dataclass(frozen=True)
class Field:
    """One field of a spec: its path, schema node and whether it is required."""

    path: str
    schema: dict[str, Any]
    required: bool

    @property
    def is_object(self) -> bool:
        return _has_own_fields(self.schema)

    @property
    def is_object_list(self) -> bool:
        return _has_own_fields(self.schema.get("items", {}))


def _has_own_fields(node: dict[str, Any]) -> bool:
    """An object of the API itself; a Kubernetes object (its keys kept) is one value."""
    return "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields")


# Patterns of the Kubernetes rules that `VALIDATION_NOTES` states once for all fields;
# the expressions themselves are in the CRDs.
KUBERNETES_PATTERNS: Final = frozenset(
    {
        VERSION_PATTERN,
        r"^\S+$",
        LABEL_VALUE_PATTERN,
        DNS_LABEL_PATTERN,
        LABEL_SELECTOR_PATTERN,
    }
)


def fields(schema: dict[str, Any], prefix: str = "") -> Iterator[Field]:
    """Every field below a schema node, depth first, in the models' order."""
    required = set(schema.get("required", []))
    for name, node in schema.get("properties", {}).items():
        field = Field(f"{prefix}{name}", node, name in required)
        yield field
        if field.is_object:
            yield from fields(node, f"{field.path}.")
        elif field.is_object_list:
            yield from fields(node["items"], f"{field.path}[].")


def describe(path: str, remote: bool = False) -> str | None:
    """The description of a field, or None if no table has one."""
    if remote and path in REMOTE_FIELD_DOCS:
        return REMOTE_FIELD_DOCS[path]
    if path in FIELD_DOCS:
        return FIELD_DOCS[path]
    segments = path.split(".")
    for start in range(len(segments)):
        suffix = ".".join(segments[start:])
        if suffix in SUFFIX_DOCS:
            return SUFFIX_DOCS[suffix]
    return None


def type_of(node: dict[str, Any]) -> str:
    """A field's type in words: `string`, `integer ≥ 0`, `one of ...`, `map of strings`."""
    if node.get("x-kubernetes-int-or-string"):
        return "integer or string"
    if "enum" in node:
        return "one of " + ", ".join(_code(str(v)) for v in node["enum"])
    kind = str(node.get("type", ""))
    if kind in ("integer", "number"):
        return kind + _range(node)
    if kind == "string" and node.get("pattern", "") not in KUBERNETES_PATTERNS | {""}:
        return f"string matching {_code(node['pattern'])}"
    if kind == "object":
        if node.get("x-kubernetes-preserve-unknown-fields"):
            return "Kubernetes object"
        if "properties" in node:
            return "object"
        additional = node.get("additionalProperties")
        if isinstance(additional, dict):
            return f"map of string to {type_of(additional)}"
        return "Kubernetes object"
    if kind == "array":
        items = node["items"]
        if _has_own_fields(items):
            return "list of objects"
        return f"list of ({type_of(items)})"
    return kind


def _range(node: dict[str, Any]) -> str:
    low, high = node.get("minimum"), node.get("maximum")
    if low is None:
        return ""
    if high is None or high >= 2**31 - 1:
        return f" ≥ {low}"
    return f" {low} to {high}"


def _code(text: str) -> str:
    return f"`{text}`" if "`" not in text else f"`` {text} ``"


def _value(value: Any) -> str:
    return _code(json.dumps(value, separators=(", ", ": ")))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def istio_defaults() -> dict[str, Any]:
    """The plan an empty `Istio` resource gets, as JSON-shaped data."""
    empty = IstioSpec.model_construct(version=VERSION_PLACEHOLDER, mtls=False)
    scope = Scope(
        family=families.FAMILIES[-1],
        version=VERSION_PLACEHOLDER,
        namespace=NAMESPACE_PLACEHOLDER,
        default_resources=model.BASE_RESOURCES,
        user_default_resources=None,
        proxy_resources=model.PROXY_RESOURCES,
    )
    scope = dataclasses.replace(
        scope, mixer=build(model.Mixer, None, scope), proxy=build(model.Proxy, None, scope)
    )
    return dict(dataclasses.asdict(build(model.MeshPlan, empty, scope)))


def declared(path: str) -> dataclasses.Field[Any] | None:
    """The plan field of a spec path (`a.b`, `a.list[].c`), or None if the plan has none."""
    cls: Any = model.MeshPlan
    *parents, leaf = path.replace("[]", "").split(".")
    for name in parents:
        hint = _field_hint(cls, name)
        cls = section_type(hint) or item_section_type(hint)
        if cls is None:
            return None
    return {f.name: f for f in dataclasses.fields(cls)}.get(leaf)


def _field_hint(cls: Any, name: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    return typing.get_type_hints(cls, vars(model)).get(name) if name in names else None


def _get(data: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _istio_default(field: Field, defaults: dict[str, Any]) -> str:
    if field.required:
        return "**required**"
    spec_field = declared(field.path)
    if field.is_object:
        return ""
    if spec_field is None:
        return "unset"
    if "[]" in field.path:
        value = None if spec_field.default is dataclasses.MISSING else spec_field.default
    else:
        value = _get(defaults, field.path)
    rule: Rule | None = spec_field.metadata.get("rule")
    note = rule.describe(field.path, spec_field.metadata["args"]) if rule else ""
    if _off(value):
        return note or "unset"
    return f"{note}: {_value(value)}" if note else _value(value)


def _off(value: Any) -> bool:
    """A default that is no value: nothing set, the feature off or left to Istio."""
    if isinstance(value, bool):
        return False
    return value is None or value == 0 or (not isinstance(value, int | float) and not value)


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _sections(
    schema: dict[str, Any],
    root: str,
    row: Callable[[Field], tuple[str, ...]],
    header: tuple[str, ...],
) -> list[str]:
    """One heading and table per object, the root first."""
    groups: dict[str, list[Field]] = {"": []}
    descriptions: dict[str, str] = {"": ""}
    for field in fields(schema):
        parent = field.path.rsplit(".", 1)[0] if "." in field.path else ""
        groups.setdefault(parent, []).append(field)
        if field.is_object or field.is_object_list:
            key = field.path if field.is_object else f"{field.path}[]"
            groups.setdefault(key, [])
            node = field.schema if field.is_object else field.schema["items"]
            descriptions[key] = node.get("description", "")
    lines: list[str] = []
    for key, members in groups.items():
        if not members:
            continue
        title = f"{root}.{key}" if key else root
        lines += ["", f"### `{title}`", ""]
        if descriptions[key]:
            lines += [" ".join(descriptions[key].split()), ""]
        lines += _table([row(f) for f in members], header)
    return lines


def _name(field: Field) -> str:
    return f"`{field.path.rsplit('.', 1)[-1]}`"


def istio_reference() -> list[str]:
    """The `Istio.spec` part of the reference."""
    defaults = istio_defaults()

    def row(field: Field) -> tuple[str, ...]:
        return (
            _name(field),
            type_of(field.schema),
            _istio_default(field, defaults),
            describe(field.path) or "",
        )

    return _sections(
        structural_schema(IstioSpec), "spec", row, ("field", "type", "default", "description")
    )


def _remote_visible(schema: dict[str, Any]) -> dict[str, Any]:
    """The RemoteIstio schema without the subtrees of which nothing is used."""

    def keep(node: dict[str, Any], prefix: str) -> dict[str, Any]:
        if "properties" not in node:
            return node
        props = {}
        for name, sub in node["properties"].items():
            path = f"{prefix}{name}"
            used_below = any(u.startswith(f"{path}.") for u in REMOTE_USED)
            if "properties" in sub and not used_below and prefix:
                props[name] = {k: v for k, v in sub.items() if k != "properties"}
                props[name]["type"] = "object"
            else:
                props[name] = keep(sub, f"{path}.") if "properties" in sub else sub
        return {**node, "properties": props}

    return keep(schema, "")


def remote_used(path: str) -> bool:
    """Whether a RemoteIstio field (or an item field of a used list) is read."""
    return any(
        path == u or path.startswith(f"{u}.") or path.startswith(f"{u}[]") for u in REMOTE_USED
    )


def remote_reference() -> list[str]:
    """The `RemoteIstio.spec` part of the reference."""

    def row(field: Field) -> tuple[str, ...]:
        default = "**required**" if field.required else REMOTE_DEFAULT_NOTES.get(field.path, "")
        used = remote_used(field.path) or any(u.startswith(f"{field.path}.") for u in REMOTE_USED)
        description = describe(field.path, remote=True) or ""
        if not used:
            description = "Ignored: the primary's value is used."
            if field.is_object:
                description += " The object has the same fields as in `Istio`."
        return (_name(field), type_of(field.schema), default, "yes" if used else "no", description)

    return _sections(
        _remote_visible(structural_schema(RemoteIstioSpec)),
        "spec",
        row,
        ("field", "type", "default", "used", "description"),
    )


VALIDATION_NOTES: Final = (
    "Values the API server would refuse in the objects the operator creates are refused "
    "when the resource is read, with the field's path: empty or blank images, resource "
    "quantities that are not quantities, affinities, tolerations and label selectors "
    "that are not of their Kubernetes type, label keys and values and annotation keys "
    "that break the Kubernetes rules, duplicate port names or numbers in a Service, pod "
    "IPs that are not IP addresses, a `labelSelector` other than `key=value[,key=value]` "
    "or a bare name. Most of these the CRD's schema says too, so that "
    "`kubectl apply` refuses them at once. Kubernetes objects taken as they are "
    f"(resources, affinity, tolerations, selectors) may nest at most {MAX_FREE_FORM_DEPTH} "
    f"levels deep and hold at most {MAX_FREE_FORM_SIZE // 1024} KiB (keys, strings and "
    "scalars); `version` is at most 64 characters.",
)


def configuration_reference() -> str:
    """The whole configuration reference, `docs/configuration.md`, as Markdown."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `make docs` (`istio-operator docs`) from the models in "
        "src/istio_operator/api; do not edit. -->",
        "",
        "Every field of the `spec` of the `Istio` and `RemoteIstio` resources "
        "(`istio.banzaicloud.io/v1beta1`). Field names are the JSON names. A default is "
        "what the operator uses when the resource leaves the field unset; defaults are "
        "applied in memory on every reconcile and never written back to the resource. "
        f"`{VERSION_PLACEHOLDER}` stands for `spec.version` and `{NAMESPACE_PLACEHOLDER}` "
        "for the resource's namespace. *unset* means no default: the feature is off or "
        "the value is left to Istio.",
        "",
        f"Supported versions: the classic family's {families.classic_ranges()}, and the "
        "istiod family's: every version of the chart catalogue (`istio-operator charts "
        "list`; see docs/istiod-family.md). One schema serves both families. The fields "
        "whose description starts with *istiod family* (`profile`, `values`, "
        "`updateStrategy`) are that family's; with it, only `version`, "
        "`autoInjectionNamespaces` and `gateways.{ingress,egress}.enabled` of the others "
        "are read, and any other field set is refused by name. The istiod family's fields "
        "set with a classic version are refused too. Among the classic family's fields, "
        "those marked *1.2 line* or *1.3 line* are accepted for either version and ignored "
        "by the other.",
        "",
        *VALIDATION_NOTES,
        "",
        "## Istio",
        "",
        "An `Istio` resource describes the control plane on the primary cluster. "
        "`spec.version` is required, and `spec.mtls` with a classic version.",
        *istio_reference(),
        "",
        "## RemoteIstio",
        "",
        "A `RemoteIstio` resource, in the namespace of its `Istio` resource on the primary "
        "cluster, joins one remote cluster to the mesh. It has no version and no images: "
        "the remote runs the primary's. Its fields override a few of the primary's "
        "settings; the column *used* says which are read. `spec.enabledServices` is "
        "required.",
        *remote_reference(),
        "",
    ]
    return "\n".join(lines)
