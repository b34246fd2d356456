"""The complete object list of the primary cluster."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from istio_operator.api.istio import Istio
from istio_operator.plan import MeshPlan, control_plane_namespace, resolve_primary
from istio_operator.render import (
    citadel,
    cni,
    common,
    coredns,
    crds,
    galley,
    gateways,
    mixer,
    mixerless,
    node_agent,
    pilot,
    sidecar_injector,
)
from istio_operator.render.context import Context
from istio_operator.render.objects import DesiredObject
from istio_operator.versions import Family

Component = Callable[[Context], list[DesiredObject]]

# The renderer of each component a family declares (`Family.components`).
RENDERERS: Mapping[str, Component] = {
    "crds": crds.render,
    "common": common.render,
    "citadel": citadel.render,
    "galley": galley.render,
    "pilot": pilot.render,
    "mixer": mixer.render,
    "sidecarinjector": sidecar_injector.render,
    "gateways": gateways.render,
    "nodeagent": node_agent.render,
    "cni": cni.render,
    "istiocoredns": coredns.render,
    "mixerlesstelemetry": mixerless.render,
}


def components(names: Sequence[str]) -> list[Component]:
    """The renderers of the components a family declares, in its order."""
    return [RENDERERS[name] for name in names]


# meshNetworks gateways listen on the ingress gateway's TLS port.
MESH_NETWORK_GATEWAY_PORT = 443
LOCAL_NETWORK = "local-network"


@dataclass(frozen=True)
class RemoteNetwork:
    """What meshNetworks needs about one remote cluster (split-horizon EDS).

    `name` is the RemoteIstio's name, which is also the remote's network name
    and the service registry (kubeconfig Secret key) pilot knows it by;
    `gateway_addresses` are the remote ingress gateway's addresses.
    """

    name: str
    gateway_addresses: tuple[str, ...] = ()


def _gateways(addresses: Sequence[str]) -> list[dict[str, Any]]:
    return [{"address": address, "port": MESH_NETWORK_GATEWAY_PORT} for address in addresses]


def mesh_networks(
    remote_networks: Sequence[RemoteNetwork], primary_gateway_addresses: Sequence[str]
) -> dict[str, Any]:
    """The meshNetworks document: one network per cluster whose gateway address is known."""
    networks: dict[str, Any] = {}
    if primary_gateway_addresses:
        networks[LOCAL_NETWORK] = {
            "endpoints": [{"fromCidr": "127.0.0.1/8"}],
            "gateways": _gateways(primary_gateway_addresses),
        }
    for remote in sorted(remote_networks, key=lambda r: r.name):
        if remote.gateway_addresses:
            networks[remote.name] = {
                "endpoints": [{"fromRegistry": remote.name}],
                "gateways": _gateways(remote.gateway_addresses),
            }
    return {"networks": networks}


def render_primary(
    istio: Istio,
    remote_networks: Sequence[RemoteNetwork] = (),
    *,
    primary_gateway_addresses: Sequence[str] = (),
) -> list[DesiredObject]:
    """Every object the primary cluster should hold for `istio`, ordered by phase.

    `remote_networks` and `primary_gateway_addresses` feed meshNetworks, used
    only with `meshExpansion`. Raises `SpecError` or `UnsupportedVersionError`.
    """
    plan, family = resolve_primary(istio)
    return render_primary_plan(
        plan, family, istio, remote_networks, primary_gateway_addresses=primary_gateway_addresses
    )


def render_primary_plan(
    plan: MeshPlan,
    family: Family,
    istio: Istio,
    remote_networks: Sequence[RemoteNetwork] = (),
    *,
    primary_gateway_addresses: Sequence[str] = (),
) -> list[DesiredObject]:
    """`render_primary` from the primary's plan, for a caller that has resolved it already."""
    networks: dict[str, Any] = {"networks": {}}
    if plan.meshExpansion:
        networks = mesh_networks(remote_networks, primary_gateway_addresses)
    ctx = Context(
        plan=plan,
        family=family,
        owner=istio.metadata.name,
        namespace=control_plane_namespace(istio),
        mesh_networks=networks,
    )
    return order([obj for component in components(family.components) for obj in component(ctx)])


def order(objects: list[DesiredObject]) -> list[DesiredObject]:
    """Objects by phase, keeping each component's own order within a phase."""
    return sorted(objects, key=lambda obj: obj.phase)
