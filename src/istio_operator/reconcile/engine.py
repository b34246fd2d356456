"""The one apply/wait/prune mechanism every cluster goes through.

`reconcile_cluster` takes a cluster and its desired objects, finds what differs
from the live state and has the API server judge all of it (a strict server-side
dry-run) before the first write: one refusal and nothing is applied. Then, phase
by phase, it server-side applies what differs, waits (with a deadline)
for the phase's workloads to be available at their new generation, and finally
prunes the objects carrying the owner's labels that are no longer desired.
The primary and each remote differ only in the object list and the client: any
`kube.protocol.ClusterAccess` (the lightkube one, or the in-memory one of the unit tests).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from istio_operator.api.keys import ObjectKey, key_of
from istio_operator.api.labels import MANAGED_BY, MANAGED_BY_VALUE, OWNER_NAME, REMOTE
from istio_operator.kube.objects import (
    DESIRED_HASH,
    applied_by_us,
    difference,
    differences,
    readiness,
    with_desired_hash,
)
from istio_operator.kube.protocol import ClusterAccess, Verdict
from istio_operator.kube.resources import register_crds
from istio_operator.reconcile.kinds import CRD_KIND, MANAGED_KINDS, register_managed_kinds
from istio_operator.reconcile.takeover import (
    foreign_objects,
    made_by_the_reference,
    needs_replacement,
    reference_leftovers,
    replacement_probe,
    selector_moves,
    supersede,
    sweep_kinds,
)
from istio_operator.render import DesiredObject
from istio_operator.render.phases import Phase

log = logging.getLogger(__name__)
GATED_KINDS = frozenset({"Deployment", "DaemonSet", "CustomResourceDefinition"})
MANAGED_BY_SELECTOR = f"{MANAGED_BY}={MANAGED_BY_VALUE}"
VALIDATION_CONCURRENCY = 8
# Deleted first, so that nothing calls a webhook whose Service is already gone (a
# failurePolicy Fail webhook without its Service refuses every pod of the cluster).
DELETE_FIRST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
POLL_INTERVAL_S = 0.5


@dataclass
class ClusterReport:
    """What one reconcile of one cluster did and where it stands."""

    cluster: str
    applied: list[ObjectKey] = field(default_factory=list)
    pruned: list[ObjectKey] = field(default_factory=list)
    completed: list[Phase] = field(default_factory=list)
    waiting_phase: Phase | None = None
    awaiting: list[str] = field(default_factory=list)
    live_workloads: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)
    # What the API server refused in the dry-run of the change ("<object>: <why>"); when
    # set, nothing was applied.
    refused: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.waiting_phase is None and not self.refused


# Told, while a reconcile runs, that a cluster's phase was just rolled out (cluster, phase).
RolloutListener = Callable[[str, Phase], Awaitable[None]]


@dataclass(frozen=True)
class Ownership:
    """How the objects of one owner are found on a cluster."""

    selector: str  # label selector of every owned object
    # Kinds that may exist from earlier renders even if the current one lacks them.
    kinds: Sequence[tuple[str, str]] = MANAGED_KINDS
    # The uid of the Istio resource whose objects another operator may have made (see
    # `takeover`): what it made and we do not render is deleted after a rollout that took
    # something of it over, or when `sweep` asks for it (the first pass of an operator).
    adopts_from: str = ""
    sweep: bool = False
    # Objects carrying one of these labels (label, value) are not pruned though no longer
    # rendered: an istiod revision still in use, kept as it runs.
    kept: tuple[tuple[str, str], ...] = ()

    @property
    def labels(self) -> dict[str, str]:
        return dict(part.split("=", 1) for part in self.selector.split(","))

    def owns(self, obj: Mapping[str, Any]) -> bool:
        """Whether the live object carries every label of the selector; one a remote's
        worker made on the primary (the istiod family's remote secret) is that worker's."""
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if REMOTE in labels and REMOTE not in self.labels:
            return False
        return all(labels.get(key) == value for key, value in self.labels.items())

    def keeps(self, obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return any(labels.get(key) == value for key, value in self.kept)


async def reconcile_cluster(
    cluster: ClusterAccess,
    objects: Sequence[DesiredObject],
    ownership: Ownership,
    phase_timeout: float,
    on_rollout: RolloutListener | None = None,
    *,
    poll_interval: float = POLL_INTERVAL_S,
) -> ClusterReport:
    report = ClusterReport(cluster=cluster.name)
    register_crds(o.manifest for o in objects if o.manifest["kind"] == CRD_KIND)
    live = await _live_index(cluster, ownership, objects)
    changes = _changes(objects, live)
    report.refused, foreign = await _judged(cluster, changes)
    if report.refused:
        return report
    apply = _Applier(cluster, ownership, live, foreign, phase_timeout, poll_interval)
    for phase, group in groupby(sorted(objects, key=lambda o: o.phase), key=lambda o: o.phase):
        members = list(group)
        phase_changes = [c for o in members if (c := changes.get(_key(o)))]
        # A Service that would select other pods moves once the phase's workloads are ready.
        moves = [selector_moves(apply.current(c), c.manifest) for c in phase_changes]
        now = [c for c, move in zip(phase_changes, moves, strict=True) if not move]
        later = [c for c, move in zip(phase_changes, moves, strict=True) if move]
        applied = await apply(now)
        report.applied += applied
        if applied and on_rollout is not None:
            # Only a phase that changed something is news: an idle pass reports nothing.
            await on_rollout(cluster.name, phase)
        awaiting = await _wait_for_workloads(cluster, members, phase_timeout, poll_interval, report)
        if awaiting:
            report.waiting_phase, report.awaiting = phase, awaiting
            return report
        report.applied += await apply(later)
        report.completed.append(phase)
    desired = {_key(o) for o in objects}
    report.pruned = await _prune(cluster, ownership, live, desired)
    if ownership.adopts_from and (ownership.sweep or apply.took_over):
        report.pruned += await _sweep_reference(cluster, ownership, desired)
    return report


@dataclass(frozen=True)
class _Change:
    """A desired object that differs from the live one, as it will be applied."""

    manifest: dict[str, Any]  # with its desired hash
    drift: str | None  # the fields that differ, for the log; None: the object does not exist


def _key(obj: DesiredObject) -> ObjectKey:
    return key_of(obj.manifest)


def _changes(
    objects: Sequence[DesiredObject], live: Mapping[ObjectKey, dict[str, Any]]
) -> dict[ObjectKey, _Change]:
    changes = {}
    for obj in objects:
        desired = with_desired_hash(obj.manifest)
        current = live.get(_key(obj))
        if current is None:
            changes[_key(obj)] = _Change(desired, None)
        elif difference(current, desired) is not None:
            changes[_key(obj)] = _Change(desired, changed_fields(current, desired))
    return changes


# How many changed fields an update's log line names; the rest are counted.
CHANGED_FIELDS_SHOWN = 3
_HASH_PATH = f"metadata.annotations.{DESIRED_HASH}"


def changed_fields(live: Any, desired: Any, shown: int = CHANGED_FIELDS_SHOWN) -> str:
    """The fields an update changes, for its log line: `spec.replicas,
    spec.template.spec.containers[discovery].image and 2 more`. The desired hash alone
    differs when a field was dropped from the desired state, which leaves no other trace."""
    paths = list(dict.fromkeys(c.path for c in differences(live, desired)))
    paths = [path for path in paths if path != _HASH_PATH]
    if not paths:
        return "a field no longer desired"
    named = ", ".join(paths[:shown])
    rest = len(paths) - shown
    return f"{named} and {rest} more" if rest > 0 else named


async def _judged(
    cluster: ClusterAccess, changes: Mapping[ObjectKey, _Change]
) -> tuple[list[str], dict[ObjectKey, dict[str, Any]]]:
    """The API server's verdict on every object the change would write, before any write,
    and the objects we would create that someone else already has (taken over, not
    created: see `takeover`).

    The dry-run of a would-be create tells whether the object exists; only one it says
    exists, or whose refusal cannot tell, is read. A workload that will supersede another
    one is judged again as a create. The namespaces to create are judged first: the
    objects in one that does not exist yet are not sent (the server could only answer
    that their namespace is missing, which accepts them), on a new remote most of them.
    """
    bound = asyncio.Semaphore(VALIDATION_CONCURRENCY)

    async def judge(manifest: dict[str, Any]) -> Verdict:
        async with bound:
            return await cluster.judge(manifest)

    async def judged(keys: list[ObjectKey]) -> dict[ObjectKey, Verdict]:
        answers = await asyncio.gather(*(judge(changes[k].manifest) for k in keys))
        return dict(zip(keys, answers, strict=True))

    verdicts = await judged([k for k in changes if _is_namespace(k)])
    absent = {k.name for k, v in verdicts.items() if v.exists is False and v.refusal is None}
    rest = [k for k in changes if not _is_namespace(k)]
    verdicts.update({k: Verdict(None, exists=False) for k in rest if k.namespace in absent})
    verdicts.update(await judged([k for k in rest if k.namespace not in absent]))
    unsure = [k for k in changes if changes[k].drift is None and verdicts[k].exists is not False]
    foreign = await foreign_objects(cluster, unsure)
    superseding = [
        k for k, other in foreign.items() if needs_replacement(other, changes[k].manifest)
    ]
    probes = await asyncio.gather(
        *(judge(replacement_probe(changes[k].manifest)) for k in superseding)
    )
    verdicts.update(zip(superseding, probes, strict=True))
    refused = [f"{k}: {v.refusal}" for k, v in verdicts.items() if v.refusal is not None]
    return refused, foreign


def _is_namespace(key: ObjectKey) -> bool:
    return key.api_version == "v1" and key.kind == "Namespace"


async def _live_index(
    cluster: ClusterAccess, ownership: Ownership, objects: Sequence[DesiredObject]
) -> dict[ObjectKey, dict[str, Any]]:
    """Every object we may own, by key: one LIST per kind, not one GET per object.

    Objects that outlive their owner (Istio's CRDs, a remote's namespace) carry only the
    managed-by label, so their kinds are listed by that label as well.
    """
    register_managed_kinds()
    kinds = set(ownership.kinds) | {(o.manifest["apiVersion"], o.manifest["kind"]) for o in objects}
    unowned = {(o.manifest["apiVersion"], o.manifest["kind"]) for o in objects if not _owned(o)}
    unowned.add(("apiextensions.k8s.io/v1", CRD_KIND))
    queries = [(api_version, kind, ownership.selector) for api_version, kind in sorted(kinds)]
    queries += [(api_version, kind, MANAGED_BY_SELECTOR) for api_version, kind in sorted(unowned)]
    listings = await asyncio.gather(*(cluster.list_labelled(*query) for query in queries))
    return {key_of(obj): obj for listing in listings for obj in listing}


async def prefetch_owned(cluster: ClusterAccess, ownership: Ownership) -> None:
    """Reads what a first pass for `ownership` would: on a client with watch-fed copies,
    the copies its rollout then reads from memory."""
    await _live_index(cluster, ownership, ())


def _owned(obj: DesiredObject) -> bool:
    return OWNER_NAME in obj.labels


@dataclass
class _Applier:
    """Writes changes: applies ours, takes over or supersedes what others made."""

    cluster: ClusterAccess
    ownership: Ownership
    live: dict[ObjectKey, dict[str, Any]]
    foreign: dict[ObjectKey, dict[str, Any]]
    wait_s: float
    poll_interval: float
    took_over: bool = False  # something another writer made became ours in this pass

    def current(self, change: _Change) -> dict[str, Any] | None:
        key = key_of(change.manifest)
        return self.live.get(key) or self.foreign.get(key)

    async def __call__(self, changes: Iterable[_Change]) -> list[ObjectKey]:
        """Applies a phase's changes tier by tier (see `apply_tier`), a tier's at once."""
        bound = asyncio.Semaphore(APPLY_CONCURRENCY)

        async def one(change: _Change) -> ObjectKey | None:
            async with bound:
                return await self._write(change)

        def tier_of(change: _Change) -> int:
            return apply_tier(change.manifest["kind"])

        applied: list[ObjectKey] = []
        for _, tier in groupby(sorted(changes, key=tier_of), key=tier_of):
            written = await asyncio.gather(*(one(change) for change in tier))
            applied += [key for key in written if key is not None]
        return applied

    async def _write(self, change: _Change) -> ObjectKey | None:
        """Writes one change; None when what it replaces is still being deleted."""
        key = key_of(change.manifest)
        other = self.foreign.pop(key, None)
        self.took_over |= other is not None
        if other is not None and needs_replacement(other, change.manifest):
            gone, handed = await supersede(
                self.cluster, other, self.ownership.labels, self.wait_s, self.poll_interval
            )
            self.live.update((key_of(obj), obj) for obj in handed)  # pruned at the end
            if not gone:
                return None  # still being deleted: the phase waits, the next pass creates
            other = None
        if other is not None and made_by_the_reference(other):
            log.info("%s: taking over %s (made by the reference)", self.cluster.name, key)
            self.live[key] = await self.cluster.take_over(change.manifest, other)
        else:
            if other is not None:
                log.info("%s: applying over %s (another writer's)", self.cluster.name, key)
            elif change.drift is None:
                log.info("%s: creating %s", self.cluster.name, key)
            else:
                log.info("%s: updating %s (changed: %s)", self.cluster.name, key, change.drift)
            self.live[key] = await self.cluster.apply(change.manifest)
        return key


# The order of writes within a phase: what others live in (namespaces) or are made of
# (CRDs) first; then what workloads read (accounts, RBAC, config, Services); then the
# workloads, whose pods would otherwise be refused for a missing account; webhooks last,
# so that none calls a Service before the workload behind it is applied. A tier's writes
# are independent of each other and go out at once.
_TIERS: Mapping[str, int] = {
    "Namespace": 0,
    CRD_KIND: 0,
    "Deployment": 2,
    "DaemonSet": 2,
    "HorizontalPodAutoscaler": 2,
    "PodDisruptionBudget": 2,
    "MutatingWebhookConfiguration": 3,
    "ValidatingWebhookConfiguration": 3,
    "ValidatingAdmissionPolicy": 3,
    "ValidatingAdmissionPolicyBinding": 3,
}
APPLY_CONCURRENCY = 8


def apply_tier(kind: str) -> int:
    """The tier of a phase in which objects of `kind` are written (see `_TIERS`)."""
    return _TIERS.get(kind, 1)


async def _wait_for_workloads(
    cluster: ClusterAccess,
    members: Sequence[DesiredObject],
    wait_s: float,
    poll_interval: float,
    report: ClusterReport,
) -> list[str]:
    """Waits until the phase's workloads are all ready, looking again at each change the
    cluster's watches see (at the latest every `poll_interval`); returns what is still
    awaited."""
    keys = [key_of(o.manifest) for o in members if o.manifest["kind"] in GATED_KINDS]
    deadline = time.monotonic() + wait_s
    while True:
        mark = cluster.change_mark()  # a change while these are read is not missed
        states = await asyncio.gather(*(cluster.get(key) for key in keys))
        awaiting = []
        missing = False
        for key, state in zip(keys, states, strict=True):
            if state is None:
                # Deleted since it was applied: the next reconcile recreates it, so stop here.
                awaiting.append(f"{key}: not found")
                missing = True
                continue
            if key.kind != CRD_KIND:
                report.live_workloads[key] = state
            verdict = readiness(state)
            if not verdict.ready:
                awaiting.append(f"{key}: {verdict.reason}")
        if not awaiting or missing or time.monotonic() >= deadline:
            return awaiting
        await cluster.changed(min(poll_interval, max(deadline - time.monotonic(), 0.0)), mark)


async def _prune(
    cluster: ClusterAccess,
    ownership: Ownership,
    live: dict[ObjectKey, dict[str, Any]],
    desired: set[ObjectKey],
) -> list[ObjectKey]:
    """Deletes what this owner applied and no longer desires: webhooks first.

    Objects without the owner's labels (Istio's CRDs, where users' configuration lives; a
    remote's namespace) are never pruned, nor those that merely inherited our labels
    (Endpoints copy their Service's) without ever being applied by us.
    """
    stale = sorted(
        (k for k, obj in live.items() if k not in desired and ownership.owns(obj)),
        key=lambda k: (k.kind not in DELETE_FIRST, k),
    )
    stale = [k for k in stale if applied_by_us(live[k]) and not ownership.keeps(live[k])]
    for key in stale:
        log.info("%s: deleting %s (no longer desired)", cluster.name, key)
        await cluster.delete(key)
    return stale


async def _sweep_reference(
    cluster: ClusterAccess, ownership: Ownership, desired: set[ObjectKey]
) -> list[ObjectKey]:
    """Deletes what another operator made for the same Istio resource and we do not
    render (webhooks first), once our rollout is complete."""
    kinds = sweep_kinds(ownership.kinds)
    listings = await asyncio.gather(*(cluster.list_all(*kind, once=True) for kind in kinds))
    leftovers = reference_leftovers(
        [obj for listing in listings for obj in listing], ownership.adopts_from, desired
    )
    for key in sorted(leftovers, key=lambda k: (k.kind not in DELETE_FIRST, k)):
        log.info(
            "%s: deleting %s (left by the operator this one took over from)", cluster.name, key
        )
        await cluster.delete(key)
    return leftovers


async def delete_owned(cluster: ClusterAccess, ownership: Ownership) -> list[ObjectKey]:
    """Deletes every object the owner created on the cluster (its CRDs excepted)."""
    live = await _live_index(cluster, ownership, ())
    return await _prune(cluster, ownership, live, set())
