"""`istio-operator status` against a real local cluster: Istio 1.2.5 installed by the
operator (as a process), an echo workload with a 1.2.5 sidecar, and a RemoteIstio whose
cluster cannot be reached."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment

from istio_operator.cli.demo import PRIMARY_COMPONENTS, deploy_echo
from istio_operator.kube.blocking import BlockingClient
from istio_operator.localcluster import LocalCluster, Workspace
from tests.operator_harness import (
    CLI,
    Plane,
    RemoteIstioResource,
    all_images,
    apply_istio,
    apply_remote_istio,
    cli,
    images,
    istio_available_at,
    istio_body,
    operator_plane,
    put_kubeconfig,
    unreachable_kubeconfig,
    wait_for,
)
from tests.servers import SilentServer

pytestmark = pytest.mark.cluster

CLUSTER = "status-primary"
GONE = "gone"  # a RemoteIstio whose API server does not exist
HUNG = "hung"  # a RemoteIstio whose API server accepts connections and never answers
# Ctrl-C ends the command within a second; the margin is for a busy machine, far below
# what waiting out a hung request takes (the --timeout given, HUNG_TIMEOUT_S).
INTERRUPT_LIMIT_S = 5.0
HUNG_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def setup(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    directory = tmp_path_factory.mktemp("status")
    namespaces = ("istio-system", "injected", "echo")
    with operator_plane(workspace, directory, CLUSTER, namespaces=namespaces, tail=80) as plane:
        deploy_echo(BlockingClient(plane.primary), "1.2.5")
        put_kubeconfig(plane.primary, GONE, unreachable_kubeconfig())
        plane.operator.start()
        yield plane


def status_args(cluster: LocalCluster, *args: str, timeout: float = 10) -> list[str]:
    return ["status", "--kubeconfig", str(cluster.kubeconfig), "--timeout", f"{timeout:g}", *args]


def status(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(*status_args(cluster, *args), timeout=60)


def installed(setup: Plane) -> bool:
    return istio_available_at(setup.primary, "1.2.5") and all_images(setup.primary) == images(
        PRIMARY_COMPONENTS, "1.2.5"
    )


def unreachable_remote(name: str) -> dict[str, Any]:
    """A RemoteIstio for the cluster of the kubeconfig Secret `name`, mirroring pilot."""
    return {
        "apiVersion": "istio.banzaicloud.io/v1beta1",
        "kind": "RemoteIstio",
        "metadata": {"name": name, "namespace": "istio-system"},
        "spec": {"enabledServices": [{"name": "istio-pilot", "labelSelector": "istio=pilot"}]},
    }


def remote_message(cluster: LocalCluster, name: str) -> str:
    """The message of the RemoteIstio `name`'s status, as `status -o json` shows it."""
    shown = json.loads(status(cluster, "-o", "json").stdout)
    for found in shown["clusters"]:
        if found["name"] == name and found["resource"]:
            return str(found["resource"]["message"] or "")
    return ""


def echo_ready(client: Client) -> bool:
    status = client.get(Deployment, "echo", namespace="echo").status
    return ((status.readyReplicas if status else None) or 0) == 2


def test_status_json_shows_the_control_plane_and_the_sidecars_at_1_2_5(setup: Plane) -> None:
    apply_istio(setup.primary, istio_body("1.2.5"))
    wait_for("Istio 1.2.5 Available", lambda: installed(setup), timeout=180)
    wait_for("echo ready", lambda: echo_ready(setup.primary))

    result = status(setup.primary_cluster, "-o", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["desiredVersion"] == "1.2.5"
    (primary,) = document["clusters"]
    assert primary["reachable"] is True
    assert primary["resource"]["status"] == "Available"
    assert primary["resource"]["version"] == "1.2.5"
    phases = [c["phase"] for c in primary["components"]]
    assert phases[:3] == ["citadel", "galley", "pilot"]
    assert "sidecar-injector" in phases
    for component in primary["components"]:
        assert component["versions"] == ["1.2.5"], component
        assert component["current"] is True
        assert component["state"] == "Available", component
        assert component["ready"] == component["total"] > 0, component
    shown = {i for c in primary["components"] for i in c["images"]}
    assert shown == images(PRIMARY_COMPONENTS, "1.2.5")
    echo = [g for g in primary["dataPlane"] if g["namespace"] == "echo"]
    assert echo == [
        {
            "namespace": "echo",
            "version": "1.2.5",
            "current": True,
            "image": "docker.io/istio/proxyv2:1.2.5",
            "pods": 2,
            "ready": 2,
            "workloads": ["Deployment/echo"],
        }
    ]


def test_status_table_is_readable(setup: Plane) -> None:
    wait_for("Istio 1.2.5 Available", lambda: installed(setup), timeout=180)
    result = status(setup.primary_cluster)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "CLUSTER primary"
    assert lines[1].startswith("  Istio istio-system/istio: Available, version 1.2.5")
    assert any(
        line.split()[:5] == ["citadel", "Available", "Deployment/istio-citadel", "1/1", "1.2.5"]
        for line in lines
    ), result.stdout
    assert any(line.split() == ["echo", "1.2.5", "2/2", "Deployment/echo"] for line in lines), (
        result.stdout
    )


def test_an_unreachable_remote_is_reported_not_fatal(setup: Plane) -> None:
    wait_for("Istio 1.2.5 Available", lambda: installed(setup), timeout=180)
    apply_remote_istio(setup.primary, unreachable_remote(GONE))
    try:
        result = status(setup.primary_cluster, "-o", "json")
        assert result.returncode == 0, result.stderr
        primary, gone = json.loads(result.stdout)["clusters"]
        assert primary["reachable"] is True
        assert (gone["name"], gone["role"], gone["reachable"]) == (GONE, "remote", False)
        assert "unreachable" in gone["error"]
        assert gone["resource"]["kind"] == "RemoteIstio"
        table = status(setup.primary_cluster)
        assert table.returncode == 0, table.stderr
        assert f"CLUSTER {GONE} (remote)" in table.stdout
        assert "UNREACHABLE: cluster gone is unreachable at https://127.0.0.1:1" in table.stdout
        # The operator's own status of the remote names the server too.
        wait_for(
            "the RemoteIstio's message naming its server",
            lambda: "https://127.0.0.1:1" in remote_message(setup.primary_cluster, GONE),
            timeout=120,
        )
    finally:
        setup.primary.delete(RemoteIstioResource, GONE, namespace="istio-system")


# The status command with its pass replaced by one that outlives its cancellation, as a
# pass does when Python 3.11's asyncio.wait_for swallows the cancellation (its inner task
# completing at that moment) or a call in flight ignores it.
STUBBORN_STATUS = """
import asyncio, sys
from istio_operator.cli import main, status

async def stubborn_gather(*args, **kwargs):
    print("pass started", flush=True)
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            print("cancellation ignored", flush=True)

status.gather = stubborn_gather
sys.exit(main.main(sys.argv[1:]))
"""


def interrupt(process: subprocess.Popen[str]) -> float:
    """SIGINT, as Ctrl-C sends it; the seconds until the process ended (the limit, if it
    did not end within it)."""
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    try:
        process.wait(INTERRUPT_LIMIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return INTERRUPT_LIMIT_S
    return time.monotonic() - sent


def test_watch_reprints_until_interrupted(setup: Plane, tmp_path: Path) -> None:
    out, err = tmp_path / "watch.out", tmp_path / "watch.err"
    watch = status_args(setup.primary_cluster, "-o", "json", "--watch", "--interval", "0.5")
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [*CLI, *watch],
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    try:
        # However slow the machine, the reports come: wait for them, not for a guess.
        wait_for("two reports", lambda: len(out.read_text().splitlines()) >= 2, timeout=120)
    finally:
        took = interrupt(process)
    assert took < INTERRUPT_LIMIT_S, f"still running {took:.1f} s after SIGINT"
    assert process.returncode == 0, err.read_text()
    assert "Traceback" not in err.read_text()
    for line in out.read_text().splitlines():
        assert json.loads(line)["namespace"] == "istio-system"


def test_watch_frames_in_a_file_are_timestamped(setup: Plane, tmp_path: Path) -> None:
    out = tmp_path / "watch.out"
    watch = status_args(setup.primary_cluster, "--watch", "--interval", "0.5")
    with out.open("w") as stdout:
        process = subprocess.Popen([*CLI, *watch], stdout=stdout, stderr=subprocess.PIPE)
    try:
        wait_for("two frames", lambda: out.read_text().count("\n--- ") >= 1, timeout=120)
    finally:
        interrupt_quietly(process)
    frames = [line for line in out.read_text().splitlines() if line.startswith("--- ")]
    assert all(re.fullmatch(r"--- \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ---", f) for f in frames)
    assert "\x1b[" not in out.read_text()  # no screen clearing outside a terminal


def interrupt_quietly(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(INTERRUPT_LIMIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_ctrl_c_ends_watch_at_once_while_a_remote_request_hangs(
    setup: Plane, tmp_path: Path
) -> None:
    wait_for("Istio 1.2.5 Available", lambda: installed(setup), timeout=180)
    setup.operator.stop()  # so that every connection to the silent server is the command's
    silent = SilentServer()
    put_kubeconfig(setup.primary, HUNG, unreachable_kubeconfig(silent.url))
    apply_remote_istio(setup.primary, unreachable_remote(HUNG))
    err = tmp_path / "watch.err"
    try:
        with err.open("w") as stderr:
            process = subprocess.Popen(
                [*CLI, *status_args(setup.primary_cluster, "--watch", timeout=HUNG_TIMEOUT_S)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                text=True,
            )
        wait_for("a request to the hung remote", silent.accepted.is_set, timeout=120)
        took = interrupt(process)
        assert took < INTERRUPT_LIMIT_S, f"still running {took:.1f} s after SIGINT"
        assert process.returncode == 0, err.read_text()
        assert "Traceback" not in err.read_text()
    finally:
        setup.primary.delete(RemoteIstioResource, HUNG, namespace="istio-system")
        silent.close()
        setup.operator.start()


def test_ctrl_c_ends_watch_at_once_even_if_the_pass_ignores_cancellation(tmp_path: Path) -> None:
    silent = SilentServer()  # never contacted: the pass is replaced
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(unreachable_kubeconfig(silent.url))
    out = tmp_path / "stubborn.out"
    command = [sys.executable, "-c", STUBBORN_STATUS, "status", "--kubeconfig", str(kubeconfig)]
    try:
        with out.open("w") as stdout:
            process = subprocess.Popen(
                [*command, "--watch"],
                stdout=stdout,
                stderr=subprocess.STDOUT,
                text=True,
            )
        wait_for("the pass to start", lambda: "pass started" in out.read_text(), timeout=120)
        took = interrupt(process)
        assert took < INTERRUPT_LIMIT_S, f"still running {took:.1f} s after SIGINT"
        assert process.returncode == 0, out.read_text()
        assert "cancellation ignored" in out.read_text()
        assert "Traceback" not in out.read_text()
    finally:
        silent.close()
