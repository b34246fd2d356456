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
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

import h2.errors
import h2.events
import h2.exceptions
import httpcore2
import httpx2 as httpx
from httpcore2._async import http2

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


class _AnsweredEarly(Exception):
    """The server answered a request before taking all of its body."""


class RepairedHTTP2Connection(http2.AsyncHTTP2Connection):
    """The HTTP library's HTTP/2 connection, with its defects for a shared connection fixed.

    - Reading. In the library, the task that holds the connection's read lock reads from
      the network for every stream, and the others wait for the lock, also those whose
      answer it has just read: once a watch that gets no event holds it, they wait for
      the next event of any watch, minutes at rest. Here the reads run in a task of their
      own while a stream waits, and a stream waiting wakes once its events came.
    - Cancellation. The library shields its reads and writes from cancellation with anyio
      scopes, which do not stop an asyncio task's cancellation. A task cancelled while it
      writes (its TLS record encrypted, not yet sent) or while it hands what it read to
      the HTTP/2 state breaks the connection, with every watch and request on it: here
      reads, writes and the close of a stream run in tasks of their own, which a
      cancelled caller stops waiting for but does not stop.
    - A stream whose response is closed before its end is forgotten without telling the
      server or the HTTP/2 state: every watch stopped and every request cancelled leaves a
      stream counted as open on both sides, and after a hundred the connection takes no
      request more ("Max outbound streams is 100, 100 open"), while the server goes on
      sending a stopped watch's events. Here the stream is reset (RST_STREAM, CANCEL), with
      the connection's next frames (the server takes it before any new stream), and what
      came for it unread is given back to the connection's flow-control window.
    - A server may answer a request before it has read the body, and then reset the
      stream (RFC 9113, 8.1): an API server does so for a path it does not serve (404, an
      API group whose CRD is not installed yet). The library fails such a request with a
      protocol error, or waits for the flow control window until its timeout, instead of
      returning the answer; here the rest of the body is given up and the answer read.

    And a request goes out in one write, its headers and body together (the library
    writes its headers, each piece of its body and its end apart), and a call to write
    that finds nothing to send costs nothing.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reader: asyncio.Task[None] | None = None
        # Who waits for the next read: a stream for its events, None for any read.
        self._waiting: list[tuple[int | None, asyncio.Future[None]]] = []
        self._holding = False  # a request's frames wait for the rest of it

    async def _send_connection_init(self, request: Any) -> None:
        if self._state == http2.HTTPConnectionState.CLOSED:
            # The request that was opening it was cancelled meanwhile, which closes it:
            # the others waiting for it are sent on another.
            raise httpcore2.ConnectionNotAvailable
        await super()._send_connection_init(request)

    async def _receive_stream_event(self, request: Any, stream_id: int) -> Any:
        while not self._events.get(stream_id):
            terminated = self._connection_terminated
            last = None if terminated is None else terminated.last_stream_id
            if last and stream_id > last:
                # The server went away without taking the request: another connection may.
                self._request_count -= 1
                raise httpcore2.ConnectionNotAvailable
            await self._next_read(request, stream_id)
        event = self._events[stream_id].pop(0)
        if isinstance(event, h2.events.StreamReset):
            raise httpcore2.RemoteProtocolError(event)
        return event

    async def _next_read(self, request: Any, stream_id: int | None = None) -> None:
        """Waits until a read from the network brings events for `stream_id` (for None,
        until the next read), or fails; starts the reads unless they are running."""
        waiting = asyncio.get_running_loop().create_future()
        self._waiting.append((stream_id, waiting))
        if self._reader is None or self._reader.done():
            self._reader = _detached(self._read_while_waited(request))
        await waiting

    async def _read_while_waited(self, request: Any) -> None:
        """Reads from the network, and dispatches the events, while a stream waits."""
        while any(not waiting.done() for _, waiting in self._waiting):
            try:
                await self._receive_events(request)
                await self._write_outgoing_data(request)  # window updates, acknowledgements
            except Exception as error:  # for every stream waiting (the connection keeps it)
                for _, waiting in self._waiting:
                    if not waiting.done():
                        waiting.set_exception(error)
                self._waiting.clear()
                return
            still: list[tuple[int | None, asyncio.Future[None]]] = []
            for stream_id, waiting in self._waiting:
                if waiting.done():  # its waiter was cancelled
                    continue
                if (
                    stream_id is None
                    or self._events.get(stream_id)
                    or self._connection_terminated is not None  # it tells what comes next
                ):
                    waiting.set_result(None)
                else:
                    still.append((stream_id, waiting))
            self._waiting = still

    async def _send_request_headers(self, request: Any, stream_id: int) -> None:
        """The headers, written with the body when there is one: a request is one write
        (one TLS record, one system call), not three."""
        self._holding = http2.has_body_headers(request)
        try:
            await super()._send_request_headers(request, stream_id)
        finally:
            self._holding = False

    async def _send_stream_data(self, request: Any, stream_id: int, data: bytes) -> None:
        """The body's frames, written with its end (`_send_end_stream`), before a wait for
        the flow-control window (`_wait_for_outgoing_flow`), or once they fill a frame: a
        large body goes out frame by frame, as in the library, so that a write and its
        TLS buffers stay the size of a frame."""
        position = 0
        while position < len(data):
            flow = await self._wait_for_outgoing_flow(request, stream_id)
            self._h2_state.send_data(stream_id, data[position : position + flow])
            position += flow
            if self._frames_pending(at_least=self._h2_state.max_outbound_frame_size):
                await self._write_outgoing_data(request)

    async def _write_outgoing_data(self, request: Any) -> None:
        if self._holding or not self._frames_pending():
            return  # read-side calls mostly find nothing to send: no task, no write
        await asyncio.shield(_detached(super()._write_outgoing_data(request)))

    def _frames_pending(self, at_least: int = 1) -> bool:
        # h2 keeps the frames to send in a buffer it has no public measure of; without it,
        # every call writes (what the library does).
        pending = getattr(self._h2_state, "_data_to_send", None)
        return pending is None or len(pending) >= at_least

    async def _response_closed(self, stream_id: int) -> None:
        await asyncio.shield(_detached(self._close_stream(stream_id)))

    async def _close_stream(self, stream_id: int) -> None:
        unread = sum(
            event.flow_controlled_length or 0
            for event in self._events.get(stream_id, ())
            if isinstance(event, h2.events.DataReceived)
        )
        with contextlib.suppress(h2.exceptions.ProtocolError):  # the connection is closed
            if unread:
                self._h2_state.acknowledge_received_data(unread, stream_id)
        with contextlib.suppress(h2.exceptions.ProtocolError):  # ended both ways, or closed
            self._h2_state.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.CANCEL)
        await super()._response_closed(stream_id)

    async def _send_request_body(self, request: Any, stream_id: int) -> None:
        try:
            await super()._send_request_body(request, stream_id)
        except (_AnsweredEarly, h2.exceptions.StreamClosedError):
            # Answered, or reset by the server: reading the response tells which.
            return

    async def _wait_for_outgoing_flow(self, request: Any, stream_id: int) -> int:
        """The window to send more of a body: what the library's wait does, which also
        stops once the response has come."""
        while True:
            if self._answered(stream_id):
                raise _AnsweredEarly
            window = self._h2_state.local_flow_control_window(stream_id)
            flow = min(window, self._h2_state.max_outbound_frame_size)
            if flow > 0:
                return flow
            await self._write_outgoing_data(request)  # what the server must read first
            await self._next_read(request)

    def _answered(self, stream_id: int) -> bool:
        return any(
            isinstance(e, h2.events.ResponseReceived) for e in self._events.get(stream_id, ())
        )


def _detached(work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """`work` as a task of its own, whose failure is its waiters' (none, once cancelled:
    the connection keeps the error and raises it at its next use)."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(_retrieved)
    return task


def _retrieved(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


# The library's methods the repair overrides or uses (private: the lock pins the version).
_REPAIRED = (
    "_receive_events",
    "_receive_stream_event",
    "_response_closed",
    "_send_connection_init",
    "_send_end_stream",
    "_send_request_body",
    "_send_request_headers",
    "_send_stream_data",
    "_wait_for_outgoing_flow",
    "_write_outgoing_data",
)


def repair_http2() -> bool:
    """Makes the HTTP library's HTTP/2 connections `RepairedHTTP2Connection`s (in this
    process): its connections take the class from its module when HTTP/2 is negotiated.
    False, and nothing changed, for a version of the library without the methods the
    repair knows: its clients then speak HTTP/1.1."""
    original = http2.AsyncHTTP2Connection
    if not issubclass(original, RepairedHTTP2Connection):
        if not all(callable(getattr(original, name, None)) for name in _REPAIRED):
            return False
        if not callable(getattr(http2, "has_body_headers", None)):
            return False
        http2.AsyncHTTP2Connection = RepairedHTTP2Connection  # type: ignore[misc]
    return True
