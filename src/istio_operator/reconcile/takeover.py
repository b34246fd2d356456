"""Taking over objects that another writer created: the reference operator's install.

An object the render wants, found on the cluster without our labels, is seen when the
engine would create it: the dry-run of its apply answers with an object that exists (a
stored resourceVersion), and only then is it read (nothing at rest, nothing for a create). One the
reference made (`made_by_the_reference`) is made exactly the desired object, and ours
alone (`ClusterAccess.take_over`); anyone else's is applied over, keeping their fields
(a user's labels on a namespace we also want).

A workload whose selector differs cannot be changed in place (the selector is
immutable). It is superseded instead, with its pods serving throughout: what it runs (a
Deployment's ReplicaSets, a DaemonSet's pods) is labelled as ours, the workload alone is
deleted (orphaning them), ours is created beside them, and the engine's prune removes
them once the new workload is available. A Service whose selector moves is applied only
then too (see `engine`), so it keeps selecting the old pods until the new ones are ready.

What the reference created and we do not render is found by its controller
ownerReference to the same Istio resource, and deleted once the rollout is complete.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from istio_operator.api.keys import ObjectKey, key_of
from istio_operator.api.labels import API_VERSION, FIELD_MANAGER, GROUP, MANAGED_BY
from istio_operator.kube.protocol import ClusterAccess

log = logging.getLogger(__name__)

# Marks what a superseded workload ran, so that the prune removes it later (and a
# restarted operator still knows it).
SUPERSEDED = f"{GROUP}/superseded-by"
REPLACEMENT_SUFFIX = "-replacement"
# What a workload of each kind runs directly, and must outlive the workload's deletion.
DEPENDENTS = {"Deployment": ("apps/v1", "ReplicaSet"), "DaemonSet": ("v1", "Pod")}
# Kinds never swept as the reference's leftovers: what controllers (not operators) create,
# and what the engine only reads.
NOT_SWEPT = frozenset({"Pod", "ReplicaSet", "Endpoints", "Secret", "CustomResourceDefinition"})


async def foreign_objects(
    cluster: ClusterAccess, keys: Iterable[ObjectKey]
) -> dict[ObjectKey, dict[str, Any]]:
    """The live objects, among those we were about to create, that someone else made."""
    wanted = list(keys)
    found = await asyncio.gather(*(cluster.get(key) for key in wanted))
    return {key: obj for key, obj in zip(wanted, found, strict=True) if obj is not None}


REFERENCE_ANNOTATION = "banzaicloud.com/last-applied"


def made_by_the_reference(obj: Mapping[str, Any]) -> bool:
    """Whether the reference operator made the object: its last-applied annotation, or
    its ownerReference to an Istio resource (the remote `istio-config` one included)."""
    meta = obj.get("metadata") or {}
    return REFERENCE_ANNOTATION in (meta.get("annotations") or {}) or any(
        _is_istio(ref) for ref in meta.get("ownerReferences") or []
    )


def needs_replacement(live: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether the live workload's selector differs from ours: it cannot be patched."""
    if live.get("kind") not in DEPENDENTS:
        return False
    return bool(_selector(live) != _selector(desired))


def selector_moves(live: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether applying a Service would make it select other pods than it does."""
    if live is None or desired.get("kind") != "Service":
        return False
    return (live.get("spec") or {}).get("selector") != (desired.get("spec") or {}).get("selector")


def replacement_probe(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest under another name: its dry-run judges it as a create, which is what
    superseding a workload does."""
    probe = copy.deepcopy(dict(manifest))
    probe["metadata"]["name"] = f"{probe['metadata']['name']}{REPLACEMENT_SUFFIX}"
    return probe


async def supersede(
    cluster: ClusterAccess,
    live: Mapping[str, Any],
    labels: Mapping[str, str],
    wait_s: float,
    poll_interval: float,
) -> tuple[bool, list[dict[str, Any]]]:
    """Hands what the workload runs to the prune, then deletes the workload alone.

    Returns whether it is gone (a deletion the garbage collector has finished), so that
    ours can be created under its name, and what it ran, now labelled as ours.
    """
    key = key_of(live)
    uid = live["metadata"]["uid"]
    api_version, kind = DEPENDENTS[str(live["kind"])]
    handed = []
    for dependent in await cluster.list_all(api_version, kind, once=True):
        if _owned_by(dependent, uid):
            meta = dependent["metadata"]
            marks = {**labels, SUPERSEDED: key.name}
            handed.append(
                await cluster.apply_as(
                    FIELD_MANAGER,
                    {
                        "apiVersion": api_version,
                        "kind": kind,
                        "metadata": {
                            "name": meta["name"],
                            "namespace": meta["namespace"],
                            "labels": marks,
                        },
                    },
                )
            )
    log.info(
        "%s: replacing %s (its selector cannot change); its pods serve meanwhile", cluster.name, key
    )
    await cluster.delete(key, orphan=True)
    deadline = time.monotonic() + wait_s
    while (current := await cluster.get(key)) is not None and current["metadata"]["uid"] == uid:
        if time.monotonic() >= deadline:
            return False, handed
        await asyncio.sleep(poll_interval)
    return True, handed


def reference_leftovers(
    listings: Sequence[dict[str, Any]], owner_uid: str, desired: set[ObjectKey]
) -> list[ObjectKey]:
    """Objects that another operator made for the same Istio resource (its controller
    ownerReference) and that we neither render nor label as ours."""
    return sorted(
        key_of(obj)
        for obj in listings
        if obj.get("kind") not in NOT_SWEPT
        and key_of(obj) not in desired
        and MANAGED_BY not in ((obj.get("metadata") or {}).get("labels") or {})
        and _controlled_by_istio(obj, owner_uid)
    )


def sweep_kinds(kinds: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted(k for k in set(kinds) if k[1] not in NOT_SWEPT)


def _controlled_by_istio(obj: Mapping[str, Any], owner_uid: str) -> bool:
    return any(
        ref.get("uid") == owner_uid and _is_istio(ref)
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
    )


def _is_istio(ref: Mapping[str, Any]) -> bool:
    return (
        ref.get("kind") == "Istio"
        and str(ref.get("apiVersion", "")).split("/")[0] == API_VERSION.split("/")[0]
    )


def _owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    return any(
        ref.get("uid") == uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
    )


def _selector(workload: Mapping[str, Any]) -> Any:
    return (workload.get("spec") or {}).get("selector")


# The reference operator's finalizers (sic) on Istio and RemoteIstio: with it gone, they
# would block the resources' deletion forever.
REFERENCE_FINALIZERS = frozenset(
    {"istio-operator.finializer.banzaicloud.io", "remote-istio-operator.finializer.banzaicloud.io"}
)


async def drop_reference_finalizers(cluster: ClusterAccess, body: Mapping[str, Any]) -> None:
    """Removes the reference's finalizer from a resource it managed; a merge patch with
    the resourceVersion, so that a finalizer added meanwhile (kopf's) is not lost."""
    meta = body.get("metadata") or {}
    finalizers = list(meta.get("finalizers") or [])
    kept = [f for f in finalizers if f not in REFERENCE_FINALIZERS]
    if kept == finalizers:
        return
    log.info("%s: removing the reference operator's finalizer from %s", cluster.name, key_of(body))
    patch = {"metadata": {"finalizers": kept, "resourceVersion": meta.get("resourceVersion")}}
    await cluster.merge_patch(key_of(body), patch)
