"""Reconcile metrics as Prometheus exposes them."""

from __future__ import annotations

from prometheus_client import REGISTRY

from istio_operator.controller.metrics import record_reconcile


def value(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


def test_a_reconcile_is_counted_with_its_phase_errors_and_writes() -> None:
    key = ("istio-system", "metrics-test")
    record_reconcile(key, "Reconciling", "RolloutInProgress", "pilot", 0.3, writes=7)
    assert value("istio_operator_rollout_phase", namespace=key[0], name=key[1]) == 5
    assert (
        value(
            "istio_operator_reconciles_total", namespace=key[0], name=key[1], status="Reconciling"
        )
        == 1
    )
    before = value("istio_operator_reconcile_errors_total", reason="UnsupportedVersion")
    writes = value("istio_operator_object_writes_total", cluster="primary")

    record_reconcile(key, "ReconcileFailed", "UnsupportedVersion", "", 0.01, writes=0)
    assert value("istio_operator_rollout_phase", namespace=key[0], name=key[1]) == 0
    assert value("istio_operator_reconcile_errors_total", reason="UnsupportedVersion") == before + 1
    assert value("istio_operator_object_writes_total", cluster="primary") == writes
