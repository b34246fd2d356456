"""Prometheus metrics of the operator."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "istio_operator_reconciles_total",
    "Reconciles of Istio resources, by outcome.",
    ["namespace", "name", "status"],
)
RECONCILE_SECONDS = Histogram(
    "istio_operator_reconcile_duration_seconds",
    "Duration of one reconcile of a whole mesh.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
RECONCILE_ERRORS = Counter(
    "istio_operator_reconcile_errors_total",
    "Reconciles that ended in an error, by reason.",
    ["reason"],
)
PHASE = Gauge(
    "istio_operator_rollout_phase",
    "Rollout phase being waited for (0 when none), per resource.",
    ["namespace", "name"],
)
OBJECT_WRITES = Counter(
    "istio_operator_object_writes_total", "Applies and deletes sent to clusters.", ["cluster"]
)
