"""Workload migration to the active revision, in batches (istiod family, opt-in).

After a canary, the tags already point at the new revision, so a workload moves when its
pods are recreated. When `updateStrategy.workloadMigration.enabled`, each pass of the
operator takes one step of the migration, so that the state lives on the cluster (and in
status), never only in memory:

1. namespaces labelled `istio.io/rev=<an older revision>` are labelled for the active one;
2. if the batch restarted last is not ready yet, wait (a workload not ready within the
   readiness timeout stops the migration, naming it);
3. else, once the delay since the last batch has passed, restart the next batch of
   workloads whose pods an older revision injected (as `kubectl rollout restart` does:
   a `restartedAt` annotation on the pod template, under a field manager of its own), and
   mark them with the revision they are moving to, so none is restarted twice for it.

What is migrated is seen from the pods: their `istio.io/rev` label, written by the
injector, names the revision that injected them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from istio_operator.api.keys import ObjectKey
from istio_operator.api.labels import GROUP
from istio_operator.kube.objects import readiness
from istio_operator.kube.protocol import ClusterAccess

MIGRATION_FIELD_MANAGER = "istio-operator-migration"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
MIGRATED_TO = f"{GROUP}/migrated-to"
REV_LABEL = "istio.io/rev"
INJECTED_ANNOTATION = "sidecar.istio.io/status"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_WORKLOADS = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
}


@dataclass(frozen=True)
class MigrationSettings:
    batch_size: int
    delay_s: int
    readiness_timeout_s: int


@dataclass(frozen=True)
class Progress:
    """Where the migration stands: `status.migration`."""

    state: str  # InProgress, Done, Failed
    revision: str
    migrated: int
    remaining: int
    message: str = ""
    last_batch_at: str = ""
    recheck_after: float | None = None

    def as_status(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "state": self.state,
            "revision": self.revision,
            "migrated": self.migrated,
            "remaining": self.remaining,
        }
        if self.message:
            shown["message"] = self.message
        if self.last_batch_at:
            shown["lastBatchAt"] = self.last_batch_at
        return shown


def workload_of(pod: Mapping[str, Any]) -> ObjectKey | None:
    """The Deployment, StatefulSet or DaemonSet a pod belongs to (a Deployment's through
    its ReplicaSet, whose name is the Deployment's and the pod template hash)."""
    meta = pod.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    for owner in meta.get("ownerReferences") or ():
        kind, name = owner.get("kind"), str(owner.get("name") or "")
        if kind == "ReplicaSet":
            template_hash = (meta.get("labels") or {}).get("pod-template-hash")
            if template_hash and name.endswith(f"-{template_hash}"):
                deployment = name.removesuffix(f"-{template_hash}")
                return ObjectKey("apps/v1", "Deployment", namespace, deployment)
        elif kind in ("StatefulSet", "DaemonSet"):
            return ObjectKey("apps/v1", str(kind), namespace, name)
    return None


def on_older_revisions(
    pods: Sequence[Mapping[str, Any]], active: str, control_plane_namespace: str
) -> list[ObjectKey]:
    """The workloads (sorted) with a running pod an older revision injected."""
    found = set()
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp") or meta.get("namespace") == control_plane_namespace:
            continue
        if INJECTED_ANNOTATION not in (meta.get("annotations") or {}):
            continue
        if (meta.get("labels") or {}).get(REV_LABEL) in (active, None):
            continue
        if (workload := workload_of(pod)) is not None:
            found.add(workload)
    return sorted(found)


def workload_ready(obj: Mapping[str, Any]) -> bool:
    if obj.get("kind") != "StatefulSet":
        return readiness(obj).ready
    status, spec = obj.get("status") or {}, obj.get("spec") or {}
    wanted = spec.get("replicas", 1)
    observed = (status.get("observedGeneration") or 0) >= (obj["metadata"].get("generation") or 0)
    updated = status.get("updatedReplicas") or 0
    return observed and updated >= wanted and (status.get("readyReplicas") or 0) >= wanted


async def migrate_step(
    cluster: ClusterAccess,
    active: str,
    older: Sequence[str],
    control_plane_namespace: str,
    settings: MigrationSettings,
    previous: Mapping[str, Any],
    now: dt.datetime,
) -> Progress:
    """One step of the migration to `active` (see the module docstring)."""
    if previous.get("revision") == active and previous.get("state") == "Failed":
        return _kept(previous)  # stopped until the resource changes (a new revision)
    await _relabel_namespaces(cluster, active, older)
    pods = await cluster.list_labelled("v1", "Pod", REV_LABEL)
    pending = on_older_revisions(pods, active, control_plane_namespace)
    marked = await _marked(cluster, active)
    migrated = len(marked)
    for key, obj in marked.items():
        if not workload_ready(obj):
            started = parse_time(_template_annotations(obj).get(RESTARTED_AT))
            if started and (now - started).total_seconds() > settings.readiness_timeout_s:
                message = (
                    f"{key.kind} {key.namespace}/{key.name} not ready within "
                    f"{settings.readiness_timeout_s}s after its restart; migration stopped"
                )
                return Progress("Failed", active, migrated, len(pending), message)
            return Progress("InProgress", active, migrated, len(pending), recheck_after=1.0)
    todo = [key for key in pending if key not in marked]
    if not todo:
        return Progress("Done", active, migrated, 0)
    last = parse_time(previous.get("lastBatchAt")) if previous.get("revision") == active else None
    wait = settings.delay_s - (now - last).total_seconds() if last else 0.0
    if wait > 0:
        at = str(previous.get("lastBatchAt") or "")
        return Progress(
            "InProgress", active, migrated, len(todo), last_batch_at=at, recheck_after=wait
        )
    stamp = now.strftime(TIME_FORMAT)
    for key in todo[: settings.batch_size]:
        await _restart(cluster, key, active, stamp)
    batch = min(settings.batch_size, len(todo))
    return Progress(
        "InProgress",
        active,
        migrated + batch,
        len(todo) - batch,
        last_batch_at=stamp,
        recheck_after=1.0,
    )


def _kept(previous: Mapping[str, Any]) -> Progress:
    return Progress(
        str(previous.get("state")),
        str(previous.get("revision")),
        int(previous.get("migrated") or 0),
        int(previous.get("remaining") or 0),
        str(previous.get("message") or ""),
        str(previous.get("lastBatchAt") or ""),
    )


async def _relabel_namespaces(cluster: ClusterAccess, active: str, older: Sequence[str]) -> None:
    for namespace in await cluster.list_labelled("v1", "Namespace", REV_LABEL):
        meta = namespace["metadata"]
        if (meta.get("labels") or {}).get(REV_LABEL) in older:
            key = ObjectKey("v1", "Namespace", "", str(meta["name"]))
            await cluster.merge_patch(key, {"metadata": {"labels": {REV_LABEL: active}}})


async def _marked(cluster: ClusterAccess, active: str) -> dict[ObjectKey, dict[str, Any]]:
    """The workloads restarted to move to `active`: their template says so."""
    found = {}
    for kind, api_version in _WORKLOADS.items():
        for obj in await cluster.list_all(api_version, kind, once=True):
            if _template_annotations(obj).get(MIGRATED_TO) == active:
                meta = obj["metadata"]
                found[ObjectKey(api_version, kind, meta.get("namespace") or "", meta["name"])] = obj
    return found


def _template_annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    template = (obj.get("spec") or {}).get("template") or {}
    return (template.get("metadata") or {}).get("annotations") or {}


async def _restart(cluster: ClusterAccess, key: ObjectKey, active: str, stamp: str) -> None:
    annotations = {RESTARTED_AT: stamp, MIGRATED_TO: active}
    await cluster.apply_as(
        MIGRATION_FIELD_MANAGER,
        {
            "apiVersion": key.api_version,
            "kind": key.kind,
            "metadata": {"name": key.name, "namespace": key.namespace},
            "spec": {"template": {"metadata": {"annotations": annotations}}},
        },
    )


def parse_time(value: Any) -> dt.datetime | None:
    """A status timestamp (`TIME_FORMAT`), or None if it is none."""
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.strptime(value, TIME_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        return None
