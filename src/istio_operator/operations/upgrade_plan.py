"""`istio-operator plan`: the operator's reconcile of an edited Istio resource (and its
RemoteIstios), run on every cluster of the mesh without writing (see `planning`), until it
comes to rest: what it would create, change and delete there, phase by phase, which
workloads would roll, which data-plane workloads would then run an older proxy, and the
checks that would refuse the change."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from istio_operator.api.errors import SpecError
from istio_operator.api.keys import ObjectKey, key_of
from istio_operator.api.labels import API_VERSION
from istio_operator.api.parse import load_istio
from istio_operator.kube.client import ApiRefusedError, Cluster, ClusterUnreachableError
from istio_operator.operations.dataplane import Restart, read_selection
from istio_operator.operations.inventory import describe
from istio_operator.operations.planning import (
    PlannedWrite,
    PlanningCluster,
    PlanningRemotes,
    istio_key,
)
from istio_operator.plan.resolve import image_warnings
from istio_operator.reconcile.clock import held
from istio_operator.reconcile.istio import Peer, Settings, reconcile_mesh
from istio_operator.reconcile.remote import RemoteSettings, reconcile_remote
from istio_operator.reconcile.status import Observation, State, compute_status

# A pass that waits for a live workload someone else left unready waits this long.
PHASE_WAIT_S = 3.0
# Enough for the longest sequence a change takes (install a revision, move the tags on
# every cluster, migrate, prune); a change still writing after that is reported as such.
MAX_ROUNDS = 8
REFUSING_STATES = (State.FAILED, State.UNREACHABLE)


@dataclass
class ClusterPlan:
    """The plan of one cluster."""

    name: str  # "primary" or the RemoteIstio's name
    server: str
    writes: list[PlannedWrite] = field(default_factory=list)
    refusal: str = ""  # why the change would be refused on this cluster
    waiting: str = ""  # what the rollout would wait for (a live workload not ready)
    behind: tuple[Restart, ...] = ()  # data-plane workloads left on an older proxy
    behind_error: str = ""

    @property
    def rolls(self) -> list[PlannedWrite]:
        return [w for w in self.writes if w.rolls]


@dataclass
class UpgradePlan:
    istio: ObjectKey
    version_before: str  # the version in effect ("" before the first install)
    version_after: str
    clusters: list[ClusterPlan] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # of the resource, before any cluster
    warnings: list[str] = field(default_factory=list)  # unknown fields, pinned images
    settled: bool = True  # whether the simulated reconcile came to rest

    @property
    def refused(self) -> bool:
        return bool(self.refusals) or any(c.refusal for c in self.clusters)

    @property
    def changed(self) -> bool:
        return any(c.writes for c in self.clusters)


class PlanInputError(ValueError):
    """The resource to plan cannot be found or read."""


def edited_body(live: Mapping[str, Any] | None, edited: Mapping[str, Any]) -> dict[str, Any]:
    """The resource as the operator would see it once `edited` is applied over `live`:
    the edited spec, the live metadata and status, a new generation if the spec moved."""
    meta = copy.deepcopy(dict((live or {}).get("metadata") or {}))
    given = edited.get("metadata") or {}
    meta.setdefault("name", given.get("name"))
    meta.setdefault("namespace", given.get("namespace"))
    spec = copy.deepcopy(edited.get("spec") or {})
    generation = int(meta.get("generation") or 0)
    if live is None or (live.get("spec") or {}) != spec:
        generation += 1
    meta["generation"] = generation
    return {
        "apiVersion": edited.get("apiVersion", API_VERSION),
        "kind": edited.get("kind"),
        "metadata": meta,
        "spec": spec,
        "status": copy.deepcopy(dict((live or {}).get("status") or {})),
    }


async def make_plan(
    primary: Cluster,
    namespace: str,
    name: str | None,
    edited: Sequence[Mapping[str, Any]] = (),
) -> UpgradePlan:
    """The plan of `edited` (an Istio and any RemoteIstios; none: the live resources)."""
    planning = PlanningCluster.reading(primary)
    istio = await _istio_body(planning, namespace, name, edited)
    key = key_of(istio)
    before = str((istio.get("status") or {}).get("version") or "")
    result = UpgradePlan(key, before, str((istio.get("spec") or {}).get("version") or ""))
    result.refusals += not_available(istio)
    result.warnings += warnings_of(istio)
    for body in edited:
        if body.get("kind") == "RemoteIstio":
            live = await planning.get(_with_namespace(body, namespace))
            planning.preset(edited_body(live, {**body, "metadata": _meta(body, namespace)}))
    remotes = PlanningRemotes()
    try:
        with held():  # no grace period or migration delay runs out between simulated passes
            seen = await _simulate(planning, remotes, key, result)
        result.clusters.insert(0, _cluster_plan(planning, seen.get("primary")))
        for remote, cluster in sorted(remotes.clusters.items()):
            plan = _cluster_plan(cluster, seen.get(remote))
            result.clusters.append(plan)
        for remote, observation in sorted(seen.items()):
            if remote != "primary" and remote not in remotes.clusters:
                result.clusters.append(_cluster_plan(None, observation, remote))
        await _data_plane(result, planning, remotes, namespace)
    finally:
        await remotes.close()
    return result


async def _istio_body(
    planning: PlanningCluster,
    namespace: str,
    name: str | None,
    edited: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    given = [b for b in edited if b.get("kind") == "Istio"]
    if len(given) > 1:
        raise PlanInputError("more than one Istio resource given: plan one mesh at a time")
    if given:
        meta = _meta(given[0], namespace)
        live = await planning.get(istio_key(meta["namespace"], meta["name"]))
        body = edited_body(live, {**given[0], "metadata": meta})
    else:
        body = await _live_istio(planning, namespace, name)
    planning.preset(body)
    return body


def _meta(body: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    meta = dict(body.get("metadata") or {})
    if not meta.get("name"):
        raise PlanInputError(f"the {body.get('kind')} resource given has no metadata.name")
    meta["namespace"] = meta.get("namespace") or namespace
    return meta


def _with_namespace(body: Mapping[str, Any], namespace: str) -> ObjectKey:
    return key_of({**body, "metadata": _meta(body, namespace)})


async def _live_istio(
    planning: PlanningCluster, namespace: str, name: str | None
) -> dict[str, Any]:
    if name:
        found = await planning.get(istio_key(namespace, name))
        if found is None:
            raise PlanInputError(f"no Istio resource {namespace}/{name} on the primary cluster")
        return found
    bodies = [
        b
        for b in await planning.list_all(API_VERSION, "Istio")
        if (b.get("metadata") or {}).get("namespace") == namespace
    ]
    if len(bodies) != 1:
        what = "no Istio resource" if not bodies else "more than one Istio resource (use --name)"
        raise PlanInputError(f"{what} in namespace {namespace}: give one with -f")
    return bodies[0]


def warnings_of(istio: Mapping[str, Any]) -> list[str]:
    """What reading the resource warns about (an unknown field, an image pinned to another
    release); an invalid one is left to the reconcile, which refuses it by name."""
    try:
        loaded = load_istio(istio)
    except (SpecError, ValueError):
        return []
    return [*loaded.warnings, *image_warnings(loaded.resource)]


def not_available(istio: Mapping[str, Any]) -> list[str]:
    status = str((istio.get("status") or {}).get("Status") or "")
    if not status or status == State.AVAILABLE:
        return []
    meta = istio.get("metadata") or {}
    message = (istio.get("status") or {}).get("ErrorMessage") or ""
    return [
        f"Istio {meta.get('namespace')}/{meta.get('name')} is {status}, not Available"
        + (f" ({message})" if message else "")
        + ": change it once the running mesh is Available"
    ]


async def _simulate(
    planning: PlanningCluster,
    remotes: PlanningRemotes,
    key: ObjectKey,
    result: UpgradePlan,
) -> dict[str, Observation]:
    """Passes of the primary and then each remote, each seeing the others' statuses as
    the operator would have written them, until a round writes nothing."""
    seen: dict[str, Observation] = {}
    peers = await _peers(planning, key)
    result.settled = False
    for _ in range(MAX_ROUNDS):
        recorded = _recorded(planning, remotes)
        istio = await planning.get(key)
        assert istio is not None  # preset
        try:
            outcome = await reconcile_mesh(planning, istio, peers, Settings(PHASE_WAIT_S))
            primary_seen = outcome.primary
        except (ClusterUnreachableError, ApiRefusedError) as error:
            seen["primary"] = _unreachable(istio, error)
            break
        seen["primary"] = primary_seen
        _report_status(planning, istio, primary_seen)
        if primary_seen.state in REFUSING_STATES:
            break
        istio = await planning.get(key)
        assert istio is not None
        for body in outcome.remote_bodies:
            await _remote_pass(planning, remotes, istio, key_of(body), seen)
        if _recorded(planning, remotes) == recorded:
            result.settled = True
            break
    return seen


async def _remote_pass(
    planning: PlanningCluster,
    remotes: PlanningRemotes,
    istio: Mapping[str, Any],
    key: ObjectKey,
    seen: dict[str, Observation],
) -> None:
    body = await planning.get(key)
    if body is None:
        return
    settings = RemoteSettings(PHASE_WAIT_S)
    outcome = await reconcile_remote(planning, remotes, istio, body, settings)
    if outcome is not None:
        seen[key.name] = outcome.observation
        _report_status(planning, body, outcome.observation)


def _report_status(planning: PlanningCluster, body: Mapping[str, Any], seen: Observation) -> None:
    """The status the operator's worker would write after the pass (in the overlay)."""
    updated = copy.deepcopy(dict(body))
    updated["status"] = compute_status(body.get("status") or {}, seen)
    planning.preset(updated)


def _unreachable(istio: Mapping[str, Any], error: Exception) -> Observation:
    generation = int((istio.get("metadata") or {}).get("generation") or 0)
    return Observation(generation, State.UNREACHABLE, "Unreachable", describe(error))


def _recorded(planning: PlanningCluster, remotes: PlanningRemotes) -> int:
    return planning.recorded + sum(c.recorded for c in remotes.clusters.values())


async def _peers(planning: PlanningCluster, key: ObjectKey) -> list[Peer]:
    peers = []
    for body in await planning.list_all(API_VERSION, "Istio"):
        meta = body.get("metadata") or {}
        if (meta.get("namespace"), meta.get("name")) != (key.namespace, key.name):
            peers.append(
                Peer(
                    str(meta.get("namespace")),
                    str(meta["name"]),
                    str(meta.get("creationTimestamp")),
                )
            )
    return peers


def _cluster_plan(
    cluster: PlanningCluster | None, seen: Observation | None, name: str = ""
) -> ClusterPlan:
    plan = ClusterPlan(cluster.name if cluster else name, cluster.server if cluster else "")
    if cluster is not None:
        plan.writes = cluster.planned()
    if seen is not None and seen.state in REFUSING_STATES:
        plan.refusal = f"{seen.reason}: {seen.message}"
    elif seen is not None and seen.state == State.RECONCILING:
        plan.waiting = seen.message
    return plan


async def _data_plane(
    result: UpgradePlan,
    planning: PlanningCluster,
    remotes: PlanningRemotes,
    namespace: str,
) -> None:
    """The workloads whose sidecars would run another proxy than the new control plane."""
    clusters: dict[str, Cluster] = {"primary": planning, **remotes.clusters}
    for plan in result.clusters:
        cluster = clusters.get(plan.name)
        if cluster is None or plan.refusal:
            continue
        try:
            selection = await read_selection(
                cluster, result.version_after, control_plane_namespace=namespace
            )
        except (ClusterUnreachableError, ApiRefusedError) as error:
            plan.behind_error = describe(error)
            continue
        plan.behind = selection.restarts
