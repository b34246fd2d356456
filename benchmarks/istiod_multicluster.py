"""Prints what a canary of the istiod family costs, on the primary alone and with remotes.

    .venv/bin/python benchmarks/istiod_multicluster.py

Needs the binaries (`make k8s-binaries`, helm included) and the chart catalogue
(`make istio-charts`: versions 1.31.0 and 1.31.1). Three local clusters are made here
(one KWOK node each, no admission webhooks, as the integration tests make them) and
deleted at the end: a primary and two remotes. Two set-ups, each round in both (who goes
first alternates from round to round):

(a) the primary alone: an Istio resource (RevisionBased, profile minimal), no RemoteIstio;
(b) the primary with two remotes: the same Istio resource and two RemoteIstio resources,
    each with its kubeconfig Secret on the primary.

Each round installs 1.31.0 from a clean istio-system (passes until every cluster is
Available at 1.31.0, `default` tag on revision mesh-1-31-0), then times the canary: the
spec changed to 1.31.1, passes until every cluster is Available at 1.31.1 with its
`default` tag (status `tags` of the Istio resource, and of each RemoteIstio) on revision
mesh-1-31-1. Then everything the operator made is deleted and waited for.

The passes run in-process, as the integration tests drive them: a step is the primary's
pass (`reconcile_mesh`, its status fed into the next) then the remotes' passes side by side
(`reconcile_remote`; each remote's status written to its RemoteIstio on the primary with
`patch_status`, as its worker writes it, for the primary's next pass to read), then 0.2 s
before the next step (the operator's workers would be woken by the watch instead). The
helm cache is cleared before each canary: 1.31.1 is rendered cold, as by an operator
meeting the version for the first time. The old revision's grace period is the default:
it stays throughout (pruning it is not part of the figure).

Writes are counted per API server: on the primary, those of the primary's passes, those
of the remotes' passes (the remote secret kept there) and the remote status patches, each
shown apart; on each remote, those of its passes. Beside each cluster's passes, the time
spent in them (the remotes' overlap each other: they run side by side).

Clean-up between rounds: `remove_remote` of each remote (as the operator does on removal),
the RemoteIstio resources deleted, `delete_owned` of the Istio resource's owner selector
on the primary, then polled until no owned object (CRDs excepted: the operator never
deletes Istio's CRDs) and no pod or ReplicaSet is left in istio-system on any cluster.
It is cheaper than making the three clusters again (both times are printed); the Istio
CRDs staying, each round's install re-applies those of 1.31.0 over them, so every canary
starts from the same state. Each round's Istio resource has its own uid (a fresh
resource, as after a delete and a create).

Load conditions: the three clusters' API servers, etcds, controller-managers and KWOK
run on this machine beside the script (the remotes idle during (a)), so the figures
include their cost; KWOK pods are ready as soon as they are scheduled. The machine's core
count and load average are printed first and last.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from istio_operator.api.crd import generate_crds
from istio_operator.api.keys import ObjectKey
from istio_operator.api.labels import API_VERSION, MANAGED_BY, MANAGED_BY_VALUE, owner_selector
from istio_operator.charts import template
from istio_operator.kube.client import Cluster, config_from_file
from istio_operator.kube.remotes import RemoteClients
from istio_operator.kube.resources import register_crds
from istio_operator.localcluster import LocalCluster, Workspace
from istio_operator.localcluster.binaries import default_cache_dir
from istio_operator.plan.istiod import revision_name
from istio_operator.reconcile.engine import Ownership, delete_owned
from istio_operator.reconcile.istio import Settings, reconcile_mesh
from istio_operator.reconcile.kinds import CRD_KIND, MANAGED_KINDS, register_managed_kinds
from istio_operator.reconcile.remote import RemoteSettings, reconcile_remote, remove_remote
from istio_operator.reconcile.status import compute_status, differs, merge_patch

OLDER, NEWER = "1.31.0", "1.31.1"
ROUNDS = 3
NAMESPACE = "istio-system"
MESH = "mesh"
PRIMARY = "primary"
REMOTES = ("remote-1", "remote-2")
MAX_STEPS = 60
STEP_PAUSE_S = 0.2
PHASE_TIMEOUT_S = 30.0
CLEANUP_TIMEOUT_S = 120.0
TIMEOUT = "120s"
REPO = Path(__file__).resolve().parent.parent
OPERATOR_CRDS = sorted((REPO / "deploy/crds").glob("istio.banzaicloud.io_*.yaml"))
OWNED = f"{MANAGED_BY}={MANAGED_BY_VALUE}"


# -- figures ----------------------------------------------------------------------------


def spread(values: Sequence[float], unit: str = "s") -> str:
    """min/median/max, in seconds (or what `unit` says)."""
    low, mid, high = (f(values) for f in (min, statistics.median, max))
    return f"{low:.2f}/{mid:.2f}/{high:.2f} {unit}"


def per_round(values: Sequence[int]) -> str:
    return "/".join(str(v) for v in values)


def machine_line(when: str) -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    now = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"[{when}] {now}, nproc {os.cpu_count()}, load average {load}"


# -- kubectl -----------------------------------------------------------------------------


def kubectl(cluster: LocalCluster, *args: str, stdin: str | None = None) -> str:
    command = [str(default_cache_dir() / "kubectl"), "--kubeconfig", str(cluster.kubeconfig)]
    done = subprocess.run(
        [*command, *args], input=stdin, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def apply(cluster: LocalCluster, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Server-side apply of one object; the object as the API server returns it."""
    command = ("apply", "--server-side", "--force-conflicts", "-o", "json", "-f", "-")
    out = kubectl(cluster, *command, stdin=json.dumps(manifest))
    applied: dict[str, Any] = json.loads(out)
    return applied


# -- the resources -----------------------------------------------------------------------


def istio_body(version: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Istio",
        "metadata": {"name": MESH, "namespace": NAMESPACE, "generation": 1, "uid": uid},
        "spec": {
            "version": version,
            "profile": "minimal",
            "updateStrategy": {"type": "RevisionBased"},
        },
    }


def remote_istio_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "RemoteIstio",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"enabledServices": []},
    }


def kubeconfig_secret(name: str, kubeconfig: str) -> dict[str, Any]:
    """The Secret a RemoteIstio `name` reads its cluster's kubeconfig from (key `name`)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": {name: base64.b64encode(kubeconfig.encode()).decode()},
    }


def as_the_worker_reads_it(applied: Mapping[str, Any]) -> dict[str, Any]:
    """A RemoteIstio's body with the uid and creation time of the applied resource."""
    body = remote_istio_body(str(applied["metadata"]["name"]))
    body["metadata"].update(
        generation=applied["metadata"].get("generation") or 1,
        uid=applied["metadata"]["uid"],
        creationTimestamp=applied["metadata"]["creationTimestamp"],
    )
    return body


def at(status: Mapping[str, Any], version: str) -> bool:
    """Available at `version`, its `default` tag on that version's revision."""
    return (
        status.get("Status") == "Available"
        and status.get("version") == version
        and (status.get("tags") or {}).get("default") == revision_name(MESH, version)
    )


# -- the passes --------------------------------------------------------------------------


@dataclass
class Counts:
    """One install or canary: its time, passes and writes."""

    seconds: float = 0.0
    steps: int = 0
    passes: dict[str, int] = field(default_factory=dict)  # by cluster
    writes: dict[str, int] = field(default_factory=dict)  # by cluster
    seconds_in_passes: dict[str, float] = field(default_factory=dict)  # by cluster
    # Writes on the primary's API server, by who sent them.
    primary_own: int = 0
    remote_on_primary: int = 0
    status_patches: int = 0


class Mesh:
    """The Istio resource and the RemoteIstio resources as their workers see them: the
    bodies, statuses included, and a client per worker (so each one's writes are its own)."""

    def __init__(
        self, primary: LocalCluster, version: str, uid: str, remotes: Sequence[dict[str, Any]]
    ) -> None:
        config = str(primary.kubeconfig)
        self.istio = istio_body(version, uid)
        self.remotes = {str(r["metadata"]["name"]): r for r in remotes}
        self.primary = Cluster.from_config(PRIMARY, config_from_file(config))
        # Each remote worker's client to the primary, and the remote status writer's.
        self.on_primary = {
            n: Cluster.from_config(PRIMARY, config_from_file(config)) for n in self.remotes
        }
        self.status_writer = Cluster.from_config(PRIMARY, config_from_file(config))
        self.clients = RemoteClients()

    async def close(self) -> None:
        await self.clients.close()
        for cluster in (self.primary, self.status_writer, *self.on_primary.values()):
            await cluster.close()

    def edit(self, version: str) -> None:
        self.istio["spec"]["version"] = version
        self.istio["metadata"]["generation"] += 1

    def everywhere_at(self, version: str) -> bool:
        statuses = [self.istio.get("status") or {}]
        statuses += [r.get("status") or {} for r in self.remotes.values()]
        return all(at(s, version) for s in statuses)

    async def until_at(self, version: str) -> Counts:
        """Steps until every cluster is at `version` (see `at`)."""
        counts = Counts(passes=dict.fromkeys([PRIMARY, *self.remotes], 0))
        counts.writes = dict(counts.passes)
        counts.seconds_in_passes = dict.fromkeys(counts.passes, 0.0)
        start = time.perf_counter()
        for step in range(1, MAX_STEPS + 1):
            await self.step(counts)
            if self.everywhere_at(version):
                counts.seconds, counts.steps = time.perf_counter() - start, step
                counts.writes[PRIMARY] = (
                    counts.primary_own + counts.remote_on_primary + counts.status_patches
                )
                return counts
            await asyncio.sleep(STEP_PAUSE_S)
        statuses = {n: r.get("status") for n, r in self.remotes.items()}
        raise RuntimeError(f"not at {version}: {self.istio.get('status')}, {statuses}")

    async def step(self, counts: Counts) -> None:
        before, start = self.primary.writes.total, time.perf_counter()
        outcome = await reconcile_mesh(
            self.primary, copy.deepcopy(self.istio), [], Settings(PHASE_TIMEOUT_S)
        )
        counts.seconds_in_passes[PRIMARY] += time.perf_counter() - start
        self.istio["status"] = compute_status(self.istio.get("status") or {}, outcome.primary)
        counts.primary_own += self.primary.writes.total - before
        counts.passes[PRIMARY] += 1
        if outcome.primary.state not in ("Available", "Reconciling"):
            raise RuntimeError(f"the primary failed: {outcome.primary}")
        await asyncio.gather(*(self.remote_pass(name, counts) for name in self.remotes))

    async def remote_pass(self, name: str, counts: Counts) -> None:
        on_primary = self.on_primary[name]
        before_primary = on_primary.writes.total
        client = self.clients.known(name)
        before = client.writes.total if client is not None else 0
        start = time.perf_counter()
        outcome = await reconcile_remote(
            on_primary,
            self.clients,
            copy.deepcopy(self.istio),
            copy.deepcopy(self.remotes[name]),
            RemoteSettings(PHASE_TIMEOUT_S),
        )
        counts.seconds_in_passes[name] += time.perf_counter() - start
        counts.remote_on_primary += on_primary.writes.total - before_primary
        after = self.clients.known(name)
        if after is client:
            counts.writes[name] += (after.writes.total if after is not None else 0) - before
        else:  # a new client (its Secret changed): the old one's writes, then the new one's
            old = client.writes.total - before if client is not None else 0
            counts.writes[name] += old + (after.writes.total if after is not None else 0)
        if outcome is None:  # the primary is not yet where remotes follow
            return
        counts.passes[name] += 1
        if outcome.observation.state not in ("Available", "Reconciling"):
            raise RuntimeError(f"remote {name} failed: {outcome.observation}")
        body = self.remotes[name]
        previous = body.get("status") or {}
        body["status"] = compute_status(previous, outcome.observation)
        if differs(previous, body["status"]):
            key = ObjectKey(API_VERSION, "RemoteIstio", NAMESPACE, name)
            await self.status_writer.patch_status(key, merge_patch(previous, body["status"]))
            counts.status_patches += 1

    async def clean_up(self, clusters: Sequence[LocalCluster]) -> None:
        """What the operator does when its resources are deleted, then waits until what it
        made is gone from every cluster."""
        for name, body in self.remotes.items():
            await remove_remote(self.primary, self.clients, MESH, body)
            await self.primary.delete(ObjectKey(API_VERSION, "RemoteIstio", NAMESPACE, name))
        await delete_owned(self.primary, Ownership(owner_selector(MESH, NAMESPACE)))
        await asyncio.gather(*(all_gone(c) for c in clusters))


async def all_gone(cluster: LocalCluster) -> None:
    client = Cluster.from_config(cluster.name, config_from_file(str(cluster.kubeconfig)))
    kinds = [k for k in MANAGED_KINDS if k[1] != CRD_KIND]
    deadline = time.monotonic() + CLEANUP_TIMEOUT_S
    try:
        while True:
            left = await leftovers(client, kinds)
            if not left:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{cluster.name}: left after the clean-up: {left[:20]}")
            await asyncio.sleep(0.2)
    finally:
        await client.close()


async def leftovers(client: Cluster, kinds: Sequence[tuple[str, str]]) -> list[str]:
    owned = await asyncio.gather(*(client.list_labelled(v, k, OWNED) for v, k in kinds))
    running = await asyncio.gather(
        client.list_all("v1", "Pod"),
        client.list_all("apps/v1", "ReplicaSet"),
        client.list_all(API_VERSION, "RemoteIstio") if client.name == PRIMARY else no_list(),
    )
    objects = [o for listing in owned for o in listing]
    objects += [
        o for listing in running for o in listing if o["metadata"].get("namespace") == NAMESPACE
    ]
    return sorted({f"{o['kind']}/{o['metadata']['name']}" for o in objects})


async def no_list() -> list[dict[str, Any]]:
    return []


# -- one measurement -----------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    install: Counts
    canary: Counts
    cleanup_seconds: float


@dataclass
class Clusters:
    primary: LocalCluster
    remotes: dict[str, LocalCluster]

    @property
    def all(self) -> list[LocalCluster]:
        return [self.primary, *self.remotes.values()]


async def measure(clusters: Clusters, with_remotes: bool, uid: str) -> Measured:
    applied = [
        apply(clusters.primary, remote_istio_body(name))
        for name in (clusters.remotes if with_remotes else ())
    ]
    mesh = Mesh(clusters.primary, OLDER, uid, [as_the_worker_reads_it(a) for a in applied])
    try:
        template.cache_clear()
        install = await mesh.until_at(OLDER)
        template.cache_clear()
        mesh.edit(NEWER)
        canary = await mesh.until_at(NEWER)
        start = time.perf_counter()
        await mesh.clean_up(clusters.all)
        return Measured(install, canary, time.perf_counter() - start)
    finally:
        await mesh.close()


# -- the local clusters ------------------------------------------------------------------


def make_clusters(workspace: Workspace) -> Clusters:
    primary = workspace.create(PRIMARY, nodes=1, admission_webhooks=False)
    remotes = {n: workspace.create(n, nodes=1, admission_webhooks=False) for n in REMOTES}
    for crd in OPERATOR_CRDS:
        kubectl(primary, "apply", "--server-side", "-f", str(crd))
    kubectl(primary, "wait", "--for=condition=Established", "crd", "--all", f"--timeout={TIMEOUT}")
    for cluster in (primary, *remotes.values()):
        kubectl(cluster, "create", "namespace", NAMESPACE)
    for name, remote in remotes.items():
        apply(primary, kubeconfig_secret(name, remote.standalone_kubeconfig()))
    return Clusters(primary, remotes)


# -- the report --------------------------------------------------------------------------


def report(label: str, measured: Sequence[Measured], names: Sequence[str]) -> None:
    canaries = [m.canary for m in measured]
    print(f"  {label}:")
    print(
        f"    canary {OLDER} -> {NEWER}: {spread([c.seconds for c in canaries])}, "
        f"steps {per_round([c.steps for c in canaries])}"
    )
    for name in names:
        passes = per_round([c.passes[name] for c in canaries])
        writes = per_round([c.writes[name] for c in canaries])
        inside = spread([c.seconds_in_passes[name] for c in canaries])
        line = f"      {name:9} passes {passes} ({inside} in them), writes {writes}"
        if name == PRIMARY and len(names) > 1:
            line += (
                f" (its passes {per_round([c.primary_own for c in canaries])}"
                f" + remotes' passes {per_round([c.remote_on_primary for c in canaries])}"
                f" + remote status patches {per_round([c.status_patches for c in canaries])})"
            )
        print(line)
    installs = [m.install for m in measured]
    print(
        f"    (install of {OLDER} before it: {spread([i.seconds for i in installs])}, "
        f"steps {per_round([i.steps for i in installs])}; "
        f"clean-up after it: {spread([m.cleanup_seconds for m in measured])})"
    )


def run(workspace: Workspace) -> None:
    start = time.perf_counter()
    clusters = make_clusters(workspace)
    made = time.perf_counter() - start
    print(
        f"three local clusters made and prepared in {made:.1f} s: what making them again "
        "would cost each round (the clean-up used instead is timed below)"
    )
    alone: list[Measured] = []
    both: list[Measured] = []
    for n in range(ROUNDS):
        order: list[bool] = [False, True] if n % 2 == 0 else [True, False]
        for with_remotes in order:
            uid = f"bench-{n}-{'remotes' if with_remotes else 'alone'}"
            measured = asyncio.run(measure(clusters, with_remotes, uid))
            (both if with_remotes else alone).append(measured)
    print(
        f"RevisionBased, profile minimal, {ROUNDS} rounds (from a clean install each), "
        "min/median/max, then each round's figure:"
    )
    report("(a) primary alone", alone, [PRIMARY])
    report(f"(b) primary + {len(REMOTES)} remotes", both, [PRIMARY, *REMOTES])
    ratio = statistics.median(m.canary.seconds for m in both) / statistics.median(
        m.canary.seconds for m in alone
    )
    print(f"  canary with remotes / alone, medians: x{ratio:.2f}")


def with_workspace(action: Callable[[Workspace], None]) -> None:
    with tempfile.TemporaryDirectory(prefix="istio-operator-bench-") as root:
        workspace = Workspace(Path(root))
        try:
            action(workspace)
        finally:
            workspace.delete_all()


def main() -> None:
    os.environ.setdefault("HELM", str(default_cache_dir() / "helm"))
    # The kinds the operator's client knows, as its startup registers them.
    register_crds(generate_crds())
    register_managed_kinds()
    print(machine_line("start"))
    with_workspace(run)
    print(machine_line("end"))


if __name__ == "__main__":
    main()
