"""The data-plane upgrade: which workloads are restarted (pure), and its table."""

from __future__ import annotations

from typing import Any

import pytest

from istio_operator.api.labels import MANAGED_BY, MANAGED_BY_VALUE
from istio_operator.cli.dataplane import format_plan
from istio_operator.cli.main import build_parser
from istio_operator.operations.dataplane import (
    RESTARTED_AT,
    ClusterPlan,
    Restart,
    Selection,
    Skipped,
    pod_owner,
    refusal,
    restart_patch,
    select,
)

TARGET = "1.3.0"


def owner(kind: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": kind, "name": name, "controller": True}


def pod(
    name: str,
    namespace: str,
    proxy: str | None,
    owned_by: dict[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    containers = [{"name": "app", "image": "docker.io/hashicorp/http-echo:1.0"}]
    if proxy is not None:
        containers.append({"name": "istio-proxy", "image": f"docker.io/istio/proxyv2:{proxy}"})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "ownerReferences": [owned_by] if owned_by else [],
            **meta,
        },
        "spec": {"containers": containers},
    }


def replica_set(name: str, namespace: str, deployment: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "ownerReferences": [owner("Deployment", deployment)],
        },
    }


def workload(
    kind: str,
    name: str,
    namespace: str,
    *,
    labels: dict[str, str] | None = None,
    ready: bool = True,
) -> dict[str, Any]:
    replicas = 2
    status: dict[str, Any] = {"observedGeneration": 1}
    if kind == "Deployment":
        done = replicas if ready else 1
        status |= {"replicas": replicas, "updatedReplicas": done, "availableReplicas": done}
    elif kind == "DaemonSet":
        status |= {"desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 2}
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "generation": 1, "labels": labels or {}},
        "spec": {"replicas": replicas},
        "status": status,
    }


def deployment_pods(
    deployment: str, namespace: str, proxy: str, count: int = 2
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rs = f"{deployment}-5d4f8"
    pods = [
        pod(f"{rs}-{i}", namespace, proxy, owner("ReplicaSet", rs), labels={}) for i in range(count)
    ]
    return pods, replica_set(rs, namespace, deployment)


def run_select(
    pods: list[dict[str, Any]],
    sets: list[dict[str, Any]],
    workloads: list[dict[str, Any]],
    **kwargs: Any,
) -> Selection:
    return select(pods, sets, workloads, TARGET, control_plane_namespace="istio-system", **kwargs)


def test_an_outdated_deployment_is_found_through_its_replica_set() -> None:
    old_pods, old_rs = deployment_pods("echo", "old", "1.2.5")
    new_pods, new_rs = deployment_pods("echo", "new", TARGET)
    selection = run_select(
        old_pods + new_pods,
        [old_rs, new_rs],
        [workload("Deployment", "echo", "old"), workload("Deployment", "echo", "new")],
    )
    assert selection.restarts == (Restart("Deployment", "old", "echo", ("1.2.5",), TARGET, 2),)
    assert selection.skipped == ()
    assert selection.namespaces == ("old",)


def test_the_deployment_is_the_replica_sets_owner_not_a_name_guess() -> None:
    # A ReplicaSet whose name does not follow the pod-template-hash convention.
    pods = [pod("web-x", "app", "1.2.5", owner("ReplicaSet", "custom"))]
    sets = [replica_set("custom", "app", "web")]
    assert pod_owner(pods[0], {("app", "custom"): sets[0]}) == "Deployment/web"
    selection = run_select(pods, sets, [workload("Deployment", "web", "app")])
    assert [r.workload for r in selection.restarts] == ["Deployment/web"]


def test_statefulsets_and_daemonsets_are_owned_directly() -> None:
    pods = [
        pod("db-0", "data", "1.2.5", owner("StatefulSet", "db")),
        pod("db-1", "data", "1.2.4", owner("StatefulSet", "db")),
        pod("agent-a", "nodes", "1.2.5", owner("DaemonSet", "agent")),
    ]
    selection = run_select(
        pods,
        [],
        [workload("StatefulSet", "db", "data"), workload("DaemonSet", "agent", "nodes")],
    )
    assert selection.restarts == (
        Restart("StatefulSet", "data", "db", ("1.2.4", "1.2.5"), TARGET, 2),
        Restart("DaemonSet", "nodes", "agent", ("1.2.5",), TARGET, 1),
    )


def test_the_control_plane_and_the_operators_workloads_are_never_selected() -> None:
    gateway_pods, gateway_rs = deployment_pods("istio-ingressgateway", "istio-system", "1.2.5")
    owned_pods, owned_rs = deployment_pods("gw", "edge", "1.2.5")
    selection = run_select(
        gateway_pods + owned_pods,
        [gateway_rs, owned_rs],
        [
            workload("Deployment", "istio-ingressgateway", "istio-system"),
            workload("Deployment", "gw", "edge", labels={MANAGED_BY: MANAGED_BY_VALUE}),
        ],
    )
    assert selection == Selection((), ())


def test_pods_without_a_proxy_or_terminating_are_ignored() -> None:
    pods = [
        pod("plain", "app", None, owner("StatefulSet", "plain")),
        pod("going", "app", "1.2.5", owner("StatefulSet", "going"), deletionTimestamp="now"),
    ]
    workloads = [workload("StatefulSet", "plain", "app"), workload("StatefulSet", "going", "app")]
    assert run_select(pods, [], workloads) == Selection((), ())


def test_the_namespace_filter_limits_the_selection() -> None:
    a_pods, a_rs = deployment_pods("echo", "a", "1.2.5")
    b_pods, b_rs = deployment_pods("echo", "b", "1.2.5")
    workloads = [workload("Deployment", "echo", "a"), workload("Deployment", "echo", "b")]
    selection = run_select(a_pods + b_pods, [a_rs, b_rs], workloads, namespaces=["b"])
    assert [(r.namespace, r.name) for r in selection.restarts] == [("b", "echo")]


def test_outdated_pods_a_restart_cannot_reach_are_reported_as_skipped() -> None:
    pods = [
        pod("bare", "app", "1.2.5"),
        pod("job-x", "app", "1.2.5", owner("Job", "migrate")),
        pod("ghost-0", "app", "1.2.5", owner("StatefulSet", "ghost")),
    ]
    selection = run_select(pods, [], [])
    assert selection.restarts == ()
    assert [(s.owner, s.reason.split(":")[0]) for s in selection.skipped] == [
        ("Job/migrate", "not run by a Deployment, StatefulSet or DaemonSet"),
        ("Pod/bare", "not run by a Deployment, StatefulSet or DaemonSet"),
        ("StatefulSet/ghost", "StatefulSet/ghost not found"),
    ]


def test_a_workload_mid_rollout_is_not_restarted_again() -> None:
    pods, rs = deployment_pods("echo", "app", "1.2.5")
    selection = run_select(pods, [rs], [workload("Deployment", "echo", "app", ready=False)])
    assert selection.restarts == ()
    (skipped,) = selection.skipped
    assert skipped.reason.startswith("rollout in progress")


def test_a_selection_needs_a_version_to_compare_with() -> None:
    with pytest.raises(ValueError, match="no control-plane version"):
        select([], [], [], "", control_plane_namespace="istio-system")


def test_the_restart_applies_only_the_annotation() -> None:
    item = Restart("Deployment", "app", "echo", ("1.2.5",), TARGET, 2)
    assert restart_patch(item, "2024-01-02T03:04:05Z") == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "echo", "namespace": "app"},
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2024-01-02T03:04:05Z"}}}},
    }


def istio(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "Istio",
        "metadata": {"name": "istio", "namespace": "istio-system"},
        "spec": {"version": TARGET},
        "status": status,
    }


def test_refusal_while_the_control_plane_is_not_available() -> None:
    assert refusal(None, "istio-system", False) == "no Istio resource in namespace istio-system"
    assert "no control-plane version in effect" in refusal(
        istio({"Status": "Reconciling"}), "istio-system", True
    )
    changing = istio({"Status": "Reconciling", "version": "1.2.5", "phase": "pilot"})
    reason = refusal(changing, "istio-system", False)
    assert reason.startswith("Istio istio-system/istio is Reconciling (phase pilot, version")
    assert "--force" in reason
    assert refusal(changing, "istio-system", True) == ""
    assert refusal(istio({"Status": "Available", "version": TARGET}), "istio-system", False) == ""


def test_the_table_says_what_was_restarted_and_why() -> None:
    selection = Selection(
        (Restart("Deployment", "old", "echo", ("1.2.5",), TARGET, 2),),
        (Skipped("app", "Pod/bare", ("1.2.5",), 1, "not run by a workload"),),
    )
    cluster = ClusterPlan("primary", "primary", TARGET, None, selection)
    assert format_plan(cluster, {"old/Deployment/echo": "restarted"}, dry_run=False) == [
        "CLUSTER primary: control plane 1.3.0, 1 workload to restart in 1 namespace",
        "  NAMESPACE  WORKLOAD         PODS  PROXY           RESULT",
        "  old        Deployment/echo  2     1.2.5 -> 1.3.0  restarted",
        "  app        Pod/bare         1     1.2.5 -> 1.3.0  skipped: not run by a workload",
    ]
    dry = format_plan(cluster, {}, dry_run=True)
    assert dry[2].endswith("would restart")
    unreachable = ClusterPlan("east", "remote", TARGET, error="cluster east is unreachable")
    assert format_plan(unreachable, {}, dry_run=False) == [
        "CLUSTER east (remote): cluster east is unreachable"
    ]
    clean = ClusterPlan("primary", "primary", TARGET, None, Selection((), ()))
    assert format_plan(clean, {}, dry_run=False) == [
        "CLUSTER primary: control plane 1.3.0, every sidecar is up to date"
    ]


def test_the_command_is_registered() -> None:
    args = build_parser().parse_args(
        ["dataplane-upgrade", "--dry-run", "--workload-namespace", "a", "b", "--all-clusters"]
    )
    assert (args.dry_run, args.workload_namespace, args.all_clusters, args.force) == (
        True,
        ["a", "b"],
        True,
        False,
    )
    assert args.namespace == "istio-system"
