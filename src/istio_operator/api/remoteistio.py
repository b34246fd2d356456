"""The `RemoteIstio` custom resource (`istio.banzaicloud.io/v1beta1`).

A `RemoteIstio` lives next to its `Istio` resource on the primary cluster and
describes one remote cluster of the mesh. It has no version and no images of
its own: the remote runs the primary's version and images, with the few
overrides below (see `istio_operator.versions.effective_remote_spec`).
"""

from __future__ import annotations

from typing import Annotated

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
