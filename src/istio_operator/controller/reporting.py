"""Status and Events of `Istio` and `RemoteIstio` resources, written only on change."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from istio_operator.api.keys import ObjectKey
from istio_operator.kube.client import ApiRefusedError, Cluster, ClusterUnreachableError
from istio_operator.kube.events import record_event
from istio_operator.kube.protocol import ClusterAccess
from istio_operator.reconcile.status import (
    WARNING_STATES,
    Observation,
    compute_status,
    differs,
    merge_patch,
)


class StatusWriter:
    """Writes one resource's status when it changed, with an Event when its state did."""

    def __init__(self, primary: Cluster, logger: logging.Logger | logging.LoggerAdapter[Any]):
        self.primary, self.logger = primary, logger
        # The statuses this writer wrote last: newer than a body read since, until the watch
        # delivers them (a pass that starts sooner must not write the same status again).
        self._written: dict[ObjectKey, dict[str, Any]] = {}

    async def report(self, key: ObjectKey, body: Mapping[str, Any], seen: Observation) -> bool:
        """Returns whether the status was written."""
        previous = self._written.get(key) or dict(body.get("status") or {})
        status = compute_status(previous, seen)
        if not differs(previous, status):
            return False
        try:
            await self.primary.patch_status(key, merge_patch(previous, status))
        except ClusterUnreachableError:
            return False
        self._written[key] = status
        if _state_of(previous) != _state_of(status):
            await post_event(self.primary, body, seen, self.logger)
            self.logger.info(f"{key}: {seen.state} ({seen.reason}) {seen.message}".strip())
        return True


def _state_of(status: Mapping[str, Any]) -> tuple[Any, ...]:
    return (status.get("Status"), status.get("phase"), status.get("ErrorMessage"))


async def post_event(
    cluster: ClusterAccess,
    body: Mapping[str, Any],
    seen: Observation,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    """Posts the Event of a change of state; one that cannot be posted is logged only (the
    status, already written, is what matters)."""
    kind = "Warning" if seen.state in WARNING_STATES else "Normal"
    message = seen.message or seen.state + (f" at {seen.version}" if seen.version else "")
    try:
        await record_event(cluster, body, kind, seen.reason, message)
    except (ApiRefusedError, ClusterUnreachableError) as error:
        logger.warning(f"event {seen.reason} not posted: {error}")


def plain(body: Mapping[str, Any]) -> dict[str, Any]:
    """A deep, plain copy of a kopf body: what one pass works from, unchanged by later
    events."""
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": _deep(body.get("metadata") or {}),
        "spec": _deep(body.get("spec") or {}),
        "status": _deep(body.get("status") or {}),
    }


def _deep(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep(v) for v in value]
    return value


def generation_of(body: Mapping[str, Any]) -> int:
    return int((body.get("metadata") or {}).get("generation") or 0)
