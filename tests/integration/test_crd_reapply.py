"""The operator's CRDs re-apply cleanly over a client-side install: after `kubectl create`
(as a Helm install or a plain `kubectl apply` leaves them), a server-side apply of the same
CRDs meets no conflict, and once applied, applying again changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from istio_operator.api.crd import generate_crds
from istio_operator.kube.client import Cluster, config_from_file
from istio_operator.localcluster import LocalCluster, Workspace

CRD_FILES = sorted((Path(__file__).parents[2] / "deploy" / "crds").glob("istio.banzaicloud.io_*"))


@pytest.fixture(scope="module")
def fresh(workspace: Workspace) -> Iterator[LocalCluster]:
    cluster = workspace.create("crdreapply", nodes=1)
    try:
        yield cluster
    finally:
        workspace.delete(cluster.name)


def operator_apply(cluster: LocalCluster) -> dict[str, str]:
    """The operator's own apply of its CRDs; the resourceVersion of each, by name."""

    async def run() -> dict[str, str]:
        ours = Cluster.from_config("primary", config_from_file(str(cluster.kubeconfig)))
        try:
            applied = [await ours.apply(crd) for crd in generate_crds()]
        finally:
            await ours.close()
        return {a["metadata"]["name"]: a["metadata"]["resourceVersion"] for a in applied}

    return asyncio.run(run())


def test_crds_created_client_side_re_apply_without_conflict(
    workspace: Workspace, fresh: LocalCluster
) -> None:
    assert len(CRD_FILES) == 2
    for path in CRD_FILES:
        workspace.kubectl(fresh, "create", "-f", str(path))
    # Unforced: a value of ours that differs from what the server stored would conflict.
    for path in CRD_FILES:
        out = workspace.kubectl(
            fresh, "apply", "--server-side", "--field-manager", "istio-operator", "-f", str(path)
        )
        assert "serverside-applied" in out
    first = operator_apply(fresh)
    assert operator_apply(fresh) == first
