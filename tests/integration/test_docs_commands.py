"""The documentation's commands work as written: every ```` ```bash ```` block of the pages
below, in order, pasted into one shell on a fresh local cluster (KUBECONFIG pointing at
it, the repository as the working directory, the built kubectl on PATH). The shell stops
at the first command that fails (`set -e`, `pipefail`). Blocks that need a real cloud, an
image registry or a second cluster carry another info string (`console`) and are not run.
Anything the blocks start in the background (the operator) is stopped with the shell's
session. The samples of config/samples, which the pages use, each render."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from istio_operator.localcluster import LocalCluster, Workspace
from istio_operator.localcluster.binaries import default_cache_dir
from tests.operator_harness import REPO, cli

pytestmark = pytest.mark.cluster

# The pages whose bash blocks run, in this order (the README's walkthrough comes first:
# the pages after it read the mesh it leaves).
PAGES = ("README.md", "docs/upgrade.md", "docs/istiod-family.md")
FENCE = re.compile(r"^```bash\n(.*?)^```$", re.MULTILINE | re.DOTALL)
TIMEOUT_S = 300


def bash_blocks(page: str) -> list[str]:
    return FENCE.findall((REPO / page).read_text())


def script() -> str:
    """The blocks as one script, each announced, the failing line named on exit."""
    lines = ["set -eo pipefail", "trap 'echo \"failed (status $?): $BASH_COMMAND\" >&2' ERR"]
    for page in PAGES:
        for number, block in enumerate(bash_blocks(page), 1):
            lines += [f"echo '### {page}, block {number}'", block]
    return "\n".join(lines) + "\n"


SAMPLES = REPO / "config" / "samples"


@pytest.mark.parametrize(
    "files",
    [
        ["istio_v1beta1_istio.yaml"],
        ["istio_v1beta1_istio_1.3.0.yaml"],
        ["istio_v1beta1_istio_istiod.yaml"],
        ["istio_v1beta1_istio_1.3.0.yaml", "istio_v1beta1_remoteistio.yaml"],
    ],
)
def test_the_samples_render(files: list[str]) -> None:
    """Each sample the docs use is one the operator accepts (a RemoteIstio with its Istio)."""
    args = [arg for name in files for arg in ("-f", str(SAMPLES / name))]
    if len(files) > 1:
        args += ["--remote", "remote-a"]
    result = cli("render", *args)
    assert result.returncode == 0, result.stderr
    assert "kind: Deployment" in result.stdout


@pytest.fixture(scope="module")
def fresh(workspace: Workspace) -> Iterator[LocalCluster]:
    cluster = workspace.create("docs")
    try:
        yield cluster
    finally:
        workspace.delete(cluster.name)


def test_the_pages_have_runnable_blocks() -> None:
    for page in PAGES:
        assert bash_blocks(page), f"{page} has no bash block"


def test_the_documented_commands_run_in_order_on_a_fresh_cluster(
    fresh: LocalCluster, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "KUBECONFIG": str(fresh.kubeconfig),
        "PATH": f"{default_cache_dir()}{os.pathsep}{os.environ.get('PATH', '')}",
        "TMPDIR": str(tmp_path),  # where the README's operator writes its log
    }
    shell = subprocess.Popen(
        ["bash", "-c", script()],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = shell.communicate(timeout=TIMEOUT_S)
    finally:
        stop_session(shell)
    log = tmp_path / "istio-operator.log"
    operator_log = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    assert shell.returncode == 0, f"{output}\n--- operator log (tail):\n{operator_log}"
    assert output.count("### ") == sum(len(bash_blocks(p)) for p in PAGES)


def stop_session(shell: subprocess.Popen[str]) -> None:
    """Stops what the blocks left running (the operator), by the shell's process group."""
    try:
        os.killpg(shell.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        shell.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(shell.pid, signal.SIGKILL)
