"""`kube.cache.WatchCache`: reads from watch-fed copies, against a source whose lists and
watch events the test controls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from istio_operator.api.keys import ObjectKey
from istio_operator.kube.cache import WatchCache, selects

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
    """Lists what `objects` holds; each watch reads the events the test sends."""

    name = "test"

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = list(objects)
        self.lists = 0
        self.watching: asyncio.Queue[tuple[str, dict[str, Any]] | Exception] = asyncio.Queue()
        self.watches = 0

    async def list_versioned(
        self, api_version: str, kind: str, selector: str | None
    ) -> tuple[list[dict[str, Any]], str]:
        self.lists += 1
        await asyncio.sleep(0)  # let concurrent readers meet here
        labels = [o["metadata"]["labels"] for o in self.objects]
        found = [o for o, lab in zip(self.objects, labels, strict=True) if selects(selector, lab)]
        return found, "10"

    async def watch_from(
        self, api_version: str, kind: str, selector: str | None, resource_version: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        self.watches += 1
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
        async def list_versioned(self, *_: Any) -> tuple[list[dict[str, Any]], str]:
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
