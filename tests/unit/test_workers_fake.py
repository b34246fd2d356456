"""The workers against in-memory clusters (`tests/fakes.py`), without kopf: a primary's
reconcile to Available and its silence at rest, one remote's outage isolated from
another's reconcile, the backoff, and Events posted once per change of state."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from istio_operator.api.keys import ObjectKey
from istio_operator.api.labels import API_VERSION
from istio_operator.controller import reporting
from istio_operator.controller.exclusive import Exclusive
from istio_operator.controller.reporting import StatusWriter
from istio_operator.controller.triggers import Triggers
from istio_operator.controller.workers import (
    MAX_BACKOFF_S,
    REQUEUE_WHILE_ROLLING_S,
    RETRY_AFTER_ERROR_S,
    Backoff,
    IstioWorker,
    RemoteWorker,
    RunConfig,
    Shared,
)
from istio_operator.kube.events import record_event
from istio_operator.reconcile.status import Observation, State
from tests.fakes import FakeCluster, FakeRemoteClients

from .render_support import NAMESPACE, SAMPLE_REMOTE, sample_body

LOG = logging.getLogger("tests.workers")
# `status.Status` as the reference spells it (what the API server stores).
AVAILABLE, RECONCILING, FAILED, UNREACHABLE = (
    "Available",
    "Reconciling",
    "ReconcileFailed",
    "Unreachable",
)
RESYNC_S = 300.0
SAFETY_S = 10.0  # a bound on condition waits that must end much sooner; never a sleep
ISTIO = "istio-sample"
ISTIO_KEY = ObjectKey(API_VERSION, "Istio", NAMESPACE, ISTIO)


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str, str]]]:
    """The Events the workers post, as (type, reason, message); each is still written to
    its cluster, as the operator writes it."""
    posted: list[tuple[str, str, str]] = []

    async def recorded(
        cluster: Any, involved: Any, type_: str, reason: str, message: str
    ) -> dict[str, Any]:
        posted.append((type_, reason, message))
        return await record_event(cluster, involved, type_, reason, message)

    monkeypatch.setattr(reporting, "record_event", recorded)
    yield posted


# `Shared.primary` and `StatusWriter`'s primary are typed `kube.client.Cluster` (the kopf
# handlers use more of it); the workers and the writer, which these tests drive, use only
# its `kube.protocol.ClusterAccess` part, which `FakeCluster` implements.


def shared(primary: FakeCluster, remotes: dict[str, FakeCluster] | None = None) -> Shared:
    return Shared(
        primary=primary,  # type: ignore[arg-type]  # a ClusterAccess (see above)
        remotes=FakeRemoteClients(remotes or {}),
        exclusive=Exclusive(),
        istio_triggers=Triggers(),
        remote_triggers=Triggers(),
        config=RunConfig(resync_period=RESYNC_S, phase_timeout=0),
    )


def with_istio(primary: FakeCluster, **status: Any) -> dict[str, Any]:
    body = sample_body("1.3.0")
    body["metadata"].update(creationTimestamp="2024-01-01T00:00:00Z")
    if status:
        body["status"] = status
    return primary.put(body)


def observation(state: str, reason: str = "", **fields: Any) -> Observation:
    return Observation(generation=1, state=State(state), reason=reason or state, **fields)


# -- Backoff -----------------------------------------------------------------------------------


def test_backoff_doubles_while_failing_up_to_its_cap() -> None:
    backoff = Backoff()
    waits = [backoff.after(observation(FAILED, "Error"), resync=1000) for _ in range(8)]
    assert waits == [5.0, 10.0, 20.0, 40.0, 80.0, MAX_BACKOFF_S, MAX_BACKOFF_S, MAX_BACKOFF_S]
    assert waits[0] == RETRY_AFTER_ERROR_S


def test_backoff_never_waits_longer_than_the_resync_period() -> None:
    backoff = Backoff()
    waits = [backoff.after(observation(UNREACHABLE), resync=30) for _ in range(4)]
    assert waits == [5.0, 10.0, 20.0, 30.0]


def test_backoff_is_reset_by_a_success_or_a_rollout_in_progress() -> None:
    backoff = Backoff()
    for _ in range(3):
        backoff.after(observation(FAILED, "Error"), resync=RESYNC_S)
    assert backoff.after(observation(AVAILABLE), resync=RESYNC_S) == RESYNC_S
    assert backoff.after(observation(FAILED, "Error"), resync=RESYNC_S) == RETRY_AFTER_ERROR_S
    backoff.after(observation(FAILED, "Error"), resync=RESYNC_S)
    assert backoff.after(observation(RECONCILING), resync=RESYNC_S) == REQUEUE_WHILE_ROLLING_S
    assert backoff.after(observation(FAILED, "Error"), resync=RESYNC_S) == RETRY_AFTER_ERROR_S


# -- Events: one per change of state -----------------------------------------------------------


def status_writer(primary: FakeCluster) -> StatusWriter:
    return StatusWriter(primary, LOG)  # type: ignore[arg-type]  # a ClusterAccess (see above)


def istio_and_writer() -> tuple[FakeCluster, dict[str, Any], StatusWriter]:
    """A primary with the Istio, its body, and a status writer for it."""
    primary = FakeCluster("primary")
    return primary, with_istio(primary), status_writer(primary)


async def test_an_unchanged_state_writes_no_status_and_posts_no_second_event(
    events: list[tuple[str, str, str]],
) -> None:
    primary, body, writer = istio_and_writer()
    available = observation(AVAILABLE, version="1.3.0", ready=True)

    assert await writer.report(ISTIO_KEY, body, available)
    assert not await writer.report(ISTIO_KEY, body, available)  # the body is not updated yet
    # A restarted operator's writer, reading the status the first one wrote.
    restarted = status_writer(primary)
    assert not await restarted.report(ISTIO_KEY, await primary.get(ISTIO_KEY) or {}, available)

    assert [key for key in primary.written() if key.kind != "Event"] == [ISTIO_KEY]
    assert events == [("Normal", AVAILABLE, "Available at 1.3.0")]


async def test_a_status_change_within_one_state_posts_no_event_a_new_state_does(
    events: list[tuple[str, str, str]],
) -> None:
    primary, body, writer = istio_and_writer()

    def waiting(*what: str) -> Observation:
        return observation(RECONCILING, "RolloutInProgress", phase="pilot", waiting_for=what)

    await writer.report(ISTIO_KEY, body, waiting("Deployment istio-pilot: 0/1 available"))
    await writer.report(ISTIO_KEY, body, waiting("Deployment istio-pilot: 0/2 available"))
    failed = observation(FAILED, "Refused", message="the API server refuses the change")
    await writer.report(ISTIO_KEY, body, failed)
    await writer.report(ISTIO_KEY, body, failed)

    assert len(primary.written("patch-status")) == 3
    assert [(kind, reason) for kind, reason, _ in events] == [
        ("Normal", "RolloutInProgress"),
        ("Warning", "Refused"),
    ]


# -- the primary's worker ----------------------------------------------------------------------


async def test_the_primary_worker_rolls_out_to_available_then_is_silent_at_rest(
    events: list[tuple[str, str, str]],
) -> None:
    primary = FakeCluster("primary")
    body = with_istio(primary)
    worker = IstioWorker(shared(primary), (NAMESPACE, ISTIO), LOG)

    assert await worker.run_once(body, []) == RESYNC_S
    status = (await primary.get(ISTIO_KEY) or {})["status"]
    assert (status["Status"], status["version"]) == (AVAILABLE, "1.3.0")
    assert events[-1] == ("Normal", AVAILABLE, "Available at 1.3.0")
    audited, posted = len(primary.audit), len(events)

    # The next pass, as the watch delivers the resource with the status just written.
    assert await worker.run_once(await primary.get(ISTIO_KEY) or {}, []) == RESYNC_S

    assert primary.audit[audited:] == []
    assert events[posted:] == []


async def test_the_primary_worker_reports_the_phase_it_waits_for(
    events: list[tuple[str, str, str]],
) -> None:
    primary = FakeCluster("primary")
    body = with_istio(primary)
    pilot = ObjectKey("apps/v1", "Deployment", NAMESPACE, "istio-pilot")
    mixer = ObjectKey("apps/v1", "Deployment", NAMESPACE, "istio-policy")
    primary.set_available(pilot, False)
    worker = IstioWorker(shared(primary), (NAMESPACE, ISTIO), LOG)

    assert await worker.run_once(body, []) == REQUEUE_WHILE_ROLLING_S
    status = (await primary.get(ISTIO_KEY) or {})["status"]
    assert (status["Status"], status["phase"]) == (RECONCILING, "pilot")
    assert status["waitingFor"] == [f"{pilot}: new generation not yet observed"]
    assert pilot in primary.objects and mixer not in primary.objects

    primary.set_available(pilot, True)
    assert await worker.run_once(await primary.get(ISTIO_KEY) or {}, []) == RESYNC_S
    assert mixer in primary.objects
    assert (await primary.get(ISTIO_KEY) or {})["status"]["Status"] == AVAILABLE


# -- remotes: each alone -----------------------------------------------------------------------


def mesh_with_remotes(names: list[str]) -> tuple[FakeCluster, dict[str, FakeCluster]]:
    """A primary whose Istio is available, and one RemoteIstio (with its kubeconfig Secret)
    and one cluster per name."""
    primary = FakeCluster("primary")
    with_istio(primary, Status=AVAILABLE, observedGeneration=1)
    primary.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "istio-ca-secret", "namespace": NAMESPACE},
            "data": {"ca-cert.pem": "Y2E=", "ca-key.pem": "a2V5"},
        }
    )
    for index, name in enumerate(names):
        remote = copy.deepcopy(SAMPLE_REMOTE)
        remote["metadata"].update(name=name, creationTimestamp=f"2024-01-0{index + 2}T00:00:00Z")
        primary.put(remote)
        secret = {"name": name, "namespace": NAMESPACE}
        primary.put({"apiVersion": "v1", "kind": "Secret", "metadata": secret, "data": {name: ""}})
    return primary, {name: FakeCluster(name) for name in names}


def remote_worker(mesh: Shared, primary: FakeCluster, name: str) -> RemoteWorker:
    body = primary.objects[ObjectKey(API_VERSION, "RemoteIstio", NAMESPACE, name)]
    return RemoteWorker(mesh, (NAMESPACE, name), copy.deepcopy(body), LOG)


def remote_status(primary: FakeCluster, name: str) -> dict[str, Any]:
    key = ObjectKey(API_VERSION, "RemoteIstio", NAMESPACE, name)
    return dict(primary.objects[key].get("status") or {})


def deployments(cluster: FakeCluster) -> set[str]:
    return {k.name for k in cluster.objects if k.kind == "Deployment"}


async def test_an_unreachable_remote_does_not_stop_another_remotes_reconcile(
    events: list[tuple[str, str, str]],
) -> None:
    primary, clusters = mesh_with_remotes(["remote-a", "remote-b"])
    clusters["remote-a"].unreachable = True
    mesh = shared(primary, clusters)
    a, b = (remote_worker(mesh, primary, name) for name in ("remote-a", "remote-b"))

    waits = await asyncio.gather(a.run_once(ISTIO), b.run_once(ISTIO))

    assert list(waits) == [RETRY_AFTER_ERROR_S, RESYNC_S]  # a list, typed as a tuple
    assert remote_status(primary, "remote-a")["Status"] == UNREACHABLE
    assert "remote-a is unreachable" in remote_status(primary, "remote-a")["ErrorMessage"]
    assert remote_status(primary, "remote-b")["Status"] == AVAILABLE
    assert {"istio-citadel", "istio-sidecar-injector"} <= deployments(clusters["remote-b"])
    assert clusters["remote-a"].audit == []

    clusters["remote-a"].unreachable = False  # back: its next attempt rolls out
    assert await a.run_once(ISTIO) == RESYNC_S
    assert remote_status(primary, "remote-a")["Status"] == AVAILABLE
    assert deployments(clusters["remote-a"]) == deployments(clusters["remote-b"])


async def test_a_remote_tells_its_gateway_address_while_it_rolls_out(
    events: list[tuple[str, str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    primary, clusters = mesh_with_remotes(["remote-a"])
    body = primary.objects[ISTIO_KEY]
    body["spec"]["meshExpansion"] = True
    primary.load_balancer_address = "100.64.0.1"
    primary.put(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "istio-ingressgateway", "namespace": NAMESPACE},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]},
        }
    )
    clusters["remote-a"].load_balancer_address = "100.65.0.1"
    mesh = shared(primary, clusters)
    told = mesh.istio_triggers.event_for((NAMESPACE, ISTIO))
    statuses: list[tuple[str, list[str], bool]] = []
    write = primary.patch_status

    async def recorded(key: ObjectKey, status: Any) -> None:
        await write(key, status)
        if key.kind == "RemoteIstio":
            now = remote_status(primary, "remote-a")
            statuses.append((now["Status"], now.get("GatewayAddress") or [], told.is_set()))

    monkeypatch.setattr(primary, "patch_status", recorded)

    assert await remote_worker(mesh, primary, "remote-a").run_once(ISTIO) == RESYNC_S

    # Known, and the primary told, while the remote still rolled out; then Available.
    assert (RECONCILING, ["100.65.0.1"], True) in statuses
    assert statuses[-1][:2] == (AVAILABLE, ["100.65.0.1"])


async def test_a_hung_remote_does_not_delay_another_remote(
    events: list[tuple[str, str, str]],
) -> None:
    primary, clusters = mesh_with_remotes(["remote-a", "remote-b"])
    clusters["remote-a"].hang()
    mesh = shared(primary, clusters)
    a, b = (remote_worker(mesh, primary, name) for name in ("remote-a", "remote-b"))

    hung = asyncio.ensure_future(a.run_once(ISTIO))
    await asyncio.wait_for(clusters["remote-a"].held.wait(), SAFETY_S)
    assert await asyncio.wait_for(b.run_once(ISTIO), SAFETY_S) == RESYNC_S

    assert remote_status(primary, "remote-b")["Status"] == AVAILABLE
    assert not hung.done() and "Status" not in remote_status(primary, "remote-a")
    clusters["remote-a"].answer()
    assert await asyncio.wait_for(hung, SAFETY_S) == RESYNC_S
    assert remote_status(primary, "remote-a")["Status"] == AVAILABLE


async def test_remotes_past_the_concurrency_bound_wait_for_a_slot(
    events: list[tuple[str, str, str]],
) -> None:
    primary, clusters = mesh_with_remotes(["remote-a", "remote-b"])
    clusters["remote-a"].hang()
    mesh = shared(primary, clusters)
    mesh.remote_slots = asyncio.Semaphore(1)  # `--remote-concurrency 1`
    a, b = (remote_worker(mesh, primary, name) for name in ("remote-a", "remote-b"))

    hung = asyncio.ensure_future(a.run_once(ISTIO))
    await asyncio.wait_for(clusters["remote-a"].held.wait(), SAFETY_S)
    waiting = asyncio.ensure_future(b.run_once(ISTIO))
    for _ in range(20):  # every step b could take without a slot
        await asyncio.sleep(0)
    assert not waiting.done() and clusters["remote-b"].audit == []

    clusters["remote-a"].answer()
    assert await asyncio.wait_for(hung, SAFETY_S) == RESYNC_S
    assert await asyncio.wait_for(waiting, SAFETY_S) == RESYNC_S
    assert remote_status(primary, "remote-b")["Status"] == AVAILABLE
