"""Status of an `Istio` resource, computed from what a reconcile found (pure).

Compatible with the reference (`Status`, `ErrorMessage`, `GatewayAddress`) and,
beyond it, `observedGeneration`, Kubernetes-style conditions (`Reconciled`,
`Ready`), the version in effect, the current phase and what it waits for, and
per-component state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from istio_operator.reconcile.engine import ClusterReport


class State(StrEnum):
    """`status.Status` of an `Istio` or `RemoteIstio` resource, as the reference spells
    it; also the state of each component in `status.components` and of each remote in
    `status.remotes`."""

    AVAILABLE = "Available"
    RECONCILING = "Reconciling"
    FAILED = "ReconcileFailed"
    UNREACHABLE = "Unreachable"  # a remote cluster whose API server does not answer
    PENDING = "Pending"  # in `status.remotes` only: a remote without a status yet


# Status values whose reason is a problem worth a Warning event (and an ErrorMessage).
WARNING_STATES = frozenset({State.FAILED, State.UNREACHABLE})


@dataclass(frozen=True)
class Observation:
    """What one reconcile found, in the terms the status speaks."""

    generation: int
    state: State
    reason: str
    message: str = ""
    version: str | None = None  # the version now in effect, when the rollout completed
    phase: str = ""
    waiting_for: tuple[str, ...] = ()
    components: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    gateway_addresses: tuple[str, ...] = ()
    # Whether the running control plane is available; None: not looked at (kept as it was).
    ready: bool | None = None
    # The state of each remote cluster of the mesh, by RemoteIstio name.
    remotes: Mapping[str, str] | None = None
    # Why the mesh is not ready when the reason is elsewhere than in `reason`/`message`
    # (the primary is available, a remote is not).
    not_ready: tuple[str, str] | None = None
    # For a remote: the generation of the Istio resource it was reconciled against, and
    # the identity of its cluster (the uid of its kube-system namespace).
    istio_generation: int | None = None
    cluster_id: str | None = None
    # istiod family: every revision on the cluster (name, version, ready, active, what
    # uses it, since when nothing does) and where each revision tag points; None: kept.
    revisions: tuple[Mapping[str, Any], ...] | None = None
    tags: Mapping[str, str] | None = None
    migration: Mapping[str, Any] | None = None
    # A remote of the istiod family: the name of its secret on the primary, once written.
    remote_secret: str | None = None
    # Look again after this many seconds though nothing changes (a grace period ends).
    recheck_after: float | None = None


def refusal(generation: int, refused: list[str]) -> Observation:
    """The state of a cluster whose change the API server refused in its dry-run: nothing
    was applied, so what runs stays as it was (and so does readiness)."""
    shown = "; ".join(refused[:5]) + (f"; and {len(refused) - 5} more" if len(refused) > 5 else "")
    return Observation(
        generation,
        State.FAILED,
        "Refused",
        f"the API server refuses the change, nothing was applied: {shown}",
    )


def observe(
    generation: int,
    report: ClusterReport,
    version: str,
    gateway_addresses: tuple[str, ...],
    components: Mapping[str, Mapping[str, Any]],
) -> Observation:
    """What one reconcile of a cluster (the primary or a remote) found, from its report:
    the change refused by the API server (nothing applied), a rollout waiting for a phase,
    or the control plane available at `version`. `components` is what the status shows
    per component (empty: the previous components are kept)."""
    if report.refused:
        return replace(refusal(generation, report.refused), gateway_addresses=gateway_addresses)
    if not report.done:
        phase = report.waiting_phase.label if report.waiting_phase else ""
        return Observation(
            generation,
            State.RECONCILING,
            "RolloutInProgress",
            message=f"waiting for phase {phase}: {'; '.join(report.awaiting)}",
            phase=phase,
            waiting_for=tuple(report.awaiting),
            components=components,
            gateway_addresses=gateway_addresses,
            ready=False,
        )
    return Observation(
        generation,
        State.AVAILABLE,
        "Available",
        version=version,
        components=components,
        gateway_addresses=gateway_addresses,
        ready=True,
    )


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(
    previous: Mapping[str, Any], kind: str, ok: bool, reason: str, message: str, generation: int
) -> dict[str, Any]:
    status = "True" if ok else "False"
    old: Mapping[str, Any] = next(
        (c for c in previous.get("conditions") or [] if c.get("type") == kind), {}
    )
    # The transition time moves only when the condition's status does.
    since = old.get("lastTransitionTime") if old.get("status") == status else None
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or now(),
        "observedGeneration": generation,
    }


def _ready_condition(previous: Mapping[str, Any], seen: Observation) -> dict[str, Any]:
    if seen.ready is None:
        kept = next((c for c in previous.get("conditions") or [] if c.get("type") == "Ready"), None)
        if kept is not None:
            return dict(kept)
        return _condition(previous, "Ready", False, "Unknown", "not yet observed", seen.generation)
    if seen.ready:
        reason, message = "Available", "every control-plane workload is available"
    else:
        reason, message = seen.not_ready or (seen.reason, seen.message)
    return _condition(previous, "Ready", seen.ready, reason, message, seen.generation)


def compute_status(previous: Mapping[str, Any], seen: Observation) -> dict[str, Any]:
    """The new status; equal to `previous` (so not written) when nothing changed."""
    status: dict[str, Any] = {
        "Status": seen.state,
        "ErrorMessage": seen.message if seen.state in WARNING_STATES else "",
        "GatewayAddress": list(seen.gateway_addresses or previous.get("GatewayAddress") or []),
        "observedGeneration": seen.generation,
        "phase": seen.phase,
        "waitingFor": list(seen.waiting_for),
        "components": {k: dict(v) for k, v in seen.components.items()}
        or dict(previous.get("components") or {}),
        "conditions": [
            _condition(
                previous,
                "Reconciled",
                seen.state == State.AVAILABLE,
                seen.reason,
                seen.message,
                seen.generation,
            ),
            _ready_condition(previous, seen),
        ],
    }
    remotes = previous.get("remotes") if seen.remotes is None else dict(seen.remotes)
    if remotes:
        status["remotes"] = remotes
        status["remotesReady"] = remotes_ready(remotes)
    if status["GatewayAddress"]:
        status["gateways"] = ",".join(status["GatewayAddress"])
    version = seen.version or previous.get("version")
    if version:
        status["version"] = version
    if seen.revisions is not None:
        status["revisions"] = [dict(r) for r in seen.revisions]
        status["tags"] = dict(seen.tags or {})
        if seen.migration is not None:
            status["migration"] = dict(seen.migration)
        if seen.remote_secret is not None:
            status["remoteSecret"] = seen.remote_secret
    else:
        istiod_keys = ("revisions", "tags", "migration", "remoteSecret")
        status.update({k: previous[k] for k in istiod_keys if k in previous})
    kept = {"istioObservedGeneration": seen.istio_generation, "clusterID": seen.cluster_id}
    for key, value in kept.items():
        effective = previous.get(key) if value is None else value
        if effective is not None:
            status[key] = effective
    return status


def remotes_ready(remotes: Mapping[str, str]) -> str:
    """`ready/total` of the remotes, as text: a printer column shows it as it is."""
    ready = sum(1 for state in remotes.values() if state == State.AVAILABLE)
    return f"{ready}/{len(remotes)}"


def merge_patch(previous: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch from `previous` to `new`: keys that are gone become null, so a
    deleted remote leaves `status.remotes` instead of staying there forever."""
    patch: dict[str, Any] = dict(new)
    for key, old in previous.items():
        if key not in new:
            patch[key] = None
        elif isinstance(old, Mapping) and isinstance(new[key], Mapping):
            patch[key] = merge_patch(old, new[key])
    return patch


def differs(previous: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    keys = set(previous) | set(new)
    return any(previous.get(k) != new.get(k) for k in keys)
