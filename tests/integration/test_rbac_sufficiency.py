"""The operator's RBAC is sufficient: the operator, run with a token of its own
ServiceAccount from deploy/base (not the admin), installs Istio 1.2.5 and upgrades it to
1.3.0 on a primary, and, with the kubeconfig Secret `istio-operator remote-access`
writes (a ServiceAccount with only the remote rules), on a remote too.

Own clusters, so that no other test's Istio resources interfere; deleted at the end."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError, Client, KubeConfig
from lightkube.codecs import load_all_yaml
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, Secret, ServiceAccount

from istio_operator.cli.demo import deploy_echo, remote_istio_body
from istio_operator.kube.credentials import Token, endpoint_of, token_kubeconfig
from istio_operator.localcluster import LocalCluster, Workspace, find_binaries
from tests.conftest import client_for
from tests.operator_harness import (
    REPO,
    OperatorProcess,
    RemoteIstioResource,
    all_images,
    apply_istio,
    istio_body,
    istio_status,
    wait_established,
    wait_for,
    write_requests,
)

pytestmark = pytest.mark.cluster

PRIMARY_NAME, REMOTE_NAME = "rbac-primary", "rbac-remote"
REMOTE = "remote"  # the RemoteIstio, its Secret and the Secret's key
OPERATOR_NAMESPACE = "istio-operator"  # deploy/base's namespace
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:istio-operator"
REMOTE_USER = "system:serviceaccount:istio-system:istio-operator"
PRIMARY_IMAGES = ("citadel", "galley", "mixer", "pilot", "proxyv2", "sidecar_injector")
REMOTE_IMAGES = ("citadel", "proxyv2", "sidecar_injector")
# deploy/base without the operator's own workload: the operator runs here as a process.
IDENTITY_KINDS = (
    "CustomResourceDefinition",
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
)


@dataclass
class Mesh:
    primary_cluster: LocalCluster
    remote_cluster: LocalCluster
    primary: Client  # admin clients, to look
    remote: Client
    operator: OperatorProcess
    started: float


def images(components: tuple[str, ...], version: str) -> set[str]:
    return {f"docker.io/istio/{c}:{version}" for c in components}


def apply_operator_identity(client: Client) -> None:
    """deploy/base's ServiceAccount, ClusterRole, leader-election Role and bindings."""
    kubectl = find_binaries()["kubectl"]
    rendered = subprocess.run(
        [str(kubectl), "kustomize", str(REPO / "deploy/base")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    objects = [o for o in load_all_yaml(rendered) if o.kind in IDENTITY_KINDS]
    objects.sort(key=lambda o: IDENTITY_KINDS.index(o.kind))
    for obj in objects:
        client.apply(obj, force=True)
    wait_established(
        client, [o.metadata.name for o in objects if o.kind == "CustomResourceDefinition"]
    )


def service_account_kubeconfig(cluster: LocalCluster, client: Client, path: Path) -> Path:
    """A kubeconfig of the operator's ServiceAccount: the cluster's server and CA, a
    TokenRequest token as the user."""
    request = ServiceAccount.Token(
        metadata=ObjectMeta(name="istio-operator", namespace=OPERATOR_NAMESPACE),
        spec=TokenRequestSpec(audiences=[], expirationSeconds=3600),
    )
    answer = client.create(request, "istio-operator", namespace=OPERATOR_NAMESPACE)
    token = Token(str(answer.status.token), "")
    endpoint = endpoint_of(KubeConfig.from_file(str(cluster.kubeconfig)))
    path.write_text(token_kubeconfig(cluster.name, endpoint, "istio-operator", token))
    return path


def remote_status(client: Client) -> dict[str, Any]:
    try:
        body = client.get(RemoteIstioResource, REMOTE, namespace="istio-system")
    except ApiError:
        return {}
    return dict(body.get("status") or {})


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "istio_operator.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def mesh(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    directory = tmp_path_factory.mktemp("rbac")
    primary_cluster = workspace.create(PRIMARY_NAME)
    remote_cluster = workspace.create(REMOTE_NAME)
    operator: OperatorProcess | None = None
    try:
        primary, remote = client_for(primary_cluster), client_for(remote_cluster)
        apply_operator_identity(primary)
        for namespace in ("istio-system", "injected"):
            primary.apply(Namespace(metadata=ObjectMeta(name=namespace)))
        access = cli(
            "remote-access",
            "--remote-kubeconfig",
            str(remote_cluster.kubeconfig),
            "--name",
            REMOTE,
            "--kubeconfig",
            str(primary_cluster.kubeconfig),
        )
        assert access.returncode == 0, access.stderr
        print(access.stdout)
        kubeconfig = service_account_kubeconfig(
            primary_cluster, primary, directory / "operator-kubeconfig.yaml"
        )
        operator = OperatorProcess(
            kubeconfig,
            directory / "operator.log",
            args=(
                "--resync-period",
                "10",
                "--phase-timeout",
                "20",
                "--leader-election-namespace",
                OPERATOR_NAMESPACE,
            ),
        )
        started = time.time()
        operator.start()
        yield Mesh(primary_cluster, remote_cluster, primary, remote, operator, started)
    finally:
        if operator is not None:
            operator.stop()
            print(operator.tail(150))
        workspace.delete(PRIMARY_NAME)
        workspace.delete(REMOTE_NAME)


def mesh_available_at(mesh: Mesh, version: str) -> bool:
    primary, remote = istio_status(mesh.primary), remote_status(mesh.primary)
    return (
        primary.get("Status") == "Available"
        and primary.get("version") == version
        and remote.get("Status") == "Available"
        and remote.get("version") == version
        and all_images(mesh.primary) == images(PRIMARY_IMAGES, version)
        and all_images(mesh.remote) == images(REMOTE_IMAGES, version)
    )


def assert_nothing_forbidden(mesh: Mesh) -> None:
    mesh.operator.assert_running()
    log = mesh.operator.log.read_text(errors="replace").lower()
    assert "forbidden" not in log, mesh.operator.tail(100)


def writers(cluster: LocalCluster, since: float, namespace: str) -> set[str]:
    """Who wrote the operator's objects in the namespace."""
    return {
        e["user"]["username"]
        for e in write_requests(cluster, since)
        if (e.get("objectRef") or {}).get("namespace") == namespace
        and (e.get("objectRef") or {}).get("resource") in {"deployments", "configmaps", "services"}
    }


def test_the_service_accounts_install_1_2_5_on_the_primary_and_the_remote(mesh: Mesh) -> None:
    deploy_echo(mesh.primary, "1.2.5", replicas=1)
    deploy_echo(mesh.remote, "1.2.5", replicas=1)
    apply_istio(mesh.primary, istio_body("1.2.5", meshExpansion=True))
    mesh.primary.apply(RemoteIstioResource.from_dict(remote_istio_body(REMOTE)), force=True)
    wait_for("the mesh at 1.2.5", lambda: mesh_available_at(mesh, "1.2.5"), timeout=240)
    assert istio_status(mesh.primary)["remotes"] == {REMOTE: "Available"}
    assert_nothing_forbidden(mesh)
    assert writers(mesh.primary_cluster, mesh.started, "istio-system") == {OPERATOR_USER}
    assert writers(mesh.remote_cluster, mesh.started, "istio-system") == {REMOTE_USER}


def test_the_service_accounts_upgrade_to_1_3_0(mesh: Mesh) -> None:
    wait_for("the mesh at 1.2.5", lambda: mesh_available_at(mesh, "1.2.5"), timeout=240)
    apply_istio(mesh.primary, istio_body("1.3.0", meshExpansion=True))
    wait_for("the mesh at 1.3.0", lambda: mesh_available_at(mesh, "1.3.0"), timeout=240)
    assert_nothing_forbidden(mesh)


def test_status_reads_the_remote_with_the_remote_access_identity(mesh: Mesh) -> None:
    wait_for("the mesh at 1.3.0", lambda: mesh_available_at(mesh, "1.3.0"), timeout=240)
    result = cli("status", "--kubeconfig", str(mesh.primary_cluster.kubeconfig), "-o", "json")
    assert result.returncode == 0, result.stderr
    primary, remote = json.loads(result.stdout)["clusters"]
    assert (remote["name"], remote["reachable"], remote["dataPlaneError"]) == (REMOTE, True, None)
    assert remote["resource"]["status"] == "Available"
    for cluster, expected in ((primary, PRIMARY_IMAGES), (remote, REMOTE_IMAGES)):
        assert {i for c in cluster["components"] for i in c["images"]} == images(expected, "1.3.0")
        assert all(c["current"] and c["state"] == "Available" for c in cluster["components"])
        (sidecars,) = [g for g in cluster["dataPlane"] if g["namespace"] == "echo"]
        assert (sidecars["version"], sidecars["current"]) == ("1.2.5", False)
    print(cli("status", "--kubeconfig", str(mesh.primary_cluster.kubeconfig)).stdout)


def test_remote_access_again_renews_the_token_and_keeps_the_mesh(mesh: Mesh) -> None:
    again = cli(
        "remote-access",
        "--remote-kubeconfig",
        str(mesh.remote_cluster.kubeconfig),
        "--name",
        REMOTE,
        "--kubeconfig",
        str(mesh.primary_cluster.kubeconfig),
    )
    assert again.returncode == 0, again.stderr
    secret = mesh.primary.get(Secret, REMOTE, namespace="istio-system")
    kubeconfig = yaml.safe_load(base64.b64decode(secret.data[REMOTE]))
    token = kubeconfig["users"][0]["user"]["token"]
    assert token not in again.stdout + again.stderr
    assert kubeconfig["clusters"][0]["cluster"]["server"] in again.stdout
    assert secret.metadata.labels.get("istio/multiCluster") == "true"  # the operator's, kept
    wait_for("the mesh at 1.3.0", lambda: mesh_available_at(mesh, "1.3.0"), timeout=120)
    assert_nothing_forbidden(mesh)
