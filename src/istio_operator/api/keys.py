"""What identifies an object within one cluster, for every layer that names objects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


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
