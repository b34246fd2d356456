"""Events about the operator's resources, aggregated as kubectl and the kubelet do.

A repetition of an event (same object, type, reason and message) is not a new Event
object: the existing one's `count` and `lastTimestamp` move. Its name is derived from
what it says, so the repetition finds it without a list.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any, Final

from istio_operator.api.keys import ObjectKey
from istio_operator.api.labels import FIELD_MANAGER
from istio_operator.kube.protocol import ClusterAccess

COMPONENT: Final = FIELD_MANAGER
MAX_MESSAGE: Final = 1000  # the API server refuses longer event messages


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_name(involved: Mapping[str, Any], type_: str, reason: str, message: str) -> str:
    """`<object>.<digest>`: one name per distinct event about one object (its uid in the
    digest, so that a re-created object starts afresh)."""
    meta = involved.get("metadata") or {}
    said = "\0".join([str(meta.get("uid") or ""), type_, reason, message])
    return f"{meta.get('name')}.{hashlib.sha256(said.encode()).hexdigest()[:16]}"


def event_manifest(
    involved: Mapping[str, Any], type_: str, reason: str, message: str, *, count: int, first: str
) -> dict[str, Any]:
    meta = involved.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": event_name(involved, type_, reason, message),
            "namespace": namespace,
        },
        "involvedObject": {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message,
        "count": count,
        "firstTimestamp": first,
        "lastTimestamp": _now(),
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
    }


async def record_event(
    cluster: ClusterAccess, involved: Mapping[str, Any], type_: str, reason: str, message: str
) -> dict[str, Any]:
    """Posts the event, or counts one more of the same; returns the Event as written."""
    message = message[:MAX_MESSAGE]
    probe = event_manifest(involved, type_, reason, message, count=1, first="")
    meta = probe["metadata"]
    live = await cluster.get(ObjectKey("v1", "Event", meta["namespace"], meta["name"]))
    count = int((live or {}).get("count") or 0) + 1
    first = str((live or {}).get("firstTimestamp") or _now())
    # A server-side apply creates the Event or moves its count, with no create/update race.
    return await cluster.apply(
        event_manifest(involved, type_, reason, message, count=count, first=first)
    )
