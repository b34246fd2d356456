"""The HTTP transport of a cluster's client: HTTP/2, idle connections closed once they expire.

A cluster's watches and requests share one HTTP/2 connection, as kubectl's do. Over
HTTP/1.1 each watch held a TLS connection of its own: about 110 KiB of the operator's
memory (a stream takes about 37 KiB) and a socket on the API server, for each of the
hundred-odd watches of ten remotes. Streams closed before their end (a watch stopped, a
request cancelled) are reset, and an answer that comes before the whole request was sent
is read: see `RepairedHTTP2Connection`.

The HTTP library looks at its idle connections only when the next request comes. An
operator at rest makes no request (its watches feed its copies), so a connection a busy
pass opened besides the shared one (over HTTP/1.1, one per request in flight) would stay
open for as long as the rest lasts. This transport closes them once they have been idle
for the keep-alive period, as the library would at the next request, and gives the memory
they held back to the system.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import h2.errors
import h2.events
import h2.exceptions
import httpx2 as httpx
from httpcore2._async import http2

from istio_operator.kube.memory import release_free_memory

logger = logging.getLogger(__name__)
# How long the reset of a stream may take to be written before the connection is left to
# the next request's write (which sends it too).
RESET_WRITE_TIMEOUT_S = 5.0

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


class _AnsweredEarly(Exception):
    """The server answered a request before taking all of its body."""


class RepairedHTTP2Connection(http2.AsyncHTTP2Connection):
    """The HTTP library's HTTP/2 connection, with two of its defects fixed.

    - A stream whose response is closed before its end is forgotten without telling the
      server or the HTTP/2 state: every watch stopped and every request cancelled leaves a
      stream counted as open on both sides, and after a hundred the connection takes no
      request more ("Max outbound streams is 100, 100 open"), while the server goes on
      sending a stopped watch's events. Here the stream is reset (RST_STREAM, CANCEL), and
      the frame written at once by a task of its own: the close runs shielded from
      cancellation, where waiting for the write lock could deadlock with its holder.
    - A server may answer a request before it has read the body, and then reset the
      stream (RFC 9113, 8.1): an API server does so for a path it does not serve (404, an
      API group whose CRD is not installed yet). The library fails such a request with a
      protocol error, or waits for the flow control window until its timeout, instead of
      returning the answer; here the rest of the body is given up and the answer read.
    """

    # The resets being written (a task is dropped once done, not while it runs).
    _flushes: ClassVar[set[asyncio.Task[None]]] = set()

    async def _response_closed(self, stream_id: int) -> None:
        reset = self._reset_if_open(stream_id)
        await super()._response_closed(stream_id)
        if reset:
            flush = asyncio.get_running_loop().create_task(self._write_reset())
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)

    def _reset_if_open(self, stream_id: int) -> bool:
        try:
            self._h2_state.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.CANCEL)
        except h2.exceptions.ProtocolError:  # ended on both sides, or the connection closed
            return False
        return True

    async def _write_reset(self) -> None:
        try:
            async with self._write_lock:
                data = self._h2_state.data_to_send()
                if data:
                    await self._network_stream.write(data, RESET_WRITE_TIMEOUT_S)
        except Exception as error:  # a connection going away: its streams go with it
            logger.debug("writing a stream's reset failed: %s", error)

    async def _send_request_body(self, request: Any, stream_id: int) -> None:
        try:
            await super()._send_request_body(request, stream_id)
        except (_AnsweredEarly, h2.exceptions.StreamClosedError):
            # Answered, or reset by the server: reading the response tells which.
            return

    async def _wait_for_outgoing_flow(self, request: Any, stream_id: int) -> int:
        """The library's wait for the window to send more of a body, which also stops
        once the response has come."""
        while True:
            if self._answered(stream_id):
                raise _AnsweredEarly
            window = self._h2_state.local_flow_control_window(stream_id)
            flow = min(window, self._h2_state.max_outbound_frame_size)
            if flow > 0:
                return flow
            async with self._read_lock:
                if self._answered(stream_id):
                    continue
                if self._h2_state.local_flow_control_window(stream_id) > 0:
                    continue
                await self._receive_events(request)
            await self._write_outgoing_data(request)

    def _answered(self, stream_id: int) -> bool:
        return any(
            isinstance(e, h2.events.ResponseReceived) for e in self._events.get(stream_id, ())
        )


def repair_http2() -> None:
    """Makes the HTTP library's HTTP/2 connections `RepairedHTTP2Connection`s (in this
    process): its connections take the class from its module when HTTP/2 is negotiated."""
    http2.AsyncHTTP2Connection = RepairedHTTP2Connection  # type: ignore[misc]
