"""Prints what the operator holds with many remotes: 50 by default, too many for a machine of
this size to run as whole local clusters (one takes about 510 MiB).

    .venv/bin/python benchmarks/many_remotes.py [--remotes 50] [--logs DIR]

Needs the binaries (`make k8s-binaries`). The primary is a whole local cluster. Each remote
is a stand-in: a kube-apiserver of its own, all of them on the etcd of one further local
cluster, each under its own key prefix (so each has its own kube-system namespace, that is
its own cluster identity, and its own objects), without a controller-manager, scheduler or
KWOK nodes. In their place this script sets the status of each Deployment the operator
makes there, as the Deployment controller does once its pods are available. What the
operator holds for a remote (its client, connections, watches and copies, its worker) is
what a whole cluster would cost it; what is left out runs on the remote, not in the
operator.

Then, as in `operator_process.py`: the CRDs, the CA stand-in, a kubeconfig Secret and a
RemoteIstio per remote, `istio-operator run` as a subprocess with the default resync period;
the demo's Istio at 1.2.5 applied, then at 1.3.0; the time until it and every RemoteIstio
are Available at each version, and the operator's CPU time meanwhile (how the operator's
own work grows with the remotes, the remotes' controllers left out; their API servers still
share the machine); once no request has reached any cluster for 5 s and the
operator has closed its idle connections (a minute after their last use), the requests per
cluster during the next `--rest` seconds, the watches open and the resident set (VmRSS).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from operator_process import (
    DEFAULT_RESYNC_S,
    cpu_seconds,
    free_port,
    load,
    metrics,
    prepare,
    ready_at,
    rss_mib,
    run_operator,
    summed,
    wait,
    without_idle_connections,
)

from istio_operator.api.crd import generate_crds
from istio_operator.api.keys import ObjectKey
from istio_operator.cli.demo import istio_body
from istio_operator.kube.client import Cluster, config_from_file
from istio_operator.kube.resources import register_crds
from istio_operator.localcluster import LocalCluster, Workspace

# The longest a stand-in's Deployments wait for a status when no watch event wakes it.
CONTROL_INTERVAL_S = 0.5
START_BATCH = 5


class StandIn:
    """A remote: an API server on a shared etcd, under its own key prefix."""

    def __init__(self, name: str, base: LocalCluster, port: int, directory: Path) -> None:
        self.name, self.port = name, port
        server = re.escape(base.server)
        self._config = re.sub(server, f"https://127.0.0.1:{port}", base.standalone_kubeconfig())
        self.kubeconfig = directory / f"{name}.yaml"
        self.kubeconfig.write_text(self._config)
        self.process: subprocess.Popen[bytes] | None = None

    def standalone_kubeconfig(self) -> str:
        return self._config

    def start(self, command: list[str], log: Path) -> None:
        args = [a for a in command if not a.startswith(("--audit-", "--secure-port"))]
        args = [a for a in args if not a.startswith("--etcd-prefix")]
        args += [f"--secure-port={self.port}", f"--etcd-prefix=/{self.name}"]
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)


def apiserver_command(cluster: LocalCluster) -> list[str]:
    pid = cluster.pid_of("kube-apiserver")
    if pid is None:
        raise SystemExit(f"no kube-apiserver running for {cluster.name}")
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


class DeploymentController:
    """What kube-controller-manager and KWOK would do for the stand-ins' Deployments: their
    status says every replica is updated and available at their generation."""

    def __init__(self, stand_ins: list[StandIn]) -> None:
        self.stand_ins = stand_ins
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> DeploymentController:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    async def _run(self) -> None:
        await asyncio.gather(*(self._control(s) for s in self.stand_ins))

    async def _control(self, stand_in: StandIn) -> None:
        config = config_from_file(str(stand_in.kubeconfig))
        client = Cluster.from_config(stand_in.name, config).cached()  # a watch, not polls
        try:
            while not self._stop.is_set():
                mark = client.change_mark()
                for deployment in await client.list_all("apps/v1", "Deployment"):
                    await self._settle(client, deployment)
                await client.changed(CONTROL_INTERVAL_S, mark)
        finally:
            await client.close()

    @staticmethod
    async def _settle(client: Cluster, deployment: dict[str, Any]) -> None:
        meta, status = deployment["metadata"], deployment.get("status") or {}
        generation = meta.get("generation") or 0
        if status.get("observedGeneration") == generation:
            return
        replicas = (deployment.get("spec") or {}).get("replicas", 1)
        key = ObjectKey("apps/v1", "Deployment", meta["namespace"], meta["name"])
        counts = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
        await client.patch_status(
            key, {"observedGeneration": generation, **dict.fromkeys(counts, replicas)}
        )


def requests(port: int) -> float:
    return summed(metrics(port), "istio_operator_api_requests_total")


def quiet(port: int, for_s: float) -> bool:
    """Whether no request reaches any cluster during `for_s` seconds."""
    before = requests(port)
    time.sleep(for_s)
    return requests(port) == before


def measure(workspace: Workspace, count: int, rest_s: float, logs: Path) -> None:
    print(f"== primary and {count} stand-in remotes; {load()}")
    started = time.monotonic()
    primary = workspace.create("many-primary")
    base = workspace.create("many-etcd")
    command = apiserver_command(base)
    stand_ins = [StandIn(f"remote-{i}", base, free_port(), workspace.root) for i in range(count)]
    try:
        # A few at a time: all at once, on two cores, some time out starting and exit.
        for first in range(0, count, START_BATCH):
            batch = stand_ins[first : first + START_BATCH]
            for stand_in in batch:
                stand_in.start(command, logs / f"{stand_in.name}-apiserver.log")
            for stand_in in batch:
                wait(f"{stand_in.name}'s API", lambda s=stand_in: _serving(s), 300, every=0.5)
        print(f"  clusters and stand-ins up in {time.monotonic() - started:.1f} s; {load()}")
        client = prepare(primary, dict(zip([s.name for s in stand_ins], stand_ins, strict=True)))
        names = [s.name for s in stand_ins]
        operator, port = run_operator(primary, logs, f"operator-many-{count}.log", DEFAULT_RESYNC_S)
        try:
            with DeploymentController(stand_ins):
                for step, version in (("install", "1.2.5"), ("upgrade to", "1.3.0")):
                    started, cpu = time.monotonic(), cpu_seconds(operator.pid)
                    client.apply(istio_body(version), force=True)
                    settled = lambda v=version: ready_at(client, names, v)  # noqa: E731
                    wait(f"the mesh at {version}", settled, 1800)
                    spent = time.monotonic() - started
                    print(
                        f"  {step} {version}: {spent:.1f} s until every cluster is Available "
                        f"(the operator's CPU {cpu_seconds(operator.pid) - cpu:.1f} s)"
                    )
                    wait("the operator at rest", lambda: quiet(port, 5.0), 600)
                without_idle_connections(port)
                before = metrics(port)
                time.sleep(rest_s)
                after = metrics(port)
            sent = {
                k: after[k] - before.get(k, 0.0)
                for k in after
                if k.startswith("istio_operator_api_requests_total")
            }
            watches = summed(after, "istio_operator_watches")
            print(
                f"  at rest for {rest_s:.0f} s: {max(sent.values(), default=0):.0f} requests at "
                f"most to any cluster; {watches:.0f} watches open in all"
            )
            print(f"  memory: {rss_mib(operator.pid):.0f} MiB resident with {count} remotes")
        finally:
            os.killpg(operator.pid, signal.SIGTERM)
            operator.wait(30)
    finally:
        for stand_in in stand_ins:
            stand_in.stop()


def _serving(stand_in: StandIn) -> bool:
    async def kube_system() -> bool:
        client = Cluster.from_config(stand_in.name, config_from_file(str(stand_in.kubeconfig)))
        try:
            found = await client.get(ObjectKey("v1", "Namespace", "", "kube-system"))
            return found is not None
        except Exception:  # not serving yet
            return False
        finally:
            await client.close()

    return asyncio.run(kube_system())


def main() -> None:
    register_crds(generate_crds())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--remotes", type=int, default=50)
    parser.add_argument("--rest", type=float, default=30.0, help="seconds measured at rest")
    parser.add_argument("--logs", type=Path, help="keep the logs in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="istio-operator-many-") as directory:
        logs = args.logs or Path(directory)
        logs.mkdir(parents=True, exist_ok=True)
        workspace = Workspace(Path(directory))
        try:
            measure(workspace, args.remotes, args.rest, logs)
        finally:
            workspace.delete_all()
    print(f"\n{load()}")


if __name__ == "__main__":
    main()
