"""The upgrade plan: what the operator would do, on every cluster, for an Istio resource
as given, found by running the operator's own reconcile against the clusters read-only.

Every read goes to the real clusters; every write is recorded instead of sent and kept in
an overlay that later reads see, so the reconcile goes on as if it had been written: the
next phase, the next pass, the remotes once the primary is settled. Workloads written are
taken as rolled out at once (nothing runs them). The plan is therefore the operator's own
decisions, not a second model of them: the same render, the same diff, the same prune,
the same revision and tag moves. The only requests that could change anything are the
engine's server-side dry-runs (`dryRun=All`), which the API server never persists.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from istio_operator.api.keys import ObjectKey, key_of
from istio_operator.api.labels import API_VERSION, PHASE
from istio_operator.kube.cache import selects
from istio_operator.kube.client import Cluster
from istio_operator.kube.objects import DESIRED_HASH, FieldChange, differences
from istio_operator.kube.remotes import RemoteClients, kubeconfig_from_secret
from istio_operator.render.phases import Phase

WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet")


@dataclass(frozen=True)
class PlannedWrite:
    """One write the operator would send to one cluster."""

    action: str  # create, change, delete, restart
    key: ObjectKey
    phase: str  # the rollout phase of the object ("" when it has none)
    changes: tuple[FieldChange, ...] = ()

    @property
    def rolls(self) -> bool:
        """Whether the write recreates a workload's pods (its pod template changes)."""
        if self.key.kind not in WORKLOAD_KINDS:
            return False
        return self.action == "restart" or any(
            c.path.startswith("spec.template.") for c in self.changes
        )


def _labels(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def _merged(base: Any, patch: Any) -> Any:
    """`patch` over `base`: maps merged key by key, anything else replaced; a None value
    removes its key (a JSON merge patch; close enough to a server-side apply of ours)."""
    if not isinstance(base, Mapping) or not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(copy.deepcopy(base))
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merged(result.get(key), value)
    return result


def _rolled_out(obj: dict[str, Any], before: Mapping[str, Any] | None) -> dict[str, Any]:
    """The object as it stands once its rollout completed (what nothing runs here)."""
    meta = obj.setdefault("metadata", {})
    generation = int(((before or {}).get("metadata") or {}).get("generation") or 0) + 1
    meta["generation"] = generation
    spec = obj.get("spec") or {}
    kind = obj.get("kind")
    if kind in ("Deployment", "StatefulSet"):
        replicas = spec.get("replicas", 1)
        obj["status"] = {
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        }
    elif kind == "DaemonSet":
        nodes = int(((before or {}).get("status") or {}).get("desiredNumberScheduled") or 1)
        obj["status"] = {
            "observedGeneration": generation,
            "desiredNumberScheduled": nodes,
            "updatedNumberScheduled": nodes,
            "numberAvailable": nodes,
            "numberReady": nodes,
        }
    elif kind == "CustomResourceDefinition":
        obj["status"] = {"conditions": [{"type": "Established", "status": "True"}]}
    return obj


@dataclass
class PlanningCluster(Cluster):
    """A cluster read for real and written to in memory only; see the module's doc."""

    overlay: dict[ObjectKey, dict[str, Any] | None] = field(default_factory=dict)
    # Per object written: the live object before the first write (None: there was none),
    # the last manifest sent, whether a write restarted it; in the order first written.
    original: dict[ObjectKey, dict[str, Any] | None] = field(default_factory=dict)
    sent: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)
    restarted: set[ObjectKey] = field(default_factory=set)
    recorded: int = 0  # writes recorded (a pass that records none changed nothing)

    @classmethod
    def reading(cls, cluster: Cluster) -> PlanningCluster:
        return cls(name=cluster.name, client=cluster.client, server=cluster.server)

    def preset(self, obj: Mapping[str, Any]) -> None:
        """Reads of this object return `obj` (an edited resource, a simulated status);
        not a write of the plan."""
        self.overlay[key_of(obj)] = copy.deepcopy(dict(obj))

    def planned(self) -> list[PlannedWrite]:
        """What the writes add up to: each object written, from its state before to its
        state after, once however many times it was written."""
        result = []
        for key, before in self.original.items():
            after = self.overlay.get(key)
            phase = _labels(self.sent.get(key) or before).get(PHASE, "")
            if after is None:
                if before is not None:
                    result.append(PlannedWrite("delete", key, _labels(before).get(PHASE, "")))
            elif before is None:
                result.append(PlannedWrite("create", key, phase))
            else:
                changes = _visible(differences(before, self.sent[key]))
                action = "restart" if key in self.restarted else "change"
                result.append(PlannedWrite(action, key, phase, changes))
        return result

    async def get(self, key: ObjectKey) -> dict[str, Any] | None:
        if key in self.overlay:
            found = self.overlay[key]
            return None if found is None else copy.deepcopy(found)
        return await super().get(key)

    async def list_labelled(
        self, api_version: str, kind: str, selector: str
    ) -> list[dict[str, Any]]:
        live = await super().list_labelled(api_version, kind, selector)
        return self._overlaid(live, api_version, kind, selector)

    async def list_all(
        self,
        api_version: str,
        kind: str,
        *,
        once: bool = False,
        namespace: str | None = None,
        shared: bool = False,
    ) -> list[dict[str, Any]]:
        live = await super().list_all(
            api_version, kind, once=once, namespace=namespace, shared=shared
        )
        found = self._overlaid(live, api_version, kind, None)
        return [o for o in found if namespace is None or key_of(o).namespace == namespace]

    def _overlaid(
        self, live: Iterable[dict[str, Any]], api_version: str, kind: str, selector: str | None
    ) -> list[dict[str, Any]]:
        found = {key_of(obj): obj for obj in live if key_of(obj) not in self.overlay}
        for key, obj in self.overlay.items():
            same_kind = (key.api_version, key.kind) == (api_version, kind)
            if same_kind and obj is not None and selects(selector, _labels(obj)):
                found[key] = copy.deepcopy(obj)
        return list(found.values())

    async def apply(self, manifest: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        if dry_run:
            return await super().apply(manifest, dry_run=True)
        return await self._write(manifest, replace=False)

    async def apply_as(self, field_manager: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        current = await self.get(key_of(manifest)) or {}
        return await self._write(_merged(current, manifest), replace=True)

    async def take_over(
        self, manifest: Mapping[str, Any], live: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self._write(manifest, replace=True)

    async def merge_patch(self, key: ObjectKey, patch: Mapping[str, Any]) -> dict[str, Any]:
        current = await self.get(key) or {}
        if set(patch) <= {"metadata"} and set(patch.get("metadata") or {}) <= {"managedFields"}:
            return current  # bookkeeping of field managers: nothing a user would see
        return await self._write(_merged(current, patch), replace=True)

    async def patch_status(self, key: ObjectKey, status: Mapping[str, Any]) -> None:
        current = await self.get(key)
        if current is not None:
            current["status"] = _merged(current.get("status") or {}, dict(status))
            self.overlay[key] = current

    async def delete(self, key: ObjectKey, *, orphan: bool = False) -> None:
        current = await self.get(key)
        if current is None:
            return
        self._remember(key, current)
        self.overlay[key] = None

    def _remember(self, key: ObjectKey, current: dict[str, Any] | None) -> None:
        self.recorded += 1
        if key not in self.original:
            self.original[key] = copy.deepcopy(current)

    async def _write(self, manifest: Mapping[str, Any], *, replace: bool) -> dict[str, Any]:
        key = key_of(manifest)
        current = await self.get(key)
        self._remember(key, current)
        desired = {k: copy.deepcopy(v) for k, v in manifest.items() if k != "status"}
        self.sent[key] = desired
        if _restarted_at(desired) != _restarted_at(current or {}):
            self.restarted.add(key)
        merged = copy.deepcopy(desired) if replace or current is None else _merged(current, desired)
        if current is not None and "status" in current:
            merged.setdefault("status", current["status"])
        result = _rolled_out(merged, current) if key.kind in _ROLLING else merged
        self.overlay[key] = result
        return copy.deepcopy(result)


def _visible(changes: Iterable[FieldChange]) -> tuple[FieldChange, ...]:
    """The changes a reader cares about: not our hash, not what the server keeps."""
    hidden = (DESIRED_HASH, "metadata.generation", "metadata.resourceVersion", "metadata.uid")
    return tuple(
        c
        for c in changes
        if not any(h in c.path for h in hidden)
        and not c.path.startswith(("metadata.managedFields", "metadata.creationTimestamp"))
    )


_ROLLING = (*WORKLOAD_KINDS, "CustomResourceDefinition")


def _restarted_at(obj: Mapping[str, Any]) -> str | None:
    """A workload's restart annotation (`kubectl rollout restart`'s), if any."""
    template = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return (template.get("annotations") or {}).get("kubectl.kubernetes.io/restartedAt")


class PlanningRemotes(RemoteClients):
    """Remote clusters as `PlanningCluster`s, one per remote for the whole plan."""

    def __init__(self) -> None:
        super().__init__()
        self.clusters: dict[str, PlanningCluster] = {}

    async def for_secret(self, remote: str, secret: Mapping[str, Any]) -> Cluster:
        if remote not in self.clusters:
            real = Cluster.from_config(remote, kubeconfig_from_secret(secret))
            self.clusters[remote] = PlanningCluster.reading(real)
        return self.clusters[remote]

    async def close(self) -> None:
        for cluster in self.clusters.values():
            await cluster.close()


def phase_order(label: str) -> int:
    """Where a phase label sorts in the rollout ("" and unknown labels last)."""
    for phase in Phase:
        if phase.label == label:
            return int(phase)
    return len(Phase) + 1


def by_phase(writes: Sequence[PlannedWrite]) -> list[tuple[str, list[PlannedWrite]]]:
    """The writes grouped by rollout phase, in rollout order; deletes last (the prune)."""
    groups: dict[str, list[PlannedWrite]] = {}
    for write in writes:
        label = "prune" if write.action == "delete" else (write.phase or "other")
        groups.setdefault(label, []).append(write)
    order = {label: (label == "prune", phase_order(label)) for label in groups}
    return sorted(groups.items(), key=lambda item: order[item[0]])


def istio_key(namespace: str, name: str) -> ObjectKey:
    return ObjectKey(API_VERSION, "Istio", namespace, name)
