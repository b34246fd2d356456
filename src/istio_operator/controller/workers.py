"""The workers: one per `Istio` resource (the primary) and one per `RemoteIstio` (its
cluster). Each runs one reconcile per trigger, reports it, and says how long to wait
before the next one without a trigger. They never share a pass, so a slow or hung
remote delays neither the primary nor another remote."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from istio_operator.api.keys import ObjectKey
from istio_operator.api.labels import API_VERSION
from istio_operator.controller import metrics
from istio_operator.controller.exclusive import Exclusive, Interrupted
from istio_operator.controller.reporting import StatusWriter, generation_of, plain
from istio_operator.controller.triggers import Key, Triggers
from istio_operator.kube.client import ApiRefusedError, Cluster, ClusterUnreachableError
from istio_operator.kube.remotes import RemoteClients
from istio_operator.reconcile.istio import MeshOutcome, Peer, Settings, reconcile_mesh
from istio_operator.reconcile.remote import RemoteSettings, reconcile_remote, remotes_follow
from istio_operator.reconcile.status import Observation, State
from istio_operator.render.phases import Phase

REQUEUE_WHILE_ROLLING_S = 2.0
RETRY_AFTER_ERROR_S = 5.0
MAX_BACKOFF_S = 120.0

Logger = logging.Logger | logging.LoggerAdapter[Any]


# Remote passes in flight at once, at most: sized for tens of remotes rolling out together,
# a bound on the connections and memory a wave of them takes.
REMOTE_CONCURRENCY = 64


@dataclass(frozen=True)
class RunConfig:
    kubeconfig: str | None = None
    resync_period: float = 300.0
    phase_timeout: float = 60.0
    remote_concurrency: int = REMOTE_CONCURRENCY


@dataclass
class Shared:
    """What every worker of the process uses."""

    primary: Cluster
    remotes: RemoteClients
    exclusive: Exclusive
    istio_triggers: Triggers
    remote_triggers: Triggers
    config: RunConfig
    remote_slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.remote_slots = asyncio.Semaphore(self.config.remote_concurrency)


class Backoff:
    """Exponential backoff of one worker: 5 s, 10 s, ... up to 2 min while it fails."""

    def __init__(self) -> None:
        self.failures = 0

    def after(self, seen: Observation, resync: float) -> float:
        if seen.state == State.AVAILABLE:
            self.failures = 0
            return resync
        if seen.state == State.RECONCILING:
            self.failures = 0
            return min(resync, REQUEUE_WHILE_ROLLING_S)
        self.failures += 1
        return min(resync, RETRY_AFTER_ERROR_S * 2.0 ** (self.failures - 1), MAX_BACKOFF_S)


def istio_lock_key(key: Key) -> Key:
    """An Istio's key in `Exclusive`, apart from a RemoteIstio of the same name ('/' cannot
    be in a resource name)."""
    return (key[0], f"Istio/{key[1]}")


class IstioWorker:
    """Reconciles the primary's control plane of one Istio resource."""

    def __init__(self, shared: Shared, key: Key, logger: Logger) -> None:
        self.shared, self.key, self.logger = shared, key, logger
        self.istio_key = ObjectKey(API_VERSION, "Istio", key[0], key[1])
        self.status = StatusWriter(shared.primary, logger)
        self.backoff = Backoff()
        self._snapshot: dict[str, Any] = {}

    async def run_once(self, body: Mapping[str, Any], peers: list[Peer]) -> float:
        """One pass under `Exclusive`: the deletion handler's cleanup stops a pass in flight,
        and a pass that starts after it finds the resource deleted, so nothing is reapplied."""
        try:
            return await self.shared.exclusive.run(
                istio_lock_key(self.key), lambda: self._locked(body, peers)
            )
        except Interrupted:
            return self.shared.config.resync_period

    async def _locked(self, body: Mapping[str, Any], peers: list[Peer]) -> float:
        if (body.get("metadata") or {}).get("deletionTimestamp"):
            return self.shared.config.resync_period  # its cleanup runs in the deletion handler
        started = time.monotonic()
        primary = self.shared.primary
        self._snapshot = plain(body)
        writes_before = primary.writes.total
        settings = Settings(self.shared.config.phase_timeout, on_rollout=self._rolling_out)
        try:
            outcome = await reconcile_mesh(primary, self._snapshot, peers, settings)
        except ClusterUnreachableError as error:
            outcome = MeshOutcome(_failure(self._snapshot, "Unreachable", str(error)))
        except ApiRefusedError as error:
            # Refused mid-rollout (what the dry-run could not judge yet): the API server's
            # word, not our bug, so no traceback.
            message = f"the API server refused a request ({error.code}): {error.message}"
            self.logger.warning(message)
            outcome = MeshOutcome(_failure(self._snapshot, "Refused", message))
        except Exception as error:  # a reconcile must never kill the worker
            self.logger.exception("reconcile failed")
            message = f"{type(error).__name__}: {error}"
            outcome = MeshOutcome(_failure(self._snapshot, "Error", message))
        seen = outcome.primary
        metrics.record_reconcile(
            self.key,
            seen.state,
            seen.reason,
            seen.phase,
            time.monotonic() - started,
            primary.writes.total - writes_before,
        )
        await self.status.report(self.istio_key, self._snapshot, seen)
        if seen.state == State.AVAILABLE:
            # Remotes follow the primary: they read its facts afresh now that it is settled.
            self.shared.remote_triggers.fire_namespace(self.key[0])
        after = self.backoff.after(seen, self.shared.config.resync_period)
        return after if seen.recheck_after is None else min(after, seen.recheck_after)

    async def _rolling_out(self, cluster: str, phase: Phase) -> None:
        """Shows the primary's rollout phase by phase while the reconcile runs; once past
        what remotes depend on, they may follow (`reconcile.remote.primary_followable`)."""
        await self.status.report(self.istio_key, self._snapshot, _rolling(self._snapshot, phase))
        follows = remotes_follow(str((self._snapshot.get("spec") or {}).get("version") or ""))
        if cluster == self.shared.primary.name and follows is not None and phase > follows:
            self.shared.remote_triggers.fire_namespace(self.key[0])


class RemoteWorker:
    """Reconciles one remote cluster, alone: under `Exclusive`, so that its cleanup can
    interrupt it and nothing is applied once the cleanup began."""

    def __init__(self, shared: Shared, key: Key, body: Mapping[str, Any], logger: Logger):
        self.shared, self.key, self.body, self.logger = shared, key, body, logger
        self.remote_key = ObjectKey(API_VERSION, "RemoteIstio", key[0], key[1])
        self.status = StatusWriter(shared.primary, logger)
        self.backoff = Backoff()
        self._snapshot: dict[str, Any] = {}
        self._phase = Phase.BASE  # the phase the rollout in progress last reported

    async def run_once(self, istio_name: str | None) -> float:
        resync = self.shared.config.resync_period
        try:
            async with self.shared.remote_slots:
                return await self.shared.exclusive.run(self.key, lambda: self._locked(istio_name))
        except Interrupted:
            return resync
        except ClusterUnreachableError as error:
            # The primary itself (where the resources and their statuses live) is away:
            # nothing to report to; try again soon.
            self.logger.warning(f"remote {self.key[1]} waits for the primary: {error}")
            return RETRY_AFTER_ERROR_S

    async def _locked(self, istio_name: str | None) -> float:
        resync = self.shared.config.resync_period
        if (self.body.get("metadata") or {}).get("deletionTimestamp"):
            return resync  # its cleanup runs (or ran) in the deletion handler
        self._snapshot = plain(self.body)
        primary = self.shared.primary
        istio = None
        if istio_name is not None:
            istio = await primary.get(ObjectKey(API_VERSION, "Istio", self.key[0], istio_name))
        settings = RemoteSettings(
            self.shared.config.phase_timeout, self._rolling_out, self._gateway_known
        )
        outcome = await reconcile_remote(
            primary, self.shared.remotes, istio, self._snapshot, settings
        )
        if outcome is None:
            return resync
        seen = outcome.observation
        if await self.status.report(self.remote_key, self._snapshot, seen) and istio_name:
            # The mesh's readiness and the primary's meshNetworks depend on this status.
            self.shared.istio_triggers.fire((self.key[0], istio_name))
        return self.backoff.after(seen, resync)

    async def _rolling_out(self, cluster: str, phase: Phase) -> None:
        self._phase = phase
        seen = _rolling(self._snapshot, phase)
        await self.status.report(self.remote_key, self._snapshot, seen)

    async def _gateway_known(self, addresses: tuple[str, ...]) -> None:
        """The remote gateway's addresses, known during the rollout: in the status at once,
        and the primary told (its meshNetworks list them)."""
        seen = replace(_rolling(self._snapshot, self._phase), gateway_addresses=addresses)
        if await self.status.report(self.remote_key, self._snapshot, seen):
            self.shared.istio_triggers.fire_namespace(self.key[0])


def _rolling(body: Mapping[str, Any], phase: Phase) -> Observation:
    return Observation(
        generation=generation_of(body),
        state=State.RECONCILING,
        reason="RollingOut",
        message=f"rolling out phase {phase.label}",
        phase=phase.label,
    )


def _failure(body: Mapping[str, Any], reason: str, message: str) -> Observation:
    return Observation(
        generation=generation_of(body), state=State.FAILED, reason=reason, message=message
    )
