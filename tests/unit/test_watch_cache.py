"""`kube.cache.WatchCache`: reads from watch-fed copies, against a source whose lists and
watch events the test controls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from istio_operator.api.keys import ObjectKey
from istio_operator.kube import cache as cache_module
from istio_operator.kube.cache import MAX_NAMED, MAX_WATCHES, WatchCache, selects

OURS = "app.kubernetes.io/managed-by=istio-operator"
SAFETY_S = 10.0  # a bound on waits that end much sooner; never a sleep


def config_map(name: str, version: int, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": "istio-system",
            "resourceVersion": str(version),
            "labels": {"app.kubernetes.io/managed-by": "istio-operator", **labels},
        },
    }


def key(name: str) -> ObjectKey:
    return ObjectKey("v1", "ConfigMap", "istio-system", name)


class Source:
    """Lists what `objects` holds (kinds in `unserved` are not served); each watch reads
    the events the test sends."""

    name = "test"

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = list(objects)
        self.unserved: set[str] = set()
        self.lists = 0
        self.watching: asyncio.Queue[tuple[str, dict[str, Any]] | Exception] = asyncio.Queue()
        self.watches = 0
        self.watched_from: list[str] = []

    async def list_versioned(
        self,
        api_version: str,
        kind: str,
        selector: str | None,
        named: ObjectKey | None = None,
        namespace: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        self.lists += 1
        await asyncio.sleep(0)  # let concurrent readers meet here
        if kind in self.unserved:
            return [], ""
        found = [
            o
            for o in self.objects
            if o["kind"] == kind
            and selects(selector, o["metadata"]["labels"])
            and (named is None or named.name == o["metadata"]["name"])
            and namespace in (None, o["metadata"].get("namespace"))
        ]
        return found, "10"

    async def watch_from(
        self,
        api_version: str,
        kind: str,
        selector: str | None,
        resource_version: str,
        named: ObjectKey | None = None,
        namespace: str | None = None,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        self.watches += 1
        self.watched_from.append(resource_version)
        while True:
            item = await self.watching.get()
            if isinstance(item, Exception):
                raise item
            yield item


async def delivered(cache: WatchCache, source: Source, *events: Any) -> None:
    """Sends the events and waits until the cache's watch took every one."""
    for event in events:
        source.watching.put_nowait(event)
    while not source.watching.empty():
        await cache.changed(SAFETY_S)
    await asyncio.sleep(0)  # the last event is applied in the same step it is taken


async def test_a_query_is_listed_once_then_kept_by_its_watch() -> None:
    source = Source(config_map("a", 5))
    cache = WatchCache(source)
    try:
        assert [o["metadata"]["name"] for o in await cache.read("v1", "ConfigMap", OURS)] == ["a"]
        await delivered(cache, source, ("ADDED", config_map("b", 11)))
        await delivered(cache, source, ("MODIFIED", config_map("a", 12, x="y")))
        found = {o["metadata"]["name"]: o for o in await cache.read("v1", "ConfigMap", OURS)}
        assert set(found) == {"a", "b"} and found["a"]["metadata"]["labels"]["x"] == "y"
        await delivered(cache, source, ("DELETED", config_map("b", 13)))
        assert [o["metadata"]["name"] for o in await cache.read("v1", "ConfigMap", OURS)] == ["a"]
        assert (source.lists, source.watches, cache.watches) == (1, 1, 1)
    finally:
        await cache.close()


async def test_readers_asking_at_once_share_one_list() -> None:
    source = Source(config_map("a", 5))
    cache = WatchCache(source)
    try:
        await asyncio.gather(*(cache.read("v1", "ConfigMap", OURS) for _ in range(5)))
        assert source.lists == 1
    finally:
        await cache.close()


async def test_a_write_is_read_at_once_and_an_older_event_does_not_undo_it() -> None:
    source = Source(config_map("a", 5))
    cache = WatchCache(source)
    try:
        await cache.read("v1", "ConfigMap", OURS)
        cache.wrote(config_map("a", 20, written="yes"))
        await delivered(cache, source, ("MODIFIED", config_map("a", 15)))
        (found,) = await cache.read("v1", "ConfigMap", OURS)
        assert found["metadata"]["labels"]["written"] == "yes"
        # A deletion seen by the watch is not undone by an older answer arriving late.
        await delivered(cache, source, ("DELETED", config_map("a", 30)))
        cache.wrote(config_map("a", 25))
        assert await cache.read("v1", "ConfigMap", OURS) == []
    finally:
        await cache.close()


async def test_an_object_whose_labels_no_longer_match_leaves_the_copy() -> None:
    source = Source(config_map("a", 5, owner="mesh"))
    cache = WatchCache(source)
    try:
        assert len(await cache.read("v1", "ConfigMap", f"{OURS},owner=mesh")) == 1
        await delivered(cache, source, ("MODIFIED", config_map("a", 12, owner="other")))
        assert await cache.read("v1", "ConfigMap", f"{OURS},owner=mesh") == []
    finally:
        await cache.close()


async def test_a_watch_that_ends_makes_the_next_read_list_afresh() -> None:
    source = Source(config_map("a", 5))
    cache = WatchCache(source)
    try:
        await cache.read("v1", "ConfigMap", OURS)
        source.objects.append(config_map("b", 40))
        await delivered(cache, source, ConnectionError("the API server went away"))
        assert cache.watches == 0
        names = {o["metadata"]["name"] for o in await cache.read("v1", "ConfigMap", OURS)}
        assert names == {"a", "b"} and source.lists == 2 and cache.watches == 1
    finally:
        await cache.close()


async def test_a_failing_list_is_the_readers_error_and_nothing_is_kept() -> None:
    class Unreachable(Source):
        async def list_versioned(
            self,
            api_version: str,
            kind: str,
            selector: str | None,
            named: Any = None,
            namespace: str | None = None,
        ) -> tuple[list[dict[str, Any]], str]:
            raise ConnectionError("unreachable")

    cache = WatchCache(Unreachable())
    with pytest.raises(ConnectionError):
        await cache.read("v1", "ConfigMap", OURS)
    assert cache.watches == 0


async def test_get_knows_only_what_a_live_copy_can_tell() -> None:
    source = Source(config_map("a", 5))
    cache = WatchCache(source)
    try:
        assert cache.get(key("a")) == (False, None)  # nothing read yet: ask the server
        await cache.read("v1", "ConfigMap", OURS)
        known, found = cache.get(key("a"))
        assert known and found is not None and found["metadata"]["name"] == "a"
        # Not in a copy of labelled objects: it may exist without the labels.
        assert cache.get(key("unlabelled")) == (False, None)
        await cache.read("v1", "ConfigMap", None)  # every ConfigMap: absence is known
        assert cache.get(key("unlabelled")) == (True, None)
    finally:
        await cache.close()


async def test_a_copy_returns_copies_a_reader_may_change() -> None:
    source = Source(config_map("a", 5))
    cache = WatchCache(source)
    try:
        (first,) = await cache.read("v1", "ConfigMap", OURS)
        first["metadata"]["labels"].clear()
        (again,) = await cache.read("v1", "ConfigMap", OURS)
        assert again["metadata"]["labels"]
    finally:
        await cache.close()


def test_selectors_match_values_and_existence() -> None:
    labels = {"a": "1", "b": "2"}
    assert selects("a=1,b", labels) and selects(None, labels) and selects("", labels)
    assert not selects("a=2", labels) and not selects("c", labels)


async def test_an_object_read_by_name_twice_gets_a_copy_of_its_own() -> None:
    source = Source(config_map("kubeconfig", 5))
    cache = WatchCache(source)
    try:
        assert await cache.fetch(key("kubeconfig")) == (False, None)  # once: a plain GET
        known, found = await cache.fetch(key("kubeconfig"))  # twice: watched from now on
        assert known and found is not None and source.lists == 1
        await delivered(cache, source, ("MODIFIED", config_map("kubeconfig", 12, rotated="1")))
        known, found = await cache.fetch(key("kubeconfig"))
        assert found is not None and found["metadata"]["labels"]["rotated"] == "1"
        assert (source.lists, cache.watches) == (1, 1)
        # One that does not exist is known absent too, without asking again.
        for _ in range(3):
            await cache.fetch(key("missing"))
        assert cache.get(key("missing")) == (True, None) and source.lists == 2
    finally:
        await cache.close()


async def test_a_kind_not_served_is_empty_until_a_crd_is_written() -> None:
    source = Source()
    source.unserved.add("ConfigMap")
    cache = WatchCache(source)
    try:
        for _ in range(3):
            assert await cache.read("v1", "ConfigMap", OURS) == []
        assert source.lists == 1 and cache.watches == 0
        source.unserved.clear()
        source.objects.append(config_map("a", 5))
        crd = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "configmaps.example", "resourceVersion": "7"},
        }
        cache.wrote(crd)
        assert [o["metadata"]["name"] for o in await cache.read("v1", "ConfigMap", OURS)] == ["a"]
        assert source.lists == 2 and cache.watches == 1
    finally:
        await cache.close()


async def test_a_kind_not_served_read_for_all_of_ours_is_never_listed_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cache_module, "ABSENT_RECHECK_S", 0.0)  # any other read lists again
    source = Source()
    source.unserved.add("ConfigMap")
    cache = WatchCache(source, shared_selector=OURS)
    try:
        for _ in range(3):
            assert await cache.read("v1", "ConfigMap", f"{OURS},owner=mesh") == []
        assert (source.lists, cache.watches) == (1, 0)
        await cache.read("v1", "ConfigMap", "app=other")
        await cache.read("v1", "ConfigMap", "app=other")
        assert source.lists == 3, "a read not of all of ours lists again once the time is up"
        # Its CRD installed (by us or anyone), our first object starts the watch from its
        # own version: nothing of ours was there before it.
        source.unserved.clear()
        cache.wrote(config_map("a", 42, owner="mesh"))
        await asyncio.sleep(0)  # the watch's task takes its first step
        assert (source.watched_from, cache.watches) == (["42"], 1)
        await delivered(cache, source, ("ADDED", config_map("b", 43, owner="mesh")))
        found = await cache.read("v1", "ConfigMap", f"{OURS},owner=mesh")
        assert sorted(o["metadata"]["name"] for o in found) == ["a", "b"]
        assert source.lists == 3
    finally:
        await cache.close()


async def test_a_copy_of_the_whole_kind_is_the_only_one_watched() -> None:
    source = Source(config_map("a", 5, owner="mesh"), config_map("b", 6))
    source.objects[1]["metadata"]["labels"] = {"app": "theirs"}
    cache = WatchCache(source, shared_selector=OURS)
    try:
        assert len(await cache.read("v1", "ConfigMap", OURS)) == 1
        await cache.read("v1", "ConfigMap", OURS, namespace="istio-system")
        assert cache.watches == 2
        everything = await cache.read("v1", "ConfigMap", None)
        assert sorted(o["metadata"]["name"] for o in everything) == ["a", "b"]
        assert cache.watches == 1, "the whole kind's copy answers the others' reads"
        await delivered(cache, source, ("ADDED", config_map("c", 7, owner="mesh")))
        found = await cache.read("v1", "ConfigMap", OURS)
        assert sorted(o["metadata"]["name"] for o in found) == ["a", "c"]
        assert source.lists == 3
        # A quiet copy of ours does not start a watch of its own at our write either.
        await cache.read("v1", "Secret", OURS)
        await cache.read("v1", "Secret", None)
        assert cache.watches == 2
        cache.wrote(config_map("s", 12) | {"kind": "Secret"})
        assert cache.watches == 2
        assert [o["metadata"]["name"] for o in await cache.read("v1", "Secret", OURS)] == ["s"]
    finally:
        await cache.close()


async def test_a_change_after_the_mark_is_not_missed_by_a_later_wait() -> None:
    source = Source(config_map("a", 5))
    cache = WatchCache(source)
    try:
        await cache.read("v1", "ConfigMap", OURS)
        mark = cache.mark()
        # The change comes while the waiter still reads, before it waits.
        await delivered(cache, source, ("MODIFIED", config_map("a", 6)))
        waited = asyncio.get_running_loop().time()
        await cache.changed(SAFETY_S, since=mark)
        assert asyncio.get_running_loop().time() - waited < SAFETY_S / 2
        assert cache.mark() is not mark  # a new mark waits for the next change
    finally:
        await cache.close()


async def test_objects_watched_by_name_are_bounded_the_least_lately_read_go_first() -> None:
    names = [f"event-{i}" for i in range(MAX_NAMED + 2)]
    source = Source(*(config_map(name, 5) for name in names))
    cache = WatchCache(source)
    try:
        for name in names:
            for _ in range(2):
                await cache.fetch(key(name))
            if name == names[0]:
                keep = key(name)
            await cache.fetch(keep)  # read often: kept
        assert cache.watches == MAX_NAMED
        assert cache.get(keep)[0] and not cache.get(key(names[1]))[0]
    finally:
        await cache.close()


async def test_reads_of_the_operators_objects_share_one_copy_per_kind() -> None:
    source = Source(config_map("a", 5, owner="mesh"), config_map("b", 6, owner="other"))
    cache = WatchCache(source, shared_selector=OURS)
    try:
        mesh = await cache.read("v1", "ConfigMap", f"{OURS},owner=mesh")
        other = await cache.read("v1", "ConfigMap", f"{OURS},owner=other")
        everything = await cache.read("v1", "ConfigMap", OURS)
        assert [o["metadata"]["name"] for o in mesh] == ["a"]
        assert [o["metadata"]["name"] for o in other] == ["b"]
        assert len(everything) == 2 and (source.lists, cache.watches) == (1, 1)
    finally:
        await cache.close()


async def test_past_the_watch_bound_a_copy_serves_its_read_unwatched() -> None:
    names = [f"cm-{i}" for i in range(MAX_WATCHES + 1)]
    source = Source(*(config_map(name, 5, id=name) for name in names))
    cache = WatchCache(source)
    try:
        for name in names:
            assert len(await cache.read("v1", "ConfigMap", f"id={name}")) == 1
        assert cache.watches == MAX_WATCHES
        lists = source.lists
        assert len(await cache.read("v1", "ConfigMap", f"id={names[-1]}")) == 1
        assert source.lists == lists + 1  # not kept: read again
    finally:
        await cache.close()


async def test_an_event_read_by_name_again_stays_a_request() -> None:
    event = ObjectKey("v1", "Event", "istio-system", "mesh.0123")
    cache = WatchCache(Source())
    for _ in range(3):
        assert await cache.fetch(event) == (False, None)
    assert cache.watches == 0


async def test_a_namespace_read_keeps_that_namespace_alone() -> None:
    elsewhere = config_map("x", 7)
    elsewhere["metadata"]["namespace"] = "default"
    source = Source(config_map("a", 5), elsewhere)
    cache = WatchCache(source)
    try:
        found = await cache.read("v1", "ConfigMap", None, "istio-system")
        assert [o["metadata"]["name"] for o in found] == ["a"]
        assert cache.get(key("b")) == (True, None), "the namespace's copy knows b is absent"
        assert not cache.get(ObjectKey("v1", "ConfigMap", "default", "x"))[0]
        moved = config_map("y", 8)
        moved["metadata"]["namespace"] = "default"
        await delivered(cache, source, ("ADDED", moved), ("ADDED", config_map("b", 9)))
        found = await cache.read("v1", "ConfigMap", None, "istio-system")
        assert sorted(o["metadata"]["name"] for o in found) == ["a", "b"]
        assert (source.lists, cache.watches) == (1, 1)
    finally:
        await cache.close()


async def test_a_copy_keeps_who_manages_an_object_not_the_fields() -> None:
    managed = config_map("a", 5)
    managed["metadata"]["managedFields"] = [
        {"manager": "istio-operator", "operation": "Apply", "fieldsV1": {"f:data": {}}}
    ]
    cache = WatchCache(Source(managed))
    try:
        (found,) = await cache.read("v1", "ConfigMap", OURS)
        assert found["metadata"]["managedFields"] == [
            {"manager": "istio-operator", "operation": "Apply"}
        ]
    finally:
        await cache.close()


async def test_a_read_before_our_own_creation_does_not_count_towards_a_copy() -> None:
    source = Source()
    cache = WatchCache(source, shared_selector=OURS)
    try:
        await cache.read("v1", "ConfigMap", OURS)  # the shared copy of our ConfigMaps
        assert await cache.fetch(key("a")) == (False, None)  # a GET before creating it
        cache.wrote(config_map("a", 7))
        cache.deleted(key("a"))  # its owner went; it is made again later
        assert await cache.fetch(key("a")) == (False, None), "a first read again"
        assert (source.lists, cache.watches) == (1, 1), "no copy of its own"
    finally:
        await cache.close()


async def test_a_kind_holding_none_of_ours_is_not_watched_until_we_write_one() -> None:
    theirs = config_map("theirs", 5)
    theirs["metadata"]["labels"] = {"app": "theirs"}
    source = Source(theirs)
    cache = WatchCache(source, shared_selector=OURS)
    try:
        for _ in range(3):
            assert await cache.read("v1", "ConfigMap", f"{OURS},owner=mesh") == []
        assert (source.lists, source.watches, cache.watches) == (1, 0, 0)
        assert not cache.get(key("a"))[0]  # a labelled copy does not know of others
        cache.wrote(config_map("a", 12, owner="mesh"))
        await asyncio.sleep(0)  # the watch's task takes its first step
        # Watched from the empty list's version: nothing made since is missed.
        assert (source.watched_from, cache.watches) == (["10"], 1)
        await delivered(cache, source, ("ADDED", config_map("b", 13, owner="mesh")))
        found = await cache.read("v1", "ConfigMap", f"{OURS},owner=mesh")
        assert sorted(o["metadata"]["name"] for o in found) == ["a", "b"]
        assert source.lists == 1
    finally:
        await cache.close()


async def test_only_reads_of_all_of_ours_stay_unwatched_when_empty() -> None:
    source = Source()
    cache = WatchCache(source, shared_selector=OURS)
    try:
        await cache.read("v1", "ConfigMap", "app=other")
        await cache.read("v1", "ConfigMap", OURS, namespace="istio-system")
        assert cache.watches == 2
        await cache.read("v1", "Secret", OURS)
        cache.wrote({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}})
        assert cache.watches == 2  # a write not of ours (no labels) wakes no quiet copy
        cache.wrote(config_map("a", 12) | {"kind": "Secret"})
        assert cache.watches == 3
    finally:
        await cache.close()


async def test_an_object_read_by_name_loses_its_own_copy_once_another_holds_it() -> None:
    source = Source(config_map("kubeconfig", 5))
    cache = WatchCache(source)
    try:
        for _ in range(2):
            await cache.fetch(key("kubeconfig"))
        assert cache.watches == 1  # a copy of its own
        source.objects = [config_map("kubeconfig", 6, **{"istio/multiCluster": "true"})]
        await delivered(cache, source, ("MODIFIED", source.objects[0]))
        assert len(await cache.read("v1", "ConfigMap", "istio/multiCluster=true")) == 1
        lists = source.lists
        known, found = await cache.fetch(key("kubeconfig"))
        assert known and found is not None and found["metadata"]["resourceVersion"] == "6"
        await asyncio.sleep(0)  # the dropped copy's watch takes its cancellation
        assert cache.watches == 1  # the labelled copy's alone
        assert (await cache.fetch(key("kubeconfig")))[0] and source.lists == lists
    finally:
        await cache.close()


async def test_an_object_we_label_into_another_copy_loses_its_own_at_once() -> None:
    source = Source(config_map("kubeconfig", 5))
    cache = WatchCache(source)
    try:
        await cache.read("v1", "ConfigMap", "istio/multiCluster=true")
        for _ in range(2):
            await cache.fetch(key("kubeconfig"))
        assert cache.watches == 2
        cache.wrote(config_map("kubeconfig", 6, **{"istio/multiCluster": "true"}))
        assert cache.watches == 1 and cache.get(key("kubeconfig"))[0]
    finally:
        await cache.close()
