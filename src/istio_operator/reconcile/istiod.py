"""One reconcile of an istiod-family `Istio` resource on the primary cluster.

The charts are rendered (`render.istiod`), and the one engine applies them phase by
phase. In place, that is all: a version change rolls istiod, its webhooks and the
gateways where they stand. By revision, each version is a revision beside the others;
the revision tags (`default` included) and the gateways move to the new one once its
istiod is available (their phase comes after istiod's). An older revision is kept as it
runs, not re-rendered, while anything uses it: a namespace labelled for it (or for a tag
that points at it) or a pod it injected. Once nothing has used it for the grace period,
the ordinary prune removes it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from istio_operator.api.errors import SpecError
from istio_operator.api.istio import Istio
from istio_operator.api.labels import PHASE, REVISION, REVISION_VERSION, owner_selector
from istio_operator.charts import ChartVersion, HelmError, helm_binary
from istio_operator.kube.objects import readiness
from istio_operator.kube.protocol import ClusterAccess
from istio_operator.plan.istiod import DEFAULT_TAG, IstiodPlan, resolve_istiod, with_remotes
from istio_operator.reconcile.clock import now
from istio_operator.reconcile.components import component_states
from istio_operator.reconcile.engine import (
    Ownership,
    RolloutListener,
    reconcile_cluster,
)
from istio_operator.reconcile.injection import reconcile_injection_labels
from istio_operator.reconcile.migration import (
    INJECTED_ANNOTATION,
    REV_LABEL,
    TIME_FORMAT,
    MigrationSettings,
    migrate_step,
    parse_time,
)
from istio_operator.reconcile.status import Observation, State, observe
from istio_operator.render.istiod import render_istiod
from istio_operator.render.phases import Phase

log = logging.getLogger(__name__)
INJECTION_LABEL = "istio-injection"
TAG_WEBHOOK_PREFIX = "istio-revision-tag-"


@dataclass(frozen=True)
class Revision:
    """One istiod revision found on the cluster."""

    name: str
    version: str
    ready: bool


@dataclass(frozen=True)
class Usage:
    namespaces: int = 0
    pods: int = 0

    @property
    def used(self) -> bool:
        return bool(self.namespaces or self.pods)


@dataclass(frozen=True)
class Inventory:
    """What the cluster says about revisions: which run, which tag points where, and what
    uses each (directly or through a tag)."""

    revisions: dict[str, Revision]
    tags: dict[str, str]
    usage: dict[str, Usage]


def _failed(generation: int, reason: str, message: str) -> Observation:
    return Observation(generation=generation, state=State.FAILED, reason=reason, message=message)


async def reconcile_istiod(
    primary: ClusterAccess,
    body: Mapping[str, Any],
    istio: Istio,
    charts: ChartVersion,
    *,
    remotes: Sequence[Mapping[str, Any]] = (),
    phase_timeout: float,
    on_rollout: RolloutListener | None = None,
) -> Observation:
    """The primary's istiod-family control plane; its observation (remotes not included).
    With `remotes` (their RemoteIstio bodies), an east-west gateway exposes istiod to them,
    and a revision is kept while a remote uses it (as its last status says)."""
    generation = int((body.get("metadata") or {}).get("generation") or 0)
    try:
        plan = resolve_istiod(istio, charts)
    except SpecError as error:
        return _failed(generation, "InvalidSpec", f"invalid spec: {error}")
    selector = owner_selector(plan.owner, plan.namespace)
    names = {
        str(r["metadata"]["name"]): str((r.get("spec") or {}).get("network") or "") for r in remotes
    }
    pass_ = await revision_pass(
        primary,
        body,
        plan,
        charts,
        selector,
        lambda found, kept: with_tags_held(
            with_remotes(plan, names, kept) if names else plan, found, remotes
        ),
        phase_timeout,
        on_rollout,
        elsewhere=usage_on_remotes(remotes),
    )
    if pass_.seen.state == State.AVAILABLE and pass_.held_tags_at is not None:
        message = (
            f"the tags stay at revision {pass_.held_tags_at} until every remote cluster "
            f"has revision {plan.revision}"
        )
        return replace(pass_.seen, ready=False, not_ready=("TagsHeld", message))
    if pass_.seen.state != State.AVAILABLE or plan.migration is None:
        return pass_.seen
    older = [name for name in pass_.before.revisions if name != plan.revision]
    settings = MigrationSettings(
        plan.migration.batch_size, plan.migration.delay_s, plan.migration.readiness_timeout_s
    )
    previous_migration = (body.get("status") or {}).get("migration") or {}
    progress = await migrate_step(
        primary, plan.revision, older, plan.namespace, settings, previous_migration, now()
    )
    return replace(
        pass_.seen,
        migration=progress.as_status(),
        recheck_after=_sooner(pass_.seen.recheck_after, progress.recheck_after),
    )


@dataclass(frozen=True)
class RevisionPass:
    seen: Observation
    before: Inventory  # the revisions found before the pass
    held_tags_at: str | None = None  # where the tags were held, if they were


async def revision_pass(
    cluster: ClusterAccess,
    body: Mapping[str, Any],
    plan: IstiodPlan,
    charts: ChartVersion,
    selector: str,
    completed: Callable[[Inventory, set[str]], IstiodPlan],
    phase_timeout: float,
    on_rollout: RolloutListener | None,
    *,
    revision_kind: str = "Deployment",
    elsewhere: Mapping[str, Usage] | None = None,
) -> RevisionPass:
    """One pass of a cluster of the istiod family, primary or remote: the revisions found,
    those kept, the plan completed with them (`completed`), rendered and applied, then the
    revisions, tags and injection labels as they now are. Revisions are found by their
    istiod Deployments (a remote's, which runs none, by its istiod Services)."""
    generation = int((body.get("metadata") or {}).get("generation") or 0)
    found = await inventory(cluster, selector, plan.revision_based, revision_kind)
    used = with_usage(found, elsewhere or {})
    kept, unused_since, recheck = retained(plan, used, _previous_revisions(body), now())
    log.debug("%s: usage %s (elsewhere %s), kept %s", cluster.name, used.usage, elsewhere, kept)
    plan = completed(found, kept)
    if plan.tags_held and plan.held_tags_at is not None:
        kept.add(plan.held_tags_at)  # what the tags still point at stays
    try:
        objects = await asyncio.to_thread(render_istiod, plan, charts, helm_binary())
    except HelmError as error:
        return RevisionPass(_failed(generation, "RenderFailed", str(error)), found)
    ownership = Ownership(selector, kept=tuple((REVISION, name) for name in sorted(kept)))
    report = await reconcile_cluster(cluster, objects, ownership, phase_timeout, on_rollout)
    await reconcile_injection_labels(cluster, plan.owner, plan.namespace, plan.injection_namespaces)
    seen = observe(generation, report, plan.version, (), component_states(report))
    if not report.done:
        return RevisionPass(seen, found)
    after = await inventory(cluster, selector, plan.revision_based, revision_kind)
    # A revision this pass left unused (its tags moved) is unused from now: said so at
    # once, so that the next pass finds the status as it leaves it.
    newly = {
        name: now().strftime(TIME_FORMAT)
        for name in after.revisions
        if name not in (plan.revision, plan.tag_revision, *unused_since)
        and not with_usage(after, elsewhere or {}).usage.get(name, Usage()).used
    }
    if newly:
        recheck = _sooner(recheck, float(plan.grace_period_s))
    seen = replace(
        seen,
        revisions=revision_status(plan, after, {**unused_since, **newly}),
        tags=after.tags,
        recheck_after=recheck,
    )
    return RevisionPass(seen, found, plan.held_tags_at if plan.tags_held else None)


def _sooner(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


async def inventory(
    cluster: ClusterAccess, selector: str, revision_based: bool, kind: str = "Deployment"
) -> Inventory:
    """The revisions of the owner's istiod Deployments (Services: `kind`), its tags, and
    what uses each."""
    api_version = "apps/v1" if kind == "Deployment" else "v1"
    deployments, webhooks = await asyncio.gather(
        cluster.list_labelled(api_version, kind, f"{selector},{PHASE}={Phase.ISTIOD.label}"),
        cluster.list_labelled(
            "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", selector
        ),
    )
    revisions = {}
    for deployment in deployments:
        labels = deployment["metadata"].get("labels") or {}
        name = labels.get(REVISION, "")
        revisions[name] = Revision(
            name, labels.get(REVISION_VERSION, ""), readiness(deployment).ready
        )
    tags = {
        str(w["metadata"]["name"]).removeprefix(TAG_WEBHOOK_PREFIX): (
            w["metadata"].get("labels") or {}
        ).get(REVISION, "")
        for w in webhooks
        if str(w["metadata"]["name"]).startswith(TAG_WEBHOOK_PREFIX)
    }
    if not revision_based and len(revisions) <= 1:
        return Inventory(revisions, tags, {})  # nothing to keep or prune by use
    namespaces, pods = await asyncio.gather(
        cluster.list_all("v1", "Namespace"), cluster.list_labelled("v1", "Pod", REV_LABEL)
    )
    return Inventory(revisions, tags, usage(revisions, tags, namespaces, pods))


def usage(
    revisions: Mapping[str, Revision],
    tags: Mapping[str, str],
    namespaces: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
) -> dict[str, Usage]:
    """What uses each revision: namespaces labelled for it or for a tag pointing at it
    (`istio-injection=enabled` is the `default` tag's, or the in-place revision's), and
    pods it injected (they carry its name and the injector's status annotation)."""
    counts = {name: [0, 0] for name in revisions}
    for namespace in namespaces:
        served = namespace_revision(namespace.get("metadata", {}).get("labels") or {}, tags)
        if served in counts:
            counts[served][0] += 1
    for pod in pods:
        if INJECTED_ANNOTATION not in (pod["metadata"].get("annotations") or {}):
            continue  # istiod's own pods carry the label too, but were not injected
        injected = (pod["metadata"].get("labels") or {}).get(REV_LABEL)
        if injected in counts:
            counts[injected][1] += 1
        elif injected == "default" and "" in counts:
            counts[""][1] += 1
    return {name: Usage(*found) for name, found in counts.items()}


def with_tags_held(
    plan: IstiodPlan, found: Inventory, remotes: Sequence[Mapping[str, Any]]
) -> IstiodPlan:
    """The primary's tags move to a new revision once every remote that answers has it
    (a remote that cannot be reached does not hold the mesh back: it catches up)."""
    current = found.tags.get(DEFAULT_TAG)
    if not plan.revision_based or current is None or current == plan.revision:
        return plan
    waiting = [
        body
        for body in remotes
        if (body.get("status") or {}).get("Status") != State.UNREACHABLE
        and not _has_revision(body, plan.revision)
    ]
    return replace(plan, held_tags_at=current) if waiting else plan


def _has_revision(body: Mapping[str, Any], revision: str) -> bool:
    rows = (body.get("status") or {}).get("revisions") or []
    return any(r.get("name") == revision and r.get("ready") for r in rows)


def usage_on_remotes(remotes: Sequence[Mapping[str, Any]]) -> dict[str, Usage]:
    """What uses each revision on the remotes, as their statuses last said (a remote that
    cannot be reached keeps what it used: its revision stays)."""
    found: dict[str, list[int]] = {}
    for body in remotes:
        for row in (body.get("status") or {}).get("revisions") or []:
            name = "" if row.get("name") == "default" else str(row.get("name"))
            in_use = row.get("inUse") or {}
            counts = found.setdefault(name, [0, 0])
            counts[0] += int(in_use.get("namespaces") or 0)
            counts[1] += int(in_use.get("pods") or 0)
    return {name: Usage(*counts) for name, counts in found.items()}


def with_usage(found: Inventory, elsewhere: Mapping[str, Usage]) -> Inventory:
    """The cluster's inventory, its revisions' use counting what other clusters use."""
    if not elsewhere:
        return found
    combined = {
        name: Usage(
            found.usage.get(name, Usage()).namespaces + elsewhere.get(name, Usage()).namespaces,
            found.usage.get(name, Usage()).pods + elsewhere.get(name, Usage()).pods,
        )
        for name in found.revisions
    }
    return replace(found, usage=combined)


def namespace_revision(labels: Mapping[str, str], tags: Mapping[str, str]) -> str | None:
    """The revision whose injector serves a namespace with these labels, if any."""
    if labels.get(INJECTION_LABEL) == "enabled":
        return tags.get(DEFAULT_TAG, "")
    chosen = labels.get(REV_LABEL)
    if chosen is None:
        return None
    return tags.get(chosen, chosen)


def _previous_revisions(body: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found = (body.get("status") or {}).get("revisions") or []
    # The in-place revision ("") is shown as `default`.
    named = {str(r.get("name", "")): r for r in found if isinstance(r, Mapping)}
    return {("" if name == "default" else name): r for name, r in named.items()}


def retained(
    plan: IstiodPlan,
    found: Inventory,
    previous: Mapping[str, Mapping[str, Any]],
    now: dt.datetime,
) -> tuple[set[str], dict[str, str], float | None]:
    """The older revisions to keep, since when each unused one has been unused, and when
    to look again (the soonest end of a grace period)."""
    kept: set[str] = set()
    unused_since: dict[str, str] = {}
    soonest: float | None = None
    for name in found.revisions:
        if name == plan.revision:
            continue
        if found.usage.get(name, Usage()).used:
            kept.add(name)
            continue
        since = parse_time(previous.get(name, {}).get("unusedSince")) or now
        left = plan.grace_period_s - (now - since).total_seconds()
        if left > 0:
            kept.add(name)
            unused_since[name] = since.strftime(TIME_FORMAT)
            soonest = left if soonest is None else min(soonest, left)
    return kept, unused_since, soonest


def revision_status(
    plan: IstiodPlan, found: Inventory, unused_since: Mapping[str, str]
) -> tuple[dict[str, Any], ...]:
    """`status.revisions`: every revision, the active one first."""
    rows = []
    for name, revision in sorted(
        found.revisions.items(), key=lambda r: (r[0] != plan.revision, r[0])
    ):
        used = found.usage.get(name, Usage())
        row: dict[str, Any] = {
            "name": name or "default",
            "version": revision.version,
            "active": name == plan.revision,
            "ready": revision.ready,
            "inUse": {"namespaces": used.namespaces, "pods": used.pods},
        }
        if name in unused_since:
            row["unusedSince"] = unused_since[name]
        rows.append(row)
    return tuple(rows)
