"""Which HTTP/2 connection the clients get: the repaired one, or HTTP/1.1 when the
library is not the one the repair knows."""

from __future__ import annotations

import pytest
from httpcore2._async import http2

from istio_operator.kube.transport import RepairedHTTP2Connection, repair_http2


def test_the_library_http2_connection_is_replaced_once() -> None:
    assert repair_http2()
    assert http2.AsyncHTTP2Connection is RepairedHTTP2Connection
    assert repair_http2(), "a second call keeps the repair"
    assert http2.AsyncHTTP2Connection is RepairedHTTP2Connection


def test_a_library_without_the_methods_repaired_is_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Unknown:
        async def handle_async_request(self) -> None: ...

    monkeypatch.setattr(http2, "AsyncHTTP2Connection", Unknown)
    assert not repair_http2(), "an unknown version must fall back to HTTP/1.1"
    assert vars(http2)["AsyncHTTP2Connection"] is Unknown
