"""The complete object list of one remote cluster.

A remote runs citadel (signing with the primary's CA), the sidecar injector,
the gateways, and optionally the node agent and CNI; its sidecars use the
primary's pilot, mixer and telemetry through headless Services whose
Endpoints are the primary's pod IPs (flat network) or the primary's ingress
gateway (meshExpansion). A gateway known only by its DNS name (a cloud load
balancer's hostname) cannot be an Endpoints address: the mirror is then an
ExternalName Service resolving to it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from istio_operator.api.errors import SpecError
from istio_operator.api.istio import Istio
from istio_operator.api.remoteistio import IstioService, RemoteIstio
from istio_operator.plan import MeshPlan, control_plane_namespace, resolve_remote
from istio_operator.render import builders as b
from istio_operator.render.builders import Manifest
from istio_operator.render.context import Context
from istio_operator.render.objects import DesiredObject
from istio_operator.render.phases import Phase
from istio_operator.render.primary import components, order
from istio_operator.versions import Family

CA_SECRET = "cacerts"
MIRROR_LABELS = {"app": "istio-remote-mirror"}


@dataclass(frozen=True)
class PortFact:
    """A port of a primary-cluster Service."""

    name: str | None
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class PrimaryFacts:
    """What a remote's objects need that only the primary cluster knows.

    - `ca_secret_data`: the `data` (base64 values, as the API returns them) of
      the primary's CA Secret (`citadel.caSecretName`, else `istio-ca-secret`);
      None when it could not be read, and then no `cacerts` is rendered.
    - `ingress_gateway_addresses`: the primary ingress gateway's addresses,
      the endpoints of every mirrored service with meshExpansion.
    - `service_ports`: the ports of each enabled service on the primary, by
      name; a service missing here and without ports in the RemoteIstio is
      not mirrored.
    - `service_pod_ips`: the IPs of the ready pods behind each enabled
      service (flat network), by name.
    """

    ca_secret_data: Mapping[str, str] | None = None
    ingress_gateway_addresses: tuple[str, ...] = ()
    service_ports: Mapping[str, Sequence[PortFact]] = field(default_factory=dict)
    service_pod_ips: Mapping[str, Sequence[str]] = field(default_factory=dict)


def ca_secret(ctx: Context, source: Mapping[str, str]) -> Manifest:
    """The primary's CA as the remote citadel's signing material, so both share one root.

    Citadel's self-signed CA has no separate root or chain: its certificate is
    the root. A user-provided CA secret keeps its own root and chain.
    """
    ca_cert = source.get("ca-cert.pem", "")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": b.metadata(CA_SECRET, ctx.namespace, {"app": "security", "istio": "citadel"}),
        "type": "Opaque",
        "data": {
            "ca-cert.pem": ca_cert,
            "ca-key.pem": source.get("ca-key.pem", ""),
            "root-cert.pem": source.get("root-cert.pem") or ca_cert,
            "cert-chain.pem": source.get("cert-chain.pem", ""),
        },
    }


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _ports(service: IstioService, path: str, facts: PrimaryFacts) -> list[PortFact]:
    """The service's own ports, else those of the primary's service of that name.

    A Service with more than one port needs a name on each: the primary's
    services have them; ports given in the RemoteIstio must.
    """
    if not service.ports:
        return list(facts.service_ports.get(service.name, ()))
    if len(service.ports) > 1:
        for index, port in enumerate(service.ports):
            if not port.name:
                raise SpecError(
                    f"{path}.ports[{index}].name", "must be set when a service has several ports"
                )
    return [PortFact(port.name, port.port, port.protocol or "TCP") for port in service.ports]


def _addresses(ctx: Context, service: IstioService, path: str, facts: PrimaryFacts) -> list[str]:
    """The IPs and DNS names the mirror resolves to: the primary's ingress gateway with
    meshExpansion, else the pods behind the primary's service (flat network)."""
    if ctx.plan.meshExpansion:
        return sorted(set(facts.ingress_gateway_addresses))
    return sorted({*(service.podIPs or ()), *facts.service_pod_ips.get(service.name, ())})


def mirrored_service(
    ctx: Context, service: IstioService, path: str, facts: PrimaryFacts
) -> list[Manifest]:
    """A selector-less headless Service and, when there are IP addresses, its Endpoints;
    an ExternalName Service when the addresses are DNS names only.

    `path` locates `service` in the RemoteIstio, for errors.
    """
    ports = _ports(service, path, facts)
    if not ports:
        return []
    addresses = _addresses(ctx, service, path, facts)
    ips = [address for address in addresses if _is_ip(address)]
    names = [address for address in addresses if not _is_ip(address)]
    service_ports = [b.service_port(p.name, p.port, protocol=p.protocol) for p in ports]
    external = bool(names and not ips)
    manifests = [
        b.service(
            service.name,
            ctx.namespace,
            MIRROR_LABELS,
            None,
            service_ports,
            service_type="ExternalName" if external else "ClusterIP",
            extra={"externalName": names[0]} if external else {"clusterIP": "None"},
        )
    ]
    if external:
        return manifests
    if ips:
        endpoint_ports = []
        for port in ports:
            entry: Manifest = {"port": port.port, "protocol": port.protocol}
            if port.name:
                entry["name"] = port.name
            endpoint_ports.append(entry)
        manifests.append(
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": b.metadata(service.name, ctx.namespace, MIRROR_LABELS),
                "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": endpoint_ports}],
            }
        )
    return manifests


def namespace(ctx: Context) -> Manifest:
    """The control-plane namespace. Never pruned: it may hold more than our objects."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": b.metadata(ctx.namespace, labels={"istio-injection": "disabled"}),
    }


def render_remote(istio: Istio, remote: RemoteIstio, facts: PrimaryFacts) -> list[DesiredObject]:
    """Every object the remote cluster of `remote` should hold, ordered by phase.

    Raises `SpecError` or `UnsupportedVersionError`.
    """
    plan, family = resolve_remote(istio, remote)
    return render_remote_plan(plan, family, istio, remote, facts)


def render_remote_plan(
    plan: MeshPlan, family: Family, istio: Istio, remote: RemoteIstio, facts: PrimaryFacts
) -> list[DesiredObject]:
    """`render_remote` from the remote's plan, for a caller that has resolved it already."""
    owner_namespace = control_plane_namespace(istio)
    ctx = Context(
        plan=plan,
        family=family,
        owner=istio.metadata.name,
        owner_namespace=owner_namespace,
        namespace=remote.metadata.namespace or owner_namespace,
        remote=remote.metadata.name,
        network=remote.metadata.name if plan.meshExpansion else "",
    )
    base: list[Manifest] = []
    own_ca = remote.spec.citadel.caSecretName if remote.spec.citadel else None
    if ctx.plan.citadel.enabled and not own_ca and facts.ca_secret_data is not None:
        base.append(ca_secret(ctx, facts.ca_secret_data))
    for index, service in enumerate(remote.spec.enabledServices):
        base += mirrored_service(ctx, service, f"spec.enabledServices[{index}]", facts)
    objects = ctx.unowned(Phase.BASE, [namespace(ctx)]) + ctx.emit(Phase.BASE, base)
    for component in components(family.remote_components):
        objects += component(ctx)
    return order(objects)
