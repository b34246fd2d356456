"""`istio-operator plan` on a real mesh: a primary and a remote (joined by `remote-access`,
so the remote is read with its own restricted identity) at Istio 1.2.5, the operator
running as a process, an echo workload with a 1.2.5 sidecar on each cluster. The plan of
1.3.0 names, per cluster and phase, the changed images and the workloads that roll, and
the data plane left behind; refusals exit 4; no cluster is written to meanwhile."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube.resources.core_v1 import ConfigMap, Service

from istio_operator.cli.demo import deploy_echo
from istio_operator.kube.blocking import BlockingClient
from istio_operator.localcluster import Workspace
from tests.operator_harness import (
    Plane,
    apply_istio,
    apply_remote,
    cli,
    istio_body,
    istio_status,
    operator_plane,
    ready,
    remote_access,
    wait_for,
    write_requests,
)

pytestmark = pytest.mark.cluster

NO_CHANGE, CHANGES, REFUSED = 0, 3, 4


@pytest.fixture(scope="module")
def mesh(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    directory = tmp_path_factory.mktemp("plan")
    with operator_plane(
        workspace,
        directory,
        "plan-primary",
        {"east": "plan-east"},
        citadel_ca=True,
        # The default resync (300 s): drift on the remote is repaired by its watch.
        operator_args=("--phase-timeout", "20"),
        tail=60,
    ) as mesh:
        admin = directory / "east-admin.yaml"
        admin.write_text(mesh.remote_cluster.standalone_kubeconfig())
        granted = remote_access(mesh.primary_cluster, admin, "east", "-n", "istio-system")
        assert granted.returncode == 0, granted.stderr
        mesh.operator.start()
        apply_istio(mesh.primary, istio_body("1.2.5"))
        apply_remote(mesh.primary, "east")
        for client in (mesh.primary, mesh.remote):
            deploy_echo(BlockingClient(client), "1.2.5", replicas=1)
        wait_for("the mesh Ready at 1.2.5", lambda: _ready_at(mesh, "1.2.5"), timeout=300)
        yield mesh


def _ready_at(mesh: Plane, version: str) -> bool:
    status = istio_status(mesh.primary)
    return ready(status) and status.get("version") == version


def plan(mesh: Plane, *documents: dict[str, Any], output: str = "json") -> tuple[int, Any, str]:
    """`plan` of `documents` (none: the live resources); (exit status, stdout, stderr)."""
    args = ["plan", "--kubeconfig", str(mesh.primary_cluster.kubeconfig), "-o", output]
    if documents:
        path = mesh.directory / f"edited-{time.monotonic_ns()}.yaml"
        path.write_text(yaml.safe_dump_all(documents))
        args += ["-f", str(path)]
    result = cli(*args, timeout=180)
    out = json.loads(result.stdout) if output == "json" and result.stdout else result.stdout
    return result.returncode, out, result.stderr


def cluster(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in document["clusters"] if c["name"] == name]
    assert len(found) == 1, (name, document)
    return found[0]


def writes(document: dict[str, Any], name: str, action: str) -> dict[str, dict[str, Any]]:
    return {
        f"{w['kind']}/{w['name']}": w
        for w in cluster(document, name)["writes"]
        if w["action"] == action
    }


def test_the_live_mesh_plans_no_change(mesh: Plane) -> None:
    status, document, stderr = plan(mesh)
    assert status == NO_CHANGE, (stderr, document)
    assert [c["name"] for c in document["clusters"]] == ["primary", "east"]
    assert all(not c["writes"] and not c["refusal"] for c in document["clusters"])


def test_an_upgrade_is_planned_on_every_cluster_and_writes_nothing(mesh: Plane) -> None:
    since = time.time() - 1
    status, document, stderr = plan(mesh, istio_body("1.3.0"))
    assert status == CHANGES, (stderr, document)
    assert document["versionBefore"] == "1.2.5" and document["versionAfter"] == "1.3.0"
    for name in ("primary", "east"):
        changed = writes(document, name, "change")
        assert changed, name
        assert not cluster(document, name)["refusal"]
        echo = [d for d in cluster(document, name)["dataPlaneBehind"] if d["namespace"] == "echo"]
        assert echo and echo[0]["proxyVersions"] == ["1.2.5"], name
    pilot = writes(document, "primary", "change")["Deployment/istio-pilot"]
    assert pilot["phase"] == "pilot"
    images = {c["path"]: (c["before"], c["after"]) for c in pilot["changes"]}
    assert ("docker.io/istio/pilot:1.2.5", "docker.io/istio/pilot:1.3.0") in images.values()
    assert "Deployment/istio-system/istio-pilot" in cluster(document, "primary")["rolls"]
    assert any(path.endswith(".image") for path in images)
    # Read-only: neither cluster served a write the API server kept (dry-runs change nothing).
    for where in (mesh.primary_cluster, mesh.remote_cluster):
        kept = [e for e in write_requests(where, since) if "dryRun=All" not in e["requestURI"]]
        assert kept == [], [(e["verb"], e["requestURI"]) for e in kept]


def test_the_text_plan_reads_as_a_diff(mesh: Plane) -> None:
    status, text, stderr = plan(mesh, istio_body("1.3.0"), output="text")
    assert status == CHANGES, stderr
    assert "Istio istio-system/istio: 1.2.5 → 1.3.0" in text
    assert "docker.io/istio/pilot:1.2.5 → docker.io/istio/pilot:1.3.0" in text
    assert "\nremote east (" in text and "phase pilot:" in text
    assert "workloads that roll:" in text and "echo/Deployment/echo" in text


@pytest.mark.parametrize(
    ("version", "reason"),
    [
        ("v1.3.0", "1.3.0"),  # the message suggests the supported version
        ("1.31.0", "FamilyChange"),
    ],
)
def test_a_refused_change_exits_4(mesh: Plane, version: str, reason: str) -> None:
    status, document, stderr = plan(mesh, istio_body(version))
    assert status == REFUSED, (stderr, document)
    assert reason in cluster(document, "primary")["refusal"]


def test_a_misspelled_field_is_refused_by_the_name_given(mesh: Plane) -> None:
    edited = istio_body("1.3.0")
    edited["spec"]["mtsl"] = edited["spec"].pop("mtls")
    status, document, stderr = plan(mesh, edited)
    assert status == REFUSED, (stderr, document)
    refusal = cluster(document, "primary")["refusal"]
    assert "spec.mtsl" in refusal and "did you mean mtls" in refusal, refusal


def test_an_image_pinned_to_another_release_is_warned_about(mesh: Plane) -> None:
    edited = istio_body("1.3.0")
    edited["spec"]["pilot"]["image"] = "docker.io/istio/pilot:1.2.5"
    status, document, stderr = plan(mesh, edited)
    assert status == CHANGES, (stderr, document)
    (warning,) = [w for w in document["warnings"] if "spec.pilot.image" in w]
    assert "1.2.5" in warning and "1.3.0" in warning


def test_a_second_istio_on_the_cluster_is_refused_as_a_conflict(mesh: Plane) -> None:
    status, document, stderr = plan(mesh, istio_body("1.3.0", name="second", namespace="other"))
    assert status == REFUSED, (stderr, document)
    assert document["versionBefore"] == ""  # a new resource: an install
    assert "Conflict" in cluster(document, "primary")["refusal"]


def test_a_missing_file_is_one_line(mesh: Plane, tmp_path: Path) -> None:
    args = ["plan", "--kubeconfig", str(mesh.primary_cluster.kubeconfig)]
    result = cli(*args, "-f", str(tmp_path / "none.yaml"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_drift_of_a_remote_configmap_and_service_is_repaired_without_a_resync(
    mesh: Plane,
) -> None:
    remote = mesh.remote
    config = remote.get(ConfigMap, "istio", namespace="istio-system")
    wanted = dict(config.data or {})
    remote.patch(ConfigMap, "istio", {"data": {"mesh": "drifted: true"}}, namespace="istio-system")
    service = remote.get(Service, "istio-pilot", namespace="istio-system")
    labels = dict((service.metadata.labels if service.metadata else None) or {})
    # A label the operator renders (not one of its bookkeeping labels) given another value.
    label = next(k for k in sorted(labels) if "istio.banzaicloud.io" not in k and "/" not in k)
    remote.patch(
        Service,
        "istio-pilot",
        {"metadata": {"labels": {label: "drifted"}}},
        namespace="istio-system",
    )
    started = time.monotonic()

    def repaired() -> bool:
        now = remote.get(Service, "istio-pilot", namespace="istio-system")
        current = (now.metadata.labels if now.metadata else None) or {}
        data = remote.get(ConfigMap, "istio", namespace="istio-system").data or {}
        return data == wanted and current.get(label) == labels[label]

    # Far below the 300 s resync: only a watch of those kinds repairs them this soon.
    wait_for("the remote's ConfigMap and Service repaired", repaired, timeout=60)
    print(f"remote drift repaired in {time.monotonic() - started:.1f} s")


def test_an_unreachable_remote_refuses_and_names_it(mesh: Plane) -> None:
    gone = {
        "apiVersion": "istio.banzaicloud.io/v1beta1",
        "kind": "RemoteIstio",
        "metadata": {"name": "east", "namespace": "istio-system"},
        "spec": {"enabledServices": [{"name": "istio-pilot", "labelSelector": "istio=pilot"}]},
    }
    mesh.workspace.stop(mesh.remote_cluster.name)
    try:
        status, document, stderr = plan(mesh, istio_body("1.3.0"), gone)
    finally:
        mesh.start_remote("east")
    assert status == REFUSED, (stderr, document)
    assert "Unreachable" in cluster(document, "east")["refusal"]
    assert writes(document, "primary", "change")  # the primary is still planned
