"""Pure helpers on Kubernetes objects as plain dicts: identity, drift, readiness."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from istio_operator.api.labels import GROUP

DESIRED_HASH = f"{GROUP}/desired-hash"


@dataclass(frozen=True, order=True)
class ObjectKey:
    """What identifies an object within one cluster."""

    api_version: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


def key_of(obj: Mapping[str, Any]) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return ObjectKey(
        api_version=str(obj["apiVersion"]),
        kind=str(obj["kind"]),
        namespace=str(meta.get("namespace") or ""),
        name=str(meta["name"]),
    )


def with_desired_hash(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest, annotated with a hash of itself.

    A field dropped from the desired state leaves no trace in a field-by-field
    comparison with the live object; the hash changes instead, so it is applied.
    """
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
    result = json.loads(json.dumps(manifest))
    annotations = result.setdefault("metadata", {}).setdefault("annotations", {})
    annotations[DESIRED_HASH] = digest
    return dict(result)


def contains(live: Any, desired: Any) -> bool:
    """Whether every field of `desired` is present in `live` with the same value.

    Fields the API server defaults or others own are extra in `live` and ignored;
    lists must match element by element (server-side apply keeps their order).
    """
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(
            k in live and contains(live[k], v) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(contains(a, b) for a, b in zip(live, desired, strict=True))
        )
    if isinstance(desired, bool) or isinstance(live, bool):
        return live is desired
    if isinstance(desired, int | float) and isinstance(live, int | float):
        return float(live) == float(desired)
    return bool(live == desired)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str = ""


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def readiness(obj: Mapping[str, Any]) -> Readiness:
    """Whether a live object is ready for the next rollout phase, and if not, why."""
    kind = obj.get("kind")
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation") or 0
    if kind in ("Deployment", "DaemonSet") and (status.get("observedGeneration") or 0) < generation:
        return Readiness(False, "new generation not yet observed")
    if kind == "Deployment":
        wanted = (obj.get("spec") or {}).get("replicas", 1)
        updated = status.get("updatedReplicas") or 0
        available = status.get("availableReplicas") or 0
        total = status.get("replicas") or 0
        if updated < wanted or total > updated or available < wanted:
            return Readiness(False, f"{updated}/{wanted} updated, {available}/{wanted} available")
    elif kind == "DaemonSet":
        wanted = status.get("desiredNumberScheduled") or 0
        updated = status.get("updatedNumberScheduled") or 0
        available = status.get("numberAvailable") or 0
        if updated < wanted or available < wanted:
            return Readiness(False, f"{updated}/{wanted} updated, {available}/{wanted} available")
    elif kind == "CustomResourceDefinition":
        established = _condition(obj, "Established")
        if not established or established.get("status") != "True":
            return Readiness(False, "not yet Established")
    return Readiness(True)
