"""What every component renderer reads: the defaulted spec, its family, and where it goes.

A `Context` is built once per render from an `Istio` resource (and, for a
remote cluster, its `RemoteIstio`). It gives components non-optional access
to the defaulted sub-settings, the values that differ between the 1.2 and 1.3
families, and `emit`, which stamps the ownership and phase labels on every
object.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from istio_operator.api import istio as model
from istio_operator.api.errors import SpecError
from istio_operator.api.labels import MANAGED_BY, MANAGED_BY_VALUE, PHASE, REMOTE, ownership_labels
from istio_operator.render.builders import Manifest
from istio_operator.render.objects import CLUSTER_SCOPED_KINDS, DesiredObject
from istio_operator.render.phases import Phase
from istio_operator.versions.families import Family

T = TypeVar("T")

LEGACY_CLUSTER_DOMAIN = "cluster.local"


def need(value: T | None, path: str) -> T:
    """A defaulted setting; the spec layer guarantees it, so a gap is a spec error."""
    if value is None:
        raise SpecError(path, "must be set")
    return value


@dataclass(frozen=True)
class Context:
    """The inputs of one render, for one cluster."""

    spec: model.IstioSpec
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

    def unowned(self, phase: Phase, manifests: Iterable[Manifest]) -> list[DesiredObject]:
        """Objects that must outlive the resource: only the managed-by label."""
        result = []
        for manifest in manifests:
            meta = manifest["metadata"]
            meta["labels"] = {**meta.get("labels", {}), MANAGED_BY: MANAGED_BY_VALUE}
            result.append(DesiredObject(phase, manifest))
        return result

    # --- defaulted sub-settings -------------------------------------------------

    @property
    def pilot(self) -> model.PilotConfiguration:
        return need(self.spec.pilot, "spec.pilot")

    @property
    def citadel(self) -> model.CitadelConfiguration:
        return need(self.spec.citadel, "spec.citadel")

    @property
    def galley(self) -> model.GalleyConfiguration:
        return need(self.spec.galley, "spec.galley")

    @property
    def gateways(self) -> model.GatewaysConfiguration:
        return need(self.spec.gateways, "spec.gateways")

    @property
    def mixer(self) -> model.MixerConfiguration:
        return need(self.spec.mixer, "spec.mixer")

    @property
    def policy(self) -> model.PolicyConfiguration:
        return need(self.spec.policy, "spec.policy")

    @property
    def telemetry(self) -> model.TelemetryConfiguration:
        return need(self.spec.telemetry, "spec.telemetry")

    @property
    def injector(self) -> model.SidecarInjectorConfiguration:
        return need(self.spec.sidecarInjector, "spec.sidecarInjector")

    @property
    def cni(self) -> model.CNIConfiguration:
        return need(self.injector.initCNIConfiguration, "spec.sidecarInjector.initCNIConfiguration")

    @property
    def node_agent(self) -> model.NodeAgentConfiguration:
        return need(self.spec.nodeAgent, "spec.nodeAgent")

    @property
    def proxy(self) -> model.ProxyConfiguration:
        return need(self.spec.proxy, "spec.proxy")

    @property
    def sds(self) -> model.SDSConfiguration:
        return need(self.spec.sds, "spec.sds")

    @property
    def tracing(self) -> model.TracingConfiguration:
        return need(self.spec.tracing, "spec.tracing")

    @property
    def coredns(self) -> model.IstioCoreDNS:
        return need(self.spec.istioCoreDNS, "spec.istioCoreDNS")

    def image(self, value: str | None, path: str) -> str:
        return need(value, path)

    @property
    def proxy_image(self) -> str:
        return need(self.proxy.image, "spec.proxy.image")

    @property
    def proxy_init_image(self) -> str:
        init = need(self.spec.proxyInit, "spec.proxyInit")
        return need(init.image, "spec.proxyInit.image")

    @property
    def core_dump_image(self) -> str:
        """Image of the init container enabling core dumps (the family decides which)."""
        if self.family.core_dump_image_from == "proxy" and self.proxy.coreDumpImage:
            return self.proxy.coreDumpImage
        return self.proxy_init_image

    # --- switches ---------------------------------------------------------------

    @property
    def pull_policy(self) -> str:
        return self.spec.imagePullPolicy or "IfNotPresent"

    @property
    def cp_security(self) -> bool:
        return bool(self.spec.controlPlaneSecurityEnabled)

    @property
    def pdb_enabled(self) -> bool:
        pdb = self.spec.defaultPodDisruptionBudget
        return bool(pdb and pdb.enabled)

    @property
    def use_mcp(self) -> bool:
        return bool(self.spec.useMCP)

    @property
    def mesh_expansion(self) -> bool:
        return bool(self.spec.meshExpansion)

    @property
    def multi_mesh(self) -> bool:
        return bool(self.spec.multiMesh)

    @property
    def tracing_enabled(self) -> bool:
        return bool(self.tracing.enabled)

    @property
    def policy_enabled(self) -> bool:
        if self.family.policy_telemetry_split:
            return bool(self.policy.enabled)
        return bool(self.mixer.enabled)

    @property
    def telemetry_enabled(self) -> bool:
        if self.family.policy_telemetry_split:
            return bool(self.telemetry.enabled)
        return bool(self.mixer.enabled)

    @property
    def gateways_enabled(self) -> bool:
        return bool(self.gateways.enabled)

    def gateway(self, kind: str) -> model.GatewayConfiguration:
        config = self.gateways.ingress if kind == "ingress" else self.gateways.egress
        return need(config, f"spec.gateways.{kind}")

    def gateway_enabled(self, kind: str) -> bool:
        return self.gateways_enabled and bool(self.gateway(kind).enabled)

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
        if self.family.cluster_domain and self.proxy.clusterDomain:
            return self.proxy.clusterDomain
        return LEGACY_CLUSTER_DOMAIN

    @property
    def trust_domain(self) -> str | None:
        """The trust domain passed to components; None when the family passes none."""
        if self.family.trust_domain:
            return self.spec.trustDomain or LEGACY_CLUSTER_DOMAIN
        return None

    @property
    def auth_policy(self) -> str:
        return "MUTUAL_TLS" if self.cp_security else "NONE"

    @property
    def discovery_address(self) -> str:
        return f"istio-pilot.{self.namespace}:{15011 if self.cp_security else 15010}"

    def service_host(self, service: str) -> str:
        """Fully qualified name of a control-plane Service."""
        return f"{service}.{self.namespace}.svc.{self.cluster_domain}"

    def resources(self, own: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """A component's resources, or the spec's default resources."""
        chosen = own if own is not None else self.spec.defaultResources
        return dict(chosen) if chosen else None

    @property
    def sds_token_audience(self) -> str | None:
        """Audience of the projected SDS token, or None when no token is mounted."""
        if not self.sds.enabled:
            return None
        if self.family.sds_token == "audience":
            return self.sds.tokenAudience or "istio-ca"
        return LEGACY_CLUSTER_DOMAIN if self.sds.useTrustworthyJwt else None
