"""The HTTP transport of a cluster's client: idle connections closed once they expire.

The HTTP library looks at its idle connections only when the next request comes. An
operator at rest makes no request (its watches feed its copies), so every connection a busy
pass opened would stay open for as long as the rest lasts: with ten remotes about a hundred
TLS connections, some megabytes of the operator's memory and a socket each on the API
servers. This transport closes them once they have been idle for the keep-alive period, as
the library would at the next request, and gives the memory they held back to the system.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx2 as httpx

from istio_operator.kube.memory import release_free_memory

logger = logging.getLogger(__name__)

# How long after an idle connection's expiry it is closed: a sweep per connection expiring
# would wake the loop for every one; one a little later closes those of a whole pass.
SWEEP_SLACK_S = 5.0


class IdleClosingTransport(httpx.AsyncHTTPTransport):
    """An `AsyncHTTPTransport` whose idle connections are closed `sweep_slack_s` after they
    have been idle for `keepalive_expiry`, with no request needed to notice them (none are
    with no expiry).

    A sweep is armed by a request, and due that long after the last one; again while idle
    connections remain: at rest, once they are closed, nothing wakes."""

    def __init__(
        self, *, limits: httpx.Limits, sweep_slack_s: float = SWEEP_SLACK_S, **options: Any
    ) -> None:
        super().__init__(limits=limits, **options)
        expiry = limits.keepalive_expiry
        self._sweep_after = None if expiry is None else expiry + sweep_slack_s
        self._sweep_slack_s = sweep_slack_s
        self._last_request = 0.0
        self._sweep: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        loop = asyncio.get_running_loop()
        self._last_request = loop.time()
        if self._sweep is None and self._sweep_after is not None:
            self._sweep = loop.call_later(self._sweep_after, self._sweep_due)
        return await super().handle_async_request(request)

    async def aclose(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        await super().aclose()

    def _sweep_due(self) -> None:
        """Closes what has expired, or waits until what the last request used may have."""
        assert self._sweep_after is not None
        self._sweep = None
        loop = asyncio.get_running_loop()
        wait = self._last_request + self._sweep_after - loop.time()
        if wait > 0:
            self._sweep = loop.call_later(wait, self._sweep_due)
        elif self._closing is None or self._closing.done():
            self._closing = loop.create_task(self.close_expired())

    async def close_expired(self) -> None:
        """Closes the idle connections past their keep-alive. A request that took one of
        them a moment before is not lost: the library sends it on another connection when
        the one it was given is closed before use."""
        idle = _idle(self)
        expired = [c for c in idle if c.has_expired()]
        for connection in expired:
            try:
                await connection.aclose()
            except Exception as error:  # a socket already gone: closed is what we want
                logger.debug("closing an idle connection failed: %s", error)
        if len(expired) < len(idle) and self._sweep is None and self._sweep_after is not None:
            # Some answered long after their request began: look again a little later.
            loop = asyncio.get_running_loop()
            self._sweep = loop.call_later(self._sweep_slack_s, self._sweep_due)
        if expired:
            release_free_memory()

    @property
    def sweep_armed(self) -> bool:
        """Whether a sweep is due (none is while nothing idle is left to close)."""
        return self._sweep is not None

    def idle_connections(self) -> int:
        """How many open connections carry no request."""
        return len(_idle(self))


def _idle(transport: httpx.AsyncHTTPTransport) -> list[Any]:
    # The pool is the library's (its attribute private, its `connections` public): without
    # one (a future version), nothing is swept and connections close as the library does.
    pool = getattr(transport, "_pool", None)
    return [c for c in getattr(pool, "connections", ()) if c.is_idle() and not c.is_closed()]
