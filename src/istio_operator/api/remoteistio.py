"""The `RemoteIstio` custom resource (`istio.banzaicloud.io/v1beta1`).

A `RemoteIstio` lives next to its `Istio` resource on the primary cluster and
describes one remote cluster of the mesh. It has no version and no images of
its own: the remote runs the primary's version and images, with the few
overrides below (see `istio_operator.versions.effective_remote_spec`).
"""

# Annotations are evaluated as the classes are made (no `from __future__ import annotations`):
# pydantic would otherwise parse each string annotation again, at every command's start.
from typing import Annotated, Final

from pydantic import ConfigDict, Field

from istio_operator.api.common import ApiModel, MirroredPorts, ObjectMeta, Resources
from istio_operator.api.istio import (
    CitadelConfiguration,
    ProxyConfiguration,
    ProxyInitConfiguration,
    SidecarInjectorConfiguration,
)
from istio_operator.api.kubetypes import IPAddress, LabelSelectorText

# Bounds that keep the cost of the CRD's CEL rules within the API server's budget.
MAX_SERVICES = 128
MAX_POD_IPS = 1024


class IstioService(ApiModel):
    """A primary-cluster service mirrored on the remote (headless Service + Endpoints)."""

    name: Annotated[str, Field(min_length=1)]
    labelSelector: LabelSelectorText | None = None
    podIPs: Annotated[list[IPAddress], Field(max_length=MAX_POD_IPS)] | None = None
    ports: MirroredPorts | None = None


class RemoteIstioSpec(ApiModel):
    """One remote cluster of the mesh.

    Of `citadel`, only `caSecretName`, `nodeSelector`, `affinity` and
    `tolerations` are used; of `sidecarInjector`, only `replicaCount`,
    `nodeSelector`, `affinity`, `tolerations` and `initCNIConfiguration.affinity`;
    of `proxy`, only `privileged` and `resources`. `proxyInit` is ignored.
    `includeIPRanges` and `excludeIPRanges` are accepted, but the primary's
    values are the ones in effect.
    """

    includeIPRanges: str | None = None
    excludeIPRanges: str | None = None
    enabledServices: Annotated[list[IstioService], Field(max_length=MAX_SERVICES)]
    autoInjectionNamespaces: list[str] | None = None
    defaultResources: Resources | None = None
    citadel: CitadelConfiguration | None = None
    sidecarInjector: SidecarInjectorConfiguration | None = None
    proxy: ProxyConfiguration | None = None
    proxyInit: ProxyInitConfiguration | None = None
    clusterName: str | None = None
    # istiod family: the remote's network (default: the primary's, `values.global.network`).
    network: Annotated[str, Field(max_length=63)] | None = None


class RemoteIstio(ApiModel):
    """A `RemoteIstio` resource: one remote cluster joined to an Istio mesh."""

    # Top-level keys other than these (`status`) are not part of the desired state.
    model_config = ConfigDict(extra="ignore", strict=True, populate_by_name=True)

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: RemoteIstioSpec


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
