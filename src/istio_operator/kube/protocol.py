"""What the reconcile engine and the workers use of a cluster, as a protocol.

`kube.client.Cluster` (lightkube, a real API server) is the implementation the operator
runs with; tests pass an in-memory one (`tests/fakes.py`). Nothing here imports a client
library: the reconcile layer types against this and never learns which one it has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from istio_operator.api.keys import ObjectKey


@dataclass(frozen=True)
class Verdict:
    """The API server's answer to a dry-run apply of a manifest."""

    refusal: str | None = None  # why it would refuse the apply; None: it would accept it
    # Whether the object exists now: None when the answer cannot tell (a refusal). A kind
    # not served or a namespace that does not exist holds no object: False.
    exists: bool | None = False


class WriteCount(Protocol):
    """The write requests a cluster's client has sent so far."""

    @property
    def total(self) -> int: ...


class ClusterAccess(Protocol):
    """One cluster, as the engine and the workers see it.

    Every call may raise `kube.client.ClusterUnreachableError` when the API server does
    not answer.
    """

    @property
    def name(self) -> str:
        """The cluster's name in messages and reports (`primary`, a RemoteIstio's name)."""
        ...

    @property
    def writes(self) -> WriteCount: ...

    async def identity(self) -> str:
        """The uid of the cluster's kube-system namespace ("" while it cannot be read)."""
        ...

    async def get(self, key: ObjectKey) -> dict[str, Any] | None:
        """The live object, or None if there is none."""
        ...

    async def apply(self, manifest: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply with the operator's field manager, forced; returns the live
        object it made."""
        ...

    async def apply_as(self, field_manager: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply, forced, of a partial manifest (sent as given) under that
        field manager."""
        ...

    async def judge(self, manifest: Mapping[str, Any]) -> Verdict:
        """What the API server says of applying the manifest (a strict server-side
        dry-run): whether it would refuse it, and whether the object exists."""
        ...

    async def list_labelled(
        self, api_version: str, kind: str, selector: str
    ) -> list[dict[str, Any]]:
        """Every object of the kind carrying the labels of `selector` (`k=v,k2=v2`), in
        all namespaces."""
        ...

    async def list_all(
        self,
        api_version: str,
        kind: str,
        *,
        once: bool = False,
        namespace: str | None = None,
        shared: bool = False,
    ) -> list[dict[str, Any]]:
        """Every object of the kind, in all namespaces or in `namespace` alone; `once`: a
        one-off read (a client that keeps watch-fed copies makes none for it); `shared`:
        the caller only reads what it gets, which a client may then give uncopied."""
        ...

    async def take_over(
        self, manifest: Mapping[str, Any], live: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Makes an object another writer created (`live`) exactly `manifest`, owned by
        the operator's field manager alone; returns the live object it made."""
        ...

    async def merge_patch(self, key: ObjectKey, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the object (a None value removes its key)."""
        ...

    async def delete(self, key: ObjectKey, *, orphan: bool = False) -> None:
        """Deletes the object; one already gone is no error. With `orphan`, what it owns
        (a workload's ReplicaSets and pods) is left running."""
        ...

    def change_mark(self) -> object | None:
        """A mark to give `changed` as `since`, taken before reading what it waits on."""
        ...

    async def changed(self, within: float, since: object | None = None) -> None:
        """Returns when something this client keeps a watch on may have changed (since
        `since`, a `change_mark`, if given), at the latest after `within` seconds (a
        client without watches just waits)."""
        ...

    async def patch_status(self, key: ObjectKey, status: Mapping[str, Any]) -> None:
        """Merge-patches a custom resource's status (a None value removes its key); a
        resource already gone is no error."""
        ...
