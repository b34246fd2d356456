"""Watch-fed copies of what a cluster holds, so that a pass at rest sends no request.

The first read of a kind (all of it, or the objects carrying some labels) lists it once and
starts a watch from that list's resourceVersion; later reads of it are answered from
memory. What this process writes is put into the copies from the API server's answer at
once (a pass reads its own writes), and an event older than the copy's object is ignored.
A watch that ends leaves its copy unused: the next read lists afresh and watches again, so
an outage is seen as it would be without the cache. `changed` lets a waiter wake on the
next event of the cluster instead of polling it.

A kind of which this process's objects (the shared selector) number none on the cluster is
kept without a watch ("quiet"): nothing of ours can appear in it but by a write of ours
(the objects the operator applies are written by no one else; what controllers derive from
them, pods and ReplicaSets, is never pruned nor read from that copy), so the copy starts
watching, from the version of its empty list, when this client first writes an object
into it. Each watch holds a stream of the cluster's connection (about 37 KiB of memory;
over HTTP/1.1 a connection, about 110 KiB with its TLS state): a remote cluster has kinds
of which it holds nothing of ours (DaemonSets, Roles, admission policies, ...), and with
tens of remotes their watches add up.

A copy of a whole kind (every Namespace, read to label some for injection) answers every
read of that kind while it is watched: the kind's other copies are dropped with their
watches, and a quiet one does not start its own at our write.

An object read by name a second time (a kubeconfig Secret, the CA, the Istio resource) gets
a copy of its own, watched by name; a one-off read stays a request. A kind the server does
not serve (an Istio CRD not installed on a remote) holds none of ours either: read for all
of ours, it is quiet too, watched from the version of our first write into it once another
writer or we install its CRD. Read otherwise, it is known to be empty until this client
writes a CustomResourceDefinition, or for `ABSENT_RECHECK_S` at most (another writer may
install it meanwhile and make objects of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from istio_operator.api.keys import ObjectKey, key_of

log = logging.getLogger(__name__)
ABSENT_RECHECK_S = 300.0
# Objects watched by name, at most: the least lately read goes first.
MAX_NAMED = 32
# Watches per cluster, at most: each holds one of the 100 streams an API server lets a
# connection carry at once, and the requests need the rest (`client.REQUESTS_AT_ONCE`).
# Past it a copy serves the read that made it, unwatched.
MAX_WATCHES = 72
# Kinds never watched by name: an Event is read by name each time it is counted again,
# and Events come and go.
NEVER_NAMED = frozenset({"Event"})
# Keys remembered, at most: read by name once (`_asked`), deleted lately (`_Copy.gone`).
MAX_REMEMBERED = 1024
CRD_KIND = "CustomResourceDefinition"
Listener = Callable[[str, Mapping[str, Any]], None]


@dataclass(frozen=True)
class Query:
    """What one copy holds: the objects of a kind, all of them, those carrying the labels
    of `selector` (`k=v,k2`), or the one object `named`; in every namespace, or in
    `namespace` alone."""

    api_version: str
    kind: str
    selector: str | None = None
    named: ObjectKey | None = None
    namespace: str | None = None


class Source(Protocol):
    """The requests a copy is made from (`kube.client.Cluster` implements them)."""

    name: str

    async def list_versioned(
        self,
        api_version: str,
        kind: str,
        selector: str | None,
        named: ObjectKey | None = None,
        namespace: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """The objects and the list's resourceVersion ("" for a kind not served)."""
        ...

    def watch_from(
        self,
        api_version: str,
        kind: str,
        selector: str | None,
        resource_version: str,
        named: ObjectKey | None = None,
        namespace: str | None = None,
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


def _copied(value: Any) -> Any:
    """A deep copy of JSON-like data (dicts, lists, scalars): what a reader gets, free to
    change. Through marshal, which copies such trees in C, five times quicker than a copy
    in Python and many times quicker than `copy.deepcopy` (a pass at rest spent most of its
    time copying); a value marshal cannot write is copied in Python."""
    try:
        return marshal.loads(marshal.dumps(value))
    except ValueError:
        return _copied_in_python(value)


def _copied_in_python(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copied_in_python(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copied_in_python(v) for v in value]
    return value


def _kept(obj: dict[str, Any]) -> dict[str, Any]:
    """What a copy keeps of an object: all of it but the field sets of its managedFields
    (who manages it and how is kept, which fields is not: no reader of a copy asks, and
    they are often as large as the rest of the object)."""
    managers = (obj.get("metadata") or {}).get("managedFields")
    if managers:
        obj["metadata"]["managedFields"] = [
            {k: v for k, v in entry.items() if k != "fieldsV1"} for entry in managers
        ]
    return obj


def _labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _version_text(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _version(obj: Mapping[str, Any]) -> int:
    """The object's resourceVersion as a number (an etcd revision: a copy compares the
    event's with what it holds); one that is not a number orders first."""
    text = _version_text(obj)
    return int(text) if text.isdigit() else -1


@dataclass
class _Copy:
    query: Query
    objects: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)
    # Versions of objects deleted lately, so that a late answer cannot bring one back.
    gone: dict[ObjectKey, int] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    live: bool = False  # kept by a running watch
    absent_until: float | None = None  # a kind not served: known empty until then (loop time)
    # Quiet: none of ours at the list of this version, so not watched (see the module's).
    quiet_since: str | None = None

    @property
    def current(self) -> bool:
        if self.absent_until is not None:
            return asyncio.get_running_loop().time() < self.absent_until
        return self.live or self.quiet_since is not None

    def holds(self, obj: Mapping[str, Any]) -> bool:
        query = self.query
        if query.named is not None and key_of(obj) != query.named:
            return False
        if query.namespace is not None and key_of(obj).namespace != query.namespace:
            return False
        kind = (obj.get("apiVersion"), obj.get("kind"))
        return kind == (query.api_version, query.kind) and selects(query.selector, _labels_of(obj))

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
        if held is not None and 0 <= version < _version(held):
            return
        self.objects.pop(key, None)
        _remember(self.gone, key, max(version, self.gone.pop(key, -1)))


def _remember(keys: dict[ObjectKey, Any], key: ObjectKey, value: Any) -> None:
    """Sets `keys[key]` as the newest entry, the oldest dropped past `MAX_REMEMBERED`
    (pods come and go on a cluster; what is remembered of them must not grow forever)."""
    keys.pop(key, None)
    keys[key] = value
    while len(keys) > MAX_REMEMBERED:
        del keys[next(iter(keys))]


class WatchCache:
    """The copies of one cluster's objects, one per query read so far."""

    def __init__(
        self, source: Source, listener: Listener | None = None, shared_selector: str = ""
    ) -> None:
        """`shared_selector`: a read whose selector includes it (every object the operator
        writes carries it) is answered from one copy per kind, of `shared_selector`."""
        self.source = source
        self.listener = listener
        self.shared = shared_selector
        self._copies: dict[Query, _Copy] = {}
        self._starting: dict[Query, asyncio.Future[_Copy]] = {}
        self._next_change = asyncio.Event()  # set, then replaced, at each change
        # Read by name once (a second read watches it), oldest first.
        self._asked: dict[ObjectKey, None] = {}
        self._named: OrderedDict[ObjectKey, None] = OrderedDict()  # by last read

    async def read(
        self,
        api_version: str,
        kind: str,
        selector: str | None,
        namespace: str | None = None,
        *,
        shared: bool = False,
    ) -> list[dict[str, Any]]:
        """What a list of the query would answer (in `namespace` alone, if given), from a
        copy (made now if there is none); only what it answers is copied out, or, when
        `shared`, given as held (the caller only reads it: the copy replaces an object that
        changes, it never changes one in place)."""
        whole = self._whole(api_version, kind)
        if (selector is not None or namespace is not None) and whole is not None:
            held = whole
        else:
            query = Query(api_version, kind, self._widened(selector), None, namespace)
            held = await self._copy(query)
        found = [
            o
            for key, o in held.objects.items()
            if (namespace is None or key.namespace == namespace)
            and selects(selector, _labels_of(o))
        ]
        return found if shared else [_copied(o) for o in found]

    def _widened(self, selector: str | None) -> str | None:
        if self.shared and selector and self.shared in selector.split(","):
            return self.shared
        return selector

    def get(self, key: ObjectKey) -> tuple[bool, dict[str, Any] | None]:
        """(known, object): known when a current copy can tell; a copy of labelled objects
        only knows those it holds (an object without the labels may still exist)."""
        for query in (
            Query(key.api_version, key.kind),
            Query(key.api_version, key.kind, None, key),
            Query(key.api_version, key.kind, None, None, key.namespace),
        ):
            held = self._copies.get(query)
            if held is not None and held.current:
                return True, _copied(held.objects.get(key))
        for held in self._kind(key.api_version, key.kind):
            if held.current and key in held.objects:
                return True, _copied(held.objects[key])
        return False, None

    async def fetch(self, key: ObjectKey) -> tuple[bool, dict[str, Any] | None]:
        """`get`; an object read by name before and in no copy gets a copy of its own now
        (a first read is left to the caller's request). A copy of its own is dropped once
        another copy holds the object too (a kubeconfig Secret, once labelled for pilot, is
        in the copy of labelled Secrets): one watch fewer, a connection fewer."""
        known = self.get(key)
        if key in self._named:
            self._named.move_to_end(key)
            if self._unnamed_if_held(key):
                return known
        if key.kind in NEVER_NAMED:
            return known
        if known[0] or key not in self._asked:
            _remember(self._asked, key, None)
            return known
        held = await self._copy(Query(key.api_version, key.kind, None, key))
        self._named[key] = None
        while len(self._named) > MAX_NAMED:
            self._forget(self._named.popitem(last=False)[0])
        return True, _copied(held.objects.get(key))

    def _unnamed_if_held(self, key: ObjectKey) -> bool:
        """Drops the object's copy of its own if another copy holds it too."""
        if key not in self._named:
            return False
        own = Query(key.api_version, key.kind, None, key)
        if not any(
            held.current and key in held.objects
            for held in self._kind(key.api_version, key.kind)
            if held.query != own
        ):
            return False
        del self._named[key]
        self._forget(key)
        _remember(self._asked, key, None)
        return True

    def _forget(self, key: ObjectKey) -> None:
        self._discard(Query(key.api_version, key.kind, None, key))
        self._asked.pop(key, None)

    def _discard(self, query: Query) -> None:
        """Removes the query's copy, its watch stopped."""
        held = self._copies.pop(query, None)
        if held is not None and held.task is not None:
            held.task.cancel()

    def wrote(self, obj: Mapping[str, Any]) -> None:
        """The API server's answer to a write of ours: the copies see it now."""
        kind = str(obj.get("kind"))
        copies = self._kind(str(obj.get("apiVersion")), kind)
        whole = self._whole(str(obj.get("apiVersion")), kind)
        for held in copies:
            held.put(_kept(_copied(dict(obj))))
            if held.quiet_since is None or not held.objects:
                continue
            if whole is not None:  # it answers this copy's reads: no second watch
                self._drop(held)
            else:  # a kind not served when listed: from our write, the first of ours in it
                self._watch(held, held.quiet_since or _version_text(obj))
        key = key_of(obj)
        if any(key in held.objects for held in copies):
            # A copy answers for it now: a read by name before its creation (whether some
            # other writer made it) does not count towards a copy of its own.
            self._asked.pop(key, None)
        self._unnamed_if_held(key)  # the operator labelled what it read by name
        if kind == CRD_KIND:
            self._recheck_absent()

    def deleted(self, key: ObjectKey) -> None:
        for held in self._kind(key.api_version, key.kind):
            held.objects.pop(key, None)
        if key.kind == CRD_KIND:
            self._recheck_absent()

    def mark(self) -> asyncio.Event:
        """What `changed(since=...)` is told of: any event of any copy after this call."""
        return self._next_change

    async def changed(self, within: float, since: object | None = None) -> None:
        """Returns at the next event of any copy (after the `mark` given as `since`: one
        that came while the caller was reading is not missed), or after `within` seconds."""
        change = since if isinstance(since, asyncio.Event) else self._next_change
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(change.wait(), within)

    def _changed(self) -> None:
        self._next_change.set()
        self._next_change = asyncio.Event()

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
        return [
            c for q, c in self._copies.items() if (q.api_version, q.kind) == (api_version, kind)
        ]

    def _whole(self, api_version: str, kind: str) -> _Copy | None:
        """The current copy of the whole kind, if any: it answers every read of the kind."""
        whole = self._copies.get(Query(api_version, kind))
        return whole if whole is not None and whole.current else None

    def _drop(self, held: _Copy) -> None:
        """Drops a copy (and its watch) that a copy of the whole kind makes redundant."""
        named = held.query.named
        if named is not None:
            self._named.pop(named, None)
            self._forget(named)
        else:
            self._discard(held.query)

    def _recheck_absent(self) -> None:
        """A kind may be served now (or no longer) since a CRD changed: list it again."""
        for held in self._copies.values():
            if held.absent_until is not None:
                held.absent_until = 0.0

    async def _copy(self, query: Query) -> _Copy:
        held = self._copies.get(query)
        if held is not None and held.current:
            return held
        starting = self._starting.get(query)
        if starting is None:  # one list for readers that ask at once
            starting = asyncio.ensure_future(self._start(query))
            self._starting[query] = starting
            starting.add_done_callback(lambda _: self._starting.pop(query, None))
        return await asyncio.shield(starting)

    async def _start(self, query: Query) -> _Copy:
        objects, version = await self.source.list_versioned(
            query.api_version, query.kind, query.selector, query.named, query.namespace
        )
        held = _Copy(query, {key_of(o): _kept(o) for o in objects}, live=bool(version))
        old = self._copies.get(query)
        if old is not None and old.task is not None:
            old.task.cancel()
        if not version and self._may_stay_quiet(query):
            held.live, held.quiet_since = False, ""  # watched from our first write of one
        elif not version:  # not served: nothing of the kind exists, nothing to watch
            held.absent_until = asyncio.get_running_loop().time() + ABSENT_RECHECK_S
        elif not objects and self._may_stay_quiet(query):
            held.live, held.quiet_since = False, version
        elif self.watches >= MAX_WATCHES:
            log.debug("%s: %s not watched (%d watches)", self.source.name, query, self.watches)
            self._copies.pop(query, None)
            held.live = False
            return held
        self._copies[query] = held
        log.debug("%s: %d of %s, watched: %s", self.source.name, len(objects), query, held.live)
        if held.live:
            self._watch(held, version)
            if query == Query(query.api_version, query.kind):
                for other in self._kind(query.api_version, query.kind):
                    if other is not held:
                        self._drop(other)
        return held

    def _may_stay_quiet(self, query: Query) -> bool:
        """Whether an empty list of `query` is kept unwatched: what it asks for is every
        object of ours of its kind (see the module's docstring)."""
        return bool(self.shared) and query == Query(query.api_version, query.kind, self.shared)

    def _watch(self, held: _Copy, version: str) -> None:
        held.live, held.quiet_since = True, None
        held.task = asyncio.ensure_future(self._follow(held, version))

    async def _follow(self, held: _Copy, version: str) -> None:
        query = held.query
        try:
            watch = self.source.watch_from(
                query.api_version, query.kind, query.selector, version, query.named, query.namespace
            )
            async for event, obj in watch:
                self._event(held, event, obj)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the next read lists afresh; the error shows there
            log.debug("%s: watch of %s ended: %s", self.source.name, query, error)
        finally:
            held.live = False
            self._changed()

    def _event(self, held: _Copy, event: str, obj: dict[str, Any]) -> None:
        if event == "DELETED":
            held.drop(key_of(obj), _version(obj))
        elif event in ("ADDED", "MODIFIED"):
            held.put(_kept(obj))
        else:
            return  # BOOKMARK, or what a newer server may add
        self._changed()
        if self.listener is not None:
            self.listener(event, obj)
