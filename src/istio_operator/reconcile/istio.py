"""One reconcile of an `Istio` resource on the primary cluster.

The remotes are reconciled by their own workers (see `reconcile.remote`); here their
statuses only decide whether the mesh as a whole is Ready.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from istio_operator.api.errors import SpecError
from istio_operator.api.istio import Istio
from istio_operator.api.labels import owner_selector
from istio_operator.api.parse import Misspelling, explained, load_istio
from istio_operator.charts import ChartVersion
from istio_operator.kube.client import Cluster
from istio_operator.plan.resolve import image_warnings, resolve_primary
from istio_operator.reconcile.components import component_states
from istio_operator.reconcile.engine import (
    Ownership,
    RolloutListener,
    reconcile_cluster,
)
from istio_operator.reconcile.injection import injection_namespaces, reconcile_injection_labels
from istio_operator.reconcile.istiod import reconcile_istiod
from istio_operator.reconcile.remote import (
    ingress_addresses,
    list_remotes,
    missing_secret,
    remote_networks,
    remote_ready,
)
from istio_operator.reconcile.status import Observation, State, observe
from istio_operator.reconcile.takeover import drop_reference_finalizers
from istio_operator.render import render_primary_plan
from istio_operator.versions import UnsupportedVersionError
from istio_operator.versions.istiod import renderer_of, select_family

# The Istio resources (by uid) whose objects left by another operator this process has
# already looked for once: after that, only a pass that changes something looks again.
_SWEPT: set[str] = set()
# The generation of each Istio resource (by uid) whose warnings were logged last.
_WARNED: dict[str, int] = {}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    phase_timeout: float = 60.0
    on_rollout: RolloutListener | None = None


@dataclass(frozen=True)
class MeshOutcome:
    """What one reconcile of the primary found, and the remotes of its mesh."""

    primary: Observation
    remote_bodies: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Peer:
    """Another Istio resource of the same cluster."""

    namespace: str
    name: str
    created: str


def _failed(generation: int, reason: str, message: str) -> Observation:
    return Observation(generation=generation, state=State.FAILED, reason=reason, message=message)


def _conflict(istio: Istio, created: str, peers: Sequence[Peer]) -> str | None:
    """Only the oldest Istio resource of a cluster is reconciled; the others are told why."""
    me = (created, istio.metadata.namespace or "", istio.metadata.name)
    older = sorted(p for p in ((p.created, p.namespace, p.name) for p in peers) if p < me)
    if not older:
        return None
    _, namespace, name = older[0]
    return (
        f"only one Istio resource per cluster is supported: {namespace}/{name} already "
        "manages this cluster's control plane"
    )


async def reconcile_mesh(
    primary: Cluster,
    body: Mapping[str, Any],
    peers: Sequence[Peer],
    settings: Settings,
) -> MeshOutcome:
    """The primary's control plane; the mesh is Ready when every remote is as well."""
    generation = int((body.get("metadata") or {}).get("generation") or 0)
    namespace = str((body.get("metadata") or {}).get("namespace") or "")
    remote_bodies = [
        b
        for b in await list_remotes(primary, namespace)
        if not (b.get("metadata") or {}).get("deletionTimestamp")
    ]
    for resource in (body, *remote_bodies):
        await drop_reference_finalizers(primary, resource)
    misspelled: tuple[Misspelling, ...] = ()
    try:
        loaded = load_istio(body)
        istio, misspelled = loaded.resource, loaded.misspelled
        _warn_once(body, [*loaded.warnings, *image_warnings(istio)])
        charts = family_change_refused(istio, body)
        if charts is not None:
            seen = await reconcile_istiod(
                primary,
                body,
                istio,
                charts,
                remotes=remote_bodies,
                phase_timeout=settings.phase_timeout,
                on_rollout=settings.on_rollout,
            )
            return MeshOutcome(with_remotes(seen, istio, generation, remote_bodies), remote_bodies)
    except SpecError as error:
        return MeshOutcome(_failed(generation, "InvalidSpec", f"invalid spec: {error}"))
    except UnsupportedVersionError as error:
        return MeshOutcome(_failed(generation, "UnsupportedVersion", str(error)))
    except FamilyChangeError as error:
        return MeshOutcome(_failed(generation, "FamilyChange", str(error)))
    gateways = await ingress_addresses(primary, namespace)
    try:
        plan, family = resolve_primary(istio)
        objects = render_primary_plan(
            plan, family, istio, remote_networks(remote_bodies), primary_gateway_addresses=gateways
        )
    except SpecError as error:
        message = f"invalid spec: {explained(error, misspelled)}"
        return MeshOutcome(_failed(generation, "InvalidSpec", message))
    except UnsupportedVersionError as error:
        return MeshOutcome(_failed(generation, "UnsupportedVersion", str(error)))
    conflict = _conflict(istio, str((body.get("metadata") or {}).get("creationTimestamp")), peers)
    if conflict:
        return MeshOutcome(_failed(generation, "Conflict", conflict))

    missing = await missing_references(primary, istio)
    if missing:
        return MeshOutcome(_failed(generation, "MissingReference", missing))

    name = istio.metadata.name
    uid = str((body.get("metadata") or {}).get("uid") or "")
    report = await reconcile_cluster(
        primary,
        objects,
        Ownership(owner_selector(name, namespace), adopts_from=uid, sweep=uid not in _SWEPT),
        settings.phase_timeout,
        settings.on_rollout,
    )
    if report.done:
        _SWEPT.add(uid)
    await reconcile_injection_labels(primary, name, namespace, injection_namespaces(plan))
    seen = observe(generation, report, istio.spec.version, gateways, component_states(report))
    return MeshOutcome(with_remotes(seen, istio, generation, remote_bodies), remote_bodies)


def _warn_once(body: Mapping[str, Any], warnings: Sequence[str]) -> None:
    """Logs what reading the resource warns about, once per generation of it."""
    meta = body.get("metadata") or {}
    seen = (str(meta.get("uid") or meta.get("name")), int(meta.get("generation") or 0))
    if not warnings or _WARNED.get(seen[0]) == seen[1]:
        return
    _WARNED[seen[0]] = seen[1]
    for warning in warnings:
        log.warning("Istio %s/%s: %s", meta.get("namespace"), meta.get("name"), warning)


class FamilyChangeError(ValueError):
    """A version change from one family to the other (classic 1.2/1.3 and istiod)."""


def family_change_refused(istio: Istio, body: Mapping[str, Any]) -> ChartVersion | None:
    """The istiod-family charts of `spec.version` (None: a classic version); refuses a
    change of family from the version in effect (`status.version`): the two install
    different control planes, and nothing migrates one into the other."""
    wanted = select_family(istio.spec.version)
    in_effect = str((body.get("status") or {}).get("version") or "")
    if in_effect and in_effect != istio.spec.version:
        before = renderer_of(in_effect)
        if before != wanted.renderer:
            raise FamilyChangeError(
                f"spec.version {istio.spec.version} is of the {wanted.renderer} family but "
                f"Istio {in_effect} of the {before} family runs: a change of family "
                "is not an upgrade; nothing was changed (install the new family beside it "
                "with another Istio resource on another cluster, or restore spec.version)"
            )
    return wanted.charts if wanted.renderer == "istiod" else None


async def missing_references(cluster: Cluster, istio: Istio) -> str | None:
    """What the spec names that the API server cannot check: a CA Secret that does not
    exist would leave citadel unable to start, after the rollout had begun."""
    name = istio.spec.citadel.caSecretName if istio.spec.citadel else None
    return await missing_secret(
        cluster, "spec.citadel.caSecretName", istio.metadata.namespace, name
    )


def with_remotes(
    seen: Observation, istio: Istio, generation: int, remote_bodies: Sequence[Mapping[str, Any]]
) -> Observation:
    """The primary's observation with each remote's state, and Ready only when the whole
    mesh is: the primary and every remote available at this generation and version."""
    states = {
        str(b["metadata"]["name"]): str((b.get("status") or {}).get("Status") or State.PENDING)
        for b in remote_bodies
    }
    lagging = sorted(
        str(b["metadata"]["name"])
        for b in remote_bodies
        if not remote_ready(b, generation, istio.spec.version)
    )
    seen = replace(seen, remotes=states)
    if not seen.ready or not lagging:
        return seen
    waiting = ", ".join(f"{name} ({states[name]})" for name in lagging)
    return replace(
        seen, ready=False, not_ready=("RemotesNotReady", f"waiting for remote clusters: {waiting}")
    )
