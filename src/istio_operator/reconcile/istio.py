"""One reconcile of an `Istio` resource on the primary cluster."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from istio_operator.api.errors import SpecError
from istio_operator.api.istio import Istio
from istio_operator.api.labels import PHASE, owner_selector
from istio_operator.api.parse import load_istio
from istio_operator.kube.client import Cluster
from istio_operator.kube.objects import readiness
from istio_operator.kube.remotes import RemoteClients
from istio_operator.reconcile.engine import (
    ClusterReport,
    Ownership,
    RolloutListener,
    reconcile_cluster,
)
from istio_operator.reconcile.injection import reconcile_injection_labels
from istio_operator.reconcile.remote import (
    RemoteOutcome,
    ingress_addresses,
    list_remotes,
    reconcile_remotes,
    remote_networks,
)
from istio_operator.reconcile.status import AVAILABLE, FAILED, RECONCILING, Observation
from istio_operator.render import render_primary
from istio_operator.render.phases import Phase
from istio_operator.versions import UnsupportedVersionError


@dataclass(frozen=True)
class Settings:
    phase_timeout: float = 60.0
    remote_concurrency: int = 4
    on_rollout: RolloutListener | None = None
    # Told the primary's state once it is available, before the remotes are reconciled.
    on_primary: Callable[[Observation], Awaitable[None]] | None = None


@dataclass(frozen=True)
class MeshOutcome:
    """What one reconcile of a mesh found: the primary's and each remote's state."""

    primary: Observation
    remotes: list[RemoteOutcome] = field(default_factory=list)
    remote_bodies: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Peer:
    """Another Istio resource of the same cluster."""

    namespace: str
    name: str
    created: str


def _failed(generation: int, reason: str, message: str) -> Observation:
    return Observation(generation=generation, state=FAILED, reason=reason, message=message)


def _conflict(istio: Istio, created: str, peers: Sequence[Peer]) -> str | None:
    """Only the oldest Istio resource of a cluster is reconciled; the others are told why."""
    me = (created, istio.metadata.namespace or "", istio.metadata.name)
    older = sorted(p for p in ((p.created, p.namespace, p.name) for p in peers) if p < me)
    if not older:
        return None
    _, namespace, name = older[0]
    return (
        f"only one Istio resource per cluster is supported: {namespace}/{name} already "
        "manages this cluster's control plane"
    )


async def reconcile_mesh(
    primary: Cluster,
    body: Mapping[str, Any],
    peers: Sequence[Peer],
    settings: Settings,
    clients: RemoteClients,
) -> MeshOutcome:
    """The primary first; once it is available, every remote of the mesh."""
    generation = int((body.get("metadata") or {}).get("generation") or 0)
    namespace = str((body.get("metadata") or {}).get("namespace") or "")
    remote_bodies = await list_remotes(primary, namespace)
    gateways = await ingress_addresses(primary, namespace)
    try:
        istio = load_istio(body).resource
        objects = render_primary(
            istio, remote_networks(remote_bodies), primary_gateway_addresses=gateways
        )
    except SpecError as error:
        return MeshOutcome(_failed(generation, "InvalidSpec", f"invalid spec: {error}"))
    except UnsupportedVersionError as error:
        return MeshOutcome(_failed(generation, "UnsupportedVersion", str(error)))
    conflict = _conflict(istio, str((body.get("metadata") or {}).get("creationTimestamp")), peers)
    if conflict:
        return MeshOutcome(_failed(generation, "Conflict", conflict))

    name = istio.metadata.name
    report = await reconcile_cluster(
        primary,
        objects,
        Ownership(owner_selector(name, namespace)),
        settings.phase_timeout,
        settings.on_rollout,
    )
    await reconcile_injection_labels(
        primary, name, namespace, istio.spec.autoInjectionNamespaces or []
    )
    seen = observe(istio, generation, report, gateways)
    remotes: list[RemoteOutcome] = []
    if report.done:
        if remote_bodies and settings.on_primary is not None:
            await settings.on_primary(seen)
        remotes = await reconcile_remotes(
            primary,
            istio,
            remote_bodies,
            clients,
            settings.phase_timeout,
            settings.remote_concurrency,
            settings.on_rollout,
        )
    if remotes:
        seen = replace(seen, remotes={r.name: r.observation.state for r in remotes})
    return MeshOutcome(seen, remotes, remote_bodies)


def observe(
    istio: Istio, generation: int, report: ClusterReport, gateways: tuple[str, ...]
) -> Observation:
    components = component_states(report)
    if not report.done:
        phase = report.waiting_phase.label if report.waiting_phase else ""
        return Observation(
            generation=generation,
            state=RECONCILING,
            reason="RolloutInProgress",
            message=f"waiting for phase {phase}: {'; '.join(report.awaiting)}",
            phase=phase,
            waiting_for=tuple(report.awaiting),
            components=components,
            gateway_addresses=gateways,
            ready=False,
        )
    return Observation(
        generation=generation,
        state=AVAILABLE,
        reason="Available",
        message="",
        version=istio.spec.version,
        components=components,
        gateway_addresses=gateways,
        ready=True,
    )


def component_states(report: ClusterReport) -> dict[str, dict[str, Any]]:
    """Per phase with workloads: its state, images and ready replicas."""
    by_phase: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for obj in report.live_workloads.values():
        by_phase[(obj.get("metadata") or {}).get("labels", {}).get(PHASE, "")].append(obj)
    states = {}
    for label, workloads in sorted(by_phase.items()):
        phase = Phase.from_label(label) if label else None
        states[label or "other"] = {
            "state": _phase_state(report, phase, workloads),
            "images": sorted({c["image"] for w in workloads for c in _containers(w)}),
        }
    return states


def _phase_state(
    report: ClusterReport, phase: Phase | None, workloads: list[dict[str, Any]]
) -> str:
    if phase is not None and phase == report.waiting_phase:
        return RECONCILING
    return AVAILABLE if all(readiness(w).ready for w in workloads) else RECONCILING


def _containers(workload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    spec = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    return list(spec.get("containers") or [])
