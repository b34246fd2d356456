"""An in-memory cluster for fast tests of the engine and the workers.

`FakeCluster` implements `kube.protocol.ClusterAccess`: it stores objects by key and
answers as an API server would, closely enough for the engine's logic:

- `apply` is a server-side apply by the operator's field manager, forced: the manifest
  is merged into the live object (maps merged, lists and scalars replaced), and the fields
  this manager applied before and no longer applies are removed. `metadata.generation`
  starts at 1 and grows when anything outside `metadata` and `status` changes;
  `metadata.resourceVersion` grows on every change; `managedFields` records the manager.
- Deployments, DaemonSets and CRDs get the status their controllers would give them:
  available (Established) at their current generation, at once. `set_available(key,
  False)` stops that progress for one object: its status stays as it is (none for a new
  object, the old generation's for an updated one) until `set_available(key, True)`.
- `refuse` makes the dry-run (`validate`) of one object answer with a message;
  `unreachable = True` makes every call raise `ClusterUnreachableError`; `hang()` makes
  every call wait until `answer()`.
- Every write the code under test sends (apply, delete, status patch; dry-runs are no
  writes) is recorded in `audit`, in order. `put` sets up objects as others made them and
  is not recorded.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from istio_operator.api.keys import ObjectKey, key_of
from istio_operator.api.labels import FIELD_MANAGER
from istio_operator.kube.client import ClusterUnreachableError, WriteCounter
from istio_operator.kube.protocol import Verdict
from istio_operator.kube.remotes import RemoteClients

_uids = itertools.count(1)


@dataclass(frozen=True)
class Write:
    """One write request: `apply`, `delete` or `patch-status`, and its object."""

    verb: str
    key: ObjectKey


class FakeCluster:
    """One in-memory cluster (see the module's docstring)."""

    def __init__(self, name: str = "fake", *, available_by_default: bool = True) -> None:
        self.name = name
        self.writes = WriteCounter()
        self.objects: dict[ObjectKey, dict[str, Any]] = {}
        self.audit: list[Write] = []
        self.validated: list[ObjectKey] = []  # every dry-run, in order
        self.unreachable = False
        self.available_by_default = available_by_default
        self._available: dict[ObjectKey, bool] = {}  # set_available's word, by object
        self._refusals: dict[ObjectKey, str] = {}
        self._applied: dict[ObjectKey, dict[str, Any]] = {}  # our manager's last apply
        self._reads: dict[ObjectKey, asyncio.Event] = {}
        self._answering = asyncio.Event()
        self._answering.set()
        self.held = asyncio.Event()  # set once a call waits on a hung cluster
        # A cloud's load-balancer controller: the address a LoadBalancer Service gets.
        self.load_balancer_address: str | None = None
        self.applying = 0  # applies in flight
        self.most_applying = 0  # the most applies ever in flight at once
        self._revision = 0
        for namespace in ("kube-system", "default"):
            self.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})

    # -- what the test controls ------------------------------------------------------------

    def put(
        self, manifest: Mapping[str, Any], *, manager: str = "kubectl", operation: str = "Update"
    ) -> dict[str, Any]:
        """Stores an object as another writer made it (unrecorded: the test's setup)."""
        key = key_of(manifest)
        obj = copy.deepcopy(dict(manifest))
        meta = obj.setdefault("metadata", {})
        old = self.objects.get(key)
        meta["uid"] = (old or {}).get("metadata", {}).get("uid") or f"uid-{next(_uids)}"
        meta["generation"] = int(meta.get("generation") or 1)
        meta["managedFields"] = [{"manager": manager, "operation": operation}]
        meta["resourceVersion"] = self._next_revision()
        self.objects[key] = obj
        self._settle(key)
        return copy.deepcopy(obj)

    def set_available(self, key: ObjectKey, available: bool) -> None:
        """Whether the workload (or CRD) becomes available (Established) at its generation,
        now and after each write; if not, its status stays as it is."""
        self._available[key] = available
        self._settle(key)

    def refuse(self, key: ObjectKey, message: str | None) -> None:
        """The dry-run of this object answers `message` (None: accepts it again)."""
        if message is None:
            self._refusals.pop(key, None)
        else:
            self._refusals[key] = message

    def hang(self) -> None:
        """Every call waits, without an answer, until `answer()`."""
        self._answering.clear()

    def answer(self) -> None:
        self._answering.set()

    def read_of(self, key: ObjectKey) -> asyncio.Event:
        """Set once the object has been read by `get` (and at every read after)."""
        return self._reads.setdefault(key, asyncio.Event())

    def written(self, verb: str | None = None) -> list[ObjectKey]:
        """The keys of the recorded writes, of one verb or all."""
        return [w.key for w in self.audit if verb is None or w.verb == verb]

    # -- ClusterAccess ---------------------------------------------------------------------

    async def identity(self) -> str:
        found = await self.get(ObjectKey("v1", "Namespace", "", "kube-system"))
        return str(((found or {}).get("metadata") or {}).get("uid") or "")

    async def get(self, key: ObjectKey) -> dict[str, Any] | None:
        await self._reached()
        self.read_of(key).set()
        obj = self.objects.get(key)
        return None if obj is None else copy.deepcopy(obj)

    async def apply(self, manifest: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        self.applying += 1
        self.most_applying = max(self.most_applying, self.applying)
        try:
            # A round trip: other callers run meanwhile, as they would with a real server.
            await asyncio.sleep(0)
            return await self._apply(manifest, dry_run=dry_run)
        finally:
            self.applying -= 1

    async def _apply(self, manifest: Mapping[str, Any], *, dry_run: bool) -> dict[str, Any]:
        await self._reached()
        key = key_of(manifest)
        desired = {k: copy.deepcopy(v) for k, v in manifest.items() if k != "status"}
        old = self.objects.get(key)
        new = copy.deepcopy(old) if old is not None else {}
        _drop_unapplied(new, self._applied.get(key) or {}, desired)
        _merge(new, desired)
        meta = new["metadata"]
        if old is None:
            meta["uid"] = f"uid-{next(_uids)}"
            meta["generation"] = 1
            meta["managedFields"] = []
        elif _content(new) != _content(old):
            meta["generation"] = int(old["metadata"].get("generation") or 1) + 1
        managers = [m for m in meta["managedFields"] if m.get("manager") != FIELD_MANAGER]
        meta["managedFields"] = [*managers, {"manager": FIELD_MANAGER, "operation": "Apply"}]
        if dry_run:
            return new
        self.audit.append(Write("apply", key))
        self.writes.applies += 1
        if new != old:
            meta["resourceVersion"] = self._next_revision()
        self.objects[key] = new
        self._applied[key] = desired
        self._settle(key)
        return copy.deepcopy(self.objects[key])

    async def apply_as(self, field_manager: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Our manager's partial apply is an apply; another actor's fields (a restart's
        annotation) are merged into the object, a new generation when its content changes."""
        if field_manager == FIELD_MANAGER:
            return await self.apply(manifest)
        await self._reached()
        key = key_of(manifest)
        obj = self.objects[key]
        before = copy.deepcopy(_content(obj))
        _merge(obj, {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")})
        if _content(obj) != before:
            obj["metadata"]["generation"] += 1
        obj["metadata"]["resourceVersion"] = self._next_revision()
        self.audit.append(Write("apply", key))
        self.writes.applies += 1
        self._settle(key)
        return copy.deepcopy(obj)

    async def judge(self, manifest: Mapping[str, Any]) -> Verdict:
        await self._reached()
        key = key_of(manifest)
        self.validated.append(key)
        refusal = self._refusals.get(key)
        return Verdict(refusal, exists=None if refusal else key in self.objects)

    async def list_labelled(
        self, api_version: str, kind: str, selector: str
    ) -> list[dict[str, Any]]:
        wanted = [part.partition("=") for part in selector.split(",")]

        def selected(labels: dict[str, str]) -> bool:
            return all((k in labels) if not sep else labels.get(k) == v for k, sep, v in wanted)

        return [
            obj
            for obj in await self.list_all(api_version, kind)
            if selected(obj["metadata"].get("labels") or {})
        ]

    async def list_all(
        self,
        api_version: str,
        kind: str,
        *,
        once: bool = False,
        namespace: str | None = None,
        shared: bool = False,
    ) -> list[dict[str, Any]]:
        await self._reached()
        return [
            copy.deepcopy(obj)
            for key, obj in sorted(self.objects.items())
            if (key.api_version, key.kind) == (api_version, kind)
            and namespace in (None, key.namespace)
        ]

    async def take_over(
        self, manifest: Mapping[str, Any], live: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A replace by the manifest, then owned by our apply alone (see kube.client)."""
        await self._reached()
        key = key_of(manifest)
        old = self.objects.get(key) or {}
        obj = copy.deepcopy(dict(manifest))
        meta = obj["metadata"]
        meta["uid"] = old.get("metadata", {}).get("uid") or f"uid-{next(_uids)}"
        meta["generation"] = int(old.get("metadata", {}).get("generation") or 1) + 1
        meta["managedFields"] = [{"manager": FIELD_MANAGER, "operation": "Apply"}]
        meta["resourceVersion"] = self._next_revision()
        if "status" in old:
            obj["status"] = old["status"]
        self.audit.append(Write("take-over", key))
        self.writes.applies += 1
        self.objects[key] = obj
        self._applied[key] = {k: copy.deepcopy(v) for k, v in manifest.items()}
        self._settle(key)
        return copy.deepcopy(obj)

    async def merge_patch(self, key: ObjectKey, patch: Mapping[str, Any]) -> dict[str, Any]:
        await self._reached()
        self.audit.append(Write("merge-patch", key))
        self.writes.applies += 1
        obj = self.objects[key]
        patched = _merge_patch(obj, patch)
        patched["metadata"]["resourceVersion"] = self._next_revision()
        self.objects[key] = patched
        return copy.deepcopy(patched)

    async def delete(self, key: ObjectKey, *, orphan: bool = False) -> None:
        await self._reached()
        self.audit.append(Write("delete", key))
        self.writes.deletes += 1
        self.objects.pop(key, None)
        self._applied.pop(key, None)

    def change_mark(self) -> object | None:
        return None

    async def changed(self, within: float, since: object | None = None) -> None:
        await asyncio.sleep(within)

    async def patch_status(self, key: ObjectKey, status: Mapping[str, Any]) -> None:
        await self._reached()
        self.audit.append(Write("patch-status", key))
        self.writes.applies += 1
        obj = self.objects.get(key)
        if obj is None:
            return
        obj["status"] = _merge_patch(obj.get("status") or {}, status)
        obj["metadata"]["resourceVersion"] = self._next_revision()

    # -- internals -------------------------------------------------------------------------

    async def _reached(self) -> None:
        if not self._answering.is_set():
            self.held.set()
            await self._answering.wait()
        if self.unreachable:
            raise ClusterUnreachableError(f"cluster {self.name} is unreachable: (fake outage)")

    def _give_address(self, service: dict[str, Any]) -> None:
        balanced = (service.get("spec") or {}).get("type") == "LoadBalancer"
        if balanced and self.load_balancer_address and "status" not in service:
            service["status"] = {"loadBalancer": {"ingress": [{"ip": self.load_balancer_address}]}}

    def _next_revision(self) -> str:
        self._revision += 1
        return str(self._revision)

    def _settle(self, key: ObjectKey) -> None:
        """The status the cluster's controllers would give the object."""
        obj = self.objects.get(key)
        if obj is not None and key.kind == "Service":
            self._give_address(obj)
        if obj is None or key.kind not in ("Deployment", "DaemonSet", "CustomResourceDefinition"):
            return
        if not self._available.get(key, self.available_by_default):
            return
        generation = obj["metadata"]["generation"]
        if key.kind == "Deployment":
            wanted = int((obj.get("spec") or {}).get("replicas", 1))
            status: dict[str, Any] = {
                "observedGeneration": generation,
                "replicas": wanted,
                "updatedReplicas": wanted,
                "availableReplicas": wanted,
            }
        elif key.kind == "DaemonSet":
            status = {
                "observedGeneration": generation,
                "desiredNumberScheduled": 1,
                "updatedNumberScheduled": 1,
                "numberAvailable": 1,
            }
        else:
            status = {"conditions": [{"type": "Established", "status": "True"}]}
        if obj.get("status") != status:
            obj["status"] = status
            obj["metadata"]["resourceVersion"] = self._next_revision()


def _content(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What the generation counts: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _merge(target: dict[str, Any], desired: Mapping[str, Any]) -> None:
    for key, value in desired.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _drop_unapplied(
    target: dict[str, Any], previous: Mapping[str, Any], desired: Mapping[str, Any]
) -> None:
    """Removes what the manager applied last time and no longer applies."""
    for key, value in previous.items():
        if key not in desired:
            target.pop(key, None)
        elif (
            isinstance(value, Mapping)
            and isinstance(desired[key], Mapping)
            and isinstance(target.get(key), dict)
        ):
            _drop_unapplied(target[key], value, desired[key])


def _merge_patch(current: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(dict(current))
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = _merge_patch(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


class FakeRemoteClients(RemoteClients):
    """The remote-client registry, answering each remote's name with its fake cluster
    (whatever its kubeconfig Secret holds)."""

    def __init__(self, clusters: Mapping[str, FakeCluster]) -> None:
        super().__init__()
        self.clusters = dict(clusters)

    async def for_secret(self, remote: str, secret: Mapping[str, Any]) -> Any:
        return self.clusters[remote]

    def known(self, remote: str) -> Any:
        return self.clusters.get(remote)

    async def forget(self, remote: str) -> None:
        self.clusters.pop(remote, None)

    async def close(self) -> None:
        self.clusters.clear()
