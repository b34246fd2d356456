"""Reconcile requests, coalesced: one event per owning resource.

Every trigger (a change of the resource, of an owned object on any cluster, a
namespace appearing, the resync timer) only sets the owner's event; the
owner's single worker clears it and reconciles, so a burst costs one reconcile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from istio_operator.api.labels import OWNER_NAME, OWNER_NAMESPACE

Key = tuple[str, str]  # (namespace, name) of the worker's resource (Istio or RemoteIstio)


class Triggers:
    def __init__(self) -> None:
        self._events: dict[Key, asyncio.Event] = {}

    def event_for(self, key: Key) -> asyncio.Event:
        return self._events.setdefault(key, asyncio.Event())

    def forget(self, key: Key) -> None:
        self._events.pop(key, None)

    def fire(self, key: Key) -> None:
        event = self._events.get(key)
        if event is not None:
            event.set()

    def fire_all(self) -> None:
        for event in self._events.values():
            event.set()

    def fire_namespace(self, namespace: str) -> None:
        """Every Istio resource of the namespace (the mesh a RemoteIstio belongs to)."""
        for (ns, _), event in self._events.items():
            if ns == namespace:
                event.set()

    def fire_owner_of(self, labels: Mapping[str, str]) -> None:
        name, namespace = labels.get(OWNER_NAME), labels.get(OWNER_NAMESPACE)
        if name and namespace:
            self.fire((namespace, name))
