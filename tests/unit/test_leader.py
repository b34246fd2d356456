"""Leader election: who may take the Lease, what is written, when the leader must stop.

The pure functions are tested directly; the elector runs against an in-memory Lease
store that enforces resourceVersion like the API server does."""

from __future__ import annotations

import copy
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from istio_operator.api.keys import ObjectKey
from istio_operator.controller.leader import (
    LeaderElector,
    LeaseHeldError,
    LeaseUnavailableError,
    Timings,
    claimed,
    election_identity,
    election_namespace,
    format_micro_time,
    held_message,
    holder_of,
    is_expired,
    may_acquire,
    parse_micro_time,
    released,
    renewal_overdue,
)
from istio_operator.kube.client import ApiRefusedError, ConflictError

NOW = datetime(2026, 11, 3, 12, 0, 0, 250000, tzinfo=UTC)


def lease(
    holder: str | None = "other",
    renewed: datetime | None = NOW,
    duration: int | None = 10,
    version: str = "41",
    transitions: int = 2,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"leaseTransitions": transitions}
    if holder is not None:
        spec["holderIdentity"] = holder
    if renewed is not None:
        spec["renewTime"] = format_micro_time(renewed)
        spec["acquireTime"] = format_micro_time(renewed - timedelta(minutes=5))
    if duration is not None:
        spec["leaseDurationSeconds"] = duration
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "istio-operator-leader",
            "namespace": "ops",
            "resourceVersion": version,
        },
        "spec": spec,
    }


# --- identity and namespace ----------------------------------------------------------


def test_identity_is_the_pod_name_else_host_and_pid() -> None:
    assert election_identity({"POD_NAME": "istio-operator-7d9-abc"}, "node", 7) == (
        "istio-operator-7d9-abc"
    )
    assert election_identity({}, "laptop", 4242) == "laptop_4242"
    assert election_identity({"POD_NAME": ""}, "laptop", 1) == "laptop_1"


def test_namespace_is_the_flag_else_the_pods_namespace_else_default() -> None:
    assert election_namespace("ops", {"POD_NAMESPACE": "istio-operator"}) == "ops"
    assert election_namespace(None, {"POD_NAMESPACE": "istio-operator"}) == "istio-operator"
    assert election_namespace(None, {}) == "default"


def test_micro_time_round_trips_in_the_api_servers_format() -> None:
    assert format_micro_time(NOW) == "2026-11-03T12:00:00.250000Z"
    assert parse_micro_time("2026-11-03T12:00:00.250000Z") == NOW
    assert parse_micro_time("2026-11-03T12:00:00Z") == NOW.replace(microsecond=0)
    assert parse_micro_time(None) is None
    assert parse_micro_time("yesterday") is None


# --- may I take it? ------------------------------------------------------------------


def test_an_absent_lease_may_be_taken() -> None:
    assert may_acquire(None, "me", NOW)


def test_a_released_lease_may_be_taken_at_once() -> None:
    assert may_acquire(lease(holder=""), "me", NOW)
    assert may_acquire(lease(holder=None), "me", NOW)


def test_our_own_lease_may_be_renewed_even_when_fresh() -> None:
    assert may_acquire(lease(holder="me"), "me", NOW)


def test_someone_elses_live_lease_may_not_be_taken() -> None:
    assert not may_acquire(lease(renewed=NOW), "me", NOW)
    assert not may_acquire(lease(renewed=NOW - timedelta(seconds=9.9)), "me", NOW)
    assert not may_acquire(lease(renewed=NOW - timedelta(seconds=10)), "me", NOW)


def test_someone_elses_expired_lease_may_be_taken() -> None:
    assert may_acquire(lease(renewed=NOW - timedelta(seconds=10.001)), "me", NOW)
    assert may_acquire(lease(renewed=NOW - timedelta(minutes=3)), "me", NOW)


def test_expiry_follows_the_leases_own_duration() -> None:
    stale_for_short = lease(renewed=NOW - timedelta(seconds=2), duration=1)
    assert is_expired(stale_for_short, NOW)
    fresh_for_long = lease(renewed=NOW - timedelta(seconds=20), duration=30)
    assert not is_expired(fresh_for_long, NOW)
    no_duration = lease(renewed=NOW - timedelta(seconds=5), duration=None)
    assert not is_expired(no_duration, NOW, default_duration=10)


def test_a_lease_that_was_never_renewed_counts_as_expired() -> None:
    assert is_expired(lease(renewed=None), NOW)
    assert may_acquire(lease(renewed=None), "me", NOW)


# --- what is written ------------------------------------------------------------------


def test_taking_a_lease_keeps_its_resource_version_and_counts_a_transition() -> None:
    body = claimed(lease(), "me", NOW, name="istio-operator-leader", namespace="ops", duration=10)
    assert body["metadata"] == {
        "name": "istio-operator-leader",
        "namespace": "ops",
        "resourceVersion": "41",
    }
    assert body["spec"] == {
        "holderIdentity": "me",
        "leaseDurationSeconds": 10,
        "acquireTime": "2026-11-03T12:00:00.250000Z",
        "renewTime": "2026-11-03T12:00:00.250000Z",
        "leaseTransitions": 3,
    }


def test_renewing_keeps_the_acquire_time_and_the_transition_count() -> None:
    mine = lease(holder="me", renewed=NOW - timedelta(seconds=2))
    body = claimed(mine, "me", NOW, name="istio-operator-leader", namespace="ops", duration=10)
    assert body["spec"]["acquireTime"] == mine["spec"]["acquireTime"]
    assert body["spec"]["renewTime"] == format_micro_time(NOW)
    assert body["spec"]["leaseTransitions"] == 2


def test_creating_a_lease_has_no_resource_version_and_no_transition() -> None:
    body = claimed(None, "me", NOW, name="istio-operator-leader", namespace="ops", duration=10)
    assert "resourceVersion" not in body["metadata"]
    assert body["spec"]["leaseTransitions"] == 0
    assert holder_of(body) == "me"


def test_a_released_lease_has_no_holder_and_is_free_for_anyone_at_once() -> None:
    body = released(lease(holder="me"), NOW)
    assert holder_of(body) == ""
    assert body["spec"]["leaseDurationSeconds"] == 1
    assert body["metadata"]["resourceVersion"] == "41"
    assert may_acquire(body, "standby", NOW)


def test_the_refusal_names_the_holder_its_expiry_and_what_to_do() -> None:
    message = held_message(lease(holder="laptop_4242", renewed=NOW - timedelta(seconds=3)), NOW)
    assert message == (
        "another operator is active: Lease ops/istio-operator-leader is held by laptop_4242, "
        "expires in 7 s unless renewed; stop it first, or run with --leader-election to "
        "stand by until it stops"
    )
    assert "\n" not in message


# --- when the leader must stop -----------------------------------------------------------


def test_the_leader_stops_before_a_standby_could_take_the_lease() -> None:
    timings = Timings()
    assert timings.renew_deadline < timings.lease_duration
    assert not renewal_overdue(100.0, 100.0 + timings.renew_deadline, timings.renew_deadline)
    assert renewal_overdue(100.0, 100.01 + timings.renew_deadline, timings.renew_deadline)


def test_timings_must_leave_a_margin() -> None:
    with pytest.raises(ValueError, match="renew deadline"):
        Timings(lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError, match="renew period"):
        Timings(renew_period=9, renew_deadline=8)


# --- the elector against a store with optimistic concurrency ------------------------------


def api_error(code: int) -> ApiRefusedError:
    kind = ConflictError if code == 409 else ApiRefusedError
    return kind(code, "", f"HTTP {code}")


class LeaseStore:
    """What the API server does with one Lease, as `kube.blocking.BlockingClient`
    answers: None when absent, 409 on a stale resourceVersion or a second create. `down`
    makes every call fail."""

    def __init__(self) -> None:
        self.body: dict[str, Any] | None = None
        self.version = 0
        self.writes: list[str] = []
        self.down = False
        self.forbidden = False
        self.lock = threading.Lock()

    def get(self, key: ObjectKey) -> dict[str, Any] | None:
        with self.lock:
            self._check()
            return copy.deepcopy(self.body)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._check()
            if self.body is not None:
                raise api_error(409)
            return self._store(obj)

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._check()
            assert self.body is not None
            if obj["metadata"].get("resourceVersion") != self.body["metadata"]["resourceVersion"]:
                raise api_error(409)
            return self._store(obj)

    def close(self) -> None:
        pass

    def _check(self) -> None:
        if self.down:
            raise api_error(503)
        if self.forbidden:
            raise api_error(403)

    def _store(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        body = copy.deepcopy(obj)
        body["metadata"]["resourceVersion"] = str(self.version)
        self.body = body
        self.writes.append(holder_of(body))
        return obj


FAST = Timings(lease_duration=2, renew_period=0.1, retry_period=0.1, renew_deadline=1.0)


def elector(store: LeaseStore, identity: str, timings: Timings = FAST) -> LeaderElector:
    return LeaderElector(
        store,  # type: ignore[arg-type]
        namespace="ops",
        identity=identity,
        timings=timings,
    )


def test_of_two_candidates_one_leads_and_the_other_writes_nothing() -> None:
    store = LeaseStore()
    first, second = elector(store, "a"), elector(store, "b")
    assert first.try_acquire()
    assert not second.try_acquire()
    assert not second.try_acquire()
    assert store.writes == ["a"]


def test_a_stale_read_loses_the_race_with_409() -> None:
    store = LeaseStore()
    store.body = lease(holder="gone", renewed=NOW - timedelta(minutes=1), version="0")
    first, second = elector(store, "a"), elector(store, "b")
    stale = copy.deepcopy(store.body)
    assert first.try_acquire()
    # b read the expired Lease before a wrote it; its update carries the old version.
    second._read = lambda: copy.deepcopy(stale)  # type: ignore[method-assign]
    assert not second.try_acquire()
    assert store.writes == ["a"]


def test_renewing_keeps_the_lease_and_release_hands_it_over() -> None:
    store = LeaseStore()
    leader, standby = elector(store, "a"), elector(store, "b")
    leader.acquire()
    lost: list[str] = []
    leader.start_renewing(lost.append)
    time.sleep(0.5)
    assert len(store.writes) >= 3
    assert set(store.writes) == {"a"}
    assert not standby.try_acquire()
    leader.release()
    assert lost == []
    assert holder_of(store.body) == ""
    assert standby.try_acquire()
    assert holder_of(store.body) == "b"


def test_the_leader_gives_up_when_it_cannot_renew_within_the_deadline() -> None:
    store = LeaseStore()
    leader = elector(store, "a")
    leader.acquire()
    lost: list[tuple[float, str]] = []
    leader.start_renewing(lambda reason: lost.append((time.monotonic(), reason)))
    store.down = True
    broke = time.monotonic()
    deadline = time.monotonic() + 3
    while not lost and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(lost) == 1
    when, reason = lost[0]
    # Before the Lease could expire for anyone else (2 s after its last renewal).
    assert when - broke < FAST.lease_duration
    assert "not renewed" in reason
    assert not leader.leading
    store.down = False
    leader.release()


def test_the_leader_gives_up_at_once_when_someone_else_holds_the_lease() -> None:
    store = LeaseStore()
    leader = elector(store, "a")
    leader.acquire()
    lost: list[str] = []
    leader.start_renewing(lost.append)
    with store.lock:
        assert store.body is not None
        store.body["spec"]["holderIdentity"] = "intruder"
    deadline = time.monotonic() + 1
    while not lost and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lost == ["the Lease is now held by intruder"]
    leader.release()
    assert holder_of(store.body) == "intruder"


# --- without election: take the Lease at once, or refuse -----------------------------------


def test_without_election_a_free_lease_is_taken_at_once_and_electors_stand_by() -> None:
    store = LeaseStore()
    alone, candidate = elector(store, "alone"), elector(store, "candidate")
    alone.take_or_refuse()
    assert alone.leading
    assert holder_of(store.body) == "alone"
    assert not candidate.try_acquire()
    assert store.writes == ["alone"]


def test_without_election_a_live_lease_of_another_is_refused_without_a_write() -> None:
    store = LeaseStore()
    leader = elector(store, "leader")
    leader.acquire()
    with pytest.raises(LeaseHeldError, match=r"held by leader.*--leader-election"):
        elector(store, "second").take_or_refuse()
    assert store.writes == ["leader"]


def test_without_election_an_expired_lease_is_taken() -> None:
    store = LeaseStore()
    store.body = lease(holder="crashed", renewed=datetime.now(UTC) - timedelta(minutes=1))
    store.body["metadata"]["resourceVersion"] = "0"
    elector(store, "alone").take_or_refuse()
    assert holder_of(store.body) == "alone"


def test_without_election_a_lost_race_is_refused_as_the_winner_holds_it() -> None:
    store = LeaseStore()
    winner, loser = elector(store, "winner"), elector(store, "loser")
    real_read = loser._read
    stale: list[dict[str, Any] | None] = [None]

    def read() -> dict[str, Any] | None:
        if not stale:
            return real_read()
        winner.try_acquire()  # creates the Lease just after the loser found none
        return stale.pop()

    loser._read = read  # type: ignore[method-assign]
    with pytest.raises(LeaseHeldError, match="held by winner"):
        loser.take_or_refuse()
    assert store.writes == ["winner"]


def test_without_election_no_permission_is_a_clear_refusal() -> None:
    store = LeaseStore()
    store.forbidden = True
    with pytest.raises(LeaseUnavailableError, match=r"403.*get, create and update on leases"):
        elector(store, "alone").take_or_refuse()


def test_without_election_an_api_server_starting_is_waited_for() -> None:
    store = LeaseStore()
    store.down = True
    threading.Timer(0.3, lambda: setattr(store, "down", False)).start()
    elector(store, "alone").take_or_refuse()
    assert holder_of(store.body) == "alone"
