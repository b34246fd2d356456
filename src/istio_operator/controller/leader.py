"""Lease-based leader election for `istio-operator run`: with two replicas, only one
reconciles.

kopf's peering is not leader election (a paused peer may keep handling objects), so the
operator runs kopf `--standalone` and gates it behind a `coordination.k8s.io/v1` Lease,
the mechanism client-go's leader election uses.

How it runs. The elector uses a synchronous client (`kube.blocking`) and plain threads, not
kopf's event loop: `istio-operator run` acquires the Lease *before* it calls `kopf.run`,
so a standby never starts kopf at all (no watch, no handler, no write). Once leader, a
renewal thread renews the Lease and a watchdog thread stops the process when renewal
has failed for too long. Running this inside kopf (a task started from
`@kopf.on.startup`) would have kopf running, and its handlers eligible, before the
Lease is held, and would tie the safety stop to an event loop that a busy reconcile can
delay; threads keep the two apart.

Timings (client-go's names):

- lease duration 10 s: a standby may take the Lease once `renewTime` plus
  `leaseDurationSeconds` is in the past;
- renew period 2 s: the leader updates `renewTime` this often;
- retry period 2 s: a standby looks at the Lease this often;
- renew deadline 8 s (the duration minus a 2 s margin): when the last successful renewal
  was *sent* longer ago than this, by the leader's monotonic clock, the leader stops at
  once (the caller exits the process). It is then gone before any standby can consider
  the Lease expired, so two leaders never overlap, provided the nodes' wall clocks agree
  to within the margin.

A standby therefore takes over at most lease duration plus retry period (12 s) after
the leader's last renewal. Writes use optimistic concurrency: an update carries the
`resourceVersion` that was read, so of two standbys racing for an expired Lease one
gets 409 Conflict and stays a standby. On a graceful stop the leader releases the
Lease (empty holder, one-second duration) so that a standby takes over at its next
retry.

One writer, with or without election. `--no-leader-election` does not skip the Lease:
it holds it like a leader (same renewals, same stop when renewal fails), but never waits
for it. It takes the Lease if it is free, expired or its own, and refuses to start
(`LeaseHeldError`, naming the holder) while another operator renews it. So a second
operator is either a standby (it elects) or refused (it does not), and an electing
operator stands by while a non-electing one runs: one writer in every combination.

The decision logic is in small pure functions over the Lease as a dict; the
`LeaderElector` only moves Leases between them and the API server. Only the verbs the
deployed Role grants are used: get, create, update.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from istio_operator.api.keys import ObjectKey
from istio_operator.kube.blocking import BlockingClient
from istio_operator.kube.client import ApiRefusedError, ClusterUnreachableError, ConflictError

LEASE_NAME = "istio-operator-leader"
LEASE_API_VERSION = "coordination.k8s.io/v1"
DEFAULT_NAMESPACE = "default"
REQUEST_TIMEOUT_S = 3.0
# Refusals worth another look (an API server starting or overloaded); any other is final.
TRANSIENT_CODES = frozenset({429, 500, 502, 503, 504})

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timings:
    lease_duration: int = 10
    renew_period: float = 2.0
    retry_period: float = 2.0
    renew_deadline: float = 8.0  # lease_duration minus a safety margin

    def __post_init__(self) -> None:
        if not 0 < self.renew_period < self.renew_deadline < self.lease_duration:
            raise ValueError("need 0 < renew period < renew deadline < lease duration")


# --- pure decision logic -----------------------------------------------------------


def election_identity(env: Mapping[str, str], hostname: str, pid: int) -> str:
    """The pod's name when it runs in a pod (each replica has its own), else host and pid."""
    return env.get("POD_NAME") or f"{hostname}_{pid}"


def election_namespace(flag: str | None, env: Mapping[str, str]) -> str:
    """The flag, else the operator's own namespace (POD_NAMESPACE), else `default`."""
    return flag or env.get("POD_NAMESPACE") or DEFAULT_NAMESPACE


def format_micro_time(when: datetime) -> str:
    """A MicroTime as the API server writes it: UTC, microseconds, `Z`."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def holder_of(lease: Mapping[str, Any] | None) -> str:
    """Who holds the Lease; empty when it is absent or released."""
    if lease is None:
        return ""
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def expires_at(lease: Mapping[str, Any], default_duration: int) -> datetime | None:
    """When the holder's claim ends: last renewal (or acquisition) plus the duration."""
    spec = lease.get("spec") or {}
    renewed = parse_micro_time(spec.get("renewTime")) or parse_micro_time(spec.get("acquireTime"))
    if renewed is None:
        return None
    duration = spec.get("leaseDurationSeconds")
    return renewed + timedelta(seconds=duration if duration is not None else default_duration)


def is_expired(lease: Mapping[str, Any], now: datetime, default_duration: int = 10) -> bool:
    """`renewTime + leaseDurationSeconds < now`; a Lease that was never renewed is expired."""
    end = expires_at(lease, default_duration)
    return end is None or end < now


def may_acquire(
    lease: Mapping[str, Any] | None, identity: str, now: datetime, default_duration: int = 10
) -> bool:
    """May `identity` write itself into this Lease: absent, released, expired, or ours."""
    holder = holder_of(lease)
    if lease is None or not holder or holder == identity:
        return True
    return is_expired(lease, now, default_duration)


def claimed(
    lease: Mapping[str, Any] | None,
    identity: str,
    now: datetime,
    *,
    name: str,
    namespace: str,
    duration: int,
) -> dict[str, Any]:
    """The Lease to write to take or renew it. It keeps the `resourceVersion` that was
    read, so the update fails with 409 Conflict if anyone wrote the Lease since."""
    previous = dict((lease or {}).get("spec") or {})
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if lease is not None:
        version = (lease.get("metadata") or {}).get("resourceVersion")
        if version:
            metadata["resourceVersion"] = version
    stamp = format_micro_time(now)
    ours = holder_of(lease) == identity
    transitions = int(previous.get("leaseTransitions") or 0)
    if lease is not None and not ours:
        transitions += 1
    return {
        "apiVersion": LEASE_API_VERSION,
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": identity,
            "leaseDurationSeconds": duration,
            "acquireTime": previous.get("acquireTime") if ours else stamp,
            "renewTime": stamp,
            "leaseTransitions": transitions,
        },
    }


def released(lease: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The Lease to write on a graceful stop: no holder, expired a second later (what
    client-go writes with ReleaseOnCancel)."""
    body: dict[str, Any] = {"apiVersion": LEASE_API_VERSION, "kind": "Lease"}
    body["metadata"] = dict(lease.get("metadata") or {})
    stamp = format_micro_time(now)
    body["spec"] = {
        **dict(lease.get("spec") or {}),
        "holderIdentity": "",
        "leaseDurationSeconds": 1,
        "acquireTime": stamp,
        "renewTime": stamp,
    }
    return body


def held_message(lease: Mapping[str, Any], now: datetime, default_duration: int = 10) -> str:
    """Why `--no-leader-election` refuses to start: who holds the Lease, and what to do."""
    metadata = lease.get("metadata") or {}
    where = f"{metadata.get('namespace', '')}/{metadata.get('name', LEASE_NAME)}"
    end = expires_at(lease, default_duration)
    expiry = f", expires in {(end - now).total_seconds():.0f} s unless renewed" if end else ""
    return (
        f"another operator is active: Lease {where} is held by {holder_of(lease)}{expiry}; "
        "stop it first, or run with --leader-election to stand by until it stops"
    )


def renewal_overdue(last_renewed: float, now: float, renew_deadline: float) -> bool:
    """Monotonic seconds: has the leader gone without a renewal for the renew deadline?"""
    return now - last_renewed > renew_deadline


# --- talking to the API server -------------------------------------------------------


class LeaseHeldError(RuntimeError):
    """Another operator renews the Lease: a non-electing operator must not start."""


class LeaseUnavailableError(RuntimeError):
    """The Lease cannot be read or written (no permission, no such namespace)."""


# What a request about the Lease may fail with: refused, or not answered.
LeaseRequestError = (ApiRefusedError, ClusterUnreachableError)


def utc_now() -> datetime:
    return datetime.now(UTC)


class LeaderElector:
    """One candidate for the Lease `namespace/name`."""

    def __init__(
        self,
        client: BlockingClient,
        *,
        namespace: str,
        identity: str,
        name: str = LEASE_NAME,
        timings: Timings | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.identity = identity
        self.name = name
        self.timings = timings or Timings()
        self._renewed_at: float | None = None  # monotonic time the last renewal was sent
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._leading = False
        self.observed_lease: dict[str, Any] | None = None  # as read at the last attempt

    @classmethod
    def from_kubeconfig(
        cls, path: str | None, *, namespace: str, identity: str | None = None
    ) -> LeaderElector:
        """The file `path` (else KUBECONFIG, else in-cluster) names the cluster."""
        client = BlockingClient.from_kubeconfig(path, name="primary", timeout=REQUEST_TIMEOUT_S)
        if identity is None:
            identity = election_identity(os.environ, socket.gethostname(), os.getpid())
        return cls(client, namespace=namespace, identity=identity)

    @property
    def leading(self) -> bool:
        return self._leading

    @property
    def observed_holder(self) -> str:
        """Who held the Lease at the last attempt."""
        return holder_of(self.observed_lease)

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    def _read(self) -> dict[str, Any] | None:
        return self.client.get(ObjectKey(LEASE_API_VERSION, "Lease", self.namespace, self.name))

    def try_acquire(self) -> bool:
        """One attempt: read the Lease and, if it is free, expired or ours, write
        ourselves into it."""
        sent = time.monotonic()
        now = utc_now()
        lease = self._read()
        self.observed_lease = lease
        if not may_acquire(lease, self.identity, now, self.timings.lease_duration):
            return False
        return self._claim(lease, sent, now)

    def renew(self) -> str:
        """One renewal; returns who holds the Lease afterwards (not us: leadership is
        lost, whatever the Lease's age)."""
        sent = time.monotonic()
        now = utc_now()
        lease = self._read()
        holder = holder_of(lease)
        if holder != self.identity:
            return holder
        if not self._claim(lease, sent, now):
            logger.warning("leader election: a renewal lost a write race; retrying")
        return holder

    def _claim(self, lease: dict[str, Any] | None, sent: float, now: datetime) -> bool:
        body = claimed(
            lease,
            self.identity,
            now,
            name=self.name,
            namespace=self.namespace,
            duration=self.timings.lease_duration,
        )
        try:
            if lease is None:
                self.client.create(body)
            else:
                self.client.replace(body)
        except ConflictError:  # someone else wrote it first
            return False
        self._renewed_at = sent
        return True

    def acquire(self) -> None:
        """Blocks until this candidate holds the Lease."""
        last_holder: str | None = None
        while True:
            try:
                if self.try_acquire():
                    self._leading = True
                    logger.info(
                        f"acquired leadership: Lease {self.namespace}/{self.name} "
                        f"held by {self.identity}"
                    )
                    return
            except LeaseRequestError as error:
                logger.warning(f"leader election: could not read or write the Lease: {error}")
            else:
                holder = self.observed_holder
                if holder != last_holder:
                    logger.info(
                        f"waiting for leadership: Lease {self.namespace}/{self.name} "
                        f"is held by {holder or 'nobody'}; this is {self.identity}"
                    )
                    last_holder = holder
            time.sleep(self.timings.retry_period)

    def take_or_refuse(self) -> None:
        """`--no-leader-election`: hold the Lease without waiting for it. Takes it when it
        is free, expired or ours; raises LeaseHeldError while another holder renews it.
        A lost write race (409) is looked at again: the winner then holds it, so this
        refuses too. Unreachable API servers are retried, as `acquire` does; a refusal
        such as 403 is final (LeaseUnavailableError)."""
        while True:
            try:
                if self.try_acquire():
                    self._leading = True
                    logger.info(
                        f"holding the Lease {self.where} as {self.identity} without election "
                        "(--no-leader-election): other operators stand by or are refused"
                    )
                    return
            except ApiRefusedError as error:
                if error.code not in TRANSIENT_CODES:
                    raise LeaseUnavailableError(self._unavailable(error)) from None
                logger.warning(f"leader election: could not read or write the Lease: {error}")
            except ClusterUnreachableError as error:
                logger.warning(f"leader election: could not read or write the Lease: {error}")
            else:
                lease, now = self.observed_lease, utc_now()
                if lease is not None and not may_acquire(
                    lease, self.identity, now, self.timings.lease_duration
                ):
                    raise LeaseHeldError(held_message(lease, now, self.timings.lease_duration))
                continue  # lost a write race: read the winner's Lease at once
            time.sleep(self.timings.retry_period)

    def _unavailable(self, error: ApiRefusedError) -> str:
        message = f"cannot take the Lease {self.where} ({error.summary})"
        if error.code != 403:
            return message
        return (
            f"{message}; even with --no-leader-election the operator holds it, so that two "
            "operators never write at once: it needs get, create and update on leases in "
            "that namespace"
        )

    def start_renewing(self, on_lost: Callable[[str], None]) -> None:
        """Renews in a background thread; calls `on_lost` (which must stop everything
        this process writes, at once) when another holder appears or when renewals have
        failed for the renew deadline. A watchdog thread checks the deadline on its own,
        so a renewal request that hangs cannot delay the stop."""
        if not self._leading or self._renewed_at is None:
            raise RuntimeError("start_renewing() before acquire()")
        lost = threading.Event()
        once = threading.Lock()

        def lose(reason: str) -> None:
            with once:
                if lost.is_set() or self._stop.is_set():
                    return
                lost.set()
                self._leading = False
            on_lost(reason)

        def renew() -> None:
            while not self._stop.wait(self.timings.renew_period):
                try:
                    holder = self.renew()
                except LeaseRequestError as error:
                    logger.warning(f"leader election: renewal failed: {error}")
                    continue
                if holder != self.identity:
                    lose(f"the Lease is now held by {holder or 'nobody'}")
                    return

        def watchdog() -> None:
            while not self._stop.wait(0.2):
                renewed = self._renewed_at
                if renewed is not None and renewal_overdue(
                    renewed, time.monotonic(), self.timings.renew_deadline
                ):
                    lose(
                        f"the Lease was not renewed for {self.timings.renew_deadline:g} s "
                        "and may expire"
                    )
                    return

        self._threads = [
            threading.Thread(target=renew, name="leader-renew", daemon=True),
            threading.Thread(target=watchdog, name="leader-watchdog", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def release(self) -> None:
        """Stops renewing and, if the Lease is still ours, hands it back at once."""
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(REQUEST_TIMEOUT_S * 2 + 1)
        if not self._leading:
            return
        self._leading = False
        try:
            lease = self._read()
            if lease is None or holder_of(lease) != self.identity:
                return
            self.client.replace(released(lease, utc_now()))
            logger.info(f"released leadership: Lease {self.namespace}/{self.name}")
        except LeaseRequestError as error:
            logger.warning(f"leader election: could not release the Lease: {error}")

    def close(self) -> None:
        self.client.close()
