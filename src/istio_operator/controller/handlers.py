"""kopf handlers: thin. They map events to reconcile requests and run one worker per
`Istio` resource that calls `reconcile_istio` and writes status and Events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import kopf

from istio_operator.api.crd import generate_crds
from istio_operator.api.labels import (
    API_VERSION,
    GROUP,
    MANAGED_BY,
    MANAGED_BY_VALUE,
    REMOTE,
    owner_selector,
)
from istio_operator.controller import metrics
from istio_operator.controller.triggers import Key, Triggers
from istio_operator.kube.client import Cluster, ClusterUnreachableError, config_from_file
from istio_operator.kube.objects import ObjectKey
from istio_operator.kube.remotes import KubeconfigSecretError, RemoteClients
from istio_operator.kube.resources import register_crds
from istio_operator.reconcile.engine import Ownership, delete_owned
from istio_operator.reconcile.injection import reconcile_injection_labels
from istio_operator.reconcile.istio import MeshOutcome, Peer, Settings, reconcile_mesh
from istio_operator.reconcile.remote import (
    MULTI_CLUSTER_LABEL,
    RemoteOutcome,
    list_remotes,
    remove_remote,
)
from istio_operator.reconcile.status import (
    AVAILABLE,
    FAILED,
    RECONCILING,
    WARNING_STATES,
    Observation,
    compute_status,
    differs,
)
from istio_operator.render.phases import Phase

FINALIZER = f"{GROUP}/finalizer"
# Owned kinds whose changes are watched; others are repaired by the periodic resync.
WATCHED_OWNED = (
    ("apps", "v1", "deployments"),
    ("apps", "v1", "daemonsets"),
    ("", "v1", "services"),
    ("", "v1", "configmaps"),
    ("", "v1", "serviceaccounts"),
    ("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations"),
)
# The primary's name in logs and rollout reports: never a valid RemoteIstio name.
PRIMARY = "primary cluster"
REQUEUE_WHILE_ROLLING_S = 2.0
REMOTE_WATCH_RETRY_S = 5.0
RETRY_AFTER_ERROR_S = 5.0


@dataclass(frozen=True)
class RunConfig:
    kubeconfig: str | None = None
    resync_period: float = 300.0
    phase_timeout: float = 60.0


def build_registry(config: RunConfig) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    triggers = Triggers()

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
        # Events are posted on status changes only, never from log lines.
        settings.posting.level = logging.CRITICAL + 1
        settings.watching.server_timeout = 300
        register_crds(generate_crds())
        memo["primary"] = Cluster.from_config(PRIMARY, config_from_file(config.kubeconfig))
        memo["remotes"] = RemoteClients()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        await memo["remotes"].close()
        await memo["primary"].close()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_kubeconfig(**kwargs) or kopf.login_with_service_account(**kwargs)

    _register_istio(registry, triggers, config)
    _register_owned(registry, triggers)
    _register_remotes(registry, triggers)
    return registry


def _register_istio(registry: kopf.OperatorRegistry, triggers: Triggers, config: RunConfig) -> None:
    @kopf.index(GROUP, "v1beta1", "istios", id="istio_peers", registry=registry)
    def istio_peers(
        namespace: str | None, name: str, meta: kopf.Meta, **_: Any
    ) -> dict[None, Peer]:
        return {None: Peer(namespace or "", name, str(meta.get("creationTimestamp")))}

    @kopf.on.event(GROUP, "v1beta1", "istios", registry=registry)
    async def istio_changed(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> None:
        if body.get("metadata", {}).get("generation") != body.get("status", {}).get(
            "observedGeneration"
        ):
            triggers.fire((namespace or "", name))

    @kopf.on.event("", "v1", "namespaces", registry=registry)
    async def namespace_changed(type: str | None, **_: Any) -> None:
        if type == "ADDED":
            triggers.fire_all()

    @kopf.daemon(GROUP, "v1beta1", "istios", cancellation_timeout=5.0, registry=registry)
    async def istio_worker(
        namespace: str | None,
        name: str,
        body: kopf.Body,
        memo: kopf.Memo,
        stopped: kopf.DaemonStopped,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        **kwargs: Any,
    ) -> None:
        key: Key = (namespace or "", name)
        istio_peers: kopf.Index[None, Peer] = kwargs["istio_peers"]
        trigger = triggers.event_for(key)
        worker = _Worker(memo["primary"], memo["remotes"], config, key, logger)
        try:
            while not stopped:
                trigger.clear()
                peers = [p for p in istio_peers.get(None, []) if (p.namespace, p.name) != key]
                wait = await worker.run_once(body, peers)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(trigger.wait(), timeout=wait)
        finally:
            triggers.forget(key)

    @kopf.on.delete(GROUP, "v1beta1", "istios", retries=60, backoff=5, registry=registry)
    async def istio_deleted(
        namespace: str | None,
        name: str,
        memo: kopf.Memo,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        **_: Any,
    ) -> None:
        namespace = namespace or ""
        primary: Cluster = memo["primary"]
        for remote in await list_remotes(primary, namespace):
            await _clean_remote(memo, name, namespace, remote["metadata"]["name"])
        removed = await delete_owned(primary, Ownership(owner_selector(name, namespace)))
        await reconcile_injection_labels(primary, name, namespace, [])
        logger.info(f"deleted {len(removed)} objects; Istio's CRDs and user configuration kept")


# Handlers that set triggers are coroutines: kopf runs plain functions in a thread pool,
# and an asyncio.Event set from another thread does not wake the worker waiting on it.


def _register_owned(registry: kopf.OperatorRegistry, triggers: Triggers) -> None:
    owned = {MANAGED_BY: MANAGED_BY_VALUE}
    for group, version, plural in WATCHED_OWNED:

        @kopf.on.event(group, version, plural, labels=owned, registry=registry)
        async def owned_changed(labels: kopf.Labels, **_: Any) -> None:
            triggers.fire_owner_of(labels)


def _register_remotes(registry: kopf.OperatorRegistry, triggers: Triggers) -> None:
    @kopf.on.event(GROUP, "v1beta1", "remoteistios", registry=registry)
    async def remote_changed(namespace: str | None, **_: Any) -> None:
        triggers.fire_namespace(namespace or "")

    @kopf.on.event("", "v1", "secrets", labels={MULTI_CLUSTER_LABEL: "true"}, registry=registry)
    async def kubeconfig_changed(namespace: str | None, **_: Any) -> None:
        triggers.fire_namespace(namespace or "")

    @kopf.daemon(GROUP, "v1beta1", "remoteistios", cancellation_timeout=5.0, registry=registry)
    async def remote_watcher(
        namespace: str | None,
        name: str,
        memo: kopf.Memo,
        stopped: kopf.DaemonStopped,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        **_: Any,
    ) -> None:
        """Watches the remote cluster's workloads so that drift there is repaired at once."""
        namespace = namespace or ""
        while not stopped:
            try:
                await _watch_remote(memo, namespace, name, triggers)
            except (ClusterUnreachableError, KubeconfigSecretError) as error:
                logger.debug(f"remote watch of {name} paused: {error}")
            await stopped.wait(REMOTE_WATCH_RETRY_S)

    @kopf.on.delete(GROUP, "v1beta1", "remoteistios", retries=60, backoff=5, registry=registry)
    async def remote_deleted(
        namespace: str | None,
        name: str,
        memo: kopf.Memo,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        **kwargs: Any,
    ) -> None:
        namespace = namespace or ""
        peers: kopf.Index[None, Peer] = kwargs["istio_peers"]
        for istio_name in sorted({p.name for p in peers.get(None, []) if p.namespace == namespace}):
            removed = await _clean_remote(memo, istio_name, namespace, name)
            logger.info(f"removed {removed} objects from remote cluster {name}")
        triggers.fire_namespace(namespace)


async def _clean_remote(memo: kopf.Memo, istio_name: str, namespace: str, remote: str) -> int:
    """Removes what the operator created on a remote; retried while it cannot be reached."""
    try:
        return await remove_remote(memo["primary"], memo["remotes"], istio_name, namespace, remote)
    except (ClusterUnreachableError, KubeconfigSecretError) as error:
        raise kopf.TemporaryError(f"cannot clean remote {remote} yet: {error}", delay=5) from error


async def _watch_remote(memo: kopf.Memo, namespace: str, name: str, triggers: Triggers) -> None:
    primary: Cluster = memo["primary"]
    secret = await primary.get(ObjectKey("v1", "Secret", namespace, name))
    if secret is None:
        raise KubeconfigSecretError(f"kubeconfig Secret {namespace}/{name} not found")
    cluster = await memo["remotes"].for_secret(name, secret)
    selector = f"{MANAGED_BY}={MANAGED_BY_VALUE},{REMOTE}={name}"
    async for _, obj in cluster.watch_labelled("apps/v1", "Deployment", selector):
        triggers.fire_owner_of((obj.get("metadata") or {}).get("labels") or {})


class _Worker:
    """Runs reconciles for one Istio resource and reports them (status, Events, metrics)."""

    def __init__(
        self, primary: Cluster, remotes: RemoteClients, config: RunConfig, key: Key, logger: Any
    ) -> None:
        self.primary, self.remotes, self.config = primary, remotes, config
        self.key, self.logger = key, logger
        self.remote_failures: dict[str, int] = {}
        self.istio_key = ObjectKey(API_VERSION, "Istio", key[0], key[1])
        # The body this reconcile started from, and the statuses it has written so far.
        self._snapshot: dict[str, Any] = {}
        self._written: dict[ObjectKey, dict[str, Any]] = {}

    async def run_once(self, body: kopf.Body, peers: list[Peer]) -> float:
        """One reconcile; returns how long to wait before the next one without a trigger."""
        started = time.monotonic()
        snapshot = _plain(body)
        self._snapshot, self._written = snapshot, {}
        writes_before = self.primary.writes.total
        try:
            outcome = await reconcile_mesh(
                self.primary,
                snapshot,
                peers,
                Settings(
                    phase_timeout=self.config.phase_timeout,
                    on_rollout=self._rolling_out,
                    on_primary=self._primary_available,
                ),
                self.remotes,
            )
        except ClusterUnreachableError as error:
            outcome = MeshOutcome(_failure(snapshot, "Unreachable", str(error)))
        except Exception as error:  # a reconcile must never kill the worker
            self.logger.exception("reconcile failed")
            outcome = MeshOutcome(_failure(snapshot, "Error", f"{type(error).__name__}: {error}"))
        seen = outcome.primary
        metrics.record_reconcile(
            self.key,
            seen.state,
            seen.reason,
            seen.phase,
            time.monotonic() - started,
            self.primary.writes.total - writes_before,
        )
        await self._report(self.istio_key, snapshot, seen)
        await self._report_remotes(outcome)
        return self._next_wait(seen, outcome.remotes)

    def _next_wait(self, seen: Observation, remotes: list[RemoteOutcome]) -> float:
        waits = [self.config.resync_period]
        if seen.state == RECONCILING:
            waits.append(REQUEUE_WHILE_ROLLING_S)
        if seen.reason in ("Unreachable", "Error"):
            waits.append(RETRY_AFTER_ERROR_S)
        for remote in remotes:
            state = remote.observation.state
            if state == RECONCILING:
                waits.append(REQUEUE_WHILE_ROLLING_S)
            elif state != AVAILABLE:
                # Each failing remote backs off on its own: 5 s, 10 s, ... up to 2 min.
                failures = self.remote_failures.get(remote.name, 0) + 1
                self.remote_failures[remote.name] = failures
                waits.append(min(RETRY_AFTER_ERROR_S * 2 ** (failures - 1), 120.0))
            if state == AVAILABLE:
                self.remote_failures.pop(remote.name, None)
        return min(waits)

    async def _report_remotes(self, outcome: MeshOutcome) -> None:
        bodies = {b["metadata"]["name"]: b for b in outcome.remote_bodies}
        for remote in outcome.remotes:
            body = bodies.get(remote.name)
            if body is None:
                continue
            key = ObjectKey(API_VERSION, "RemoteIstio", self.key[0], remote.name)
            await self._report(key, body, remote.observation)

    async def _primary_available(self, seen: Observation) -> None:
        await self._report(self.istio_key, self._snapshot, seen)

    async def _rolling_out(self, cluster: str, phase: Phase) -> None:
        """Shows a rollout in progress, phase by phase, while the reconcile runs."""
        if cluster == self.primary.name:
            key, body = self.istio_key, self._snapshot
        else:
            key = ObjectKey(API_VERSION, "RemoteIstio", self.key[0], cluster)
            found = await self.primary.get(key)
            if found is None:
                return
            body = found
        seen = Observation(
            generation=_generation(body),
            state=RECONCILING,
            reason="RollingOut",
            message=f"rolling out phase {phase.label}",
            phase=phase.label,
        )
        await self._report(key, body, seen)

    async def _report(
        self,
        key: ObjectKey,
        body: Mapping[str, Any],
        seen: Observation,
    ) -> None:
        """Writes the status when it changed, with an Event when the state did."""
        previous = self._written.get(key) or dict(body.get("status") or {})
        status = compute_status(previous, seen)
        if not differs(previous, status):
            return
        try:
            await self.primary.patch_status(key, status)
        except ClusterUnreachableError:
            return
        self._written[key] = status
        changed = (previous.get("Status"), previous.get("phase"), previous.get("ErrorMessage")) != (
            status["Status"],
            status["phase"],
            status["ErrorMessage"],
        )
        if changed:
            kind = "Warning" if seen.state in WARNING_STATES else "Normal"
            message = seen.message or seen.state + (f" at {seen.version}" if seen.version else "")
            kopf.event(cast(kopf.Body, body), type=kind, reason=seen.reason, message=message[:1000])
            self.logger.info(f"{key}: {seen.state} ({seen.reason}) {seen.message}".strip())


def _failure(body: Mapping[str, Any], reason: str, message: str) -> Observation:
    return Observation(generation=_generation(body), state=FAILED, reason=reason, message=message)


def _plain(body: kopf.Body) -> dict[str, Any]:
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": dict(body.get("metadata") or {}),
        "spec": _deep(body.get("spec") or {}),
        "status": _deep(body.get("status") or {}),
    }


def _deep(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep(v) for v in value]
    return value


def _generation(body: Mapping[str, Any]) -> int:
    return int((body.get("metadata") or {}).get("generation") or 0)
