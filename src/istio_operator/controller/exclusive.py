"""One task at a time per remote cluster: its reconcile, or its cleanup.

A cleanup takes over: it cancels the reconcile in flight and waits for it to end
before it starts, and a reconcile that starts later finds the resource deleted
(the worker checks under the same lock). So nothing a cleanup removed is applied
again, and no client is closed under a request in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from istio_operator.controller.triggers import Key

T = TypeVar("T")


class Interrupted(Exception):
    """The work was cancelled because a cleanup took over."""


class Exclusive:
    def __init__(self) -> None:
        self._locks: dict[Key, asyncio.Lock] = {}
        self._running: dict[Key, asyncio.Future[Any]] = {}

    def _lock(self, key: Key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def run(self, key: Key, work: Callable[[], Awaitable[T]]) -> T:
        """Runs `work` alone for `key`; raises Interrupted if a cleanup cancelled it."""

        async def locked() -> T:
            async with self._lock(key):
                return await work()

        task = asyncio.ensure_future(locked())
        self._running[key] = task
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being cancelled ourselves (the operator stops)
            raise Interrupted(f"{key[0]}/{key[1]}: interrupted by its cleanup") from None
        finally:
            if self._running.get(key) is task:
                del self._running[key]

    async def take_over(self, key: Key, work: Callable[[], Awaitable[T]]) -> T:
        """Cancels the work in flight for `key`, waits for it, then runs `work` alone."""
        running = self._running.get(key)
        if running is not None and not running.done():
            running.cancel()
            await asyncio.wait([running])
        async with self._lock(key):
            return await work()
