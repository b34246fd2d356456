"""`istio-operator run` and `status` that cannot do their job say why in one line on
stderr and exit non-zero: no kubeconfig, an unreachable API server, a cluster without
the operator's CRDs, an occupied port."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from istio_operator.localcluster import LocalCluster, Workspace
from tests.operator_harness import cli, unreachable_kubeconfig

NO_PORTS = ("--metrics-port", "0", "--health-port", "0")


@pytest.fixture(scope="module")
def bare_cluster(workspace: Workspace) -> Iterator[LocalCluster]:
    """A cluster where the operator's CRDs were never applied."""
    cluster = workspace.create("run-errors", nodes=1)
    try:
        yield cluster
    finally:
        workspace.delete(cluster.name)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_run_without_the_crds(bare_cluster: LocalCluster) -> None:
    line = one_line_error(cli("run", *NO_PORTS, kubeconfig=bare_cluster.kubeconfig, timeout=60))
    assert f"the Istio CRDs are not installed on {bare_cluster.server}" in line
    assert "istio-operator crds | kubectl apply" in line


def test_status_without_the_crds(bare_cluster: LocalCluster) -> None:
    line = one_line_error(cli("status", kubeconfig=bare_cluster.kubeconfig, timeout=60))
    assert f"the Istio CRDs are not installed on {bare_cluster.server}" in line


def test_run_without_a_kubeconfig(tmp_path: Path) -> None:
    line = one_line_error(cli("run", *NO_PORTS, kubeconfig=tmp_path / "absent", timeout=60))
    assert "no cluster to run against" in line and "KUBECONFIG" in line


def test_run_against_an_unreachable_server(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(unreachable_kubeconfig("https://127.0.0.1:1"))
    line = one_line_error(cli("run", *NO_PORTS, kubeconfig=kubeconfig, timeout=60))
    assert "unreachable at https://127.0.0.1:1" in line


def test_run_with_an_occupied_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("run", "--metrics-port", str(port), "--health-port", "0", timeout=60)
    line = one_line_error(result)
    assert f"--metrics-port {port}" in line and "in use" in line
