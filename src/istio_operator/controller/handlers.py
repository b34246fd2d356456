"""kopf handlers: thin. They map events to reconcile requests and run the workers:
one per `Istio` resource (its primary control plane) and one per `RemoteIstio` (its
cluster), and the cleanups on deletion. Changes to the operator's objects on any cluster
come from the clients' watch-fed copies (`drift_listener`), not from kopf's watches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import kopf

from istio_operator.api.crd import generate_crds
from istio_operator.api.keys import ObjectKey
from istio_operator.api.labels import (
    API_VERSION,
    GROUP,
    MANAGED_BY,
    MANAGED_BY_VALUE,
    OWNER_NAMESPACE,
    REMOTE,
    owner_selector,
)
from istio_operator.controller import metrics
from istio_operator.controller.exclusive import Exclusive
from istio_operator.controller.memory import Trimmer
from istio_operator.controller.reporting import StatusWriter, generation_of, plain
from istio_operator.controller.triggers import Key, Triggers
from istio_operator.controller.workers import (
    IstioWorker,
    Logger,
    RemoteWorker,
    RunConfig,
    Shared,
    istio_lock_key,
)
from istio_operator.kube.cache import Listener
from istio_operator.kube.client import (
    ApiRefusedError,
    Cluster,
    ClusterUnreachableError,
    config_from_file,
)
from istio_operator.kube.memory import limit_arenas
from istio_operator.kube.remotes import KubeconfigSecretError, RemoteClients
from istio_operator.kube.resources import register_crds
from istio_operator.reconcile.engine import Ownership, delete_owned
from istio_operator.reconcile.injection import reconcile_injection_labels
from istio_operator.reconcile.istio import Peer
from istio_operator.reconcile.kinds import register_managed_kinds
from istio_operator.reconcile.remote import (
    ABANDON_CLEANUP,
    INGRESS_GATEWAY,
    MULTI_CLUSTER_LABEL,
    list_remotes,
    remove_remote,
)
from istio_operator.reconcile.status import Observation, State

__all__ = ["RunConfig", "build_registry"]

FINALIZER = f"{GROUP}/finalizer"
# The primary's name in logs and rollout reports: never a valid RemoteIstio name.
PRIMARY = "primary cluster"
CLEANUP_MAX_DELAY_S = 60.0
# One for the process: what any worker's pass freed goes back to the system.
TRIMMER = Trimmer()

Handler = Callable[..., Coroutine[Any, Any, Any]]


def build_registry(config: RunConfig) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    istio_triggers, remote_triggers = Triggers(), Triggers()

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
        # Events are posted on status changes only, never from log lines.
        settings.posting.level = logging.CRITICAL + 1
        settings.watching.server_timeout = 300
        limit_arenas()
        register_crds(generate_crds())
        register_managed_kinds()
        # Every cluster's reads are answered from watch-fed copies: a pass at rest sends
        # no request.
        # A change the watches see to an object of ours on any cluster asks for a pass
        # of its owner: drift is repaired at once, not at the next resync.
        primary = Cluster.from_config(PRIMARY, config_from_file(config.kubeconfig)).cached(
            drift_listener(istio_triggers, remote_triggers, None)
        )
        remotes = RemoteClients(
            cached=True,
            listener=lambda remote: drift_listener(istio_triggers, remote_triggers, remote),
        )
        memo["shared"] = Shared(
            primary, remotes, Exclusive(), istio_triggers, remote_triggers, config
        )
        metrics.watch_clusters(lambda: [primary, *remotes.clients()])

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        shared: Shared = memo["shared"]
        await shared.remotes.close()
        await shared.primary.close()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_kubeconfig(**kwargs) or kopf.login_with_service_account(**kwargs)

    _register_istio(registry, istio_triggers, remote_triggers)
    _register_remotes(registry, istio_triggers, remote_triggers)
    return registry


def _register_istio(
    registry: kopf.OperatorRegistry, istio_triggers: Triggers, remote_triggers: Triggers
) -> None:
    @kopf.index(GROUP, "v1beta1", "istios", id="istio_peers", registry=registry)
    def istio_peers(
        namespace: str | None, name: str, meta: kopf.Meta, **_: Any
    ) -> dict[None, Peer]:
        return {None: Peer(namespace or "", name, str(meta.get("creationTimestamp")))}

    @kopf.on.event(GROUP, "v1beta1", "istios", id="istio-changed", registry=registry)
    async def istio_changed(
        type: str | None, namespace: str | None, name: str, body: kopf.Body, **_: Any
    ) -> None:
        namespace = namespace or ""
        if type == "DELETED" or body.get("metadata", {}).get("deletionTimestamp"):
            remote_triggers.fire_namespace(namespace)  # its remotes now belong to no mesh
        elif generation_of(body) != body.get("status", {}).get("observedGeneration"):
            istio_triggers.fire((namespace, name))

    @kopf.on.event("", "v1", "namespaces", id="namespace-added", registry=registry)
    async def namespace_changed(type: str | None, **_: Any) -> None:
        if type == "ADDED":
            istio_triggers.fire_all()

    @kopf.daemon(
        GROUP, "v1beta1", "istios", id="istio-worker", cancellation_timeout=5.0, registry=registry
    )
    async def istio_worker(
        namespace: str | None,
        name: str,
        body: kopf.Body,
        memo: kopf.Memo,
        stopped: kopf.DaemonStopped,
        logger: Logger,
        **kwargs: Any,
    ) -> None:
        key: Key = (namespace or "", name)
        peers_index: kopf.Index[None, Peer] = kwargs["istio_peers"]
        worker = IstioWorker(memo["shared"], key, logger)
        await _serve(
            istio_triggers, key, stopped, lambda: worker.run_once(body, _peers(peers_index, key))
        )

    @kopf.on.delete(GROUP, "v1beta1", "istios", id="istio-cleanup", retries=None, registry=registry)
    async def istio_deleted(
        namespace: str | None, name: str, memo: kopf.Memo, logger: Logger, retry: int, **_: Any
    ) -> None:
        shared: Shared = memo["shared"]
        namespace = namespace or ""
        for remote in await list_remotes(shared.primary, namespace):
            await _clean_remote(shared, name, remote, logger, retry)
        ownership = Ownership(owner_selector(name, namespace))

        async def clean_primary() -> list[ObjectKey]:
            removed = await delete_owned(shared.primary, ownership)
            await reconcile_injection_labels(shared.primary, name, namespace, [])
            return removed

        removed = await shared.exclusive.take_over(istio_lock_key((namespace, name)), clean_primary)
        logger.info(f"deleted {len(removed)} objects; Istio's CRDs and user configuration kept")


def _peers(index: kopf.Index[None, Peer], key: Key) -> list[Peer]:
    return [p for p in index.get(None, []) if (p.namespace, p.name) != key]


async def _serve(
    triggers: Triggers,
    key: Key,
    stopped: kopf.DaemonStopped,
    run_once: Callable[[], Coroutine[Any, Any, float]],
) -> None:
    """A worker's loop: one pass, then wait for a trigger or the pass's own deadline.
    The trigger is cleared before each pass, so requests during a pass cause one more."""
    trigger = triggers.event_for(key)
    try:
        while not stopped:
            trigger.clear()
            wait = await run_once()
            TRIMMER.after_pass()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(trigger.wait(), timeout=wait)
    finally:
        triggers.forget(key)


# Handlers that set triggers are coroutines: kopf runs plain functions in a thread pool,
# and an asyncio.Event set from another thread does not wake the worker waiting on it.


def _register_remotes(
    registry: kopf.OperatorRegistry, istio_triggers: Triggers, remote_triggers: Triggers
) -> None:
    @kopf.on.event(GROUP, "v1beta1", "remoteistios", id="remote-changed", registry=registry)
    async def remote_changed(
        type: str | None, namespace: str | None, name: str, body: kopf.Body, **_: Any
    ) -> None:
        namespace = namespace or ""
        if type in ("ADDED", "DELETED") or body.get("metadata", {}).get("deletionTimestamp"):
            istio_triggers.fire_namespace(namespace)  # the mesh's set of remotes changed
        if generation_of(body) != body.get("status", {}).get("observedGeneration"):
            remote_triggers.fire((namespace, name))
        elif type == "MODIFIED" and "revisions" in body.get("status", {}):
            # An istiod-family remote reported its revisions: the primary's tags may move.
            istio_triggers.fire_namespace(namespace)

    @kopf.daemon(
        GROUP,
        "v1beta1",
        "remoteistios",
        id="remote-worker",
        cancellation_timeout=5.0,
        registry=registry,
    )
    async def remote_worker(
        namespace: str | None,
        name: str,
        body: kopf.Body,
        memo: kopf.Memo,
        stopped: kopf.DaemonStopped,
        logger: Logger,
        **kwargs: Any,
    ) -> None:
        key: Key = (namespace or "", name)
        peers_index: kopf.Index[None, Peer] = kwargs["istio_peers"]
        worker = RemoteWorker(memo["shared"], key, body, logger)
        await _serve(
            remote_triggers, key, stopped, lambda: worker.run_once(_istio_of(peers_index, key[0]))
        )

    @kopf.on.delete(
        GROUP, "v1beta1", "remoteistios", id="remote-cleanup", retries=None, registry=registry
    )
    async def remote_deleted(
        namespace: str | None,
        name: str,
        body: kopf.Body,
        memo: kopf.Memo,
        logger: Logger,
        retry: int,
        **kwargs: Any,
    ) -> None:
        namespace = namespace or ""
        peers_index: kopf.Index[None, Peer] = kwargs["istio_peers"]
        shared: Shared = memo["shared"]
        await _clean_remote(shared, _istio_of(peers_index, namespace), plain(body), logger, retry)
        istio_triggers.fire_namespace(namespace)


def _istio_of(index: kopf.Index[None, Peer], namespace: str) -> str | None:
    """The Istio resource whose mesh a namespace's RemoteIstios join: the oldest there."""
    peers = sorted((p.created, p.name) for p in index.get(None, []) if p.namespace == namespace)
    return peers[0][1] if peers else None


async def _clean_remote(
    shared: Shared, istio_name: str | None, body: dict[str, Any], logger: Logger, retry: int
) -> None:
    """Removes what the operator created for one RemoteIstio, after its reconcile in flight
    was stopped; retried with backoff, the reason in its status, while it cannot be done."""
    key: Key = (str(body["metadata"].get("namespace") or ""), str(body["metadata"]["name"]))
    try:
        removed = await shared.exclusive.take_over(
            key, lambda: remove_remote(shared.primary, shared.remotes, istio_name, body)
        )
    except (ClusterUnreachableError, KubeconfigSecretError, ApiRefusedError) as error:
        delay = min(5.0 * 2**retry, CLEANUP_MAX_DELAY_S)
        message = (
            f"cannot remove the operator's objects from remote cluster {key[1]} yet "
            f"(retrying in {delay:.0f} s): {_reason(error)}; if that cluster is gone for good, "
            f'annotate the RemoteIstio with {ABANDON_CLEANUP}="true" to leave it as it is'
        )
        seen = Observation(
            generation_of(body), State.FAILED, "CleanupPending", message, ready=False
        )
        remote_key = ObjectKey(API_VERSION, "RemoteIstio", key[0], key[1])
        await StatusWriter(shared.primary, logger).report(remote_key, body, seen)
        raise kopf.TemporaryError(message, delay=delay) from error
    logger.info(f"removed {removed} objects from remote cluster {key[1]}")


def _reason(error: Exception) -> str:
    if isinstance(error, ApiRefusedError):
        return f"refused ({error.code}): {error.message}"
    return str(error)


def drift_listener(
    istio_triggers: Triggers, remote_triggers: Triggers, remote: str | None
) -> Listener:
    """For one cluster's client (`remote` None: the primary's): a change its watches see to
    an object the operator wrote asks for a pass of that object's owner, a RemoteIstio's
    worker for what it wrote (on its remote, or its secret on the primary), else the
    Istio's. The primary's ingress gateway Service wakes the mesh's remotes too: those
    waiting for its load-balancer address start once it is there. A labelled kubeconfig
    Secret (the primary's one copy of them all) wakes the RemoteIstio of its name: kopf
    need not watch every Secret of the cluster for it."""

    def changed(_: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        if (
            remote is None
            and obj.get("kind") == "Secret"
            and labels.get(MULTI_CLUSTER_LABEL) == "true"
        ):
            remote_triggers.fire((meta.get("namespace") or "", meta.get("name") or ""))
        if labels.get(MANAGED_BY) != MANAGED_BY_VALUE or OWNER_NAMESPACE not in labels:
            return
        owner_remote = labels.get(REMOTE, remote)
        if owner_remote is not None:
            remote_triggers.fire((labels[OWNER_NAMESPACE], owner_remote))
            return
        istio_triggers.fire_owner_of(labels)
        if obj.get("kind") == "Service" and meta.get("name") == INGRESS_GATEWAY:
            remote_triggers.fire_namespace(labels[OWNER_NAMESPACE])

    return changed
