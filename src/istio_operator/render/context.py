"""What every component renderer reads: the resolved plan, its family, and where it goes.

A `Context` is built once per render from the cluster's resolved plan (see
`istio_operator.plan`). It gives components the plan, the family, a few
values that read more than one setting, and `emit`, which stamps the
ownership and phase labels on every object.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from istio_operator.api.labels import MANAGED_BY, MANAGED_BY_VALUE, PHASE, REMOTE, ownership_labels
from istio_operator.plan import model
from istio_operator.render import builders
from istio_operator.render.builders import Manifest
from istio_operator.render.objects import CLUSTER_SCOPED_KINDS, DesiredObject
from istio_operator.render.phases import Phase
from istio_operator.versions.families import Family

LEGACY_CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class Context:
    """The inputs of one render, for one cluster."""

    plan: model.MeshPlan
    family: Family
    # Name and namespace of the owning Istio resource; the namespace is the control plane's.
    owner: str
    namespace: str
    # The RemoteIstio this render is for, or None on the primary cluster.
    remote: str | None = None
    # Namespace of the owning Istio resource when it differs from the control plane's.
    owner_namespace: str | None = None
    # ISTIO_META_NETWORK of gateways and sidecars ("" on the primary).
    network: str = ""
    # The meshNetworks document of the mesh ConfigMap.
    mesh_networks: Mapping[str, Any] = field(default_factory=lambda: {"networks": {}})

    # --- placement ------------------------------------------------------------

    @property
    def is_remote(self) -> bool:
        return self.remote is not None

    def emit(self, phase: Phase, manifests: Iterable[Manifest]) -> list[DesiredObject]:
        """Desired objects of `phase`, labelled as owned by this resource."""
        return [DesiredObject(phase, self.stamp(phase, manifest)) for manifest in manifests]

    def stamp(self, phase: Phase, manifest: Manifest) -> Manifest:
        meta = manifest["metadata"]
        if manifest["kind"] not in CLUSTER_SCOPED_KINDS:
            meta.setdefault("namespace", self.namespace)
        labels = dict(meta.get("labels", {}))
        labels.update(ownership_labels(self.owner, self.owner_namespace or self.namespace))
        labels[PHASE] = phase.label
        if self.remote is not None:
            labels[REMOTE] = self.remote
        meta["labels"] = labels
        return manifest

    def container(self, name: str, image: str, **options: Any) -> Manifest:
        """A container of `image`, pulled as the spec says (see `builders.container`)."""
        return builders.container(name, image, self.plan.imagePullPolicy, **options)

    def unowned(self, phase: Phase, manifests: Iterable[Manifest]) -> list[DesiredObject]:
        """Objects that must outlive the resource: only the managed-by label."""
        result = []
        for manifest in manifests:
            meta = manifest["metadata"]
            meta["labels"] = {**meta.get("labels", {}), MANAGED_BY: MANAGED_BY_VALUE}
            result.append(DesiredObject(phase, manifest))
        return result

    # --- switches that read more than one setting ------------------------------

    @property
    def cp_security(self) -> bool:
        return self.plan.controlPlaneSecurityEnabled

    @property
    def tracing_enabled(self) -> bool:
        return self.plan.tracing.enabled

    @property
    def zipkin_address(self) -> str | None:
        """The Zipkin collector components report to, when tracing goes to Zipkin."""
        tracing = self.plan.tracing
        if tracing.enabled and tracing.tracer == "zipkin":
            return tracing.zipkin.address
        return None

    def gateway(self, kind: str) -> model.Gateway:
        return self.plan.gateways.ingress if kind == "ingress" else self.plan.gateways.egress

    def gateway_enabled(self, kind: str) -> bool:
        return self.plan.gateways.enabled and self.gateway(kind).enabled

    @property
    def ingress_enabled(self) -> bool:
        return self.gateway_enabled("ingress")

    # --- family-dependent values ------------------------------------------------

    @property
    def legacy(self) -> bool:
        """The 1.2 family, for the few differences its Family has no flag for."""
        return self.family.injector_template == "1.2"

    @property
    def cluster_domain(self) -> str:
        return self.plan.proxy.clusterDomain

    @property
    def auth_policy(self) -> str:
        return "MUTUAL_TLS" if self.cp_security else "NONE"

    @property
    def discovery_address(self) -> str:
        return f"istio-pilot.{self.namespace}:{15011 if self.cp_security else 15010}"

    def service_host(self, service: str) -> str:
        """Fully qualified name of a control-plane Service."""
        return f"{service}.{self.namespace}.svc.{self.cluster_domain}"

    @property
    def sds_token_audience(self) -> str | None:
        """Audience of the projected SDS token, or None when no token is mounted."""
        sds = self.plan.sds
        if not sds.enabled:
            return None
        if self.family.sds_token == "audience":
            return sds.tokenAudience
        return LEGACY_CLUSTER_DOMAIN if sds.useTrustworthyJwt else None
