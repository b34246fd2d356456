"""Workload migration step by step on the in-memory cluster: batches, the wait for a
restarted batch, the stop at a workload not ready in time, the namespaces relabelled."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from istio_operator.api.keys import ObjectKey
from istio_operator.reconcile.migration import (
    MIGRATED_TO,
    MigrationSettings,
    Progress,
    migrate_step,
)
from tests.fakes import FakeCluster

START = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
SETTINGS = MigrationSettings(batch_size=1, delay_s=0, readiness_timeout_s=60)


def deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": name}}}},
    }


def injected_pod(workload: str, revision: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{workload}-abc12-x",
            "namespace": "apps",
            "labels": {"istio.io/rev": revision, "pod-template-hash": "abc12"},
            "annotations": {"sidecar.istio.io/status": "{}"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": f"{workload}-abc12"}],
        },
    }


def cluster_with(*workloads: str) -> FakeCluster:
    cluster = FakeCluster()
    cluster.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}})
    cluster.put(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "pinned", "labels": {"istio.io/rev": "old"}},
        }
    )
    for name in workloads:
        cluster.put(deployment(name))
        cluster.put(injected_pod(name, "old"))
    return cluster


def step(cluster: FakeCluster, previous: dict[str, Any], at: dt.datetime) -> Progress:
    return asyncio.run(
        migrate_step(cluster, "new", ["old"], "istio-system", SETTINGS, previous, at)
    )


def marked(cluster: FakeCluster, name: str) -> str | None:
    obj = cluster.objects[ObjectKey("apps/v1", "Deployment", "apps", name)]
    return ((obj["spec"]["template"]["metadata"]).get("annotations") or {}).get(MIGRATED_TO)


def test_one_batch_at_a_time_each_waited_for() -> None:
    cluster = cluster_with("echo", "web")
    first = step(cluster, {}, START)
    assert (first.state, first.migrated, first.remaining) == ("InProgress", 1, 1)
    assert marked(cluster, "echo") == "new" and marked(cluster, "web") is None
    pinned = cluster.objects[ObjectKey("v1", "Namespace", "", "pinned")]
    assert pinned["metadata"]["labels"]["istio.io/rev"] == "new"

    # echo's new pod came up injected by the new revision: the next batch starts.
    cluster.put(injected_pod("echo", "new"))
    second = step(cluster, first.as_status(), START)
    assert (second.migrated, second.remaining) == (2, 0) and marked(cluster, "web") == "new"
    cluster.put(injected_pod("web", "new"))
    assert step(cluster, second.as_status(), START).state == "Done"


def test_a_workload_not_ready_in_time_stops_the_migration_by_name() -> None:
    cluster = cluster_with("echo", "web")
    echo = ObjectKey("apps/v1", "Deployment", "apps", "echo")
    cluster.set_available(echo, False)
    first = step(cluster, {}, START)
    waiting = step(cluster, first.as_status(), START + dt.timedelta(seconds=30))
    assert waiting.state == "InProgress" and marked(cluster, "web") is None
    failed = step(cluster, waiting.as_status(), START + dt.timedelta(seconds=61))
    assert failed.state == "Failed"
    assert "Deployment apps/echo not ready within 60s" in failed.message
    # Stopped: no later pass restarts anything for this revision.
    cluster.set_available(echo, True)
    assert step(cluster, failed.as_status(), START + dt.timedelta(seconds=90)).state == "Failed"
    assert marked(cluster, "web") is None
