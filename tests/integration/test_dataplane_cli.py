"""`istio-operator dataplane-upgrade` against a real local cluster: Istio 1.3.0 installed by
the operator (as a process), one echo workload with a 1.2.5 sidecar and one with 1.3.0.

The sidecars are explicit containers (no injector runs on KWOK's fake nodes), so a restart
recreates the pods with the same image: the test checks that the restart happened (new
pods, the annotation, a new generation) and that nothing else was touched. With the real
sidecar injector, the recreated pods get the new proxy."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterator

import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod

from istio_operator.cli.demo import echo_manifest
from istio_operator.localcluster import LocalCluster, Workspace
from istio_operator.operations.dataplane import DATAPLANE_FIELD_MANAGER, RESTARTED_AT
from tests.operator_harness import (
    Plane,
    RemoteIstioResource,
    apply_istio,
    apply_remote,
    cli,
    from_dict,
    generation_of,
    istio_available_at,
    istio_body,
    meta,
    name_of,
    operator_plane,
    put_kubeconfig,
    unreachable_kubeconfig,
    wait_for,
)

pytestmark = pytest.mark.cluster

CLUSTER = "dp-primary"
OLD, NEW = "app-old", "app-new"  # namespaces of the echo with a 1.2.5 and a 1.3.0 sidecar
# The dry run's and the upgrade's row of the echo with the outdated sidecar, but their last words.
OLD_ROW = [OLD, "Deployment/echo", "2", "1.2.5", "->", "1.3.0"]


def deploy_echo_in(client: Client, namespace: str, proxy_version: str) -> None:
    manifest = echo_manifest(proxy_version)
    manifest["metadata"]["namespace"] = namespace
    client.apply(from_dict(Deployment, manifest), force=True)


@pytest.fixture(scope="module")
def setup(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    directory = tmp_path_factory.mktemp("dataplane")
    namespaces = ("istio-system", "injected", OLD, NEW)
    with operator_plane(workspace, directory, CLUSTER, namespaces=namespaces, tail=80) as plane:
        plane.operator.start()
        apply_istio(plane.primary, istio_body("1.3.0"))
        deploy_echo_in(plane.primary, OLD, "1.2.5")
        deploy_echo_in(plane.primary, NEW, "1.3.0")
        yield plane


def dataplane(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return cli("dataplane-upgrade", "--kubeconfig", str(cluster.kubeconfig), *args, timeout=60)


def echo(client: Client, namespace: str) -> Deployment:
    return client.get(Deployment, "echo", namespace=namespace)


def rolled_out(client: Client, namespace: str) -> bool:
    deployment = echo(client, namespace)
    status = deployment.status
    return bool(
        status
        and (status.observedGeneration or 0) >= (meta(deployment).generation or 0)
        and status.updatedReplicas == status.replicas == status.availableReplicas == 2
    )


def pod_names(client: Client, namespace: str) -> set[str]:
    return {name_of(p) for p in client.list(Pod, namespace=namespace, labels={"app": "echo"})}


def generations(client: Client, namespace: str) -> dict[str, int]:
    return {name_of(d): generation_of(d) for d in client.list(Deployment, namespace=namespace)}


def restarted_at(deployment: Deployment) -> str | None:
    assert deployment.spec is not None
    template = deployment.spec.template.metadata
    return ((template and template.annotations) or {}).get(RESTARTED_AT)


def ready(setup: Plane) -> None:
    wait_for(
        "Istio 1.3.0 Available", lambda: istio_available_at(setup.primary, "1.3.0"), timeout=180
    )
    for namespace in (OLD, NEW):
        rolled = functools.partial(rolled_out, setup.primary, namespace)
        wait_for(f"echo in {namespace} rolled out", rolled)


def echo_row(stdout: str, namespace: str) -> list[str] | None:
    return next(
        (
            line.split()
            for line in stdout.splitlines()
            if line.split()[:2] == [namespace, "Deployment/echo"]
        ),
        None,
    )


def test_dry_run_lists_only_the_outdated_workload_and_changes_nothing(setup: Plane) -> None:
    ready(setup)
    before = {
        ns: (generation_of(echo(setup.primary, ns)), pod_names(setup.primary, ns))
        for ns in (OLD, NEW)
    }

    result = dataplane(setup.primary_cluster, "--dry-run")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "dry run: nothing is changed"
    assert lines[1] == "CLUSTER primary: control plane 1.3.0, 1 workload to restart in 1 namespace"
    assert echo_row(result.stdout, OLD) == [*OLD_ROW, "would", "restart"]
    assert echo_row(result.stdout, NEW) is None
    assert "istio-system" not in result.stdout
    for namespace in (OLD, NEW):
        deployment = echo(setup.primary, namespace)
        assert restarted_at(deployment) is None
        assert (generation_of(deployment), pod_names(setup.primary, namespace)) == before[namespace]


def test_the_upgrade_restarts_only_the_outdated_workload(setup: Plane) -> None:
    ready(setup)
    old_generation = generation_of(echo(setup.primary, OLD))
    old_pods = pod_names(setup.primary, OLD)
    new_before = (generation_of(echo(setup.primary, NEW)), pod_names(setup.primary, NEW))
    control_plane = generations(setup.primary, "istio-system")
    assert control_plane

    result = dataplane(setup.primary_cluster)

    assert result.returncode == 0, result.stderr + result.stdout
    assert echo_row(result.stdout, OLD) == [*OLD_ROW, "restarted"]
    assert echo_row(result.stdout, NEW) is None

    restarted = echo(setup.primary, OLD)
    assert generation_of(restarted) == old_generation + 1
    assert restarted_at(restarted)
    managers = {m.manager: m.operation for m in meta(restarted).managedFields or []}
    assert managers.get(DATAPLANE_FIELD_MANAGER) == "Apply", managers
    wait_for("the restarted echo rolled out", lambda: rolled_out(setup.primary, OLD))
    wait_for(
        "new echo pods",
        lambda: (
            (names := pod_names(setup.primary, OLD)) and not names & old_pods and len(names) == 2
        ),
    )

    untouched = echo(setup.primary, NEW)
    assert restarted_at(untouched) is None
    assert (generation_of(untouched), pod_names(setup.primary, NEW)) == new_before
    assert generations(setup.primary, "istio-system") == control_plane


def test_the_namespace_filter_and_a_missing_istio_resource(setup: Plane) -> None:
    ready(setup)
    result = dataplane(setup.primary_cluster, "--dry-run", "--workload-namespace", NEW)
    assert result.returncode == 0, result.stderr
    assert "every sidecar is up to date" in result.stdout

    missing = dataplane(setup.primary_cluster, "-n", "nowhere")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: no Istio resource in namespace nowhere"


def test_an_unreachable_remote_is_reported_and_the_primary_still_listed(setup: Plane) -> None:
    ready(setup)
    put_kubeconfig(setup.primary, "gone", unreachable_kubeconfig())
    apply_remote(setup.primary, "gone")
    try:
        result = dataplane(setup.primary_cluster, "--dry-run", "--all-clusters", "--force")
        assert result.returncode == 1, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert lines[1].startswith("CLUSTER primary: control plane 1.3.0"), result.stdout
        assert lines[-1].startswith("CLUSTER gone (remote): cluster gone is unreachable")
    finally:
        setup.primary.delete(RemoteIstioResource, "gone", namespace="istio-system")
