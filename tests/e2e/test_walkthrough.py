"""The walkthrough of the design, on two local clusters with the operator as a process:
Istio 1.2.5 with mesh expansion on a primary and a remote, an echo workload on each,
the upgrade to 1.3.0 on both, a remote outage, a crash, and remote removal."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, Secret

from istio_operator.cli.demo import PRIMARY_COMPONENTS, REMOTE_COMPONENTS, deploy_echo
from istio_operator.kube.blocking import BlockingClient
from istio_operator.localcluster import Workspace
from tests.operator_harness import (
    REMOTE_NAME,
    Plane,
    RemoteIstioResource,
    Sampler,
    all_images,
    apply_istio,
    apply_remote,
    container_images,
    exists,
    generation_of,
    images,
    istio_available_at,
    istio_body,
    istio_status,
    labels_of,
    owned_objects,
    pods_can_be_created_in_an_injection_namespace,
    primary_and_remote,
    ready,
    remote_mesh_at,
    remote_status,
    wait_for,
)

pytestmark = pytest.mark.cluster


@dataclass
class AvailabilityProbe(Sampler):
    """Samples the echo Deployments and records any moment one was not fully available."""

    clients: list[Client]
    gaps: list[str] = field(default_factory=list)
    generations: dict[int, set[int]] = field(default_factory=dict)
    interval = 0.2

    def sample(self) -> None:
        for index, client in enumerate(self.clients):
            try:
                d = client.get(Deployment, "echo", namespace="echo")
            except Exception:
                continue
            self.generations.setdefault(index, set()).add(generation_of(d))
            available = d.status.availableReplicas if d.status else None
            if (available or 0) < 2:
                self.gaps.append(f"cluster {index}: {available} available")


def mesh_available_at(mesh: Plane, version: str) -> bool:
    """Both clusters at `version`, and the Istio Ready: the primary and the remote at it."""
    return remote_mesh_at(mesh.primary, mesh.remote, REMOTE_NAME, version) and ready(
        istio_status(mesh.primary)
    )


@pytest.fixture(scope="module")
def mesh(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    with primary_and_remote(workspace, tmp_path_factory.mktemp("walk"), "walk") as mesh:
        yield mesh


def test_walkthrough_upgrade_reaches_every_cluster(mesh: Plane) -> None:
    apply_istio(mesh.primary, istio_body("1.2.5", meshExpansion=True))
    apply_remote(mesh.primary, REMOTE_NAME)
    deploy_echo(BlockingClient(mesh.primary), "1.2.5")
    deploy_echo(BlockingClient(mesh.remote), "1.2.5")
    wait_for("the mesh at 1.2.5", lambda: mesh_available_at(mesh, "1.2.5"), timeout=180)
    secret = mesh.primary.get(Secret, REMOTE_NAME, namespace="istio-system")
    assert labels_of(secret).get("istio/multiCluster") == "true"
    # The RemoteIstio names no injection namespaces: the primary's list applies there too.
    assert injection_label(mesh.remote) == "enabled"
    assert istio_status(mesh.primary)["remotes"] == {REMOTE_NAME: "Available"}

    with AvailabilityProbe([mesh.primary, mesh.remote]) as probe:
        apply_istio(mesh.primary, istio_body("1.3.0", meshExpansion=True))
        wait_for("the mesh at 1.3.0", lambda: mesh_available_at(mesh, "1.3.0"), timeout=180)
    assert all_images(mesh.primary) == images(PRIMARY_COMPONENTS, "1.3.0")
    assert all_images(mesh.remote) == images(REMOTE_COMPONENTS, "1.3.0")
    assert probe.gaps == []
    assert all(len(g) == 1 for g in probe.generations.values()), probe.generations
    for client in (mesh.primary, mesh.remote):
        proxy = container_images(client.get(Deployment, "echo", namespace="echo"))
        assert "docker.io/istio/proxyv2:1.2.5" in proxy  # the data plane upgrades on restart


def test_remote_outage_blocks_nothing_and_converges(mesh: Plane) -> None:
    wait_for("the mesh at 1.3.0", lambda: mesh_available_at(mesh, "1.3.0"), timeout=180)
    mesh.workspace.stop(mesh.remote_cluster.name)
    apply_istio(mesh.primary, istio_body("1.2.5", meshExpansion=True))
    wait_for("primary at 1.2.5", lambda: istio_available_at(mesh.primary, "1.2.5"), timeout=180)
    status = wait_for(
        "remote Unreachable",
        lambda: (
            (s := remote_status(mesh.primary, REMOTE_NAME)).get("Status") == "Unreachable" and s
        ),
    )
    assert "unreachable" in status["ErrorMessage"].lower() or status["conditions"]
    assert all_images(mesh.primary) == images(PRIMARY_COMPONENTS, "1.2.5")

    mesh.start_remote(REMOTE_NAME)
    wait_for("the mesh at 1.2.5", lambda: mesh_available_at(mesh, "1.2.5"), timeout=180)


def test_operator_killed_during_remote_rollout_converges(mesh: Plane) -> None:
    wait_for("the mesh at 1.2.5", lambda: mesh_available_at(mesh, "1.2.5"), timeout=180)
    apply_istio(mesh.primary, istio_body("1.3.0", meshExpansion=True))
    wait_for(
        "remote rollout started",
        lambda: any(":1.3.0" in i for i in all_images(mesh.remote)),
        timeout=180,
        every=0.05,
    )
    mesh.operator.kill()
    mesh.operator.start()
    wait_for("the mesh at 1.3.0", lambda: mesh_available_at(mesh, "1.3.0"), timeout=180)


def test_remote_deleted_while_operator_down_is_cleaned_up(mesh: Plane) -> None:
    wait_for("the mesh at 1.3.0", lambda: mesh_available_at(mesh, "1.3.0"), timeout=180)
    assert all_images(mesh.remote)
    mesh.operator.kill()
    mesh.primary.delete(RemoteIstioResource, REMOTE_NAME, namespace="istio-system")
    mesh.operator.start()
    wait_for(
        "RemoteIstio gone",
        lambda: (
            not remote_status(mesh.primary, REMOTE_NAME)
            and not exists(mesh.primary, RemoteIstioResource, REMOTE_NAME)
        ),
        timeout=120,
    )
    wait_for(
        "remote cleaned",
        lambda: not list(mesh.remote.list(Deployment, namespace="istio-system")),
        timeout=60,
    )
    assert owned_objects(mesh.remote, REMOTE_NAME) == []
    assert pods_can_be_created_in_an_injection_namespace(mesh.remote)
    secret = mesh.primary.get(Secret, REMOTE_NAME, namespace="istio-system")
    assert "istio/multiCluster" not in labels_of(secret)
    assert injection_label(mesh.remote) is None
    echo_on_remote = mesh.remote.get(Deployment, "echo", namespace="echo").status
    assert echo_on_remote is not None and echo_on_remote.availableReplicas == 2


def injection_label(client: Client) -> str | None:
    return labels_of(client.get(Namespace, "injected")).get("istio-injection")
