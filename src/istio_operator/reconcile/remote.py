"""Reconciling the remote clusters of one mesh.

After the primary is available, every `RemoteIstio` of the `Istio` resource's
namespace is reconciled, concurrently with a bound, each through the same
`reconcile_cluster` as the primary. One remote failing (unreachable, a bad
kubeconfig) never stops the others; each gets its own status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from istio_operator.api.errors import SpecError
from istio_operator.api.istio import Istio
from istio_operator.api.labels import API_VERSION, REMOTE, owner_selector
from istio_operator.api.parse import load_remote_istio
from istio_operator.api.remoteistio import RemoteIstio
from istio_operator.kube.client import Cluster, ClusterUnreachableError
from istio_operator.kube.objects import ObjectKey
from istio_operator.kube.remotes import KubeconfigSecretError, RemoteClients
from istio_operator.reconcile.engine import (
    ClusterReport,
    Ownership,
    RolloutListener,
    delete_owned,
    reconcile_cluster,
)
from istio_operator.reconcile.injection import reconcile_injection_labels
from istio_operator.reconcile.status import AVAILABLE, FAILED, RECONCILING, Observation
from istio_operator.render import PortFact, PrimaryFacts, RemoteNetwork, render_remote
from istio_operator.versions import UnsupportedVersionError, remote_istio_spec

log = logging.getLogger(__name__)
UNREACHABLE = "Unreachable"
MULTI_CLUSTER_LABEL = "istio/multiCluster"
DEFAULT_CA_SECRET = "istio-ca-secret"
INGRESS_GATEWAY = "istio-ingressgateway"


@dataclass(frozen=True)
class RemoteOutcome:
    name: str
    observation: Observation
    gateway_addresses: tuple[str, ...] = ()


def remote_ownership(istio_name: str, namespace: str, remote: str) -> Ownership:
    return Ownership(f"{owner_selector(istio_name, namespace)},{REMOTE}={remote}")


def remote_networks(bodies: Sequence[Mapping[str, Any]]) -> list[RemoteNetwork]:
    """Each remote's network for the primary's meshNetworks, from its last known status."""
    networks = []
    for body in bodies:
        addresses = (body.get("status") or {}).get("GatewayAddress") or []
        if addresses and not (body.get("metadata") or {}).get("deletionTimestamp"):
            networks.append(RemoteNetwork(body["metadata"]["name"], tuple(addresses)))
    return sorted(networks, key=lambda n: n.name)


async def list_remotes(primary: Cluster, namespace: str) -> list[dict[str, Any]]:
    bodies = await primary.list_all(API_VERSION, "RemoteIstio")
    return [b for b in bodies if (b.get("metadata") or {}).get("namespace") == namespace]


async def reconcile_remotes(
    primary: Cluster,
    istio: Istio,
    bodies: Sequence[Mapping[str, Any]],
    clients: RemoteClients,
    phase_timeout: float,
    concurrency: int,
    on_rollout: RolloutListener | None = None,
) -> list[RemoteOutcome]:
    state = await read_primary(primary, istio)
    bound = asyncio.Semaphore(concurrency)

    async def one(body: Mapping[str, Any]) -> RemoteOutcome:
        async with bound:
            return await _reconcile_remote(
                primary, istio, body, state, clients, phase_timeout, on_rollout
            )

    live = [b for b in bodies if not (b.get("metadata") or {}).get("deletionTimestamp")]
    return list(await asyncio.gather(*(one(body) for body in live)))


async def _reconcile_remote(
    primary: Cluster,
    istio: Istio,
    body: Mapping[str, Any],
    state: PrimaryState,
    clients: RemoteClients,
    phase_timeout: float,
    on_rollout: RolloutListener | None,
) -> RemoteOutcome:
    name = str(body["metadata"]["name"])
    generation = int(body["metadata"].get("generation") or 0)
    try:
        remote = load_remote_istio(body).resource
        if istio.spec.meshExpansion and not state.facts.ingress_gateway_addresses:
            return RemoteOutcome(
                name,
                Observation(
                    generation,
                    RECONCILING,
                    "GatewayAddressPending",
                    message="waiting for the primary ingress gateway's load-balancer address",
                    phase="base",
                    waiting_for=("primary ingress gateway address",),
                    ready=False,
                ),
            )
        objects = render_remote(istio, remote, state.facts_for(remote))
        secret = await _kubeconfig_secret(primary, remote)
        cluster = await clients.for_secret(name, secret)
        report = await reconcile_cluster(
            cluster,
            objects,
            remote_ownership(istio.metadata.name, istio.metadata.namespace or "", name),
            phase_timeout,
            on_rollout,
        )
        if report.done:
            await _label_secret(primary, secret)
            wanted = remote_istio_spec(istio.spec, remote.spec).autoInjectionNamespaces or []
            await reconcile_injection_labels(
                cluster, istio.metadata.name, istio.metadata.namespace or "", wanted
            )
        addresses = await ingress_addresses(cluster, remote.metadata.namespace or "")
        return RemoteOutcome(name, _observe(generation, istio, report, addresses), addresses)
    except (SpecError, KubeconfigSecretError) as error:
        return RemoteOutcome(name, Observation(generation, FAILED, "InvalidSpec", str(error)))
    except UnsupportedVersionError as error:
        return RemoteOutcome(
            name, Observation(generation, FAILED, "UnsupportedVersion", str(error))
        )
    except ClusterUnreachableError as error:
        return RemoteOutcome(name, Observation(generation, UNREACHABLE, UNREACHABLE, str(error)))


def _observe(
    generation: int, istio: Istio, report: ClusterReport, addresses: tuple[str, ...]
) -> Observation:
    if not report.done:
        phase = report.waiting_phase.label if report.waiting_phase else ""
        return Observation(
            generation,
            RECONCILING,
            "RolloutInProgress",
            message=f"waiting for phase {phase}: {'; '.join(report.awaiting)}",
            phase=phase,
            waiting_for=tuple(report.awaiting),
            gateway_addresses=addresses,
            ready=False,
        )
    images = sorted(
        {
            c["image"]
            for w in report.live_workloads.values()
            for c in w["spec"]["template"]["spec"]["containers"]
        }
    )
    return Observation(
        generation,
        AVAILABLE,
        "Available",
        version=istio.spec.version,
        components={"remote": {"state": AVAILABLE, "images": images}},
        gateway_addresses=addresses,
        ready=True,
    )


async def _kubeconfig_secret(primary: Cluster, remote: RemoteIstio) -> dict[str, Any]:
    namespace, name = remote.metadata.namespace or "", remote.metadata.name
    secret = await primary.get(ObjectKey("v1", "Secret", namespace, name))
    if secret is None:
        raise KubeconfigSecretError(
            f"kubeconfig Secret {namespace}/{name} not found: create it with the remote "
            "cluster's kubeconfig under one key named after the RemoteIstio"
        )
    return secret


async def _label_secret(primary: Cluster, secret: Mapping[str, Any]) -> None:
    """Marks the Secret for Istio's pilot, whose secret controller watches this label."""
    meta = secret.get("metadata") or {}
    if (meta.get("labels") or {}).get(MULTI_CLUSTER_LABEL) == "true":
        return
    await primary.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "labels": {MULTI_CLUSTER_LABEL: "true"},
            },
        }
    )


async def unlabel_secret(primary: Cluster, namespace: str, name: str) -> None:
    secret = await primary.get(ObjectKey("v1", "Secret", namespace, name))
    if secret is not None and MULTI_CLUSTER_LABEL in (secret["metadata"].get("labels") or {}):
        # Applying the bare name gives up the label this field manager set.
        await primary.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": namespace},
            }
        )


async def remove_remote(
    primary: Cluster, clients: RemoteClients, istio_name: str, namespace: str, remote: str
) -> int:
    """Deletes everything the operator created on one remote cluster, found by label."""
    secret = await primary.get(ObjectKey("v1", "Secret", namespace, remote))
    if secret is None:
        raise KubeconfigSecretError(f"kubeconfig Secret {namespace}/{remote} not found")
    cluster = await clients.for_secret(remote, secret)
    removed = await delete_owned(cluster, remote_ownership(istio_name, namespace, remote))
    await reconcile_injection_labels(cluster, istio_name, namespace, [])
    await unlabel_secret(primary, namespace, remote)
    await clients.forget(remote)
    return len(removed)


# -- facts read from the primary ---------------------------------------------------------------


@dataclass(frozen=True)
class PrimaryState:
    """What remotes need from the primary, read once per reconcile."""

    facts: PrimaryFacts
    services: Mapping[str, Mapping[str, Any]]
    ready_pods: Sequence[Mapping[str, Any]]

    def facts_for(self, remote: RemoteIstio) -> PrimaryFacts:
        """The facts with the ready pod IPs behind each service this remote mirrors
        (flat network): pods matching its label selector, else the Service's selector."""
        pod_ips = {}
        for service in remote.spec.enabledServices:
            selector = _parse_selector(service.labelSelector) or dict(
                ((self.services.get(service.name) or {}).get("spec") or {}).get("selector") or {}
            )
            if selector:
                pod_ips[service.name] = tuple(
                    sorted(p["status"]["podIP"] for p in self.ready_pods if _matches(p, selector))
                )
        return replace(self.facts, service_pod_ips=pod_ips)


async def read_primary(primary: Cluster, istio: Istio) -> PrimaryState:
    namespace = istio.metadata.namespace or ""
    ca_name = (istio.spec.citadel.caSecretName if istio.spec.citadel else None) or (
        DEFAULT_CA_SECRET
    )
    ca = await primary.get(ObjectKey("v1", "Secret", namespace, ca_name))
    services = {
        s["metadata"]["name"]: s
        for s in await primary.list_all("v1", "Service")
        if s["metadata"].get("namespace") == namespace
    }
    facts = PrimaryFacts(
        ca_secret_data=dict(ca.get("data") or {}) if ca else None,
        ingress_gateway_addresses=await ingress_addresses(primary, namespace),
        service_ports={
            name: tuple(
                PortFact(p.get("name"), int(p["port"]), p.get("protocol") or "TCP")
                for p in (svc.get("spec") or {}).get("ports") or []
            )
            for name, svc in services.items()
        },
    )
    pods = [p for p in await primary.list_all("v1", "Pod") if _ready(p)]
    return PrimaryState(facts, services, pods)


def _parse_selector(text: str | None) -> dict[str, str]:
    """`a=b,c=d` as a dict; a bare key (`statsd-prom-bridge`) means `app=<key>`."""
    selector = {}
    for part in (text or "").split(","):
        key, _, value = part.strip().partition("=")
        if key:
            selector[key if value else "app"] = value or key
    return selector


def _matches(pod: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def _ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return ready and bool(status.get("podIP"))


async def ingress_addresses(cluster: Cluster, namespace: str) -> tuple[str, ...]:
    service = await cluster.get(ObjectKey("v1", "Service", namespace, INGRESS_GATEWAY))
    ingress = (((service or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress")
    return tuple(i.get("ip") or i.get("hostname") for i in ingress or [] if i)
