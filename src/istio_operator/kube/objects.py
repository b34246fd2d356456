"""Pure helpers on Kubernetes objects as plain dicts: identity (from `api.keys`), drift,
readiness."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lightkube.utils import quantity

from istio_operator.api.labels import FIELD_MANAGER, GROUP

DESIRED_HASH = f"{GROUP}/desired-hash"


def applied_by_us(obj: Mapping[str, Any]) -> bool:
    """Whether the operator's field manager has server-side applied this object."""
    managers = (obj.get("metadata") or {}).get("managedFields") or []
    return any(
        m.get("manager") == FIELD_MANAGER and m.get("operation") == "Apply" for m in managers
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
    """Whether every field of `desired` is present in `live` with the same value."""
    return difference(live, desired) is None


def difference(live: Any, desired: Any, path: str = "") -> str | None:
    """The first field of `desired` missing from `live` or different there, or None.

    Fields the API server defaults or others own are extra in `live` and ignored;
    lists must match element by element (server-side apply keeps their order);
    quantities compare by value (the server stores `2048Mi` as `2Gi`).
    """
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return path or "."
        for key, value in desired.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in live:
                return where
            found = difference(live[key], value, where)
            if found is not None:
                return found
        return None
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return path
        for index, (a, b) in enumerate(zip(live, desired, strict=True)):
            found = difference(a, b, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    return None if _same_scalar(live, desired) else path


def _same_scalar(live: Any, desired: Any) -> bool:
    if isinstance(desired, bool) or isinstance(live, bool):
        return live is desired
    if isinstance(desired, int | float) and isinstance(live, int | float):
        return float(live) == float(desired)
    if live == desired:
        return True
    if isinstance(live, str) and isinstance(desired, str):
        a, b = parse_quantity(live), parse_quantity(desired)
        return a is not None and a == b
    return False


def parse_quantity(text: str) -> Decimal | None:
    """The value of a Kubernetes quantity (`100m`, `2Gi`, `1e3`), or None if it is none;
    lightkube's parser, which rounds up to thousandths."""
    try:
        return quantity.parse_quantity(text)
    except ValueError:
        return None


def pod_template_containers(workload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The containers of a workload's pod template (none if it has no template)."""
    spec = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    return list(spec.get("containers") or [])


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


@dataclass(frozen=True)
class FieldChange:
    """One field of a desired object that differs from the live one (`before` is
    `MISSING` when the live object lacks it)."""

    path: str
    before: Any
    after: Any


MISSING: Any = type("Missing", (), {"__repr__": lambda self: "(unset)"})()


def differences(live: Any, desired: Any, path: str = "") -> list[FieldChange]:
    """Every field of `desired` missing from `live` or different there, as `difference`
    judges them. Lists of named items (containers, ports, env) are paired by name, so a
    change reads `containers[discovery].image` rather than a whole list."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return [FieldChange(path or ".", live, desired)]
        found: list[FieldChange] = []
        for key, value in desired.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in live:
                found.append(FieldChange(where, MISSING, value))
            else:
                found += differences(live[key], value, where)
        return found
    if isinstance(desired, list):
        if difference(live, desired, path) is None:
            return []
        if isinstance(live, list) and _named(live) and _named(desired):
            return _named_differences(live, desired, path)
        if isinstance(live, list) and len(live) == len(desired):
            return [
                change
                for index, (a, b) in enumerate(zip(live, desired, strict=True))
                for change in differences(a, b, f"{path}[{index}]")
            ]
        return [FieldChange(path, live, desired)]
    return [] if _same_scalar(live, desired) else [FieldChange(path, live, desired)]


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, Mapping) and "name" in i for i in items)


def _named_differences(live: list[Any], desired: list[Any], path: str) -> list[FieldChange]:
    by_name = {item["name"]: item for item in live}
    found: list[FieldChange] = []
    for item in desired:
        where = f"{path}[{item['name']}]"
        current = by_name.pop(item["name"], None)
        found += (
            [FieldChange(where, MISSING, item)]
            if current is None
            else differences(current, item, where)
        )
    found += [FieldChange(f"{path}[{name}]", item, MISSING) for name, item in by_name.items()]
    return found
