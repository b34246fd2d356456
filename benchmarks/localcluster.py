"""Prints how fast local clusters start and how much memory their components use.

    .venv/bin/python benchmarks/localcluster.py

Needs the binaries (`make k8s-binaries`). Figures: start of two clusters one after
the other, time until a 3-replica Deployment is available, RSS per component.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from lightkube import Client, KubeConfig
from lightkube.resources.apps_v1 import Deployment

from istio_operator.localcluster import LocalCluster, Workspace
from istio_operator.localcluster.cluster import COMPONENTS


def rss_mib(pid: int | None) -> float:
    if pid is None:
        return 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def time_deployment_available(cluster: LocalCluster) -> float:
    client = Client(KubeConfig.from_file(str(cluster.kubeconfig)), field_manager="benchmark")
    labels = {"app": "bench"}
    start = time.monotonic()
    client.apply(
        Deployment.from_dict(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "bench", "namespace": "default"},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": "c", "image": "example/bench:1"}]},
                    },
                },
            }
        )
    )
    while (client.get(Deployment, "bench", namespace="default").status.availableReplicas or 0) < 3:
        time.sleep(0.05)
    return time.monotonic() - start


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="istio-operator-bench-") as root:
        workspace = Workspace(Path(root))
        try:
            start = time.monotonic()
            clusters = [workspace.create(name) for name in ("bench-a", "bench-b")]
            started = time.monotonic() - start
            print(f"start two clusters (binaries cached, 3 nodes each): {started:.1f} s")
            print(f"3-replica Deployment available: {time_deployment_available(clusters[0]):.2f} s")
            for cluster in clusters:
                sizes = {c: rss_mib(cluster.pid_of(c)) for c in COMPONENTS}
                detail = ", ".join(f"{c} {mib:.0f}" for c, mib in sizes.items())
                print(f"RSS of {cluster.name}: {sum(sizes.values()):.0f} MiB ({detail})")
        finally:
            workspace.delete_all()


if __name__ == "__main__":
    main()
