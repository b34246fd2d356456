"""What runs where: the control plane and the data plane of a mesh, cluster by cluster.

For the `Istio` resource of a namespace on the primary and every `RemoteIstio` next
to it: the status the operator wrote, the control-plane workloads it owns (found by
label, grouped by rollout phase) with their images and readiness, and the data
plane, the pods with an `istio-proxy` container counted per namespace and proxy
version, so that workloads still running an old sidecar stand out. Read-only. A
remote that cannot be reached (or whose kubeconfig Secret is unusable) is reported
as such; it never stops the others.

The grouping helpers are pure and take objects as plain dicts.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from istio_operator.api.keys import ObjectKey
from istio_operator.api.labels import API_VERSION, PHASE, REMOTE, owner_selector
from istio_operator.kube.client import ApiRefusedError, Cluster, ClusterUnreachableError
from istio_operator.kube.objects import pod_template_containers, readiness
from istio_operator.kube.remotes import KubeconfigSecretError, RemoteClients
from istio_operator.reconcile.remote import list_remotes
from istio_operator.reconcile.status import State
from istio_operator.render.phases import Phase

PROXY_CONTAINER = "istio-proxy"
REVISION_LABEL = "istio.io/rev"
WORKLOAD_KINDS = ("Deployment", "DaemonSet")
DEFAULT_CLUSTER_TIMEOUT_S = 20.0


class WorkloadState(StrEnum):
    """The state `status` shows for a control-plane workload, and for a component (the
    workloads of one rollout phase), as read from the workloads themselves."""

    AVAILABLE = "Available"
    PROGRESSING = "Progressing"


@dataclass(frozen=True)
class ResourceState:
    """An Istio or RemoteIstio resource and the status the operator wrote on it."""

    kind: str
    namespace: str
    name: str
    status: str = ""  # a `State`, or "" before the operator wrote one
    version: str = ""  # the version in effect (status.version)
    desired_version: str = ""  # the Istio resource's spec.version
    phase: str = ""
    waiting_for: tuple[str, ...] = ()
    message: str = ""
    generation: int = 0
    observed_generation: int = 0
    remotes: Mapping[str, str] = field(default_factory=dict)
    # istiod family: the revisions (status.revisions), where each tag points, the migration.
    revisions: tuple[Mapping[str, Any], ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    migration: Mapping[str, Any] = field(default_factory=dict)
    remote_secret: str = ""  # a remote of the istiod family: its secret on the primary


@dataclass(frozen=True)
class Workload:
    kind: str
    namespace: str
    name: str
    images: tuple[str, ...]
    ready: int
    total: int
    state: WorkloadState
    reason: str = ""


@dataclass(frozen=True)
class Component:
    """The workloads of one rollout phase."""

    phase: str
    state: WorkloadState
    workloads: tuple[Workload, ...]

    @property
    def images(self) -> tuple[str, ...]:
        return tuple(sorted({i for w in self.workloads for i in w.images}))

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(sorted({image_version(i) for i in self.images}))

    @property
    def ready(self) -> int:
        return sum(w.ready for w in self.workloads)

    @property
    def total(self) -> int:
        return sum(w.total for w in self.workloads)


@dataclass(frozen=True)
class ProxyGroup:
    """Pods of one namespace whose `istio-proxy` container runs one version."""

    namespace: str
    version: str
    pods: int
    ready: int
    workloads: tuple[str, ...]
    image: str
    revision: str = ""  # the istiod revision that injected them (their `istio.io/rev`)


@dataclass(frozen=True)
class ClusterInventory:
    name: str
    role: str  # primary / remote
    resource: ResourceState | None = None
    components: tuple[Component, ...] = ()
    data_plane: tuple[ProxyGroup, ...] = ()
    error: str = ""  # set when the cluster could not be read
    data_plane_error: str = ""  # set when its pods could not be listed (e.g. forbidden)

    @property
    def reachable(self) -> bool:
        return not self.error


@dataclass(frozen=True)
class Inventory:
    namespace: str
    desired_version: str  # "" when there is no Istio resource
    clusters: tuple[ClusterInventory, ...]

    @property
    def istio(self) -> ResourceState | None:
        return self.clusters[0].resource if self.clusters else None


# -- pure helpers ------------------------------------------------------------------------------


def image_version(image: str) -> str:
    """The tag (or digest) of an image reference; `latest` when it has none."""
    if "@" in image:
        return image.rsplit("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else "latest"


def resource_state(body: Mapping[str, Any], desired_version: str = "") -> ResourceState:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    return ResourceState(
        kind=str(body.get("kind") or ""),
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        status=str(status.get("Status") or ""),
        version=str(status.get("version") or ""),
        desired_version=desired_version,
        phase=str(status.get("phase") or ""),
        waiting_for=tuple(status.get("waitingFor") or ()),
        message=str(status.get("ErrorMessage") or ""),
        generation=int(meta.get("generation") or 0),
        observed_generation=int(status.get("observedGeneration") or 0),
        remotes=dict(status.get("remotes") or {}),
        revisions=tuple(r for r in status.get("revisions") or () if isinstance(r, Mapping)),
        tags=dict(status.get("tags") or {}),
        migration=dict(status.get("migration") or {}),
        remote_secret=str(status.get("remoteSecret") or ""),
    )


def workload(obj: Mapping[str, Any]) -> Workload:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    if obj.get("kind") == "DaemonSet":
        ready, total = status.get("numberReady"), status.get("desiredNumberScheduled")
    else:
        ready, total = status.get("readyReplicas"), (obj.get("spec") or {}).get("replicas", 1)
    check = readiness(obj)
    return Workload(
        kind=str(obj.get("kind")),
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name")),
        images=tuple(str(c.get("image")) for c in pod_template_containers(obj)),
        ready=int(ready or 0),
        total=int(total or 0),
        state=WorkloadState.AVAILABLE if check.ready else WorkloadState.PROGRESSING,
        reason=check.reason,
    )


def _phase_order(label: str) -> tuple[int, str]:
    try:
        return int(Phase.from_label(label)), label
    except ValueError:
        return len(Phase), label


def components(
    workloads: Iterable[Mapping[str, Any]], reconciling_phase: str = ""
) -> tuple[Component, ...]:
    """Workloads grouped by their phase label, in rollout order. A phase is Progressing
    while any of its workloads is, or while the operator's status says it waits for it."""
    by_phase: dict[str, list[Workload]] = defaultdict(list)
    for obj in workloads:
        label = ((obj.get("metadata") or {}).get("labels") or {}).get(PHASE) or "other"
        by_phase[label].append(workload(obj))
    result = []
    for label in sorted(by_phase, key=_phase_order):
        members = tuple(sorted(by_phase[label], key=lambda w: (w.namespace, w.kind, w.name)))
        ready = label != reconciling_phase and all(
            w.state == WorkloadState.AVAILABLE for w in members
        )
        state = WorkloadState.AVAILABLE if ready else WorkloadState.PROGRESSING
        result.append(Component(label, state, members))
    return tuple(result)


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def owner_workload(pod: Mapping[str, Any]) -> str:
    """`Kind/name` of what runs the pod: a ReplicaSet's Deployment (by the pod-template
    hash), else the direct owner; the pod itself when it has none."""
    meta = pod.get("metadata") or {}
    owners = [o for o in meta.get("ownerReferences") or [] if o.get("controller")] or list(
        meta.get("ownerReferences") or []
    )
    if not owners:
        return f"Pod/{meta.get('name')}"
    owner = owners[0]
    kind, name = str(owner.get("kind")), str(owner.get("name"))
    template_hash = (meta.get("labels") or {}).get("pod-template-hash")
    if kind == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        return f"Deployment/{name.removesuffix(f'-{template_hash}')}"
    return f"{kind}/{name}"


def data_plane(pods: Iterable[Mapping[str, Any]]) -> tuple[ProxyGroup, ...]:
    """Pods with an `istio-proxy` container, per namespace and proxy version."""
    groups: dict[tuple[str, str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for pod in pods:
        spec = pod.get("spec") or {}
        proxy = next(
            (c for c in spec.get("containers") or [] if c.get("name") == PROXY_CONTAINER), None
        )
        if proxy is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        image = str(proxy.get("image") or "")
        meta = pod.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        revision = str((meta.get("labels") or {}).get(REVISION_LABEL) or "")
        groups[(namespace, image_version(image), image, revision)].append(pod)
    return tuple(
        ProxyGroup(
            namespace=namespace,
            version=version,
            pods=len(members),
            ready=sum(_pod_ready(p) for p in members),
            workloads=tuple(sorted({owner_workload(p) for p in members})),
            image=image,
            revision=revision,
        )
        for (namespace, version, image, revision), members in sorted(groups.items())
    )


def managing_istio(bodies: Sequence[Mapping[str, Any]], namespace: str) -> Mapping[str, Any] | None:
    """The Istio resource of the namespace; of several, the oldest (the one reconciled)."""
    mine = [b for b in bodies if (b.get("metadata") or {}).get("namespace") == namespace]
    if not mine:
        return None
    return min(
        mine,
        key=lambda b: (
            str(b["metadata"].get("creationTimestamp") or ""),
            str(b["metadata"].get("name")),
        ),
    )


# -- reading the clusters ----------------------------------------------------------------------


async def _cluster_inventory(
    cluster: Cluster, role: str, selector: str, resource: ResourceState | None
) -> ClusterInventory:
    owned: list[dict[str, Any]] = []
    for kind in WORKLOAD_KINDS:
        owned += await cluster.list_labelled("apps/v1", kind, selector)
    pods: list[dict[str, Any]] = []
    pods_error = ""
    try:
        pods = await cluster.list_all("v1", "Pod")
    except ApiRefusedError as error:  # an identity that may not read pods shows its components
        pods_error = describe(error)
    reconciling = resource.phase if resource and resource.status != State.AVAILABLE else ""
    return ClusterInventory(
        name=cluster.name,
        role=role,
        resource=resource,
        components=components(owned, reconciling),
        data_plane=data_plane(pods),
        data_plane_error=pods_error,
    )


def describe(error: BaseException) -> str:
    """Why a cluster could not be read, in a line: refused, timed out, unreachable."""
    if isinstance(error, ApiRefusedError):
        return error.summary
    if isinstance(error, TimeoutError):
        return "timed out"
    return str(error) or type(error).__name__


async def _remote_inventory(
    primary: Cluster,
    clients: RemoteClients,
    body: Mapping[str, Any],
    istio_name: str,
    desired_version: str,
    per_cluster_s: float,
) -> ClusterInventory:
    state = resource_state(body, desired_version)
    name, namespace = state.name, state.namespace
    try:
        secret = await primary.get(ObjectKey("v1", "Secret", namespace, name))
        if secret is None:
            raise KubeconfigSecretError(f"kubeconfig Secret {namespace}/{name} not found")
        cluster = await clients.for_secret(name, secret)
        selector = f"{owner_selector(istio_name, namespace)},{REMOTE}={name}"
        return await asyncio.wait_for(
            _cluster_inventory(cluster, "remote", selector, state), per_cluster_s
        )
    except (ClusterUnreachableError, KubeconfigSecretError, ApiRefusedError, TimeoutError) as error:
        return ClusterInventory(name, "remote", state, error=describe(error))


async def gather(
    primary: Cluster,
    namespace: str,
    clients: RemoteClients,
    per_cluster_s: float = DEFAULT_CLUSTER_TIMEOUT_S,
) -> Inventory:
    """The inventory of the mesh whose Istio resource lives in `namespace`. The primary's
    failures propagate (there is nothing to show without it); a remote's are reported."""
    istio = managing_istio(await primary.list_all(API_VERSION, "Istio"), namespace)
    if istio is None:
        pods = await primary.list_all("v1", "Pod")
        return Inventory(
            namespace, "", (ClusterInventory(primary.name, "primary", data_plane=data_plane(pods)),)
        )
    desired = str((istio.get("spec") or {}).get("version") or "")
    state = resource_state(istio, desired)
    primary_part = await asyncio.wait_for(
        _cluster_inventory(primary, "primary", owner_selector(state.name, namespace), state),
        per_cluster_s,
    )
    remote_bodies = sorted(
        await list_remotes(primary, namespace), key=lambda b: str(b["metadata"]["name"])
    )
    remote_parts = await asyncio.gather(
        *(
            _remote_inventory(primary, clients, body, state.name, desired, per_cluster_s)
            for body in remote_bodies
        )
    )
    return Inventory(namespace, desired, (primary_part, *remote_parts))
