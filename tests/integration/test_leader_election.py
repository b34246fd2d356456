"""Two `istio-operator run` processes against one real API server: one leads, the other
stands by without starting kopf, and takes over when the leader dies or stops."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lightkube import ApiError, Client
from lightkube.resources.coordination_v1 import Lease

from istio_operator.controller.leader import LEASE_NAME, holder_of, is_expired
from istio_operator.localcluster import LocalCluster
from tests.operator_harness import OperatorProcess, apply_crds, wait_for, write_requests

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


@pytest.fixture
def operators(
    primary: Client, primary_cluster: LocalCluster, tmp_path: Path
) -> Iterator[tuple[OperatorProcess, OperatorProcess, OperatorProcess]]:
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
    made = tuple(
        OperatorProcess(
            primary_cluster.kubeconfig,
            tmp_path / f"operator-{name}.log",
            args=(
                "--resync-period",
                "10",
                "--leader-election-namespace",
                LEASE_NAMESPACE,
                "--health-port",
                str(free_port()),
            ),
        )
        for name in ("a", "b", "c")
    )
    try:
        yield made  # type: ignore[misc]
    finally:
        for operator in made:
            if operator.process is None:
                continue
            operator.stop()
            print(f"--- {operator.log.name}\n{operator.tail(40)}")


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
        timeout=5,
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
    lease = Lease.from_dict(read_lease(primary) or {})
    assert lease.spec is not None
    lease.spec.holderIdentity = "someone-else"
    primary.replace(lease)
    assert a.process is not None
    with contextlib.suppress(Exception):
        a.process.wait(5)
    assert a.process.returncode == 3, a.tail()
    assert "lost leadership: the Lease is now held by someone-else" in log_of(a)
    free = Lease.from_dict(read_lease(primary) or {})
    assert free.spec is not None
    free.spec.holderIdentity = ""
    primary.replace(free)
