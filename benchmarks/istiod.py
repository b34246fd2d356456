"""Prints what the istiod family costs: rendering Istio's charts, installing, upgrading.

    .venv/bin/python benchmarks/istiod.py

Needs the binaries (`make k8s-binaries`, helm included) and the chart catalogue
(`make istio-charts`: versions 1.31.0 and 1.31.1). Three parts, in one run:

1. `render_istiod` of each catalogue version and profile, cold (the `helm template`
   cache cleared: one helm process per chart) and warm (every chart's text cached),
   min/median/max of a few repetitions. No cluster runs yet.
2. On one local cluster made here (one KWOK node, no admission webhooks, as the
   integration tests make it), profile default: the operator's install of 1.31.0 and
   in-place upgrade to 1.31.1 (`reconcile_mesh` passes until Available, each pass's
   status fed into the next, the helm cache cleared first), then the floor: `helm
   template` of the same charts with the same values piped into `kubectl apply
   --server-side` (CRDs first, waited for), then `kubectl rollout status` of each
   workload. Everything either made is deleted between the two (CRDs included), so
   each starts from the same empty istio-system. Repeated (who goes first alternates);
   min/median/max and ratios.
3. After each settled operator install or upgrade, one more pass: its time and API
   writes (must be 0).

Load conditions: the API server, etcd, the controller-manager and KWOK run on this
machine beside the script, so the cluster figures include their cost; KWOK pods are
ready as soon as they are scheduled, so readiness waits are the control plane's
turnaround, not image pulls or container starts. The machine's core count and load
average are printed first and last: other work on the machine slows every figure.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from istio_operator.api.crd import generate_crds
from istio_operator.api.parse import load_istio
from istio_operator.charts import Catalogue, ChartVersion, helm_binary, template
from istio_operator.kube.client import Cluster, config_from_file
from istio_operator.kube.resources import register_crds
from istio_operator.localcluster import LocalCluster, Workspace
from istio_operator.localcluster.binaries import default_cache_dir
from istio_operator.plan.istiod import IstiodPlan, resolve_istiod
from istio_operator.reconcile.istio import Settings, reconcile_mesh
from istio_operator.reconcile.kinds import register_managed_kinds
from istio_operator.reconcile.status import Observation, compute_status
from istio_operator.render.istiod import releases, render_istiod

OLDER, NEWER = "1.31.0", "1.31.1"
PROFILES = ("default", "minimal", "demo", "ambient")
RENDER_ROUNDS = 3
CLUSTER_ROUNDS = 3
NAMESPACE = "istio-system"
MAX_PASSES = 40
TIMEOUT = "120s"
CRD_TIMEOUT_S = 60.0
# Each CRD's name and Established status (<none> while it has no conditions yet).
_ESTABLISHED = (
    "custom-columns=NAME:.metadata.name,"
    'ESTABLISHED:.status.conditions[?(@.type=="Established")].status'
)
REPO = Path(__file__).resolve().parent.parent
OPERATOR_CRDS = sorted((REPO / "deploy/crds").glob("istio.banzaicloud.io_*.yaml"))
_DOCUMENT_SEPARATOR = re.compile(r"^---[^\n]*$", re.MULTILINE)
_KIND = re.compile(r"^kind:\s*(\S+)\s*$", re.MULTILINE)
# `metadata.name` in helm's output (two-space indents; deeper keys are not it).
_NAME = re.compile(r"^metadata:\n(?:  .*\n)*?  name: *[\"']?([^\s\"']+)", re.MULTILINE)


# -- figures ----------------------------------------------------------------------------


def spread(seconds: Sequence[float], unit: str = "s") -> str:
    """min/median/max of some durations, in seconds or milliseconds."""
    scale, digits = (1000.0, 1) if unit == "ms" else (1.0, 2)
    low, mid, high = (scale * f(seconds) for f in (min, statistics.median, max))
    return f"{low:.{digits}f}/{mid:.{digits}f}/{high:.{digits}f} {unit}"


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def machine_line(when: str) -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    now = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"[{when}] {now}, nproc {os.cpu_count()}, load average {load}"


# -- the resource and its plan ----------------------------------------------------------


def istio_body(version: str) -> dict[str, Any]:
    return {
        "apiVersion": "istio.banzaicloud.io/v1beta1",
        "kind": "Istio",
        "metadata": {"name": "mesh", "namespace": NAMESPACE, "generation": 1, "uid": "bench"},
        "spec": {"version": version, "profile": "default"},
    }


def charts_of(version: str) -> ChartVersion:
    return Catalogue.default().get(version)


def plan_of(version: str, profile: str = "default") -> IstiodPlan:
    body = istio_body(version)
    body["spec"]["profile"] = profile
    return resolve_istiod(load_istio(body).resource, charts_of(version))


# -- 1. render ---------------------------------------------------------------------------


def cold_and_warm_render(plan: IstiodPlan, charts: ChartVersion) -> tuple[float, float]:
    helm = helm_binary()
    template.cache_clear()
    cold = timed(lambda: render_istiod(plan, charts, helm))
    warm = timed(lambda: render_istiod(plan, charts, helm))
    return cold, warm


def report_render() -> None:
    print(f"render_istiod, {RENDER_ROUNDS} rounds each, min/median/max:")
    for version in (OLDER, NEWER):
        charts = charts_of(version)
        for profile in PROFILES:
            plan = plan_of(version, profile)
            rounds = [cold_and_warm_render(plan, charts) for _ in range(RENDER_ROUNDS)]
            objects = len(render_istiod(plan, charts, helm_binary()))
            print(
                f"  {version} {profile:8} {objects:3} objects, {len(releases(plan))} charts: "
                f"cold {spread([c for c, _ in rounds], 'ms')}, "
                f"warm {spread([w for _, w in rounds], 'ms')}"
            )
    template.cache_clear()


# -- kubectl and helm ----------------------------------------------------------------------


def kubectl(cluster: LocalCluster, *args: str, stdin: str | None = None) -> str:
    command = [str(default_cache_dir() / "kubectl"), "--kubeconfig", str(cluster.kubeconfig)]
    done = subprocess.run(
        [*command, *args], input=stdin, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def helm_template(plan: IstiodPlan, charts: ChartVersion) -> list[str]:
    """The YAML documents `helm template` renders for each chart of `plan`, with the
    values the operator gives it (one helm process per chart, as a cold render runs)."""
    documents: list[str] = []
    with tempfile.TemporaryDirectory(prefix="istiod-bench-values-") as directory:
        for release in releases(plan):
            values = Path(directory) / f"{release.name}.json"
            values.write_text(json.dumps(release.values, sort_keys=True))
            chart = str(charts.chart(release.chart))
            command = [str(helm_binary()), "template", release.name, chart, "-n", plan.namespace]
            done = subprocess.run(
                [*command, "-f", str(values)], capture_output=True, text=True, check=True
            )
            documents += [d for d in _DOCUMENT_SEPARATOR.split(done.stdout) if _KIND.search(d)]
    return documents


def kind_of(document: str) -> str:
    found = _KIND.search(document)
    return found.group(1) if found else ""


def name_of(document: str) -> str:
    found = _NAME.search(document)
    return found.group(1) if found else ""


def is_crd(document: str) -> bool:
    return kind_of(document) == "CustomResourceDefinition"


def joined(documents: Sequence[str]) -> str:
    return "\n---\n".join(documents)


def workloads(documents: Sequence[str]) -> list[str]:
    """`deployment/<name>` and `daemonset/<name>` of what the documents roll out."""
    kinds = {"Deployment": "deployment", "DaemonSet": "daemonset"}
    return [f"{kinds[kind_of(d)]}/{name_of(d)}" for d in documents if kind_of(d) in kinds]


# -- 2. the floor ------------------------------------------------------------------------


def apply_documents(cluster: LocalCluster, documents: Sequence[str]) -> None:
    apply = ("apply", "--server-side", "--force-conflicts", "-n", NAMESPACE, "-f", "-")
    kubectl(cluster, *apply, stdin=joined(documents))


@dataclass(frozen=True)
class Floor:
    """The wall time of each step of one floor install or upgrade."""

    helm: float
    crds: float
    apply: float
    rollout: float

    @property
    def seconds(self) -> float:
        return self.helm + self.crds + self.apply + self.rollout


def floor_install(cluster: LocalCluster, version: str) -> Floor:
    """helm template | kubectl apply (CRDs first, Established), then every workload's
    rollout status."""
    documents: list[str] = []

    def render() -> None:
        documents.extend(helm_template(plan_of(version), charts_of(version)))

    def crds() -> None:
        chosen = [d for d in documents if is_crd(d)]
        apply_documents(cluster, chosen)
        wait_established(cluster, [name_of(d) for d in chosen])

    def rollout() -> None:
        for workload in workloads(documents):
            status = ("rollout", "status", workload, "-n", NAMESPACE, f"--timeout={TIMEOUT}")
            kubectl(cluster, *status)

    def the_rest() -> None:
        apply_documents(cluster, [d for d in documents if not is_crd(d)])

    return Floor(timed(render), timed(crds), timed(the_rest), timed(rollout))


def wait_established(cluster: LocalCluster, names: Sequence[str]) -> None:
    """Polls until every CRD named is Established, one list a poll (`kubectl wait`
    watches one CRD after the other, and `kubectl get crd <names>` gets them one by one:
    about 0.1 s a CRD each, even when all are Established)."""
    deadline = time.monotonic() + CRD_TIMEOUT_S
    while time.monotonic() < deadline:
        rows = kubectl(cluster, "get", "crd", "--no-headers", "-o", _ESTABLISHED).splitlines()
        established = {row.split()[0] for row in rows if row.split()[1:] == ["True"]}
        if established.issuperset(names):
            return
        time.sleep(0.05)
    raise RuntimeError(f"CRDs not Established after {CRD_TIMEOUT_S} s: {names}")


def delete_everything_installed(cluster: LocalCluster) -> None:
    """Deletes what either version's charts make and waits until it is gone (workloads
    in the foreground: their pods too; CRDs in the background, the API server's own
    clean-up): the next measurement starts from an empty istio-system."""
    documents = [d for v in (OLDER, NEWER) for d in helm_template(plan_of(v), charts_of(v))]
    unique = list({(kind_of(d), name_of(d)): d for d in documents}.values())
    for crds, cascade in ((False, "foreground"), (True, "background")):
        chosen = [d for d in unique if is_crd(d) == crds]
        delete = ("delete", "--ignore-not-found", "--wait", f"--cascade={cascade}", "-f", "-")
        kubectl(cluster, *delete, "-n", NAMESPACE, f"--timeout={TIMEOUT}", stdin=joined(chosen))
    left = kubectl(cluster, "get", "deployments,replicasets,pods", "-n", NAMESPACE, "-o", "name")
    if left.strip() or istio_crds(cluster):
        raise RuntimeError(f"left after the clean-up: {left.split() + istio_crds(cluster)}")


def istio_crds(cluster: LocalCluster) -> list[str]:
    names = kubectl(cluster, "get", "crd", "-o", "name").split()
    return [name for name in names if name.endswith("istio.io")]


# -- 2 and 3. the operator -----------------------------------------------------------------


@dataclass(frozen=True)
class Settled:
    """One install or upgrade by the operator, and the pass after it."""

    seconds: float
    passes: int
    writes: int
    idle_seconds: float
    idle_writes: int


class Mesh:
    """One Istio resource as the operator's worker sees it (as the integration tests'):
    its body, the status each pass computes fed into the next."""

    def __init__(self, cluster: Cluster, version: str) -> None:
        self.cluster, self.body = cluster, istio_body(version)

    def upgrade(self, version: str) -> None:
        self.body["spec"]["version"] = version
        self.body["metadata"]["generation"] += 1

    async def one_pass(self) -> Observation:
        outcome = await reconcile_mesh(self.cluster, copy.deepcopy(self.body), [], Settings(30.0))
        self.body["status"] = compute_status(self.body.get("status") or {}, outcome.primary)
        return outcome.primary

    async def settle(self) -> Settled:
        """Passes until Available (the helm cache cleared first, as a fresh render);
        then one more, which must find nothing to do."""
        template.cache_clear()
        writes = self.cluster.writes.total
        start = time.perf_counter()
        for passes in range(1, MAX_PASSES + 1):
            seen = await self.one_pass()
            if seen.state == "Available" and seen.recheck_after is None:
                seconds, writes = time.perf_counter() - start, self.cluster.writes.total - writes
                idle = await self.idle_pass()
                return Settled(seconds, passes, writes, *idle)
            if seen.state not in ("Available", "Reconciling"):
                raise RuntimeError(f"the operator failed: {seen}")
            await asyncio.sleep(seen.recheck_after or 0.2)
        raise RuntimeError(f"not Available after {MAX_PASSES} passes: {self.body['status']}")

    async def idle_pass(self) -> tuple[float, int]:
        before = self.cluster.writes.total
        start = time.perf_counter()
        await self.one_pass()
        return time.perf_counter() - start, self.cluster.writes.total - before


async def operator_install_and_upgrade(cluster: LocalCluster) -> tuple[Settled, Settled]:
    client = Cluster.from_config("bench", config_from_file(str(cluster.kubeconfig)))
    try:
        mesh = Mesh(client, OLDER)
        install = await mesh.settle()
        mesh.upgrade(NEWER)
        return install, await mesh.settle()
    finally:
        await client.close()


# -- the local cluster -------------------------------------------------------------------


def prepare(cluster: LocalCluster) -> None:
    """The operator's CRDs and the resource's namespace, as before the operator runs."""
    for crd in OPERATOR_CRDS:
        kubectl(cluster, "apply", "--server-side", "-f", str(crd))
    kubectl(cluster, "wait", "--for=condition=Established", "crd", "--all", f"--timeout={TIMEOUT}")
    kubectl(cluster, "create", "namespace", NAMESPACE)


@dataclass
class Rounds:
    operator: list[tuple[Settled, Settled]]
    floor: list[tuple[Floor, Floor]]


def one_round(cluster: LocalCluster, rounds: Rounds) -> None:
    """The operator's install and upgrade and the floor's, each from a clean namespace;
    who goes first alternates from round to round."""
    steps = (operator_round, floor_round)
    for step in steps if len(rounds.operator) % 2 == 0 else steps[::-1]:
        step(cluster, rounds)
        delete_everything_installed(cluster)


def operator_round(cluster: LocalCluster, rounds: Rounds) -> None:
    rounds.operator.append(asyncio.run(operator_install_and_upgrade(cluster)))


def floor_round(cluster: LocalCluster, rounds: Rounds) -> None:
    install = floor_install(cluster, OLDER)
    rounds.floor.append((install, floor_install(cluster, NEWER)))


def report_step(label: str, operator: Sequence[Settled], floor: Sequence[Floor]) -> None:
    seconds = [s.seconds for s in operator]
    floor_seconds = [f.seconds for f in floor]
    ratios = [o / f for o, f in zip(seconds, floor_seconds, strict=True)]
    print(f"  {label}:")
    print(
        f"    operator {spread(seconds)} "
        f"({'/'.join(str(s.passes) for s in operator)} passes, "
        f"{'/'.join(str(s.writes) for s in operator)} writes)"
    )
    print(f"    floor    {spread(floor_seconds)} = {floor_steps(floor)}")
    of_medians = statistics.median(seconds) / statistics.median(floor_seconds)
    print(f"    ratio    {spread(ratios, 'x')} (median operator / median floor {of_medians:.2f})")


def floor_steps(floor: Sequence[Floor]) -> str:
    """The median of each floor step."""
    steps = {
        "helm template": [f.helm for f in floor],
        "CRDs applied and Established": [f.crds for f in floor],
        "kubectl apply": [f.apply for f in floor],
        "rollout status": [f.rollout for f in floor],
    }
    return " + ".join(f"{name} {statistics.median(s):.2f}" for name, s in steps.items())


def report_idle(settled: Sequence[Settled]) -> None:
    seconds = [s.idle_seconds for s in settled]
    writes = [s.idle_writes for s in settled]
    print(
        f"  idle pass after each of them: {spread(seconds, 'ms')}, "
        f"writes {'/'.join(str(w) for w in writes)}"
        + ("" if not any(writes) else "  <-- an idle pass wrote")
    )


def report_cluster(rounds: Rounds) -> None:
    print(f"profile default on a local cluster, {len(rounds.floor)} rounds, min/median/max:")
    installs = [i for i, _ in rounds.operator]
    upgrades = [u for _, u in rounds.operator]
    report_step(f"install {OLDER}", installs, [i for i, _ in rounds.floor])
    report_step(f"upgrade in place to {NEWER}", upgrades, [u for _, u in rounds.floor])
    report_idle([*installs, *upgrades])


def measure_on_a_cluster() -> None:
    with tempfile.TemporaryDirectory(prefix="istio-operator-bench-") as root:
        workspace = Workspace(Path(root))
        try:
            start = time.perf_counter()
            cluster = workspace.create("istiod-bench", nodes=1, admission_webhooks=False)
            prepare(cluster)
            print(f"local cluster up in {time.perf_counter() - start:.1f} s")
            rounds = Rounds([], [])
            for _ in range(CLUSTER_ROUNDS):
                one_round(cluster, rounds)
            report_cluster(rounds)
        finally:
            workspace.delete_all()


def main() -> None:
    os.environ.setdefault("HELM", str(default_cache_dir() / "helm"))
    # The kinds the operator's client knows, as its startup registers them.
    register_crds(generate_crds())
    register_managed_kinds()
    print(machine_line("start"))
    report_render()
    measure_on_a_cluster()
    print(machine_line("end"))


if __name__ == "__main__":
    main()
