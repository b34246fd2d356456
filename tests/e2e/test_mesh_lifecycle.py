"""A mesh of a primary and two remotes (one joined with `istio-operator remote-access`)
with the operator as a process: it settles and stays silent on every cluster, a failing
remote fails only itself, a cluster is managed by one RemoteIstio only, and removing a
remote is total (during a rollout, while unreachable, abandoned)."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, Secret
from lightkube.types import PatchType

from istio_operator.localcluster import LocalCluster, Workspace
from istio_operator.reconcile.remote import ABANDON_CLEANUP
from tests.operator_harness import (
    IstioResource,
    Plane,
    RemoteIstioResource,
    apply_istio,
    apply_remote,
    containers,
    exists,
    istio_body,
    istio_status,
    labels_of,
    operator_plane,
    owned_objects,
    pods_can_be_created_in_an_injection_namespace,
    put_kubeconfig,
    ready,
    reason,
    remote_access,
    remote_status,
    resource_versions,
    wait_for,
    write_requests,
)
from tests.servers import SilentServer

pytestmark = pytest.mark.cluster

NAMESPACE = "istio-system"
AT_REST_WINDOW_S = 120.0
RESYNC_S = "5"


@pytest.fixture(scope="module")
def mesh(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    directory = tmp_path_factory.mktemp("mesh")
    remotes = {name: f"mesh-{name}" for name in ("east", "west")}
    with operator_plane(
        workspace,
        directory,
        "mesh-primary",
        remotes,
        citadel_ca=True,
        operator_args=("--resync-period", RESYNC_S, "--phase-timeout", "20"),
        tail=200,
    ) as mesh:
        east, west = mesh.remote_clusters["east"], mesh.remote_clusters["west"]
        put_kubeconfig(mesh.primary, "east", east.standalone_kubeconfig())
        _remote_access(mesh.primary_cluster, west, "west", directory)
        mesh.operator.start()
        apply_istio(mesh.primary, istio_body("1.2.5"))
        for name in remotes:
            apply_remote(mesh.primary, name)
        yield mesh


@pytest.fixture(scope="module")
def hang() -> Iterator[SilentServer]:
    """The API server of a remote that accepts connections and never answers."""
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()


def _remote_access(primary: LocalCluster, remote: LocalCluster, name: str, where: Path) -> None:
    kubeconfig = where / f"{name}-admin.yaml"
    kubeconfig.write_text(remote.standalone_kubeconfig())
    granted = remote_access(primary, kubeconfig, name, "-n", NAMESPACE)
    assert granted.returncode == 0, granted.stderr


def remote_gone(primary: Client, name: str) -> bool:
    return not exists(primary, RemoteIstioResource, name)


def mesh_ready_at(mesh: Plane, version: str) -> bool:
    """The Istio's Ready condition at `version`: the primary and every current remote."""
    status = istio_status(mesh.primary)
    return ready(status) and status.get("version") == version


# -- at rest ----------------------------------------------------------------------------------


def test_mesh_settles_and_is_silent_on_every_cluster(mesh: Plane) -> None:
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


def _operator_writes(mesh: Plane, since: float) -> dict[str, list[dict[str, Any]]]:
    clusters = {"primary": mesh.primary_cluster, **mesh.remote_clusters}
    return {name: write_requests(cluster, since) for name, cluster in clusters.items()}


def _quiet_for(mesh: Plane, seconds: float) -> bool:
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


def test_failing_remotes_fail_only_themselves(mesh: Plane, hang: SilentServer) -> None:
    wait_for("the mesh Ready at 1.2.5", lambda: mesh_ready_at(mesh, "1.2.5"), timeout=240)
    east = mesh.remote_clusters["east"]
    put_kubeconfig(mesh.primary, "hung", _kubeconfig(east, server=hang.url, insecure=True))
    put_kubeconfig(mesh.primary, "nobody", _kubeconfig(east, token=_token_without_rights(mesh)))
    untrusted = _kubeconfig(east, ca_from=mesh.remote_clusters["west"])
    put_kubeconfig(mesh.primary, "untrusted", untrusted)
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
    assert reason(statuses["nobody"]) == "Forbidden"
    assert "403" in statuses["nobody"]["ErrorMessage"]
    assert reason(statuses["untrusted"]) == "UntrustedServer"
    assert "certificate" in statuses["untrusted"]["ErrorMessage"]
    wait_for("the hung remote contacted", lambda: hang.connections, timeout=60)

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
    assert hang.url.removeprefix("https://") in hung["ErrorMessage"]

    for name in ("hung", "nobody", "untrusted"):
        _annotate_abandon(mesh.primary, name)
        mesh.primary.delete(RemoteIstioResource, name, namespace=NAMESPACE)
    for name in ("hung", "nobody", "untrusted"):
        gone = functools.partial(remote_gone, mesh.primary, name)
        wait_for(f"RemoteIstio {name} gone", gone, timeout=120)
    wait_for("the mesh Ready again", lambda: mesh_ready_at(mesh, "1.2.5"), timeout=120)
    assert set(istio_status(mesh.primary)["remotes"]) == {"east", "west"}


HACKED = "example/hacked:1"


def _drifted(client: Client) -> bool:
    pilot = client.get(Deployment, "istio-pilot", namespace=NAMESPACE)
    return any(c.image == HACKED for c in containers(pilot))


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


def _token_without_rights(mesh: Plane) -> str:
    east = mesh.remote_clusters["east"]
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


def test_a_cluster_is_managed_by_one_remoteistio(mesh: Plane) -> None:
    wait_for("the mesh Ready at 1.2.5", lambda: mesh_ready_at(mesh, "1.2.5"), timeout=240)
    east = mesh.remotes["east"]
    before = resource_versions(east)
    put_kubeconfig(mesh.primary, "east-again", mesh.remote_clusters["east"].standalone_kubeconfig())
    apply_remote(mesh.primary, "east-again")
    status = wait_for(
        "the second RemoteIstio refused",
        lambda: (
            (s := remote_status(mesh.primary, "east-again")).get("Status") == "ReconcileFailed"
            and s
        ),
        timeout=60,
    )
    assert reason(status) == "ClusterClaimed"
    assert "RemoteIstio istio-system/east" in status["ErrorMessage"]
    assert owned_objects(east, "east-again") == []
    mesh.primary.delete(RemoteIstioResource, "east-again", namespace=NAMESPACE)
    wait_for("east-again gone", lambda: remote_gone(mesh.primary, "east-again"), timeout=60)
    after = resource_versions(east)
    assert after == before  # the refused one neither changed nor removed east's objects


def test_a_remoteistio_without_an_istio_says_so(mesh: Plane) -> None:
    mesh.primary.apply(Namespace(metadata=ObjectMeta(name="lonely")))
    east = mesh.remote_clusters["east"]
    put_kubeconfig(mesh.primary, "lonely", east.standalone_kubeconfig(), "lonely")
    apply_remote(mesh.primary, "lonely", namespace="lonely")

    def status() -> dict[str, Any]:
        found = mesh.primary.get(RemoteIstioResource, "lonely", namespace="lonely")
        return dict(found.get("status") or {})

    seen = wait_for("the lone RemoteIstio's status", lambda: status().get("Status") and status())
    assert seen["Status"] == "ReconcileFailed"
    assert "no Istio resource in namespace lonely" in seen["ErrorMessage"]
    mesh.primary.delete(RemoteIstioResource, "lonely", namespace="lonely")


# -- removal ----------------------------------------------------------------------------------


def test_removal_during_a_rollout_is_total(mesh: Plane) -> None:
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
    wait_for("west gone", lambda: remote_gone(mesh.primary, "west"), timeout=120)
    print(f"west removed {time.monotonic() - started:.1f} s after its deletion, mid-rollout")
    west = mesh.remotes["west"]
    assert owned_objects(west, "west") == []
    assert pods_can_be_created_in_an_injection_namespace(west)
    wait_for(
        "the mesh Ready at 1.3.0 without west", lambda: mesh_ready_at(mesh, "1.3.0"), timeout=240
    )
    assert set(istio_status(mesh.primary)["remotes"]) == {"east"}
    assert owned_objects(west, "west") == []  # nothing reappeared while the mesh converged


def test_removal_of_an_unreachable_remote_waits_then_completes(mesh: Plane) -> None:
    wait_for("the mesh Ready at 1.3.0", lambda: mesh_ready_at(mesh, "1.3.0"), timeout=240)
    mesh.workspace.stop(mesh.remote_clusters["east"].name)
    mesh.primary.delete(RemoteIstioResource, "east", namespace=NAMESPACE)
    status = wait_for(
        "the pending cleanup reported",
        lambda: reason(s := remote_status(mesh.primary, "east")) == "CleanupPending" and s,
        timeout=120,
    )
    assert ABANDON_CLEANUP in status["ErrorMessage"]
    assert not remote_gone(mesh.primary, "east")
    started = time.monotonic()
    east = mesh.start_remote("east")
    wait_for("east gone", lambda: remote_gone(mesh.primary, "east"), timeout=180)
    print(f"east removed {time.monotonic() - started:.1f} s after its cluster came back")
    assert owned_objects(east, "east") == []
    assert pods_can_be_created_in_an_injection_namespace(east)
    secret = mesh.primary.get(Secret, "east", namespace=NAMESPACE)
    assert "istio/multiCluster" not in labels_of(secret)
    status = wait_for(
        "the mesh Ready with no remote", lambda: ready(s := istio_status(mesh.primary)) and s
    )
    assert "remotes" not in status


def test_deleting_the_istio_cleans_its_remotes_and_they_say_so(mesh: Plane) -> None:
    apply_remote(mesh.primary, "east")
    wait_for(
        "the mesh Ready at 1.3.0 with east",
        lambda: (
            mesh_ready_at(mesh, "1.3.0")
            and istio_status(mesh.primary).get("remotes") == {"east": "Available"}
        ),
        timeout=240,
    )
    assert owned_objects(mesh.remotes["east"], "east")
    mesh.primary.delete(IstioResource, "istio", namespace=NAMESPACE)
    wait_for("the Istio gone", lambda: not istio_status(mesh.primary), timeout=180)
    kept = owned_objects(mesh.primary)  # Istio's CRDs stay: users' configuration lives there
    assert kept
    assert [item for item in kept if not item.startswith("CustomResourceDefinition ")] == []
    assert owned_objects(mesh.remotes["east"], "east") == []
    assert pods_can_be_created_in_an_injection_namespace(mesh.remotes["east"])
    status = wait_for(
        "east's RemoteIstio reports its missing mesh",
        lambda: reason(s := remote_status(mesh.primary, "east")) == "NoIstio" and s,
        timeout=120,
    )
    assert status["Status"] == "ReconcileFailed"
    assert not ready(status)
    mesh.primary.delete(RemoteIstioResource, "east", namespace=NAMESPACE)
    wait_for("east gone", lambda: remote_gone(mesh.primary, "east"), timeout=120)
    assert "Traceback" not in mesh.operator.log.read_text()
