"""What the status shows per rollout phase: its state, images and ready replicas."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from istio_operator.api.labels import PHASE
from istio_operator.kube.objects import pod_template_containers, readiness
from istio_operator.reconcile.engine import ClusterReport
from istio_operator.reconcile.status import State
from istio_operator.render.phases import Phase


def component_states(report: ClusterReport) -> dict[str, dict[str, Any]]:
    """Per phase with workloads: its state, images and ready replicas."""
    by_phase: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for obj in report.live_workloads.values():
        by_phase[(obj.get("metadata") or {}).get("labels", {}).get(PHASE, "")].append(obj)
    states = {}
    for label, workloads in sorted(by_phase.items()):
        phase = Phase.from_label(label) if label else None
        states[label or "other"] = {
            "state": _phase_state(report, phase, workloads),
            "images": sorted({c["image"] for w in workloads for c in pod_template_containers(w)}),
        }
    return states


def _phase_state(
    report: ClusterReport, phase: Phase | None, workloads: list[dict[str, Any]]
) -> State:
    if phase is not None and phase == report.waiting_phase:
        return State.RECONCILING
    return State.AVAILABLE if all(readiness(w).ready for w in workloads) else State.RECONCILING
