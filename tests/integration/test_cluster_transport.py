"""A cluster's transport against a real API server: its requests and watches share one
HTTP/2 connection, streams closed early are reset (the connection takes requests after
more of them than its stream limit), and idle connections are closed once expired, with
no request to notice them."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import httpx2 as httpx
from lightkube import AsyncClient
from lightkube.config.client_adapter import verify_cluster
from lightkube.resources.core_v1 import Namespace

from istio_operator.kube.client import cluster_transport, config_from_file
from istio_operator.kube.transport import IdleClosingTransport
from istio_operator.localcluster import LocalCluster

EXPIRY_S = 0.3
PATIENCE_S = 30.0
# More than the API server lets a connection hold open at once (100).
EARLY_CLOSES = 130
# Watches stopped at random moments, while writes make events for them.
CHURN_WRITES = 120
CHURN_WATCHES = 20
# Events of some frames each: a watch spends its time reading and acknowledging them.
CHURN_FILLER = 100_000
# More than the window of a stream (256 KiB): the server answers before it is all sent.
LARGE_BODY = b"{" + b" " * 1_000_000 + b"}"
# A ConfigMap value larger than that window, accepted: the body waits for the window.
LARGE_VALUE = 600_000
WRITES_COUNTED = 20


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {PATIENCE_S} s"
        await asyncio.sleep(0.05)


def shared_connection(cluster: LocalCluster) -> tuple[IdleClosingTransport, str]:
    """The operator's transport for the cluster (one HTTP/2 connection), and its server."""
    config = config_from_file(str(cluster.kubeconfig))
    transport = cluster_transport(config)
    assert transport is not None
    single = config.get()
    assert single is not None
    return transport, single.cluster.server


def test_expired_idle_connections_close_at_rest_and_requests_go_on(
    primary_cluster: LocalCluster,
) -> None:
    config = config_from_file(str(primary_cluster.kubeconfig))
    single = config.get()
    assert single is not None and single.user is not None
    transport = IdleClosingTransport(
        verify=verify_cluster(single.cluster, single.user, single.abs_file),
        limits=httpx.Limits(max_keepalive_connections=8, keepalive_expiry=EXPIRY_S),
        sweep_slack_s=0.1,
    )

    async def run() -> None:
        client = AsyncClient(config, transport=transport)
        try:
            # Requests in flight at once open a connection each, idle once answered.
            await asyncio.gather(*(client.get(Namespace, "default") for _ in range(4)))
            assert transport.idle_connections() >= 2
            await until(lambda: transport.idle_connections() == 0, "closed")
            assert not transport.sweep_armed, "a sweep is due with nothing left to close"
            found = await client.get(Namespace, "kube-system")
            assert found.metadata is not None and found.metadata.name == "kube-system"
            assert transport.sweep_armed, "a request arms the next sweep"
        finally:
            await client.close()
        assert not transport.sweep_armed, "a closed client leaves nothing due"

    asyncio.run(run())


def test_requests_and_watches_share_one_connection_early_closes_and_answers(
    primary_cluster: LocalCluster,
) -> None:
    transport, server = shared_connection(primary_cluster)

    async def run() -> None:
        client = httpx.AsyncClient(transport=transport, base_url=server)
        watch = {"watch": "true", "labelSelector": "never-set-by-anyone"}
        try:
            # Watches stopped before their end (no event comes: the server ends none).
            for _ in range(EARLY_CLOSES):
                async with client.stream(
                    "GET", "/api/v1/configmaps", params=watch, timeout=None
                ) as response:
                    assert response.http_version == "HTTP/2"
            # Watches running while requests come and go, then stopped by cancellation.
            started = asyncio.Event()

            async def follow() -> None:
                async with client.stream(
                    "GET", "/api/v1/configmaps", params=watch, timeout=None
                ) as response:
                    started.set()
                    async for _ in response.aiter_bytes():
                        pass

            followers = [asyncio.create_task(follow()) for _ in range(20)]
            await asyncio.wait_for(started.wait(), PATIENCE_S)
            # Answered while every watch waits for an event that does not come.
            answers = await asyncio.wait_for(
                asyncio.gather(
                    *(client.get("/api/v1/namespaces/default") for _ in range(EARLY_CLOSES))
                ),
                PATIENCE_S,
            )
            assert {a.status_code for a in answers} == {200}
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
            # A path not served is answered (404) before the body is taken.
            unserved = "/apis/nothing.example.com/v1/namespaces/default/things"
            for _ in range(3):
                answer = await client.post(
                    unserved, content=LARGE_BODY, headers={"content-type": "application/json"}
                )
                assert answer.status_code == 404
            found = await client.get("/api/v1/namespaces/kube-system", timeout=PATIENCE_S)
            assert found.status_code == 200
            assert len(transport._pool.connections) == 1, "a connection per request"
        finally:
            await client.aclose()

    asyncio.run(run())


def test_watches_cancelled_at_any_moment_leave_the_connection_working(
    primary_cluster: LocalCluster,
) -> None:
    """A watch stopped while it reads, acknowledges an event or writes is cut at any
    point of the shared connection's work; the other streams go on."""
    transport, server = shared_connection(primary_cluster)
    chance = random.Random(7)
    path = "/api/v1/namespaces/default/configmaps"
    watch = {"watch": "true", "labelSelector": "churn"}

    async def run() -> None:
        client = httpx.AsyncClient(transport=transport, base_url=server)

        async def follow() -> None:
            async with client.stream("GET", path, params=watch, timeout=None) as response:
                async for _ in response.aiter_bytes():
                    pass

        async def write(n: int) -> None:
            made = await client.post(
                path,
                json={
                    "metadata": {"name": f"churn-{n}", "labels": {"churn": "yes"}},
                    "data": {"filler": "x" * CHURN_FILLER},
                },
            )
            assert made.status_code == 201, made.text
            gone = await client.delete(f"{path}/churn-{n}")
            assert gone.status_code == 200, gone.text

        followers = [asyncio.create_task(follow()) for _ in range(CHURN_WATCHES)]
        try:
            writes = asyncio.ensure_future(asyncio.gather(*(write(n) for n in range(CHURN_WRITES))))
            while not writes.done():
                await asyncio.sleep(chance.uniform(0, 0.002))
                spot = chance.randrange(CHURN_WATCHES)
                followers[spot].cancel()
                followers[spot] = asyncio.create_task(follow())
            await asyncio.wait_for(writes, PATIENCE_S)
            found = await client.get("/api/v1/namespaces/kube-system", timeout=PATIENCE_S)
            assert found.status_code == 200
            assert len(transport._pool.connections) == 1, "the connection was lost"
        finally:
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
            await client.aclose()

    asyncio.run(run())


def test_a_request_goes_out_in_one_write_and_a_body_larger_than_the_window_flows(
    primary_cluster: LocalCluster,
) -> None:
    transport, server = shared_connection(primary_cluster)
    path = "/api/v1/namespaces/default/configmaps"
    dry_run = {"dryRun": "All"}

    def body(name: str, size: int) -> dict[str, object]:
        return {"metadata": {"name": name}, "data": {"filler": "x" * size}}

    async def run() -> None:
        client = httpx.AsyncClient(transport=transport, base_url=server)
        try:
            assert (await client.get("/api/v1/namespaces/default")).status_code == 200
            (pooled,) = transport._pool.connections
            stream = pooled._connection._network_stream  # type: ignore[attr-defined]
            writes = 0
            write = stream.write

            async def counted(data: bytes, *args: object) -> None:
                nonlocal writes
                writes += 1
                await write(data, *args)

            stream.write = counted
            for n in range(WRITES_COUNTED):
                made = await client.post(path, params=dry_run, json=body(f"one-{n}", 10))
                assert made.status_code == 201, made.text
            # Headers, body and end together; a few frames of the server's may need an
            # answer of their own (settings, pings).
            assert writes <= WRITES_COUNTED + 3, f"{writes} writes for {WRITES_COUNTED} requests"
            large = await client.post(path, params=dry_run, json=body("large", LARGE_VALUE))
            assert large.status_code == 201, large.text
        finally:
            await client.aclose()

    asyncio.run(run())
