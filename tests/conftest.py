"""Fixtures shared by every test tier: real local clusters, created once per session."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from lightkube import Client

from istio_operator.localcluster import LocalCluster, Workspace
from istio_operator.localcluster.binaries import default_cache_dir
from tests.operator_harness import client_for

# The istiod family renders with the helm `make k8s-binaries` builds, as the CLI does.
os.environ.setdefault("HELM", str(default_cache_dir() / "helm"))

RUNS_ROOT = Path(tempfile.gettempdir()) / "istio-operator-test-clusters"
WORKSPACE_KEY = pytest.StashKey[Workspace]()


def _reap_stale_runs() -> None:
    """Stops clusters left behind by test runs that were killed before their teardown."""
    if not RUNS_ROOT.is_dir():
        return
    for run in RUNS_ROOT.iterdir():
        try:
            pid = int(run.name)
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            Workspace(run).delete_all()
            shutil.rmtree(run, ignore_errors=True)
        except PermissionError:
            continue


@pytest.fixture(scope="session")
def workspace(request: pytest.FixtureRequest) -> Iterator[Workspace]:
    _reap_stale_runs()
    ws = Workspace(RUNS_ROOT / str(os.getpid()))
    request.config.stash[WORKSPACE_KEY] = ws
    try:
        yield ws
    finally:
        ws.delete_all()


@pytest.fixture(scope="session")
def primary_cluster(workspace: Workspace) -> LocalCluster:
    return workspace.create("primary")


@pytest.fixture(scope="session")
def remote_cluster(workspace: Workspace) -> LocalCluster:
    return workspace.create("remote")


@pytest.fixture(scope="session")
def primary(primary_cluster: LocalCluster) -> Client:
    return client_for(primary_cluster)


@pytest.fixture(scope="session")
def remote(remote_cluster: LocalCluster) -> Client:
    return client_for(remote_cluster)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    ws = item.config.stash.get(WORKSPACE_KEY, None)
    if report.failed and ws is not None and "workspace" in getattr(item, "fixturenames", ()):
        for cluster in ws.list():
            report.sections.append(
                (f"local cluster {cluster.name}", f"component logs: {cluster.logs}")
            )
    return report
