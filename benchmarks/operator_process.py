"""Prints what the operator costs as a process, kopf, status and remotes included.

    .venv/bin/python benchmarks/operator_process.py [--remotes 1 4 10] [--rounds 3]
        [--idle-passes 3] [--logs DIR]

Needs the binaries (`make k8s-binaries`). For each remote count, local clusters are made
here (a primary and that many remotes, one KWOK node each) and deleted at the end. Each
figure is given as min/median/max over `--rounds` rounds.

First, two floors do the same install and upgrade with the same objects (the primary's
render, and each remote's with the placeholders of `istio-operator render --remote`), on
every cluster at once, then delete them (namespaces and CRDs kept):
- **kubectl**: CRDs applied and `kubectl wait`ed Established, then `kubectl apply
  --server-side` of the rest, then `kubectl rollout status` of each workload;
- **in-process**: the same server-side applies sent concurrently from this process
  (lightkube), then the workloads' readiness polled every 0.05 s.
Neither phases the rollout, waits on a component before the next, or writes a status: they
are what any tool must at least spend. Nor do they wait for what the mesh learns only once
it runs (the gateways' addresses the remotes and the primary's meshNetworks need).

Then `istio-operator run` as a subprocess (metrics on a free port, resync period 3 s, no
leader election), the CRDs applied, the CA stand-in citadel would make, a kubeconfig Secret
and a RemoteIstio per remote; in each round:
- **install**: the demo's Istio at 1.2.5 applied (to an operator already watching the
  primary); the time until it and every RemoteIstio are Available at 1.2.5 with their
  Ready condition True;
- **at rest**: the operator's own counters (`istio_operator_api_requests` per cluster,
  `istio_operator_reconciles_total`) and its CPU time (/proc) for each of `--idle-passes`
  passes of the primary (the remotes' workers pass as often): a pass at rest should send
  no request to any cluster;
- **upgrade**: the spec changed to 1.3.0; the time until every cluster is Available at
  1.3.0; at rest again; then, once the operator has closed its idle connections (a minute
  after their last use), the resident set (VmRSS);
- the Istio resource deleted (its cleanup of every cluster awaited), but after the last.

Last, **drift**: the operator restarted with the default resync period (300 s); a
ConfigMap and a Service it made on a remote are deleted there, each round; the time until
each is back (a new uid).

Load: every cluster's control plane runs on this machine beside the operator; the core
count and load average are printed first and last.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from istio_operator.api.crd import generate_crds
from istio_operator.api.keys import ObjectKey, key_of
from istio_operator.api.labels import API_VERSION
from istio_operator.api.parse import load_istio, load_remote_istio
from istio_operator.cli.demo import (
    citadel_ca_stand_in,
    istio_body,
    remote_istio_body,
    start_operator,
)
from istio_operator.cli.render import placeholder_facts
from istio_operator.kube.blocking import BlockingClient
from istio_operator.kube.client import Cluster, config_from_file
from istio_operator.kube.objects import readiness
from istio_operator.kube.resources import register_crds
from istio_operator.localcluster import LocalCluster, Workspace
from istio_operator.localcluster.binaries import default_cache_dir
from istio_operator.render import render_primary, render_remote

NAMESPACE = "istio-system"
RESYNC_S = 3
DEFAULT_RESYNC_S = 300
# How often the operator's metrics are read while a figure is measured at rest.
SCRAPE_S = 1.0
TIMEOUT_S = 600.0
CPU_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait(
    what: str, check: Callable[[], bool], timeout: float = TIMEOUT_S, every: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)


def status_of(client: BlockingClient, kind: str, name: str) -> dict[str, Any]:
    found = client.get(ObjectKey(API_VERSION, kind, NAMESPACE, name)) or {}
    return dict(found.get("status") or {})


def ready_at(client: BlockingClient, remotes: list[str], version: str) -> bool:
    statuses = [status_of(client, "Istio", "mesh")]
    statuses += [status_of(client, "RemoteIstio", name) for name in remotes]
    return all(
        s.get("Status") == "Available"
        and s.get("version") == version
        and any(c.get("type") == "Ready" and c.get("status") == "True" for c in s["conditions"])
        for s in statuses
    )


def metrics(port: int) -> dict[str, float]:
    """The operator's counters, by `name{labels}`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    found = {}
    for line in text.splitlines():
        match = re.match(r"^(istio_operator_[a-z_]+(?:\{[^}]*\})?) (\S+)$", line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def figure(port: int, key: str) -> float:
    """One of the operator's figures; 0 while it does not serve its metrics yet."""
    try:
        return metrics(port).get(key, 0.0)
    except OSError:  # not listening yet
        return 0.0


def summed(figures: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in figures.items() if k.startswith(prefix))


def without_idle_connections(port: int) -> None:
    """Waits until the operator has closed every idle connection (`KEEPALIVE_S` and a little
    after the last request): its memory at a rest longer than a minute."""

    def none_idle() -> bool:
        return summed(metrics(port), "istio_operator_idle_connections") == 0

    wait("the idle connections closed", none_idle, 300, every=SCRAPE_S)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CPU_TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def load() -> str:
    return f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}"


def prepare(primary: LocalCluster, remotes: dict[str, LocalCluster]) -> BlockingClient:
    client = BlockingClient.from_kubeconfig(str(primary.kubeconfig), field_manager="benchmark")
    for crd in generate_crds():
        client.apply(crd, force=True)
    client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    citadel_ca_stand_in(client, NAMESPACE)
    for name, cluster in remotes.items():
        encoded = base64.b64encode(cluster.standalone_kubeconfig().encode()).decode()
        secret = {"name": name, "namespace": NAMESPACE}
        client.apply(
            {"apiVersion": "v1", "kind": "Secret", "metadata": secret, "data": {name: encoded}}
        )
    wait("the CRDs", lambda: all(_established(client, crd) for crd in generate_crds()), 60)
    for name in remotes:
        client.apply(remote_istio_body(name, NAMESPACE), force=True)
    return client


def _established(client: BlockingClient, crd: dict[str, Any]) -> bool:
    key = ObjectKey(
        "apiextensions.k8s.io/v1", "CustomResourceDefinition", "", crd["metadata"]["name"]
    )
    conditions = ((client.get(key) or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def spread(values: list[float], unit: str = "s", digits: int = 2) -> str:
    """min/median/max of a figure over the rounds."""
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{low:.{digits}f}/{mid:.{digits}f}/{high:.{digits}f} {unit}"


def at_rest(port: int, pid: int, clusters: list[str], passes: int) -> tuple[list[str], list[float]]:
    """Across `passes` passes of the primary at rest: what was asked of which cluster in
    a pass that asked anything ("3 on remote-0"), and the CPU time of each pass (every
    worker's work in between)."""
    wait(
        "the operator's client metrics",
        lambda: all(
            f'istio_operator_api_requests_total{{cluster="{c}"}}' in metrics(port) for c in clusters
        ),
        60,
    )
    keys = [f'istio_operator_api_requests_total{{cluster="{c}"}}' for c in clusters]
    asked, cpu = [], []
    for _ in range(passes):
        before, cpu_before = metrics(port), cpu_seconds(pid)
        base = summed(before, "istio_operator_reconciles_total")
        # Scraped once a second: each scrape costs the operator CPU too.
        wait(
            "a pass",
            lambda b=base: summed(metrics(port), "istio_operator_reconciles_total") > b,
            every=SCRAPE_S,
        )
        after = metrics(port)
        cpu.append(1000 * (cpu_seconds(pid) - cpu_before))
        asked += [
            f"{after[k] - before[k]:.0f} on {c}"
            for c, k in zip(clusters, keys, strict=True)
            if after[k] > before[k]
        ]
    return asked, cpu


def watches_open(port: int, clusters: list[str]) -> str:
    figures = metrics(port)
    counts = [figures.get(f'istio_operator_watches{{cluster="{c}"}}', 0) for c in clusters]
    return f"{counts[0]:.0f} on the primary, {max(counts[1:], default=0):.0f} at most on a remote"


# -- the floors --------------------------------------------------------------------------------

WORKLOADS = ("Deployment", "DaemonSet")
CRD_KIND = "CustomResourceDefinition"


def rendered(version: str, remotes: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per cluster (the primary as "primary"), the objects the operator would apply."""
    resource = load_istio(istio_body(version)).resource
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    objects = {"primary": [namespace, *(o.manifest for o in render_primary(resource))]}
    for name in remotes:
        remote = load_remote_istio(remote_istio_body(name, NAMESPACE)).resource
        facts = placeholder_facts(resource)
        rendered = [o.manifest for o in render_remote(resource, remote, facts)]
        objects[name] = [namespace, *(o for o in rendered if o["kind"] != "Namespace")]
    return objects


def kubectl(cluster: LocalCluster, *args: str, stdin: str | None = None) -> None:
    command = [str(default_cache_dir() / "kubectl"), "--kubeconfig", str(cluster.kubeconfig)]
    done = subprocess.run(
        [*command, *args], check=False, input=stdin, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)}: {done.stderr.strip()[-1000:]}")


def as_yaml(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects)


def kubectl_floor_one(cluster: LocalCluster, objects: list[dict[str, Any]]) -> None:
    crds = [o for o in objects if o["kind"] == CRD_KIND]
    rest = [o for o in objects if o["kind"] != CRD_KIND]
    apply = ("apply", "--server-side", "--force-conflicts", "--field-manager", "floor", "-f", "-")
    if crds:
        kubectl(cluster, *apply, stdin=as_yaml(crds))
        names = [f"crd/{o['metadata']['name']}" for o in crds]
        kubectl(cluster, "wait", "--for=condition=Established", "--timeout=300s", *names)
    kubectl(cluster, *apply, stdin=as_yaml(rest))
    for o in rest:
        if o["kind"] in WORKLOADS:
            where = ("-n", o["metadata"]["namespace"])
            kind = o["kind"].lower()
            kubectl(cluster, "rollout", "status", *where, f"{kind}/{o['metadata']['name']}")


def kubectl_floor(
    clusters: dict[str, LocalCluster], objects: dict[str, list[dict[str, Any]]]
) -> float:
    started = time.monotonic()
    with ThreadPoolExecutor(len(clusters)) as pool:
        for done in [pool.submit(kubectl_floor_one, clusters[n], objects[n]) for n in clusters]:
            done.result()
    return time.monotonic() - started


async def in_process_one(cluster: LocalCluster, objects: list[dict[str, Any]]) -> None:
    client = Cluster.from_config(cluster.name, config_from_file(str(cluster.kubeconfig)))
    try:
        crds = [o for o in objects if o["kind"] == CRD_KIND]
        rest = [o for o in objects if o["kind"] != CRD_KIND]
        register_crds(crds)
        await asyncio.gather(*(client.apply(o) for o in crds))
        await ready(client, crds)
        await asyncio.gather(*(client.apply(o) for o in rest))
        await ready(client, [o for o in rest if o["kind"] in WORKLOADS])
    finally:
        await client.close()


async def ready(client: Cluster, objects: list[dict[str, Any]]) -> None:
    waiting = [key_of(o) for o in objects]
    while waiting:
        states = await asyncio.gather(*(client.get(k) for k in waiting))
        waiting = [
            k for k, s in zip(waiting, states, strict=True) if not (s and readiness(s).ready)
        ]
        if waiting:
            await asyncio.sleep(0.05)


def in_process_floor(
    clusters: dict[str, LocalCluster], objects: dict[str, list[dict[str, Any]]]
) -> float:
    async def all_of() -> None:
        await asyncio.gather(*(in_process_one(clusters[n], objects[n]) for n in clusters))

    started = time.monotonic()
    asyncio.run(all_of())
    return time.monotonic() - started


def remove(clusters: dict[str, LocalCluster], objects: dict[str, list[dict[str, Any]]]) -> None:
    """Deletes what a floor made and waits until its pods are gone. Namespaces and CRDs are
    kept, as the operator keeps them when its Istio resource is deleted: every install, the
    floors' and the operator's, finds the CRDs there. (A CRD deleted just after it changed can
    also stay Terminating for minutes: "could not list instances: storage is
    (re)initializing".)"""
    for name, cluster in clusters.items():
        gone = [o for o in objects[name] if o["kind"] not in ("Namespace", CRD_KIND)]
        kubectl(cluster, "delete", "--ignore-not-found", "--wait", "-f", "-", stdin=as_yaml(gone))
        kubectl(cluster, "wait", "--for=delete", "pods", "--all", "-n", NAMESPACE, "--timeout=120s")


def both(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What either version made (1.2.5's mixer adapters are not in 1.3.0)."""
    return list({key_of(o): o for o in [*first, *second]}.values())


def floors(clusters: dict[str, LocalCluster], remotes: list[str], rounds: int) -> None:
    install, upgrade = rendered("1.2.5", remotes), rendered("1.3.0", remotes)
    for label, floor in (("kubectl", kubectl_floor), ("in-process", in_process_floor)):
        first, second = [], []
        for _ in range(rounds):
            first.append(floor(clusters, install))
            second.append(floor(clusters, upgrade))
            remove(clusters, {n: both(install[n], upgrade[n]) for n in clusters})
        print(
            f"  floor, {label:10}: install 1.2.5 {spread(first)}, upgrade to 1.3.0 {spread(second)}"
        )


def measure(workspace: Workspace, remotes: int, args: argparse.Namespace, workdir: Path) -> None:
    print(f"\n== primary and {remotes} remote(s); {load()}")
    started = time.monotonic()
    primary = workspace.create("bench-primary")
    clusters = {f"remote-{i}": workspace.create(f"bench-remote-{i}") for i in range(remotes)}
    print(f"  {remotes + 1} clusters made in {time.monotonic() - started:.1f} s")
    floors({"primary": primary, **clusters}, sorted(clusters), args.rounds)
    try:
        client = prepare(primary, clusters)
        operator_rounds(primary, client, sorted(clusters), args, workdir)
        drift(primary, clusters["remote-0"], client, sorted(clusters), args.rounds, workdir)
    finally:
        for name in ["bench-primary", *(f"bench-remote-{i}" for i in range(remotes))]:
            workspace.delete(name)


def run_operator(
    primary: LocalCluster, workdir: Path, log_name: str, resync_s: int
) -> tuple[subprocess.Popen[bytes], int]:
    """`istio-operator run` on the primary, and the port of its metrics."""
    port = free_port()
    operator = start_operator(
        primary.kubeconfig, workdir, log_name=log_name, resync_s=resync_s, metrics_port=port
    )
    return operator, port


def operator_rounds(
    primary: LocalCluster,
    client: BlockingClient,
    names: list[str],
    args: argparse.Namespace,
    workdir: Path,
) -> None:
    """Rounds of install, rest, upgrade, rest, and deletion of the Istio resource."""
    operator, port = run_operator(primary, workdir, f"operator-{len(names)}.log", RESYNC_S)
    clusters = ["primary cluster", *names]
    times: dict[str, list[float]] = {"1.2.5": [], "1.3.0": []}
    asked, cpu, rss = list[str](), list[float](), list[float]()
    try:
        # An operator already running, as for every round after the first: its start is
        # not part of an install. It is up once it has told each (new) RemoteIstio that
        # there is no Istio resource yet.
        wait(
            "the operator's first statuses",
            lambda: all(status_of(client, "RemoteIstio", n).get("Status") for n in names),
        )
        for round_ in range(args.rounds):
            for version in ("1.2.5", "1.3.0"):
                started = time.monotonic()
                client.apply(istio_body(version), force=True)
                wait(f"the mesh at {version}", lambda v=version: ready_at(client, names, v))
                times[version].append(time.monotonic() - started)
                requests, spent = at_rest(port, operator.pid, clusters, args.idle_passes)
                asked, cpu = asked + requests, cpu + spent
            without_idle_connections(port)
            rss.append(rss_mib(operator.pid))
            if round_ < args.rounds - 1:
                kubectl(primary, "delete", "istio", "mesh", "-n", NAMESPACE, "--wait")
        print(
            f"  operator, {args.rounds} rounds: install 1.2.5 {spread(times['1.2.5'])}, "
            f"upgrade to 1.3.0 {spread(times['1.3.0'])} (until every cluster is Available)"
        )
        print(
            f"  at rest ({len(cpu)} passes of the primary, resync {RESYNC_S} s, the remotes' "
            f"workers pass as often): requests {', '.join(asked) or 'none'} (passes that "
            f"asked anything); CPU per pass {spread(cpu, 'ms', 0)}; watches: "
            f"{watches_open(port, clusters)}"
        )
        print(
            f"  memory at rest after each round, idle connections closed: "
            f"{spread(rss, 'MiB', 0)} resident"
        )
    finally:
        os.killpg(operator.pid, signal.SIGTERM)
        operator.wait(30)


def uid_of(client: BlockingClient, key: ObjectKey) -> str:
    return str(((client.get(key) or {}).get("metadata") or {}).get("uid") or "")


def drift(
    primary: LocalCluster,
    remote: LocalCluster,
    client: BlockingClient,
    names: list[str],
    rounds: int,
    workdir: Path,
) -> None:
    """With the default resync period (300 s): how long until a ConfigMap and a Service
    the operator made on a remote, deleted there, are back."""
    operator, port = run_operator(
        primary, workdir, f"operator-{len(names)}-drift.log", DEFAULT_RESYNC_S
    )
    on_remote = BlockingClient.from_kubeconfig(str(remote.kubeconfig), field_manager="benchmark")
    try:
        wait("the mesh at rest", lambda: ready_at(client, names, "1.3.0"))
        # The statuses are the last operator's: wait until this one watches the remote.
        watching = f'istio_operator_watches{{cluster="{names[0]}"}}'
        wait("the remote's watches", lambda: figure(port, watching) > 0, every=SCRAPE_S)
        found: dict[str, list[float]] = {"ConfigMap": [], "Service": []}
        for _ in range(rounds):
            for kind, name in (("ConfigMap", "istio"), ("Service", "istio-pilot")):
                key = ObjectKey("v1", kind, NAMESPACE, name)
                wait(f"{kind} {name} on the remote", lambda k=key: uid_of(on_remote, k) != "")
                uid = uid_of(on_remote, key)
                started = time.monotonic()
                kubectl(remote, "delete", kind.lower(), name, "-n", NAMESPACE)
                wait(
                    f"{kind} {name} back on the remote",
                    lambda k=key, u=uid: uid_of(on_remote, k) not in ("", u),
                    DEFAULT_RESYNC_S,
                )
                found[kind].append(time.monotonic() - started)
        print(
            f"  drift on a remote, resync {DEFAULT_RESYNC_S} s: a deleted ConfigMap back in "
            f"{spread(found['ConfigMap'])}, a deleted Service in {spread(found['Service'])}"
        )
    finally:
        on_remote.close()
        os.killpg(operator.pid, signal.SIGTERM)
        operator.wait(30)


def main() -> None:
    register_crds(generate_crds())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--remotes", type=int, nargs="+", default=[1])
    parser.add_argument("--idle-passes", type=int, default=3, help="per rest, per round")
    parser.add_argument("--rounds", type=int, default=3, help="of each measure")
    parser.add_argument("--logs", type=Path, help="keep the operator's logs in this folder")
    args = parser.parse_args()
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="istio-operator-bench-") as directory:
        workspace = Workspace(Path(directory))
        try:
            for remotes in args.remotes:
                measure(workspace, remotes, args, args.logs or Path(directory))
        finally:
            workspace.delete_all()
    print(f"\n{load()}")


if __name__ == "__main__":
    main()
