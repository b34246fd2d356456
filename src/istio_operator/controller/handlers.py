"""kopf handlers: thin. They map events to reconcile requests and run one worker per
`Istio` resource that calls `reconcile_istio` and writes status and Events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from istio_operator.api.crd import generate_crds
from istio_operator.api.labels import (
    API_VERSION,
    GROUP,
    MANAGED_BY,
    MANAGED_BY_VALUE,
    owner_selector,
)
from istio_operator.controller import metrics
from istio_operator.controller.triggers import Key, Triggers
from istio_operator.kube.client import Cluster, ClusterUnreachableError, config_from_file
from istio_operator.kube.objects import ObjectKey
from istio_operator.kube.resources import register_crds
from istio_operator.reconcile.engine import Ownership, delete_owned
from istio_operator.reconcile.injection import reconcile_injection_labels
from istio_operator.reconcile.istio import Peer, Settings, reconcile_istio
from istio_operator.reconcile.status import (
    FAILED,
    RECONCILING,
    WARNING_STATES,
    Observation,
    compute_status,
    differs,
)

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
REQUEUE_WHILE_ROLLING_S = 2.0
RETRY_AFTER_ERROR_S = 5.0


@dataclass(frozen=True)
class RunConfig:
    kubeconfig: str | None = None
    resync_period: float = 300.0
    phase_timeout: float = 60.0


def build_registry(config: RunConfig) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    triggers = Triggers()
    owned = {MANAGED_BY: MANAGED_BY_VALUE}

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
        # Events are posted on status changes only, never from log lines.
        settings.posting.level = logging.CRITICAL + 1
        settings.watching.server_timeout = 300
        register_crds(generate_crds())
        memo["primary"] = Cluster.from_config("primary", config_from_file(config.kubeconfig))

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        await memo["primary"].close()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_kubeconfig(**kwargs) or kopf.login_with_service_account(**kwargs)

    @kopf.index(GROUP, "v1beta1", "istios", id="istio_peers", registry=registry)
    def istio_peers(
        namespace: str | None, name: str, meta: kopf.Meta, **_: Any
    ) -> dict[None, Peer]:
        return {None: Peer(namespace or "", name, str(meta.get("creationTimestamp")))}

    @kopf.on.event(GROUP, "v1beta1", "istios", registry=registry)
    def istio_changed(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> None:
        if body.get("metadata", {}).get("generation") != body.get("status", {}).get(
            "observedGeneration"
        ):
            triggers.fire((namespace or "", name))

    for group, version, plural in WATCHED_OWNED:

        @kopf.on.event(group, version, plural, labels=owned, registry=registry)
        def owned_changed(labels: kopf.Labels, **_: Any) -> None:
            triggers.fire_owner_of(labels)

    @kopf.on.event("", "v1", "namespaces", registry=registry)
    def namespace_changed(type: str | None, **_: Any) -> None:
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
        worker = _Worker(memo["primary"], config, key, logger)
        try:
            while not stopped:
                trigger.clear()
                peers = [p for p in istio_peers.get(None, []) if (p.namespace, p.name) != key]
                wait = await worker.run_once(body, peers)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(trigger.wait(), timeout=wait)
        finally:
            triggers.forget(key)

    @kopf.on.delete(GROUP, "v1beta1", "istios", registry=registry)
    async def istio_deleted(
        namespace: str | None,
        name: str,
        memo: kopf.Memo,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        **_: Any,
    ) -> None:
        namespace = namespace or ""
        primary: Cluster = memo["primary"]
        removed = await delete_owned(primary, Ownership(owner_selector(name, namespace)))
        await reconcile_injection_labels(primary, name, namespace, [])
        logger.info(f"deleted {len(removed)} objects; Istio's CRDs and user configuration kept")

    return registry


class _Worker:
    """Runs reconciles for one Istio resource and reports them (status, Events, metrics)."""

    def __init__(self, primary: Cluster, config: RunConfig, key: Key, logger: Any) -> None:
        self.primary, self.config, self.key, self.logger = primary, config, key, logger

    async def run_once(self, body: kopf.Body, peers: list[Peer]) -> float:
        """One reconcile; returns how long to wait before the next one without a trigger."""
        started = time.monotonic()
        snapshot = _plain(body)
        try:
            seen = await reconcile_istio(
                self.primary, snapshot, peers, Settings(phase_timeout=self.config.phase_timeout)
            )
        except ClusterUnreachableError as error:
            seen = Observation(
                generation=_generation(snapshot),
                state=FAILED,
                reason="Unreachable",
                message=str(error),
            )
        except Exception as error:  # a reconcile must never kill the worker
            self.logger.exception("reconcile failed")
            seen = Observation(
                generation=_generation(snapshot),
                state=FAILED,
                reason="Error",
                message=f"{type(error).__name__}: {error}",
            )
        metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
        metrics.RECONCILES.labels(self.key[0], self.key[1], seen.state).inc()
        if seen.state == FAILED:
            metrics.RECONCILE_ERRORS.labels(seen.reason).inc()
        await self._report(body, snapshot, seen)
        if seen.state == RECONCILING:
            return REQUEUE_WHILE_ROLLING_S
        if seen.reason in ("Unreachable", "Error"):
            return RETRY_AFTER_ERROR_S
        return self.config.resync_period

    async def _report(
        self, body: kopf.Body, snapshot: Mapping[str, Any], seen: Observation
    ) -> None:
        previous = dict(snapshot.get("status") or {})
        status = compute_status(previous, seen)
        if not differs(previous, status):
            return
        key = ObjectKey(API_VERSION, "Istio", self.key[0], self.key[1])
        try:
            await self.primary.patch_status(key, status)
        except ClusterUnreachableError:
            return
        changed = (previous.get("Status"), previous.get("phase"), previous.get("ErrorMessage")) != (
            status["Status"],
            status["phase"],
            status["ErrorMessage"],
        )
        if changed:
            kind = "Warning" if seen.state in WARNING_STATES else "Normal"
            message = seen.message or f"{seen.state}" + (
                f" at {seen.version}" if seen.version else ""
            )
            kopf.event(body, type=kind, reason=seen.reason, message=message[:1000])
            self.logger.info(f"{seen.state} ({seen.reason}) {seen.message}".strip())


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
