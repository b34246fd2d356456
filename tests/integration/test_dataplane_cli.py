"""`istio-operator dataplane-upgrade` against a real local cluster: Istio 1.3.0 installed by
the operator (as a process), one echo workload with a 1.2.5 sidecar and one with 1.3.0.

The sidecars are explicit containers (no injector runs on KWOK's fake nodes), so a restart
recreates the pods with the same image: the test checks that the restart happened (new
pods, the annotation, a new generation) and that nothing else was touched. With the real
sidecar injector, the recreated pods get the new proxy."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from lightkube import Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, Pod, Secret

from istio_operator.cli.demo import echo_manifest, remote_istio_body
from istio_operator.localcluster import LocalCluster, Workspace
from istio_operator.operations.dataplane import DATAPLANE_FIELD_MANAGER, RESTARTED_AT
from tests.conftest import client_for
from tests.operator_harness import (
    OperatorProcess,
    RemoteIstioResource,
    apply_crds,
    apply_istio,
    istio_body,
    istio_status,
    wait_for,
)

pytestmark = pytest.mark.cluster

CLUSTER = "dp-primary"
OLD, NEW = "app-old", "app-new"  # namespaces of the echo with a 1.2.5 and a 1.3.0 sidecar


@dataclass
class Setup:
    cluster: LocalCluster
    client: Client
    operator: OperatorProcess


def deploy_echo_in(client: Client, namespace: str, proxy_version: str) -> None:
    manifest = echo_manifest(proxy_version)
    manifest["metadata"]["namespace"] = namespace
    echo: Any = Deployment.from_dict(manifest)
    client.apply(echo, force=True)


@pytest.fixture(scope="module")
def setup(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    cluster = workspace.create(CLUSTER)
    client = client_for(cluster)
    operator = OperatorProcess(cluster.kubeconfig, tmp_path_factory.mktemp("dataplane") / "op.log")
    try:
        apply_crds(client)
        for namespace in ("istio-system", "injected", OLD, NEW):
            client.apply(Namespace(metadata=ObjectMeta(name=namespace)))
        operator.start()
        apply_istio(client, istio_body("1.3.0"))
        deploy_echo_in(client, OLD, "1.2.5")
        deploy_echo_in(client, NEW, "1.3.0")
        yield Setup(cluster, client, operator)
    finally:
        operator.stop()
        print(operator.tail(80))
        workspace.delete(CLUSTER)


def dataplane(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "istio_operator.cli.main",
        "dataplane-upgrade",
        "--kubeconfig",
        str(cluster.kubeconfig),
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def echo(client: Client, namespace: str) -> Deployment:
    return client.get(Deployment, "echo", namespace=namespace)


def rolled_out(client: Client, namespace: str) -> bool:
    deployment = echo(client, namespace)
    status = deployment.status
    return bool(
        status
        and (status.observedGeneration or 0) >= (deployment.metadata.generation or 0)
        and status.updatedReplicas == status.replicas == status.availableReplicas == 2
    )


def pod_names(client: Client, namespace: str) -> set[str]:
    return {p.metadata.name for p in client.list(Pod, namespace=namespace, labels={"app": "echo"})}


def generations(client: Client, namespace: str) -> dict[str, int]:
    return {
        d.metadata.name: d.metadata.generation for d in client.list(Deployment, namespace=namespace)
    }


def restarted_at(deployment: Deployment) -> str | None:
    annotations = deployment.spec.template.metadata.annotations or {}
    return annotations.get(RESTARTED_AT)


def ready(setup: Setup) -> None:
    wait_for(
        "Istio 1.3.0 Available",
        lambda: (
            istio_status(setup.client).get("Status") == "Available"
            and istio_status(setup.client).get("version") == "1.3.0"
        ),
        timeout=180,
    )
    for namespace in (OLD, NEW):
        wait_for(f"echo in {namespace} rolled out", lambda n=namespace: rolled_out(setup.client, n))


def echo_row(stdout: str, namespace: str) -> list[str] | None:
    return next(
        (
            line.split()
            for line in stdout.splitlines()
            if line.split()[:2] == [namespace, "Deployment/echo"]
        ),
        None,
    )


def test_dry_run_lists_only_the_outdated_workload_and_changes_nothing(setup: Setup) -> None:
    ready(setup)
    before = {
        ns: (echo(setup.client, ns).metadata.generation, pod_names(setup.client, ns))
        for ns in (OLD, NEW)
    }

    result = dataplane(setup.cluster, "--dry-run")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "dry run: nothing is changed"
    assert lines[1] == "CLUSTER primary: control plane 1.3.0, 1 workload to restart in 1 namespace"
    assert echo_row(result.stdout, OLD) == [
        OLD,
        "Deployment/echo",
        "2",
        "1.2.5",
        "->",
        "1.3.0",
        "would",
        "restart",
    ]
    assert echo_row(result.stdout, NEW) is None
    assert "istio-system" not in result.stdout
    for namespace in (OLD, NEW):
        deployment = echo(setup.client, namespace)
        assert restarted_at(deployment) is None
        assert (deployment.metadata.generation, pod_names(setup.client, namespace)) == before[
            namespace
        ]


def test_the_upgrade_restarts_only_the_outdated_workload(setup: Setup) -> None:
    ready(setup)
    old_generation = echo(setup.client, OLD).metadata.generation
    old_pods = pod_names(setup.client, OLD)
    new_before = (echo(setup.client, NEW).metadata.generation, pod_names(setup.client, NEW))
    control_plane = generations(setup.client, "istio-system")
    assert control_plane

    result = dataplane(setup.cluster)

    assert result.returncode == 0, result.stderr + result.stdout
    assert echo_row(result.stdout, OLD) == [
        OLD,
        "Deployment/echo",
        "2",
        "1.2.5",
        "->",
        "1.3.0",
        "restarted",
    ]
    assert echo_row(result.stdout, NEW) is None

    restarted = echo(setup.client, OLD)
    assert restarted.metadata.generation == old_generation + 1
    assert restarted_at(restarted)
    managers = {m.manager: m.operation for m in restarted.metadata.managedFields or []}
    assert managers.get(DATAPLANE_FIELD_MANAGER) == "Apply", managers
    wait_for("the restarted echo rolled out", lambda: rolled_out(setup.client, OLD))
    wait_for(
        "new echo pods",
        lambda: (
            (names := pod_names(setup.client, OLD)) and not names & old_pods and len(names) == 2
        ),
    )

    untouched = echo(setup.client, NEW)
    assert restarted_at(untouched) is None
    assert (untouched.metadata.generation, pod_names(setup.client, NEW)) == new_before
    assert generations(setup.client, "istio-system") == control_plane


def test_the_namespace_filter_and_a_missing_istio_resource(setup: Setup) -> None:
    ready(setup)
    result = dataplane(setup.cluster, "--dry-run", "--workload-namespace", NEW)
    assert result.returncode == 0, result.stderr
    assert "every sidecar is up to date" in result.stdout

    missing = dataplane(setup.cluster, "-n", "nowhere")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: no Istio resource in namespace nowhere"


def test_an_unreachable_remote_is_reported_and_the_primary_still_listed(setup: Setup) -> None:
    ready(setup)
    kubeconfig = (
        "apiVersion: v1\nkind: Config\n"
        "clusters: [{name: gone, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: gone, user: {token: none}}]\n"
        "contexts: [{name: gone, context: {cluster: gone, user: gone}}]\n"
        "current-context: gone\n"
    )
    setup.client.apply(
        Secret(
            metadata=ObjectMeta(name="gone", namespace="istio-system"),
            data={"gone": base64.b64encode(kubeconfig.encode()).decode()},
        )
    )
    remote = remote_istio_body("gone", "istio-system")
    setup.client.apply(RemoteIstioResource.from_dict(remote), force=True)
    try:
        result = dataplane(setup.cluster, "--dry-run", "--all-clusters", "--force")
        assert result.returncode == 1, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert lines[1].startswith("CLUSTER primary: control plane 1.3.0"), result.stdout
        assert lines[-1].startswith("CLUSTER gone (remote): cluster gone is unreachable")
    finally:
        setup.client.delete(RemoteIstioResource, "gone", namespace="istio-system")
