"""Two `istio-operator run` processes against one real API server: one leads, the other
stands by without starting kopf, and takes over when the leader dies or stops. Without
election an operator holds the Lease too: it is refused while another holds it, and
electing operators stand by while it runs. A port in use is a one-line refusal."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lightkube import ApiError, Client
from lightkube.resources.coordination_v1 import Lease

from istio_operator.controller.leader import LEASE_NAME, holder_of, is_expired
from istio_operator.localcluster import LocalCluster
from tests.operator_harness import (
    OperatorProcess,
    apply_crds,
    from_dict,
    wait_for,
    write_requests,
)

pytestmark = pytest.mark.cluster

LEASE_NAMESPACE = "default"
TAKEOVER_LIMIT_S = 15.0
# What kopf logs as soon as it runs; a standby must never log it.
KOPF_STARTED = ("Initial authentication", "Activity 'build_registry")
LEASE_URI = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
RENEW_PERIOD_S = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_lease(client: Client) -> dict[str, object] | None:
    try:
        return dict(client.get(Lease, LEASE_NAME, namespace=LEASE_NAMESPACE).to_dict())
    except ApiError as error:
        if error.status.code == 404:
            return None
        raise


def lease_holder(client: Client) -> str:
    return holder_of(read_lease(client))


def identity_of(operator: OperatorProcess) -> str:
    assert operator.process is not None
    return f"{socket.gethostname()}_{operator.process.pid}"


def healthz(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
        assert answer.status == 200
        body: dict[str, object] = json.loads(answer.read() or b"{}")
        return body


def log_of(operator: OperatorProcess) -> str:
    return operator.log.read_text(errors="replace")


def assert_stood_by(operator: OperatorProcess) -> None:
    log = log_of(operator)
    assert "waiting for leadership" in log, operator.tail()
    assert "acquired leadership" not in log, operator.tail()
    for marker in KOPF_STARTED:
        assert marker not in log, operator.tail()


Spawn = Callable[..., OperatorProcess]


@pytest.fixture
def spawn(primary: Client, primary_cluster: LocalCluster, tmp_path: Path) -> Iterator[Spawn]:
    """Makes operators (not started) with a health port each; stops them all afterwards."""
    apply_crds(primary)
    # A Lease left by an earlier operator in this session must be free before we start.
    wait_for(
        "the leader Lease to be free",
        lambda: (
            (lease := read_lease(primary)) is None
            or not holder_of(lease)
            or is_expired(lease, datetime.now(UTC))
        ),
        timeout=30,
    )
    made: list[OperatorProcess] = []

    def make(name: str, *args: str) -> OperatorProcess:
        operator = OperatorProcess(
            primary_cluster.kubeconfig,
            tmp_path / f"operator-{name}.log",
            args=(
                "--resync-period",
                "10",
                "--leader-election-namespace",
                LEASE_NAMESPACE,
                "--health-port",
                str(free_port()),
                *args,
            ),
        )
        made.append(operator)
        return operator

    try:
        yield make
    finally:
        for operator in made:
            if operator.process is None:
                continue
            operator.stop()
            print(f"--- {operator.log.name}\n{operator.tail(40)}")


@pytest.fixture
def operators(spawn: Spawn) -> tuple[OperatorProcess, OperatorProcess, OperatorProcess]:
    return spawn("a"), spawn("b"), spawn("c")


def health_port(operator: OperatorProcess) -> int:
    return int(operator.args[operator.args.index("--health-port") + 1])


def test_one_leads_the_standby_takes_over_when_it_dies(
    primary: Client,
    primary_cluster: LocalCluster,
    operators: tuple[OperatorProcess, OperatorProcess, OperatorProcess],
) -> None:
    a, b, c = operators
    a.start()
    b.start()
    ids = {identity_of(a): a, identity_of(b): b}
    holder = wait_for("a leader", lambda: lease_holder(primary) in ids and lease_holder(primary))
    leader, standby = ids[holder], next(o for i, o in ids.items() if i != holder)
    wait_for("the standby to wait", lambda: "waiting for leadership" in log_of(standby))

    # Three retry periods later: still one leader, the same; the standby never ran kopf
    # and answers its liveness probe all the same.
    since = time.time()
    time.sleep(6)
    lease_writes = [
        w
        for w in write_requests(primary_cluster, since, leases=True)
        if w["requestURI"].startswith(LEASE_URI)
    ]
    # Only the leader's renewals: all succeed (a standby's attempt would be refused
    # with 409), at the leader's cadence, and nobody creates the Lease again.
    assert {(w["verb"], w["responseStatus"]["code"]) for w in lease_writes} == {("update", 200)}
    assert len(lease_writes) <= 6 / RENEW_PERIOD_S + 2
    assert lease_holder(primary) == holder
    leader.assert_running()
    standby.assert_running()
    assert "acquired leadership" in log_of(leader)
    assert_stood_by(standby)
    assert healthz(health_port(standby)) == {"leader": False}

    # The leader crashes: the standby leads within the limit.
    leader.kill()
    killed = time.monotonic()
    wait_for(
        "the standby to take the Lease",
        lambda: lease_holder(primary) == identity_of(standby),
        timeout=TAKEOVER_LIMIT_S,
        every=0.1,
    )
    takeover = time.monotonic() - killed
    print(f"takeover after SIGKILL of the leader: {takeover:.1f} s")
    assert takeover < TAKEOVER_LIMIT_S
    wait_for("the new leader's log", lambda: "acquired leadership" in log_of(standby))
    standby.assert_running()

    # A graceful stop releases the Lease: the next standby takes over at its next retry.
    c.start()
    wait_for("a new standby", lambda: "waiting for leadership" in log_of(c))
    assert_stood_by(c)
    assert standby.process is not None
    standby.stop()
    stopped = time.monotonic()
    assert standby.process.returncode == 0, standby.tail()
    assert "released leadership" in log_of(standby)
    wait_for(
        "the Lease handed over",
        lambda: lease_holder(primary) == identity_of(c),
        timeout=15,
        every=0.1,
    )
    print(f"takeover after SIGTERM of the leader: {time.monotonic() - stopped:.1f} s")


def test_a_leader_that_loses_the_lease_exits_at_once(
    primary: Client, operators: tuple[OperatorProcess, OperatorProcess, OperatorProcess]
) -> None:
    a = operators[0]
    a.start()
    wait_for("a to lead", lambda: lease_holder(primary) == identity_of(a))
    # Someone else writes itself into the Lease (as a standby would after a partition).
    lease = from_dict(Lease, read_lease(primary) or {})
    assert lease.spec is not None
    lease.spec.holderIdentity = "someone-else"
    primary.replace(lease)
    assert a.process is not None
    with contextlib.suppress(Exception):
        a.process.wait(5)
    assert a.process.returncode == 3, a.tail()
    assert "lost leadership: the Lease is now held by someone-else" in log_of(a)
    free = from_dict(Lease, read_lease(primary) or {})
    assert free.spec is not None
    free.spec.holderIdentity = ""
    primary.replace(free)


# --- one writer without election -----------------------------------------------------------


def exit_code(operator: OperatorProcess) -> int:
    """Waits for the operator to end by itself."""
    process = operator.process
    assert process is not None
    wait_for(f"{operator.log.name} to exit", lambda: process.poll() is not None, timeout=60)
    return int(process.returncode)


def refusal(operator: OperatorProcess) -> str:
    """The operator's only error line; nothing else went wrong on the way out."""
    log = log_of(operator)
    assert "Traceback" not in log, log
    (line,) = [line for line in log.splitlines() if line.startswith("error:")]
    return line


def renewals(client: Client, count: int) -> Callable[[], bool]:
    """A check that holds once the Lease has been renewed `count` times since it was made."""
    seen: set[str] = set()

    def renewed() -> bool:
        spec = (read_lease(client) or {}).get("spec")
        seen.add(str(spec.get("renewTime") if isinstance(spec, dict) else None))
        return len(seen) > count

    return renewed


def test_without_election_an_operator_is_refused_while_a_leader_renews(
    primary: Client, spawn: Spawn
) -> None:
    leader, second = spawn("leader"), spawn("second", "--no-leader-election")
    leader.start()
    wait_for("the leader", lambda: lease_holder(primary) == identity_of(leader))
    second.start()
    assert exit_code(second) != 0
    line = refusal(second)
    assert f"is held by {identity_of(leader)}" in line, line
    assert "--leader-election" in line, line
    for marker in KOPF_STARTED:
        assert marker not in log_of(second)
    assert lease_holder(primary) == identity_of(leader)
    leader.assert_running()


def test_without_election_an_operator_holds_the_lease_and_no_other_writes(
    primary: Client, spawn: Spawn
) -> None:
    alone = spawn("alone", "--no-leader-election")
    elector, other = spawn("elector"), spawn("other", "--no-leader-election")
    alone.start()
    wait_for("the Lease taken", lambda: lease_holder(primary) == identity_of(alone))
    assert "holding the Lease" in log_of(alone)

    # An electing operator stands by while the Lease is renewed, never starting kopf.
    elector.start()
    wait_for(
        "the elector to wait for the non-electing holder",
        lambda: f"is held by {identity_of(alone)}" in log_of(elector),
    )
    wait_for("three renewals meanwhile", renewals(primary, 3), every=0.5)
    assert_stood_by(elector)
    assert healthz(health_port(elector)) == {"leader": False}

    # Another non-electing one is refused.
    other.start()
    assert exit_code(other) != 0
    assert f"is held by {identity_of(alone)}" in refusal(other)

    # Once the holder stops, the elector leads.
    alone.stop()
    wait_for(
        "the elector to lead",
        lambda: lease_holder(primary) == identity_of(elector),
        timeout=TAKEOVER_LIMIT_S,
    )
    alone_process = alone.process
    assert alone_process is not None and alone_process.returncode == 0, alone.tail()


def test_an_occupied_port_is_a_one_line_refusal(primary: Client, spawn: Spawn) -> None:
    metrics = free_port()
    first = spawn("first", "--metrics-port", str(metrics))
    first.start()
    wait_for("the first to lead", lambda: lease_holder(primary) == identity_of(first))
    wait_for("its metrics", lambda: port_answers(metrics))
    same_metrics = spawn("same-metrics", "--metrics-port", str(metrics))
    same_health = spawn("same-health", "--health-port", str(health_port(first)))
    for operator, flag, port in (
        (same_metrics, "--metrics-port", metrics),
        (same_health, "--health-port", health_port(first)),
    ):
        operator.start()
        assert exit_code(operator) == 1
        line = refusal(operator)
        assert line.startswith(f"error: {flag} {port}: Address already in use"), line
    assert lease_holder(primary) == identity_of(first)
    first.assert_running()


def port_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False
