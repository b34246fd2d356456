"""Prints how long the reconcile engine takes on a real local cluster.

    .venv/bin/python benchmarks/reconcile.py

Install of Istio 1.2.5, an idle pass (nothing to change: it must send no write),
the upgrade to 1.3.0, with the number of API writes each sent. Readiness waits
are included: on KWOK nodes pods become ready at once, so the figures are the
operator's own cost plus the API server's.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from istio_operator.api.labels import owner_selector
from istio_operator.api.parse import load_istio
from istio_operator.kube.client import Cluster, config_from_file
from istio_operator.localcluster import Workspace
from istio_operator.reconcile.engine import Ownership, reconcile_cluster
from istio_operator.render import render_primary


def body(version: str) -> dict[str, Any]:
    return {
        "apiVersion": "istio.banzaicloud.io/v1beta1",
        "kind": "Istio",
        "metadata": {"name": "mesh", "namespace": "istio-system"},
        "spec": {"version": version, "mtls": False},
    }


async def measure(cluster: Cluster, label: str, version: str) -> None:
    objects = render_primary(load_istio(body(version)).resource)
    before = cluster.writes.total
    start = time.perf_counter()
    report = await reconcile_cluster(
        cluster, objects, Ownership(owner_selector("mesh", "istio-system")), 120.0
    )
    elapsed = time.perf_counter() - start
    assert report.done, report.awaiting
    print(
        f"{label:28} {elapsed:6.2f} s, {cluster.writes.total - before:4} writes "
        f"({len(objects)} objects)"
    )


async def run(kubeconfig: Path) -> None:
    cluster = Cluster.from_config("bench", config_from_file(str(kubeconfig)))
    await cluster.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}
    )
    try:
        await measure(cluster, "install 1.2.5", "1.2.5")
        await measure(cluster, "idle pass", "1.2.5")
        await measure(cluster, "upgrade to 1.3.0", "1.3.0")
        await measure(cluster, "idle pass", "1.3.0")
    finally:
        await cluster.close()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="istio-operator-bench-") as root:
        workspace = Workspace(Path(root))
        try:
            local = workspace.create("bench")
            asyncio.run(run(local.kubeconfig))
        finally:
            workspace.delete_all()


if __name__ == "__main__":
    main()
