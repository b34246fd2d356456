"""Watch-fed copies of what a cluster holds, so that a pass at rest sends no request.

The first read of a kind (all of it, or the objects carrying some labels) lists it once and
starts a watch from that list's resourceVersion; later reads of it are answered from
memory. What this process writes is put into the copies from the API server's answer at
once (a pass reads its own writes), and an event older than the copy's object is ignored.
A watch that ends leaves its copy unused: the next read lists afresh and watches again, so
an outage is seen as it would be without the cache. `changed` lets a waiter wake on the
next event of the cluster instead of polling it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from istio_operator.api.keys import ObjectKey, key_of

log = logging.getLogger(__name__)

# (apiVersion, kind, label selector or None for every object of the kind)
Query = tuple[str, str, str | None]
Listener = Callable[[str, Mapping[str, Any]], None]


class Source(Protocol):
    """The requests a copy is made from (`kube.client.Cluster` implements them)."""

    name: str

    async def list_versioned(
        self, api_version: str, kind: str, selector: str | None
    ) -> tuple[list[dict[str, Any]], str]:
        """The objects and the list's resourceVersion."""
        ...

    def watch_from(
        self, api_version: str, kind: str, selector: str | None, resource_version: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(event type, object) after `resource_version`, until the watch fails."""
        ...


def selects(selector: str | None, labels: Mapping[str, str]) -> bool:
    """Whether labels match `k=v,k2` (a part without `=` asks only that the label exists)."""
    for part in (selector or "").split(","):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _version(obj: Mapping[str, Any]) -> int:
    """The object's resourceVersion as a number (an etcd revision: a copy compares the
    event's with what it holds); one that is not a number orders first."""
    text = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    return int(text) if text.isdigit() else -1


@dataclass
class _Copy:
    query: Query
    objects: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)
    # Versions of objects deleted lately, so that a late event cannot bring one back.
    gone: dict[ObjectKey, int] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    live: bool = False

    def holds(self, obj: Mapping[str, Any]) -> bool:
        api_version, kind, selector = self.query
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return (
            obj.get("apiVersion") == api_version
            and obj.get("kind") == kind
            and (selects(selector, labels))
        )

    def put(self, obj: dict[str, Any]) -> None:
        key = key_of(obj)
        held = self.objects.get(key)
        version = _version(obj)
        if version < self.gone.get(key, -1):
            return
        if held is not None and version < _version(held):
            return
        if self.holds(obj):
            self.objects[key] = obj
        else:
            self.objects.pop(key, None)  # its labels moved: no longer ours to hold

    def drop(self, key: ObjectKey, version: int) -> None:
        held = self.objects.get(key)
        if held is not None and version >= 0 and version < _version(held):
            return
        self.objects.pop(key, None)
        self.gone[key] = max(version, self.gone.get(key, -1))


class WatchCache:
    """The copies of one cluster's objects, one per query read so far."""

    def __init__(self, source: Source, listener: Listener | None = None) -> None:
        self.source = source
        self.listener = listener
        self._copies: dict[Query, _Copy] = {}
        self._starting: dict[Query, asyncio.Future[_Copy]] = {}
        self._changed = asyncio.Event()

    async def read(self, api_version: str, kind: str, selector: str | None) -> list[dict[str, Any]]:
        """What a list of the query would answer, from a copy (made now if there is none)."""
        query = (api_version, kind, selector)
        whole = self._copies.get((api_version, kind, None))
        if selector is not None and whole is not None and whole.live:
            objects = [o for o in whole.objects.values() if whole_selects(o, selector)]
        else:
            objects = list((await self._copy(query)).objects.values())
        return copy.deepcopy(objects)

    def get(self, key: ObjectKey) -> tuple[bool, dict[str, Any] | None]:
        """(known, object): known when a live copy can tell; a copy of labelled objects
        only knows those it holds (an object without the labels may still exist)."""
        whole = self._copies.get((key.api_version, key.kind, None))
        if whole is not None and whole.live:
            found = whole.objects.get(key)
            return True, copy.deepcopy(found) if found is not None else None
        for query, held in self._copies.items():
            if held.live and query[:2] == (key.api_version, key.kind) and key in held.objects:
                return True, copy.deepcopy(held.objects[key])
        return False, None

    def wrote(self, obj: Mapping[str, Any]) -> None:
        """The API server's answer to a write of ours: the copies see it now."""
        for held in self._kind(str(obj.get("apiVersion")), str(obj.get("kind"))):
            held.put(copy.deepcopy(dict(obj)))

    def deleted(self, key: ObjectKey) -> None:
        for held in self._kind(key.api_version, key.kind):
            held.objects.pop(key, None)

    async def changed(self, within: float) -> None:
        """Returns at the next event of any copy, or after `within` seconds."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), within)

    async def close(self) -> None:
        tasks = [c.task for c in self._copies.values() if c.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._copies.clear()

    @property
    def watches(self) -> int:
        """How many copies are kept by a running watch."""
        return sum(1 for c in self._copies.values() if c.live)

    def _kind(self, api_version: str, kind: str) -> list[_Copy]:
        return [c for q, c in self._copies.items() if q[:2] == (api_version, kind)]

    async def _copy(self, query: Query) -> _Copy:
        held = self._copies.get(query)
        if held is not None and held.live:
            return held
        starting = self._starting.get(query)
        if starting is None:  # one list for readers that ask at once
            starting = asyncio.ensure_future(self._start(query))
            self._starting[query] = starting
            starting.add_done_callback(lambda _: self._starting.pop(query, None))
        return await asyncio.shield(starting)

    async def _start(self, query: Query) -> _Copy:
        objects, version = await self.source.list_versioned(*query)
        held = _Copy(query, {key_of(o): o for o in objects}, live=bool(version))
        old = self._copies.get(query)
        if old is not None and old.task is not None:
            old.task.cancel()
        self._copies[query] = held
        if held.live:
            held.task = asyncio.ensure_future(self._follow(held, version))
        return held

    async def _follow(self, held: _Copy, version: str) -> None:
        api_version, kind, selector = held.query
        try:
            async for event, obj in self.source.watch_from(api_version, kind, selector, version):
                self._event(held, event, obj)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the next read lists afresh; the error shows there
            log.debug("%s: watch of %s ended: %s", self.source.name, held.query, error)
        finally:
            held.live = False
            self._changed.set()

    def _event(self, held: _Copy, event: str, obj: dict[str, Any]) -> None:
        if event == "DELETED":
            held.drop(key_of(obj), _version(obj))
        elif event in ("ADDED", "MODIFIED"):
            held.put(obj)
        else:
            return  # BOOKMARK, or what a newer server may add
        self._changed.set()
        if self.listener is not None:
            self.listener(event, obj)


def whole_selects(obj: Mapping[str, Any], selector: str) -> bool:
    return selects(selector, (obj.get("metadata") or {}).get("labels") or {})
