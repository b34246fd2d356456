"""Prints how long rendering takes and how much memory it holds.

    .venv/bin/python benchmarks/render.py

Renders the primary and a remote for a spec with every optional component on,
for both release families, many times; prints the mean time per render and
the peak memory traced during one render. Then runs `istio-operator render` on the
reference sample as a process, several times: min/median/max of its wall time (what a
user waits for: interpreter start, imports, parsing, rendering, YAML output).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from istio_operator.api.parse import load_istio, load_remote_istio
from istio_operator.render import PrimaryFacts, render_primary, render_remote

ROUNDS = 200
CLI_ROUNDS = 10
SAMPLE = Path(__file__).resolve().parent.parent / "tests/fixtures/samples/istio_v1beta1_istio.yaml"


def istio_body(version: str) -> dict[str, Any]:
    on = {"enabled": True}
    return {
        "apiVersion": "istio.banzaicloud.io/v1beta1",
        "kind": "Istio",
        "metadata": {"name": "mesh", "namespace": "istio-system"},
        "spec": {
            "version": version,
            "mtls": True,
            "meshExpansion": True,
            "multiMesh": True,
            "autoInjectionNamespaces": ["default"],
            "nodeAgent": on,
            "istioCoreDNS": on,
            "sidecarInjector": {"enabled": True, "initCNIConfiguration": on},
            "mixerlessTelemetry": on,
            "gateways": {"enabled": True, "k8singress": on},
        },
    }


REMOTE = {
    "apiVersion": "istio.banzaicloud.io/v1beta1",
    "kind": "RemoteIstio",
    "metadata": {"name": "remote", "namespace": "istio-system"},
    "spec": {"enabledServices": [{"name": "istio-pilot", "labelSelector": "istio=pilot"}]},
}


def mean_ms(action: Any) -> float:
    start = time.perf_counter()
    for _ in range(ROUNDS):
        action()
    return (time.perf_counter() - start) / ROUNDS * 1000


def main() -> None:
    facts = PrimaryFacts(ingress_gateway_addresses=("192.0.2.1",))
    remote = load_remote_istio(REMOTE).resource
    for version in ("1.2.5", "1.3.0"):
        istio = load_istio(istio_body(version)).resource
        objects = render_primary(istio)
        primary_ms = mean_ms(lambda istio=istio: render_primary(istio))
        remote_ms = mean_ms(lambda istio=istio: render_remote(istio, remote, facts))
        load_ms = mean_ms(lambda version=version: load_istio(istio_body(version)))
        tracemalloc.start()
        render_primary(istio)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"{version}: {len(objects)} primary objects; load+validate {load_ms:.2f} ms, "
            f"render primary {primary_ms:.2f} ms, render remote {remote_ms:.2f} ms, "
            f"peak memory of one render {peak / 1024:.0f} KiB"
        )

    print(cli_render())


def cli_render() -> str:
    command = [sys.executable, "-m", "istio_operator.cli.main", "render", "-f", str(SAMPLE)]
    seconds = []
    for _ in range(CLI_ROUNDS):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        seconds.append(time.perf_counter() - start)
    return (
        f"`istio-operator render -f {SAMPLE.name}` as a process, {CLI_ROUNDS} runs: "
        f"min {min(seconds):.3f} s, median {statistics.median(seconds):.3f} s, "
        f"max {max(seconds):.3f} s"
    )


if __name__ == "__main__":
    main()
