"""Idle connections to a real API server are closed once expired, with no request to
notice them, and the client goes on working after."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx2 as httpx
from lightkube import AsyncClient
from lightkube.config.client_adapter import verify_cluster
from lightkube.resources.core_v1 import Namespace

from istio_operator.kube.client import config_from_file
from istio_operator.kube.transport import IdleClosingTransport
from istio_operator.localcluster import LocalCluster

EXPIRY_S = 0.3
PATIENCE_S = 30.0


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {PATIENCE_S} s"
        await asyncio.sleep(0.05)


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
