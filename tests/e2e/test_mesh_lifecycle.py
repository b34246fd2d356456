"""A mesh of a primary and two remotes (one joined with `istio-operator remote-access`)
with the operator as a process: it settles and stays silent on every cluster, a failing
remote fails only itself, a cluster is managed by one RemoteIstio only, and removing a
remote is total (during a rollout, while unreachable, abandoned)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError, Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, Secret
from lightkube.types import PatchType

from istio_operator.cli.demo import citadel_ca_stand_in, remote_istio_body
from istio_operator.kube.blocking import BlockingClient
from istio_operator.localcluster import LocalCluster, Workspace
from istio_operator.reconcile.remote import ABANDON_CLEANUP
from tests.conftest import client_for
from tests.operator_harness import (
    IstioResource,
    OperatorProcess,
    RemoteIstioResource,
    apply_crds,
    apply_istio,
    istio_body,
    istio_status,
    owned_objects,
    pods_can_be_created_in_an_injection_namespace,
    wait_for,
    write_requests,
)
from tests.servers import SilentServer

pytestmark = pytest.mark.cluster

NAMESPACE = "istio-system"
AT_REST_WINDOW_S = 120.0
RESYNC_S = "5"


@dataclass
class Mesh:
    workspace: Workspace
    primary_cluster: LocalCluster
    remotes: dict[str, LocalCluster]
    primary: Client
    clients: dict[str, Client]
    operator: OperatorProcess
    directory: Path
    hang: SilentServer | None = None


@pytest.fixture(scope="module")
def mesh(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    directory = tmp_path_factory.mktemp("mesh")
    primary_cluster = workspace.create("mesh-primary")
    remotes = {name: workspace.create(f"mesh-{name}") for name in ("east", "west")}
    primary = client_for(primary_cluster)
    clients = {name: client_for(cluster) for name, cluster in remotes.items()}
    apply_crds(primary)
    primary.apply(Namespace(metadata=ObjectMeta(name=NAMESPACE)))
    citadel_ca_stand_in(BlockingClient(primary))
    for client in (primary, *clients.values()):
        client.apply(Namespace(metadata=ObjectMeta(name="injected")))
    put_kubeconfig(primary, "east", remotes["east"].standalone_kubeconfig())
    _remote_access(primary_cluster, remotes["west"], "west", directory)
    operator = OperatorProcess(
        primary_cluster.kubeconfig,
        directory / "operator.log",
        args=("--resync-period", RESYNC_S, "--phase-timeout", "20"),
    )
    operator.start()
    apply_istio(primary, istio_body("1.2.5"))
    for name in remotes:
        apply_remote(primary, name)
    mesh = Mesh(workspace, primary_cluster, remotes, primary, clients, operator, directory)
    yield mesh
    operator.stop()
    if mesh.hang is not None:
        mesh.hang.close()
    print(operator.tail(200))
    for cluster in (primary_cluster, *remotes.values()):
        workspace.delete(cluster.name)


def _remote_access(primary: LocalCluster, remote: LocalCluster, name: str, where: Path) -> None:
    kubeconfig = where / f"{name}-admin.yaml"
    kubeconfig.write_text(remote.standalone_kubeconfig())
    subprocess.run(
        [
            sys.executable,
            "-m",
            "istio_operator.cli.main",
            "remote-access",
            "--remote-kubeconfig",
            str(kubeconfig),
            "--name",
            name,
            "-n",
            NAMESPACE,
        ],
        check=True,
        env={**os.environ, "KUBECONFIG": str(primary.kubeconfig)},
        capture_output=True,
    )


def put_kubeconfig(primary: Client, name: str, kubeconfig: str, namespace: str = NAMESPACE) -> None:
    data = {name: base64.b64encode(kubeconfig.encode()).decode()}
    primary.apply(Secret(metadata=ObjectMeta(name=name, namespace=namespace), data=data))


def apply_remote(primary: Client, name: str, namespace: str = NAMESPACE) -> None:
    body = remote_istio_body(name, namespace)
    primary.apply(RemoteIstioResource.from_dict(body), force=True)


def remote_status(primary: Client, name: str) -> dict[str, Any]:
    try:
        found = primary.get(RemoteIstioResource, name, namespace=NAMESPACE)
    except ApiError:
        return {}
    return dict(found.get("status") or {})


def exists(primary: Client, name: str) -> bool:
    try:
        primary.get(RemoteIstioResource, name, namespace=NAMESPACE)
    except ApiError as error:
        if error.status.code == 404:
            return False
        raise
    return True


def ready(status: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def mesh_ready_at(mesh: Mesh, version: str) -> bool:
    """The Istio's Ready condition at `version`: the primary and every current remote."""
    status = istio_status(mesh.primary)
    return ready(status) and status.get("version") == version


# -- at rest ----------------------------------------------------------------------------------


def test_mesh_settles_and_is_silent_on_every_cluster(mesh: Mesh) -> None:
    wait_for("the mesh Ready at 1.2.5", lambda: mesh_ready_at(mesh, "1.2.5"), timeout=240)
    assert istio_status(mesh.primary)["remotes"] == {"east": "Available", "west": "Available"}
    # Let the convergence's own follow-up passes (status echoes, label writes) finish.
    wait_for("a quiet moment", lambda: _quiet_for(mesh, 3 * float(RESYNC_S)), timeout=120)
    start = time.time()
    deadline = time.monotonic() + AT_REST_WINDOW_S
    while time.monotonic() < deadline:  # bounded observation window, checked as it goes
        mesh.operator.assert_running()
        writes = _operator_writes(mesh, start)
        assert all(not w for w in writes.values()), _describe(writes)
        time.sleep(5)
    writes = _operator_writes(mesh, start)
    print({cluster: len(found) for cluster, found in writes.items()}, "writes in", AT_REST_WINDOW_S)
    assert all(not w for w in writes.values()), _describe(writes)
    assert mesh_ready_at(mesh, "1.2.5")


def _operator_writes(mesh: Mesh, since: float) -> dict[str, list[dict[str, Any]]]:
    clusters = {"primary": mesh.primary_cluster, **mesh.remotes}
    return {name: write_requests(cluster, since) for name, cluster in clusters.items()}


def _quiet_for(mesh: Mesh, seconds: float) -> bool:
    return all(not found for found in _operator_writes(mesh, time.time() - seconds).values())


def _describe(writes: dict[str, list[dict[str, Any]]]) -> str:
    lines = []
    for cluster, found in writes.items():
        for event in found[:10]:
            ref = event.get("objectRef") or {}
            lines.append(
                f"{cluster}: {event['verb']} {ref.get('resource')} "
                f"{ref.get('namespace', '')}/{ref.get('name', '')} by {event['user']['username']}"
            )
    return "writes at rest:\n" + "\n".join(lines)


# -- independence -----------------------------------------------------------------------------


def test_failing_remotes_fail_only_themselves(mesh: Mesh) -> None:
    wait_for("the mesh Ready at 1.2.5", lambda: mesh_ready_at(mesh, "1.2.5"), timeout=240)
    east = mesh.remotes["east"]
    mesh.hang = SilentServer()
    put_kubeconfig(mesh.primary, "hung", _kubeconfig(east, server=mesh.hang.url, insecure=True))
    put_kubeconfig(mesh.primary, "nobody", _kubeconfig(east, token=_token_without_rights(mesh)))
    put_kubeconfig(mesh.primary, "untrusted", _kubeconfig(east, ca_from=mesh.remotes["west"]))
    for name in ("hung", "nobody", "untrusted"):
        apply_remote(mesh.primary, name)
    statuses = wait_for(
        "the failing remotes' states",
        lambda: (
            (s := {n: remote_status(mesh.primary, n) for n in ("nobody", "untrusted")})[
                "nobody"
            ].get("Status")
            == "ReconcileFailed"
            and s["untrusted"].get("Status") == "ReconcileFailed"
            and s
        ),
        timeout=120,
    )
    assert _reason(statuses["nobody"]) == "Forbidden"
    assert "403" in statuses["nobody"]["ErrorMessage"]
    assert _reason(statuses["untrusted"]) == "UntrustedServer"
    assert "certificate" in statuses["untrusted"]["ErrorMessage"]
    wait_for("the hung remote contacted", lambda: mesh.hang and mesh.hang.connections, timeout=60)

    # The hung remote has been contacted and never answers; the primary repairs drift anyway.
    hacked = {
        "spec": {"template": {"spec": {"containers": [{"name": "discovery", "image": HACKED}]}}}
    }
    mesh.primary.patch(Deployment, "istio-pilot", hacked, namespace=NAMESPACE)
    started = time.monotonic()
    wait_for("pilot's drift repaired", lambda: not _drifted(mesh.primary), timeout=60)
    print(f"drift repaired in {time.monotonic() - started:.1f} s with a hung remote")

    status = wait_for(
        "the primary Available again",
        lambda: (s := istio_status(mesh.primary)).get("Status") == "Available" and s,
        timeout=120,
    )
    assert not ready(status)  # the mesh is not Ready while a remote fails
    # The repaired pilot has new pods, so the healthy remotes' mirrors follow: they settle.
    wait_for(
        "the healthy remotes Available",
        lambda: all(remote_status(mesh.primary, n)["Status"] == "Available" for n in mesh.remotes),
        timeout=120,
    )
    hung = wait_for(
        "the hung remote Unreachable",
        lambda: (s := remote_status(mesh.primary, "hung")).get("Status") == "Unreachable" and s,
        timeout=120,
    )
    assert "unreachable" in hung["ErrorMessage"]
    assert not ready(hung)
    assert mesh.hang.url.removeprefix("https://") in hung["ErrorMessage"]

    for name in ("hung", "nobody", "untrusted"):
        _annotate_abandon(mesh.primary, name)
        mesh.primary.delete(RemoteIstioResource, name, namespace=NAMESPACE)
    for name in ("hung", "nobody", "untrusted"):
        wait_for(
            f"RemoteIstio {name} gone", lambda n=name: not exists(mesh.primary, n), timeout=120
        )
    wait_for("the mesh Ready again", lambda: mesh_ready_at(mesh, "1.2.5"), timeout=120)
    assert set(istio_status(mesh.primary)["remotes"]) == {"east", "west"}


HACKED = "example/hacked:1"


def _drifted(client: Client) -> bool:
    pilot = client.get(Deployment, "istio-pilot", namespace=NAMESPACE)
    return any(c.image == HACKED for c in pilot.spec.template.spec.containers)


def _reason(status: dict[str, Any]) -> str:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Reconciled":
            return str(condition.get("reason"))
    return ""


def _kubeconfig(
    cluster: LocalCluster,
    *,
    server: str | None = None,
    token: str | None = None,
    insecure: bool = False,
    ca_from: LocalCluster | None = None,
) -> str:
    config = yaml.safe_load(cluster.standalone_kubeconfig())
    entry = config["clusters"][0]["cluster"]
    if server:
        entry["server"] = server
    if insecure:
        entry.pop("certificate-authority-data", None)
        entry["insecure-skip-tls-verify"] = True
    if ca_from is not None:
        other = yaml.safe_load(ca_from.standalone_kubeconfig())
        entry["certificate-authority-data"] = other["clusters"][0]["cluster"][
            "certificate-authority-data"
        ]
    if token:
        config["users"][0]["user"] = {"token": token}
    return str(yaml.safe_dump(config))


def _token_without_rights(mesh: Mesh) -> str:
    east = mesh.remotes["east"]
    mesh.workspace.kubectl(east, "create", "serviceaccount", "nobody", "-n", "default", check=False)
    return mesh.workspace.kubectl(east, "create", "token", "nobody", "-n", "default").strip()


def _annotate_abandon(primary: Client, name: str) -> None:
    primary.patch(
        RemoteIstioResource,
        name,
        {"metadata": {"annotations": {ABANDON_CLEANUP: "true"}}},
        namespace=NAMESPACE,
        patch_type=PatchType.MERGE,
    )


# -- one RemoteIstio per cluster, and one mesh per RemoteIstio --------------------------------


def test_a_cluster_is_managed_by_one_remoteistio(mesh: Mesh) -> None:
    wait_for("the mesh Ready at 1.2.5", lambda: mesh_ready_at(mesh, "1.2.5"), timeout=240)
    east = mesh.clients["east"]
    before = {
        d.metadata.name: d.metadata.resourceVersion
        for d in east.list(Deployment, namespace=NAMESPACE)
    }
    put_kubeconfig(mesh.primary, "east-again", mesh.remotes["east"].standalone_kubeconfig())
    apply_remote(mesh.primary, "east-again")
    status = wait_for(
        "the second RemoteIstio refused",
        lambda: (
            (s := remote_status(mesh.primary, "east-again")).get("Status") == "ReconcileFailed"
            and s
        ),
        timeout=60,
    )
    assert _reason(status) == "ClusterClaimed"
    assert "RemoteIstio istio-system/east" in status["ErrorMessage"]
    assert owned_objects(east, "east-again") == []
    mesh.primary.delete(RemoteIstioResource, "east-again", namespace=NAMESPACE)
    wait_for("east-again gone", lambda: not exists(mesh.primary, "east-again"), timeout=60)
    after = {
        d.metadata.name: d.metadata.resourceVersion
        for d in east.list(Deployment, namespace=NAMESPACE)
    }
    assert after == before  # the refused one neither changed nor removed east's objects


def test_a_remoteistio_without_an_istio_says_so(mesh: Mesh) -> None:
    mesh.primary.apply(Namespace(metadata=ObjectMeta(name="lonely")))
    put_kubeconfig(mesh.primary, "lonely", mesh.remotes["east"].standalone_kubeconfig(), "lonely")
    apply_remote(mesh.primary, "lonely", namespace="lonely")

    def status() -> dict[str, Any]:
        found = mesh.primary.get(RemoteIstioResource, "lonely", namespace="lonely")
        return dict(found.get("status") or {})

    seen = wait_for("the lone RemoteIstio's status", lambda: status().get("Status") and status())
    assert seen["Status"] == "ReconcileFailed"
    assert "no Istio resource in namespace lonely" in seen["ErrorMessage"]
    mesh.primary.delete(RemoteIstioResource, "lonely", namespace="lonely")


# -- removal ----------------------------------------------------------------------------------


def test_removal_during_a_rollout_is_total(mesh: Mesh) -> None:
    wait_for("the mesh Ready at 1.2.5", lambda: mesh_ready_at(mesh, "1.2.5"), timeout=240)
    apply_istio(mesh.primary, istio_body("1.3.0"))
    wait_for(
        "west rolling out",
        lambda: remote_status(mesh.primary, "west").get("Status") == "Reconciling",
        timeout=240,
        every=0.05,
    )
    started = time.monotonic()
    mesh.primary.delete(RemoteIstioResource, "west", namespace=NAMESPACE)
    wait_for("west gone", lambda: not exists(mesh.primary, "west"), timeout=120)
    print(f"west removed {time.monotonic() - started:.1f} s after its deletion, mid-rollout")
    west = mesh.clients["west"]
    assert owned_objects(west, "west") == []
    assert pods_can_be_created_in_an_injection_namespace(west)
    wait_for(
        "the mesh Ready at 1.3.0 without west", lambda: mesh_ready_at(mesh, "1.3.0"), timeout=240
    )
    assert set(istio_status(mesh.primary)["remotes"]) == {"east"}
    assert owned_objects(west, "west") == []  # nothing reappeared while the mesh converged


def test_removal_of_an_unreachable_remote_waits_then_completes(mesh: Mesh) -> None:
    wait_for("the mesh Ready at 1.3.0", lambda: mesh_ready_at(mesh, "1.3.0"), timeout=240)
    mesh.workspace.stop(mesh.remotes["east"].name)
    mesh.primary.delete(RemoteIstioResource, "east", namespace=NAMESPACE)
    status = wait_for(
        "the pending cleanup reported",
        lambda: _reason(s := remote_status(mesh.primary, "east")) == "CleanupPending" and s,
        timeout=120,
    )
    assert ABANDON_CLEANUP in status["ErrorMessage"]
    assert exists(mesh.primary, "east")
    started = time.monotonic()
    mesh.remotes["east"] = mesh.workspace.start(mesh.remotes["east"].name)
    mesh.clients["east"] = east = client_for(mesh.remotes["east"])
    wait_for("east gone", lambda: not exists(mesh.primary, "east"), timeout=180)
    print(f"east removed {time.monotonic() - started:.1f} s after its cluster came back")
    assert owned_objects(east, "east") == []
    assert pods_can_be_created_in_an_injection_namespace(east)
    secret = mesh.primary.get(Secret, "east", namespace=NAMESPACE)
    assert "istio/multiCluster" not in (secret.metadata.labels or {})
    status = wait_for(
        "the mesh Ready with no remote", lambda: ready(s := istio_status(mesh.primary)) and s
    )
    assert "remotes" not in status


def test_deleting_the_istio_cleans_its_remotes_and_they_say_so(mesh: Mesh) -> None:
    apply_remote(mesh.primary, "east")
    wait_for(
        "the mesh Ready at 1.3.0 with east",
        lambda: (
            mesh_ready_at(mesh, "1.3.0")
            and istio_status(mesh.primary).get("remotes") == {"east": "Available"}
        ),
        timeout=240,
    )
    assert owned_objects(mesh.clients["east"], "east")
    mesh.primary.delete(IstioResource, "istio", namespace=NAMESPACE)
    wait_for("the Istio gone", lambda: not istio_status(mesh.primary), timeout=180)
    kept = owned_objects(mesh.primary)  # Istio's CRDs stay: users' configuration lives there
    assert kept and all(item.startswith("CustomResourceDefinition ") for item in kept)
    assert owned_objects(mesh.clients["east"], "east") == []
    assert pods_can_be_created_in_an_injection_namespace(mesh.clients["east"])
    status = wait_for(
        "east's RemoteIstio reports its missing mesh",
        lambda: _reason(s := remote_status(mesh.primary, "east")) == "NoIstio" and s,
        timeout=120,
    )
    assert status["Status"] == "ReconcileFailed"
    assert not ready(status)
    mesh.primary.delete(RemoteIstioResource, "east", namespace=NAMESPACE)
    wait_for("east gone", lambda: not exists(mesh.primary, "east"), timeout=120)
    assert "Traceback" not in mesh.operator.log.read_text()
