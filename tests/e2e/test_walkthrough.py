"""The walkthrough of the design, on two local clusters with the operator as a process:
Istio 1.2.5 with mesh expansion on a primary and a remote, an echo workload on each,
the upgrade to 1.3.0 on both, a remote outage, a crash, and remote removal."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from lightkube import ApiError, Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, Secret

from istio_operator.cli.demo import citadel_ca_stand_in, deploy_echo, remote_istio_body
from istio_operator.kube.blocking import BlockingClient
from istio_operator.localcluster import LocalCluster, Workspace
from tests.conftest import client_for
from tests.operator_harness import (
    OperatorProcess,
    RemoteIstioResource,
    all_images,
    apply_crds,
    apply_istio,
    istio_body,
    istio_status,
    owned_objects,
    pods_can_be_created_in_an_injection_namespace,
    wait_for,
)

pytestmark = pytest.mark.cluster

PRIMARY = ("citadel", "galley", "mixer", "pilot", "proxyv2", "sidecar_injector")
REMOTE = ("citadel", "proxyv2", "sidecar_injector")
REMOTE_NAME = "remote"


def images(components: tuple[str, ...], version: str) -> set[str]:
    return {f"docker.io/istio/{c}:{version}" for c in components}


@dataclass
class Mesh:
    workspace: Workspace
    primary_cluster: LocalCluster
    remote_cluster: LocalCluster
    primary: Client
    remote: Client
    operator: OperatorProcess


@pytest.fixture(scope="module")
def mesh(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    primary_cluster = workspace.create("walk-primary")
    remote_cluster = workspace.create("walk-remote")
    primary, remote = client_for(primary_cluster), client_for(remote_cluster)
    apply_crds(primary)
    primary.apply(Namespace(metadata=ObjectMeta(name="istio-system")))
    citadel_ca_stand_in(BlockingClient(primary))
    for client in (primary, remote):
        client.apply(Namespace(metadata=ObjectMeta(name="injected")))
    primary.apply(
        Secret(
            metadata=ObjectMeta(name=REMOTE_NAME, namespace="istio-system"),
            data={
                REMOTE_NAME: base64.b64encode(
                    remote_cluster.standalone_kubeconfig().encode()
                ).decode()
            },
        )
    )
    operator = OperatorProcess(
        primary_cluster.kubeconfig, tmp_path_factory.mktemp("walk") / "operator.log"
    )
    operator.start()
    yield Mesh(workspace, primary_cluster, remote_cluster, primary, remote, operator)
    operator.stop()
    print(operator.tail(150))


def remote_status(client: Client) -> dict:
    try:
        return dict(
            client.get(RemoteIstioResource, REMOTE_NAME, namespace="istio-system").get("status")
            or {}
        )
    except ApiError:
        return {}


@dataclass
class AvailabilityProbe:
    """Samples the echo Deployments and records any moment one was not fully available."""

    clients: list[Client]
    gaps: list[str] = field(default_factory=list)
    generations: dict[int, set[int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> AvailabilityProbe:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            for index, client in enumerate(self.clients):
                try:
                    d = client.get(Deployment, "echo", namespace="echo")
                except Exception:
                    continue
                self.generations.setdefault(index, set()).add(d.metadata.generation)
                if (d.status.availableReplicas or 0) < 2:
                    self.gaps.append(f"cluster {index}: {d.status.availableReplicas} available")
            time.sleep(0.2)


def remote_images(client: Client) -> set[str]:
    return all_images(client)


def mesh_ready(status: dict) -> bool:
    """The Istio's Ready condition: the primary and every remote at the spec."""
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def mesh_available_at(mesh: Mesh, version: str) -> bool:
    status = istio_status(mesh.primary)
    return (
        status.get("version") == version
        and status.get("Status") == "Available"
        and mesh_ready(status)
        and remote_status(mesh.primary).get("Status") == "Available"
        and remote_status(mesh.primary).get("version") == version
        and all_images(mesh.primary) == images(PRIMARY, version)
        and remote_images(mesh.remote) == images(REMOTE, version)
    )


def test_walkthrough_upgrade_reaches_every_cluster(mesh: Mesh) -> None:
    apply_istio(mesh.primary, istio_body("1.2.5", meshExpansion=True))
    mesh.primary.apply(RemoteIstioResource.from_dict(remote_istio_body(REMOTE_NAME)), force=True)
    deploy_echo(BlockingClient(mesh.primary), "1.2.5")
    deploy_echo(BlockingClient(mesh.remote), "1.2.5")
    wait_for("the mesh at 1.2.5", lambda: mesh_available_at(mesh, "1.2.5"), timeout=180)
    secret = mesh.primary.get(Secret, REMOTE_NAME, namespace="istio-system")
    assert secret.metadata.labels.get("istio/multiCluster") == "true"
    # The RemoteIstio names no injection namespaces: the primary's list applies there too.
    assert injection_label(mesh.remote) == "enabled"
    assert istio_status(mesh.primary)["remotes"] == {REMOTE_NAME: "Available"}

    with AvailabilityProbe([mesh.primary, mesh.remote]) as probe:
        apply_istio(mesh.primary, istio_body("1.3.0", meshExpansion=True))
        wait_for("the mesh at 1.3.0", lambda: mesh_available_at(mesh, "1.3.0"), timeout=180)
    assert all_images(mesh.primary) == images(PRIMARY, "1.3.0")
    assert remote_images(mesh.remote) == images(REMOTE, "1.3.0")
    assert probe.gaps == []
    assert all(len(g) == 1 for g in probe.generations.values()), probe.generations
    for client in (mesh.primary, mesh.remote):
        proxy = {
            c.image
            for c in client.get(Deployment, "echo", namespace="echo").spec.template.spec.containers
        }
        assert "docker.io/istio/proxyv2:1.2.5" in proxy  # the data plane upgrades on restart


def test_remote_outage_blocks_nothing_and_converges(mesh: Mesh) -> None:
    wait_for("the mesh at 1.3.0", lambda: mesh_available_at(mesh, "1.3.0"), timeout=180)
    mesh.workspace.stop(mesh.remote_cluster.name)
    apply_istio(mesh.primary, istio_body("1.2.5", meshExpansion=True))
    wait_for(
        "primary at 1.2.5",
        lambda: (
            istio_status(mesh.primary).get("version") == "1.2.5"
            and istio_status(mesh.primary).get("Status") == "Available"
        ),
        timeout=180,
    )
    status = wait_for(
        "remote Unreachable",
        lambda: (s := remote_status(mesh.primary)).get("Status") == "Unreachable" and s,
    )
    assert "unreachable" in status["ErrorMessage"].lower() or status["conditions"]
    assert all_images(mesh.primary) == images(PRIMARY, "1.2.5")

    mesh.workspace.start(mesh.remote_cluster.name)
    mesh.remote = client_for(mesh.remote_cluster)
    wait_for("the mesh at 1.2.5", lambda: mesh_available_at(mesh, "1.2.5"), timeout=180)


def test_operator_killed_during_remote_rollout_converges(mesh: Mesh) -> None:
    wait_for("the mesh at 1.2.5", lambda: mesh_available_at(mesh, "1.2.5"), timeout=180)
    apply_istio(mesh.primary, istio_body("1.3.0", meshExpansion=True))
    wait_for(
        "remote rollout started",
        lambda: any(":1.3.0" in i for i in remote_images(mesh.remote)),
        timeout=180,
        every=0.05,
    )
    mesh.operator.kill()
    mesh.operator.start()
    wait_for("the mesh at 1.3.0", lambda: mesh_available_at(mesh, "1.3.0"), timeout=180)


def test_remote_deleted_while_operator_down_is_cleaned_up(mesh: Mesh) -> None:
    wait_for("the mesh at 1.3.0", lambda: mesh_available_at(mesh, "1.3.0"), timeout=180)
    assert remote_images(mesh.remote)
    mesh.operator.kill()
    mesh.primary.delete(RemoteIstioResource, REMOTE_NAME, namespace="istio-system")
    mesh.operator.start()
    wait_for(
        "RemoteIstio gone",
        lambda: not remote_status(mesh.primary) and _gone(mesh.primary),
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
    assert "istio/multiCluster" not in (secret.metadata.labels or {})
    assert injection_label(mesh.remote) is None
    echo_on_remote = mesh.remote.get(Deployment, "echo", namespace="echo")
    assert echo_on_remote.status.availableReplicas == 2


def injection_label(client: Client) -> str | None:
    labels = client.get(Namespace, "injected").metadata.labels or {}
    return labels.get("istio-injection")


def _gone(client: Client) -> bool:
    try:
        client.get(RemoteIstioResource, REMOTE_NAME, namespace="istio-system")
    except ApiError:
        return True
    return False
