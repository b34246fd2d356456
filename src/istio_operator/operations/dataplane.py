"""The data-plane upgrade: restarting the workloads whose sidecars run an old proxy.

After a control-plane upgrade, every pod keeps the `istio-proxy` it was injected with
until it is recreated. This module finds, on one cluster, the workloads (Deployments,
StatefulSets, DaemonSets, reached from their pods through ownerReferences) whose pods run
a proxy other than the control plane's version in effect, and restarts them the way
`kubectl rollout restart` does: a `kubectl.kubernetes.io/restartedAt` annotation on the
pod template, written by server-side apply with a field manager of its own, so that the
operator's fields and everybody else's are left as they are. The sidecar injector then
gives the recreated pods the new proxy.

Never selected: pods in the control plane's namespace and workloads the operator owns
(the operator upgrades those itself). The selection is pure and takes objects as plain
dicts; `read_selection`, `plan` and `restart` talk to the clusters.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from istio_operator.api.keys import ObjectKey
from istio_operator.api.labels import API_VERSION, MANAGED_BY, MANAGED_BY_VALUE
from istio_operator.kube.client import ApiRefusedError, Cluster, ClusterUnreachableError
from istio_operator.kube.objects import readiness
from istio_operator.kube.protocol import ClusterAccess
from istio_operator.kube.remotes import KubeconfigSecretError, RemoteClients
from istio_operator.operations.inventory import (
    PROXY_CONTAINER,
    describe,
    image_version,
    managing_istio,
    owner_workload,
    resource_state,
)
from istio_operator.reconcile.migration import (
    REV_LABEL,
    MigrationSettings,
    Progress,
    migrate_step,
    on_older_revisions,
)
from istio_operator.reconcile.remote import list_remotes
from istio_operator.reconcile.status import State

DATAPLANE_FIELD_MANAGER = "istio-operator-dataplane"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
RESTARTABLE_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


@dataclass(frozen=True)
class Restart:
    """A workload to restart: its pods run `proxy_versions`, the control plane `target`."""

    kind: str
    namespace: str
    name: str
    proxy_versions: tuple[str, ...]
    target: str
    pods: int  # pods with an outdated proxy

    @property
    def workload(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Skipped:
    """Outdated pods that a restart of this command would not (or should not) upgrade."""

    namespace: str
    owner: str  # Kind/name, or Pod/name for a pod nothing owns
    proxy_versions: tuple[str, ...]
    pods: int
    reason: str


@dataclass(frozen=True)
class Selection:
    restarts: tuple[Restart, ...]
    skipped: tuple[Skipped, ...]

    @property
    def namespaces(self) -> tuple[str, ...]:
        """The namespaces to restart, in the order they are restarted."""
        return tuple(sorted({r.namespace for r in self.restarts}))

    def in_namespace(self, namespace: str) -> tuple[Restart, ...]:
        return tuple(r for r in self.restarts if r.namespace == namespace)


# -- selection (pure) --------------------------------------------------------------------------


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = _meta(obj)
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def proxy_version(pod: Mapping[str, Any]) -> str | None:
    """The version of the pod's `istio-proxy` container; None when it has none."""
    containers = (pod.get("spec") or {}).get("containers") or []
    proxy = next((c for c in containers if c.get("name") == PROXY_CONTAINER), None)
    return None if proxy is None else image_version(str(proxy.get("image") or ""))


def _controller(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the object's controller (its first owner if none is marked)."""
    owners = list(_meta(obj).get("ownerReferences") or [])
    owner = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    return None if owner is None else (str(owner.get("kind")), str(owner.get("name")))


def pod_owner(pod: Mapping[str, Any], replica_sets: Mapping[tuple[str, str], Any]) -> str:
    """`Kind/name` of the workload that runs the pod: Pod -> ReplicaSet -> Deployment by
    ownerReferences (by the pod-template hash if the ReplicaSet is not known), a
    StatefulSet or DaemonSet directly; the pod itself when nothing owns it."""
    namespace, name = _key(pod)
    owner = _controller(pod)
    if owner is None:
        return f"Pod/{name}"
    kind, owner_name = owner
    if kind == "ReplicaSet":
        replica_set = replica_sets.get((namespace, owner_name))
        if replica_set is None:
            return owner_workload(pod)
        parent = _controller(replica_set)
        if parent is not None:
            return f"{parent[0]}/{parent[1]}"
    return f"{kind}/{owner_name}"


def select(
    pods: Iterable[Mapping[str, Any]],
    replica_sets: Iterable[Mapping[str, Any]],
    workloads: Iterable[Mapping[str, Any]],
    target: str,
    *,
    control_plane_namespace: str,
    namespaces: Collection[str] = (),
) -> Selection:
    """The workloads to restart so that every sidecar runs the proxy `target`.

    A workload is restarted when one of its (not terminating) pods has an `istio-proxy`
    container of another version. Pods of the control plane's namespace, of workloads the
    operator owns, and (when `namespaces` is given) of other namespaces are left out.
    Outdated pods that a restart cannot reach (no owning Deployment, StatefulSet or
    DaemonSet) or should not (a rollout is already in progress) are reported as skipped.
    """
    if not target:
        raise ValueError("no control-plane version to compare the proxies with")
    sets = {_key(rs): rs for rs in replica_sets}
    live = {(str(w.get("kind")), *_key(w)): w for w in workloads}
    outdated: dict[tuple[str, str], list[str]] = defaultdict(list)  # (namespace, owner)
    for pod in pods:
        namespace, _ = _key(pod)
        version = proxy_version(pod)
        if (
            version is None
            or version == target
            or _meta(pod).get("deletionTimestamp")
            or namespace == control_plane_namespace
            or (namespaces and namespace not in namespaces)
        ):
            continue
        outdated[(namespace, pod_owner(pod, sets))].append(version)

    restarts: list[Restart] = []
    skipped: list[Skipped] = []
    for (namespace, owner), versions in sorted(outdated.items()):
        kind, name = owner.split("/", 1)
        found = tuple(sorted(set(versions)))
        obj = live.get((kind, namespace, name)) if kind in RESTARTABLE_KINDS else None
        if obj is None:
            reason = (
                f"{owner} not found"
                if kind in RESTARTABLE_KINDS
                else "not run by a Deployment, StatefulSet or DaemonSet: recreate its pods"
            )
            skipped.append(Skipped(namespace, owner, found, len(versions), reason))
            continue
        if (_meta(obj).get("labels") or {}).get(MANAGED_BY) == MANAGED_BY_VALUE:
            continue  # a component of the operator's: it upgrades those itself
        check = readiness(obj)
        if not check.ready:
            reason = f"rollout in progress ({check.reason}): run again once it is done"
            skipped.append(Skipped(namespace, owner, found, len(versions), reason))
            continue
        restarts.append(Restart(kind, namespace, name, found, target, len(versions)))
    return Selection(tuple(restarts), tuple(skipped))


def restart_patch(restart: Restart, restarted_at: str) -> dict[str, Any]:
    """The server-side apply body of a restart: only the pod template's annotation."""
    return {
        "apiVersion": "apps/v1",
        "kind": restart.kind,
        "metadata": {"name": restart.name, "namespace": restart.namespace},
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: restarted_at}}}},
    }


# -- the cluster -------------------------------------------------------------------------------


async def read_selection(
    cluster: Cluster,
    target: str,
    *,
    control_plane_namespace: str,
    namespaces: Collection[str] = (),
) -> Selection:
    """What to restart on one cluster. Reads pods, ReplicaSets and workloads; writes nothing."""
    pods = await cluster.list_all("v1", "Pod")
    replica_sets = await cluster.list_all("apps/v1", "ReplicaSet")
    workloads: list[dict[str, Any]] = []
    for kind in RESTARTABLE_KINDS:
        workloads += await cluster.list_all("apps/v1", kind)
    return select(
        pods,
        replica_sets,
        workloads,
        target,
        control_plane_namespace=control_plane_namespace,
        namespaces=namespaces,
    )


async def restart(cluster: Cluster, restart: Restart, restarted_at: str) -> dict[str, Any]:
    """Restarts one workload (as `kubectl rollout restart`): server-side apply of the
    annotation alone, with this command's own field manager. A workload deleted meanwhile
    is not recreated: the partial body is not a valid object, the API server refuses it."""
    return await cluster.apply_as(DATAPLANE_FIELD_MANAGER, restart_patch(restart, restarted_at))


# -- the mesh ----------------------------------------------------------------------------------


class NotReadyError(Exception):
    """The control plane is not in a state to upgrade the data plane against."""


@dataclass
class ClusterPlan:
    """What to restart on one cluster, or why nothing is (the cluster unreachable, its
    control plane not Available)."""

    name: str
    role: str  # primary / remote
    target: str = ""
    cluster: Cluster | None = None
    selection: Selection | None = None
    error: str = ""


def refusal(istio: Mapping[str, Any] | None, namespace: str, force: bool) -> str:
    """Why the data plane must not be upgraded now ("" when it may): no Istio resource, no
    version in effect, or (unless forced) a control plane not Available: mid-upgrade, the
    version in effect is about to change."""
    if istio is None:
        return f"no Istio resource in namespace {namespace}"
    state = resource_state(istio)
    what = f"Istio {state.namespace}/{state.name}"
    if not state.version:
        return f"{what} has no control-plane version in effect yet (status.version)"
    if state.status != State.AVAILABLE and not force:
        detail = f"phase {state.phase}, " if state.phase else ""
        spec_version = str((istio.get("spec") or {}).get("version") or "")
        return (
            f"{what} is {state.status or 'not yet reconciled'} ({detail}version in effect "
            f"{state.version}, spec.version {spec_version}), not Available: the control plane "
            "may be changing; restart the data plane once it is Available, or pass --force"
        )
    return ""


async def plan(
    primary: Cluster,
    namespace: str,
    clients: RemoteClients,
    *,
    all_clusters: bool = False,
    force: bool = False,
    namespaces: Collection[str] = (),
) -> list[ClusterPlan]:
    """The restarts on the primary and, with `all_clusters`, on every remote (each against
    the version in effect there). Raises NotReadyError when the Istio resource refuses; a
    remote that cannot be read, or whose control plane is not Available, is reported."""
    istio = managing_istio(await primary.list_all(API_VERSION, "Istio"), namespace)
    reason = refusal(istio, namespace, force)
    if reason:
        raise NotReadyError(reason)
    assert istio is not None
    target = resource_state(istio).version
    selection = await read_selection(
        primary, target, control_plane_namespace=namespace, namespaces=namespaces
    )
    plans = [ClusterPlan(primary.name, "primary", target, primary, selection)]
    if not all_clusters:
        return plans
    for body in sorted(await list_remotes(primary, namespace), key=lambda b: _key(b)[1]):
        plans.append(await _remote_plan(primary, clients, body, target, force, namespaces))
    return plans


async def _remote_plan(
    primary: Cluster,
    clients: RemoteClients,
    body: Mapping[str, Any],
    mesh_version: str,
    force: bool,
    namespaces: Collection[str],
) -> ClusterPlan:
    state = resource_state(body)
    target = state.version or mesh_version
    result = ClusterPlan(state.name, "remote", target)
    if state.status != State.AVAILABLE and not force:
        result.error = (
            f"RemoteIstio {state.namespace}/{state.name} is {state.status or 'not yet reconciled'}"
            ", not Available: skipped (--force to restart anyway)"
        )
        return result
    try:
        secret = await primary.get(ObjectKey("v1", "Secret", state.namespace, state.name))
        if secret is None:
            raise KubeconfigSecretError(
                f"kubeconfig Secret {state.namespace}/{state.name} not found"
            )
        result.cluster = await clients.for_secret(state.name, secret)
        result.selection = await read_selection(
            result.cluster, target, control_plane_namespace=state.namespace, namespaces=namespaces
        )
    except (ClusterUnreachableError, KubeconfigSecretError, ApiRefusedError, TimeoutError) as error:
        result.error = describe(error)
    return result


# -- by revision (istiod family) ---------------------------------------------------------------


@dataclass(frozen=True)
class RevisionTarget:
    """Where workloads move: the active revision and the older ones, from the Istio
    resource's `status.revisions` (the in-place revision is named `default` there)."""

    active: str
    older: tuple[str, ...]


def revision_target(istio: Mapping[str, Any]) -> RevisionTarget | None:
    """None when the resource has no revisions (the classic family, or none yet)."""
    rows = (istio.get("status") or {}).get("revisions") or []
    names = {str(r.get("name")): bool(r.get("active")) for r in rows if isinstance(r, Mapping)}
    active = [name for name, is_active in names.items() if is_active]
    if not active:
        return None

    def plain(name: str) -> str:
        return "" if name == "default" else name

    return RevisionTarget(plain(active[0]), tuple(plain(n) for n in names if not names[n]))


async def revision_istio(primary: Cluster, namespace: str) -> Mapping[str, Any] | None:
    """The namespace's Istio resource if it is of the istiod family (it has revisions)."""
    istio = managing_istio(await primary.list_all(API_VERSION, "Istio"), namespace)
    return istio if istio is not None and revision_target(istio) is not None else None


async def pending_by_revision(
    cluster: ClusterAccess, target: RevisionTarget, control_plane_namespace: str
) -> list[ObjectKey]:
    """The workloads an older revision injected (what a migration would restart)."""
    pods = await cluster.list_labelled("v1", "Pod", REV_LABEL)
    return on_older_revisions(pods, target.active, control_plane_namespace)


async def migrate_by_revision(
    cluster: ClusterAccess,
    target: RevisionTarget,
    control_plane_namespace: str,
    settings: MigrationSettings,
    on_progress: Callable[[Progress], None],
) -> Progress:
    """The migration the operator runs with `workloadMigration`, run here to its end: batch
    after batch, each waited for, until every workload runs on the active revision or one
    is not ready in time (which stops it, naming the workload)."""
    previous: Mapping[str, Any] = {}
    while True:
        progress = await migrate_step(
            cluster,
            target.active,
            target.older,
            control_plane_namespace,
            settings,
            previous,
            datetime.now(UTC),
        )
        if progress.as_status() != previous:
            on_progress(progress)
        if progress.state in ("Done", "Failed"):
            return progress
        previous = progress.as_status()
        await asyncio.sleep(min(progress.recheck_after or 1.0, 1.0))
