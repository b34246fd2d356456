"""A remote's cleanup takes over from its reconcile: it cancels the one in flight and
nothing runs for that remote while the cleanup does."""

from __future__ import annotations

import asyncio

import pytest

from istio_operator.controller.exclusive import Exclusive, Interrupted

KEY = ("istio-system", "remote-a")


@pytest.fixture
def exclusive() -> Exclusive:
    return Exclusive()


async def test_cleanup_interrupts_the_reconcile_in_flight_and_runs_alone(
    exclusive: Exclusive,
) -> None:
    log: list[str] = []
    started = asyncio.Event()

    async def reconcile() -> str:
        log.append("reconcile started")
        started.set()
        await asyncio.Event().wait()  # a phase wait that would last
        log.append("reconcile finished")
        return "done"

    async def cleanup() -> str:
        log.append("cleanup")
        return "clean"

    worker = asyncio.ensure_future(exclusive.run(KEY, reconcile))
    await started.wait()
    assert await exclusive.take_over(KEY, cleanup) == "clean"
    with pytest.raises(Interrupted):
        await worker
    assert log == ["reconcile started", "cleanup"]


async def test_a_reconcile_started_during_cleanup_waits_for_it(exclusive: Exclusive) -> None:
    log: list[str] = []
    release = asyncio.Event()

    async def cleanup() -> None:
        log.append("cleanup started")
        await release.wait()
        log.append("cleanup finished")

    async def reconcile() -> None:
        log.append("reconcile")

    cleaning = asyncio.ensure_future(exclusive.take_over(KEY, cleanup))
    await asyncio.sleep(0)
    later = asyncio.ensure_future(exclusive.run(KEY, reconcile))
    await asyncio.sleep(0)
    assert log == ["cleanup started"]
    release.set()
    await asyncio.gather(cleaning, later)
    assert log == ["cleanup started", "cleanup finished", "reconcile"]


async def test_other_remotes_are_not_blocked(exclusive: Exclusive) -> None:
    hold = asyncio.Event()

    async def stuck() -> None:
        await hold.wait()

    async def quick() -> str:
        return "quick"

    first = asyncio.ensure_future(exclusive.run(KEY, stuck))
    await asyncio.sleep(0)
    assert await asyncio.wait_for(exclusive.run(("istio-system", "remote-b"), quick), 1) == "quick"
    hold.set()
    await first


async def test_cancelling_the_worker_itself_is_not_an_interruption(exclusive: Exclusive) -> None:
    started = asyncio.Event()

    async def reconcile() -> None:
        started.set()
        await asyncio.Event().wait()

    worker = asyncio.ensure_future(exclusive.run(KEY, reconcile))
    await started.wait()
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
