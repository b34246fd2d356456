"""`istio-operator status`: grouping of live objects (pure) and its table and JSON output."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from istio_operator.api.labels import PHASE
from istio_operator.cli.main import build_parser
from istio_operator.cli.status import columns, format_table, render, to_json
from istio_operator.operations.inventory import (
    ClusterInventory,
    Inventory,
    WorkloadState,
    components,
    data_plane,
    image_version,
    managing_istio,
    owner_workload,
    resource_state,
)


def deployment(
    name: str, phase: str, image: str, *, replicas: int = 1, ready: int = 1, generation: int = 1
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "istio-system",
            "generation": generation,
            "labels": {PHASE: phase},
        },
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "c", "image": image}]}},
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": ready,
            "readyReplicas": ready,
            "availableReplicas": ready,
        },
    }


def daemonset(name: str, phase: str, image: str, ready: int, desired: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "kube-system", "labels": {PHASE: phase}},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}},
        "status": {
            "desiredNumberScheduled": desired,
            "updatedNumberScheduled": ready,
            "numberAvailable": ready,
            "numberReady": ready,
        },
    }


def pod(
    namespace: str,
    name: str,
    proxy: str | None,
    *,
    owner: tuple[str, str] | None = ("ReplicaSet", "echo-5f7d9"),
    template_hash: str = "5f7d9",
    ready: bool = True,
) -> dict[str, Any]:
    containers = [{"name": "app", "image": "docker.io/library/echo:1"}]
    if proxy:
        containers.append({"name": "istio-proxy", "image": proxy})
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"pod-template-hash": template_hash},
    }
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": containers},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("docker.io/istio/proxyv2:1.2.5", "1.2.5"),
        ("localhost:5000/istio/proxyv2:1.3.0", "1.3.0"),
        ("localhost:5000/istio/proxyv2", "latest"),
        ("proxyv2", "latest"),
        ("istio/proxyv2@sha256:abc", "sha256:abc"),
    ],
)
def test_image_version(image: str, version: str) -> None:
    assert image_version(image) == version


def test_components_group_by_phase_in_rollout_order() -> None:
    found = components(
        [
            deployment("istio-sidecar-injector", "sidecar-injector", "i/sidecar_injector:1.2.5"),
            deployment("istio-pilot", "pilot", "i/pilot:1.3.0", replicas=2, ready=1),
            deployment("istio-citadel", "citadel", "i/citadel:1.2.5"),
            daemonset("istio-node-agent", "addons", "i/node-agent-k8s:1.2.5", 2, 3),
        ]
    )
    assert [c.phase for c in found] == ["citadel", "pilot", "sidecar-injector", "addons"]
    citadel, pilot, _, addons = found
    assert (citadel.state, citadel.ready, citadel.total, citadel.versions) == (
        WorkloadState.AVAILABLE,
        1,
        1,
        ("1.2.5",),
    )
    assert (pilot.state, pilot.ready, pilot.total, pilot.versions) == (
        WorkloadState.PROGRESSING,
        1,
        2,
        ("1.3.0",),
    )
    assert pilot.workloads[0].reason == "1/2 updated, 1/2 available"
    assert (addons.state, addons.ready, addons.total) == (WorkloadState.PROGRESSING, 2, 3)


def test_the_phase_the_status_waits_for_is_progressing() -> None:
    (citadel,) = components([deployment("istio-citadel", "citadel", "i/citadel:1.2.5")], "citadel")
    assert citadel.state == WorkloadState.PROGRESSING
    (unlabelled,) = components([deployment("x", "", "i/x:1")])
    assert unlabelled.phase == "other"


def test_data_plane_counts_pods_per_namespace_and_proxy_version() -> None:
    groups = data_plane(
        [
            pod("echo", "echo-5f7d9-a", "docker.io/istio/proxyv2:1.2.5"),
            pod("echo", "echo-5f7d9-b", "docker.io/istio/proxyv2:1.2.5", ready=False),
            pod(
                "echo",
                "other-77-c",
                "docker.io/istio/proxyv2:1.3.0",
                owner=("ReplicaSet", "other-77"),
                template_hash="77",
            ),
            pod("echo", "plain", None),
            pod("db", "db-0", "docker.io/istio/proxyv2:1.2.5", owner=("StatefulSet", "db")),
            pod("db", "lonely", "docker.io/istio/proxyv2:1.2.5", owner=None),
        ]
    )
    assert [(g.namespace, g.version, g.pods, g.ready, g.workloads) for g in groups] == [
        ("db", "1.2.5", 2, 2, ("Pod/lonely", "StatefulSet/db")),
        ("echo", "1.2.5", 2, 1, ("Deployment/echo",)),
        ("echo", "1.3.0", 1, 1, ("Deployment/other",)),
    ]


def test_terminating_pods_are_not_counted() -> None:
    gone = pod("echo", "echo-5f7d9-a", "docker.io/istio/proxyv2:1.2.5")
    gone["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert data_plane([gone]) == ()


def test_owner_workload_without_template_hash_is_the_replicaset() -> None:
    p = pod("echo", "x", "p:1", owner=("ReplicaSet", "hand-made"), template_hash="")
    assert owner_workload(p) == "ReplicaSet/hand-made"


def test_managing_istio_is_the_oldest_of_the_namespace() -> None:
    def istio(name: str, namespace: str, created: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": namespace, "creationTimestamp": created}}

    bodies = [
        istio("b", "istio-system", "2024-01-02T00:00:00Z"),
        istio("a", "istio-system", "2024-01-03T00:00:00Z"),
        istio("z", "other", "2024-01-01T00:00:00Z"),
    ]
    assert managing_istio(bodies, "istio-system") == bodies[0]
    assert managing_istio(bodies, "nowhere") is None


ISTIO_BODY: dict[str, Any] = {
    "kind": "Istio",
    "metadata": {"name": "istio", "namespace": "istio-system", "generation": 3},
    "spec": {"version": "1.3.0"},
    "status": {
        "Status": "Reconciling",
        "version": "1.2.5",
        "phase": "pilot",
        "waitingFor": ["Deployment istio-system/istio-pilot: 1/2 updated, 1/2 available"],
        "observedGeneration": 3,
        "remotes": {"east": "Available", "west": "Unreachable"},
    },
}


def sample_inventory() -> Inventory:
    istio = resource_state(ISTIO_BODY, "1.3.0")
    remote = resource_state(
        {
            "kind": "RemoteIstio",
            "metadata": {"name": "west", "namespace": "istio-system", "generation": 1},
            "status": {"Status": "Unreachable", "observedGeneration": 1},
        },
        "1.3.0",
    )
    primary = ClusterInventory(
        "primary",
        "primary",
        istio,
        components(
            [
                deployment("istio-citadel", "citadel", "docker.io/istio/citadel:1.3.0"),
                deployment("istio-pilot", "pilot", "docker.io/istio/pilot:1.2.5", replicas=2),
            ],
            istio.phase,
        ),
        data_plane(
            [
                pod("echo", "echo-5f7d9-a", "docker.io/istio/proxyv2:1.2.5"),
                pod("echo", "echo-5f7d9-b", "docker.io/istio/proxyv2:1.2.5"),
            ]
        ),
    )
    west = ClusterInventory(
        "west", "remote", remote, error="cluster west is unreachable: connection refused"
    )
    east_state = resource_state(
        {
            "kind": "RemoteIstio",
            "metadata": {"name": "east", "namespace": "istio-system", "generation": 2},
            "status": {"Status": "Available", "version": "1.2.5", "observedGeneration": 2},
        },
        "1.3.0",
    )
    east = ClusterInventory(
        "east", "remote", east_state, data_plane_error="API error 403: pods is forbidden"
    )
    return Inventory("istio-system", "1.3.0", (primary, east, west))


def test_json_output() -> None:
    document = json.loads(render(sample_inventory(), "json"))
    assert document["namespace"] == "istio-system"
    assert document["desiredVersion"] == "1.3.0"
    primary, east, west = document["clusters"]
    assert primary["resource"] == {
        "kind": "Istio",
        "namespace": "istio-system",
        "name": "istio",
        "status": "Reconciling",
        "version": "1.2.5",
        "desiredVersion": "1.3.0",
        "phase": "pilot",
        "waitingFor": ["Deployment istio-system/istio-pilot: 1/2 updated, 1/2 available"],
        "message": "",
        "generation": 3,
        "observedGeneration": 3,
        "remotes": {"east": "Available", "west": "Unreachable"},
    }
    citadel, pilot = primary["components"]
    assert citadel["versions"] == ["1.3.0"] and citadel["current"] is True
    assert citadel["state"] == "Available"
    assert pilot["versions"] == ["1.2.5"] and pilot["current"] is False
    assert pilot["state"] == "Progressing"  # the status waits for it
    assert pilot["workloads"][0]["images"] == ["docker.io/istio/pilot:1.2.5"]
    assert (pilot["ready"], pilot["total"]) == (1, 2)
    assert primary["dataPlane"] == [
        {
            "namespace": "echo",
            "version": "1.2.5",
            "current": False,
            "image": "docker.io/istio/proxyv2:1.2.5",
            "pods": 2,
            "ready": 2,
            "workloads": ["Deployment/echo"],
        }
    ]
    assert (west["reachable"], west["error"]) == (
        False,
        "cluster west is unreachable: connection refused",
    )
    assert east["dataPlaneError"] == "API error 403: pods is forbidden"
    assert "remotes" not in west["resource"]


def test_json_while_watching_is_one_document_per_line() -> None:
    text = render(sample_inventory(), "json", watching=True)
    assert text.count("\n") == 1
    json.loads(text)


def test_table_output() -> None:
    assert format_table(sample_inventory()) == textwrap.dedent(
        """\
        CLUSTER primary
          Istio istio-system/istio: Reconciling, version 1.2.5, spec.version 1.3.0
          phase pilot, waiting for: Deployment istio-system/istio-pilot: 1/2 updated, 1/2 available
          remotes: east=Available, west=Unreachable
          control plane:
            PHASE    STATE        WORKLOAD                  READY  VERSION             IMAGES
            citadel  Available    Deployment/istio-citadel  1/1    1.3.0               citadel:1.3.0
            pilot    Progressing  Deployment/istio-pilot    1/2    1.2.5 (want 1.3.0)  pilot:1.2.5
          data plane (pods with an istio-proxy container):
            NAMESPACE  PROXY               READY PODS  WORKLOADS
            echo       1.2.5 (want 1.3.0)  2/2         Deployment/echo

        CLUSTER east (remote)
          RemoteIstio istio-system/east: Available, version 1.2.5
          control plane:
            no workloads of the operator
          data plane (pods with an istio-proxy container):
            not readable: API error 403: pods is forbidden

        CLUSTER west (remote)
          RemoteIstio istio-system/west: Unreachable
          UNREACHABLE: cluster west is unreachable: connection refused
        """
    )


def test_table_without_an_istio_resource() -> None:
    inventory = Inventory("mesh", "", (ClusterInventory("primary", "primary"),))
    assert format_table(inventory).startswith("no Istio resource in namespace mesh\n")
    assert to_json(inventory)["desiredVersion"] is None


def test_stale_status_is_pointed_out() -> None:
    body = {**ISTIO_BODY, "metadata": {**ISTIO_BODY["metadata"], "generation": 4}}
    inventory = Inventory(
        "istio-system", "1.3.0", (ClusterInventory("primary", "primary", resource_state(body)),)
    )
    assert "status is of generation 3, not 4" in format_table(inventory)


def test_columns_align_and_strip() -> None:
    assert columns(["A", "BB"], [["xxx", ""], ["y", "z"]], indent="") == [
        "A    BB",
        "xxx",
        "y    z",
    ]


def test_commands_are_registered() -> None:
    parser = build_parser()
    args = parser.parse_args(["status", "-o", "json", "--watch", "--interval", "2"])
    assert (args.namespace, args.output, args.watch, args.interval) == (
        "istio-system",
        "json",
        True,
        2.0,
    )
    args = parser.parse_args(["remote-access", "--remote-kubeconfig", "r.yaml", "--name", "east"])
    assert (args.namespace, args.kubeconfig, args.token_expiration) == (
        "istio-system",
        None,
        365 * 24 * 3600,
    )
