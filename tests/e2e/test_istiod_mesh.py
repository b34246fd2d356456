"""An istiod-family mesh of a primary and a remote with the operator as a process: the
remote joined with `istio-operator remote-access` (its own restricted identity), the mesh
at rest writes nothing on either cluster, a canary reaches both, and removing the remote
leaves nothing of ours there and takes its secret off the primary."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from lightkube.resources.core_v1 import Secret

from istio_operator.localcluster import Workspace
from istio_operator.localcluster.binaries import default_cache_dir
from tests.operator_harness import (
    Plane,
    RemoteIstioResource,
    apply_istio,
    apply_remote_istio,
    istio_status,
    name_of,
    operator_plane,
    owned_objects,
    ready,
    remote_access,
    remote_status,
    wait_for,
    write_requests,
)

pytestmark = pytest.mark.cluster

NS = "istio-system"
REMOTE = "west"
RESYNC_S = "3"


@pytest.fixture(scope="module")
def mesh(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    os.environ.setdefault("HELM", str(default_cache_dir() / "helm"))
    directory = tmp_path_factory.mktemp("istiod-mesh")
    with operator_plane(
        workspace,
        directory,
        "istiod-e2e-primary",
        {REMOTE: "istiod-e2e-west"},
        namespaces=(NS,),
        remote_namespaces=(NS, "apps"),
        operator_args=("--resync-period", RESYNC_S, "--phase-timeout", "20"),
        admission_webhooks=False,
        tail=150,
    ) as plane:
        kubeconfig = directory / "west.kubeconfig"
        kubeconfig.write_text(plane.remote_cluster.standalone_kubeconfig())
        joined = remote_access(plane.primary_cluster, kubeconfig, REMOTE)
        assert joined.returncode == 0, joined.stderr
        plane.operator.start()
        yield plane


def istio(version: str) -> dict[str, Any]:
    strategy = {"type": "RevisionBased", "inactiveRevisionDeletionGracePeriodSeconds": 1}
    return {
        "apiVersion": "istio.banzaicloud.io/v1beta1",
        "kind": "Istio",
        "metadata": {"name": "mesh", "namespace": NS},
        "spec": {"version": version, "profile": "minimal", "updateStrategy": strategy},
    }


def at(plane: Plane, version: str) -> bool:
    """Both clusters Available at `version`, their tags on its revision, nothing else left,
    the mesh Ready."""
    revision = f"mesh-{version.replace('.', '-')}"
    if not ready(istio_status(plane.primary, "mesh", NS)):
        return False
    for status in (
        istio_status(plane.primary, "mesh", NS),
        remote_status(plane.primary, REMOTE, NS),
    ):
        names = [r["name"] for r in status.get("revisions") or []]
        if status.get("Status") != "Available" or status.get("version") != version:
            return False
        if (status.get("tags") or {}).get("default") != revision or names != [revision]:
            return False
    return True


def test_an_istiod_mesh_joins_rests_canaries_and_lets_a_remote_go(mesh: Plane) -> None:
    apply_istio(mesh.primary, istio("1.31.0"))
    apply_remote_istio(
        mesh.primary,
        {
            "apiVersion": "istio.banzaicloud.io/v1beta1",
            "kind": "RemoteIstio",
            "metadata": {"name": REMOTE, "namespace": NS},
            "spec": {"enabledServices": [], "autoInjectionNamespaces": ["apps"]},
        },
    )
    wait_for("the mesh at 1.31.0", lambda: at(mesh, "1.31.0"), timeout=180)
    assert remote_status(mesh.primary, REMOTE, NS)["remoteSecret"] == "istio-remote-secret-west"

    # At rest: three resync periods without a write on either cluster.
    quiet_since = time.time()
    wait_for("three resyncs", lambda: time.time() - quiet_since > 3 * float(RESYNC_S) + 1)
    for cluster in (mesh.primary_cluster, mesh.remote_cluster):
        writes = write_requests(cluster, quiet_since)
        assert writes == [], [f"{w['verb']} {w['requestURI']}" for w in writes]

    apply_istio(mesh.primary, istio("1.31.1"))
    wait_for("the canary on both clusters", lambda: at(mesh, "1.31.1"), timeout=180)

    mesh.primary.delete(RemoteIstioResource, REMOTE, namespace=NS)
    wait_for(
        "nothing of ours left on the remote, its secret gone from the primary",
        lambda: (
            owned_objects(mesh.remote, REMOTE) == []
            and "istio-remote-secret-west"
            not in {name_of(s) for s in mesh.primary.list(Secret, namespace=NS)}
        ),
        timeout=120,
    )
    mesh.operator.assert_running()
