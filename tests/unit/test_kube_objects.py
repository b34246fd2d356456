"""Drift detection and readiness on plain objects."""

from __future__ import annotations

from typing import Any

from istio_operator.api.keys import ObjectKey, key_of
from istio_operator.kube.objects import (
    DESIRED_HASH,
    applied_by_us,
    contains,
    difference,
    parse_quantity,
    readiness,
    with_desired_hash,
)


def test_extra_live_fields_are_not_drift() -> None:
    desired = {"spec": {"ports": [{"port": 80}]}, "metadata": {"labels": {"a": "1"}}}
    live = {
        "spec": {"ports": [{"port": 80, "protocol": "TCP", "nodePort": 30001}], "clusterIP": "x"},
        "metadata": {"labels": {"a": "1", "b": "2"}, "uid": "u"},
    }
    assert contains(live, desired)


def test_changed_missing_or_reordered_fields_are_drift() -> None:
    desired = {"spec": {"replicas": 2, "args": ["--a", "--b"]}}
    assert not contains({"spec": {"replicas": 3, "args": ["--a", "--b"]}}, desired)
    assert not contains({"spec": {"args": ["--a", "--b"]}}, desired)
    assert not contains({"spec": {"replicas": 2, "args": ["--b", "--a"]}}, desired)
    assert not contains({"spec": {"replicas": 2, "args": ["--a"]}}, desired)


def test_booleans_are_not_numbers() -> None:
    assert not contains({"x": 1}, {"x": True})
    assert contains({"x": 1.0}, {"x": 1})


def test_desired_hash_changes_when_a_field_is_dropped() -> None:
    full = {"metadata": {"name": "a"}, "data": {"k": "v", "old": "x"}}
    trimmed = {"metadata": {"name": "a"}, "data": {"k": "v"}}
    live = with_desired_hash(full)
    assert contains(live, with_desired_hash(full))
    # Field by field the trimmed object is still contained; the hash tells it apart.
    assert contains(live, trimmed)
    assert not contains(live, with_desired_hash(trimmed))
    assert DESIRED_HASH in live["metadata"]["annotations"]
    assert "annotations" not in full["metadata"]


def test_key_of_cluster_scoped_and_namespaced_objects() -> None:
    assert key_of({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}) == (
        ObjectKey("v1", "Namespace", "", "n")
    )
    key = key_of(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "n"}}
    )
    assert str(key) == "Service n/s"


def deployment(generation: int, observed: int, **status: Any) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"generation": generation},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": observed, **status},
    }


def test_deployment_ready_only_when_new_generation_available() -> None:
    done = {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
    assert readiness(deployment(3, 3, **done)).ready
    assert not readiness(deployment(3, 2, **done)).ready
    rolling = readiness(deployment(3, 3, replicas=3, updatedReplicas=2, availableReplicas=2))
    assert not rolling.ready  # an old pod is still there
    waiting = readiness(deployment(3, 3, replicas=2, updatedReplicas=2, availableReplicas=1))
    assert waiting.reason == "2/2 updated, 1/2 available"


def test_daemonset_and_crd_readiness() -> None:
    ds: dict[str, Any] = {
        "kind": "DaemonSet",
        "metadata": {"generation": 1},
        "status": {
            "observedGeneration": 1,
            "desiredNumberScheduled": 3,
            "updatedNumberScheduled": 3,
            "numberAvailable": 2,
        },
    }
    assert not readiness(ds).ready
    ds["status"]["numberAvailable"] = 3
    assert readiness(ds).ready
    crd: dict[str, Any] = {
        "kind": "CustomResourceDefinition",
        "status": {"conditions": [{"type": "Established", "status": "False"}]},
    }
    assert not readiness(crd).ready
    crd["status"]["conditions"][0]["status"] = "True"
    assert readiness(crd).ready
    assert readiness({"kind": "ConfigMap"}).ready


def test_quantities_compare_by_value_and_differences_name_the_field() -> None:
    desired = {"resources": {"requests": {"memory": "2048Mi", "cpu": "500m"}}}
    assert contains({"resources": {"requests": {"memory": "2Gi", "cpu": "0.5"}}}, desired)
    assert difference({"resources": {"requests": {"memory": "2Gi", "cpu": "1"}}}, desired) == (
        "resources.requests.cpu"
    )
    assert parse_quantity("1e3") == parse_quantity("1k")
    assert parse_quantity("--flag") is None
    assert not contains({"image": "a:1.2.5"}, {"image": "a:1.3.0"})


def test_only_objects_we_applied_are_ours_to_prune() -> None:
    ours = {"metadata": {"managedFields": [{"manager": "istio-operator", "operation": "Apply"}]}}
    copied = {
        "metadata": {
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update"}]
        }
    }
    assert applied_by_us(ours)
    assert not applied_by_us(copied)
    assert not applied_by_us({"metadata": {}})
