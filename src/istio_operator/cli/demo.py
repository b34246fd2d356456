"""`istio-operator demo`: the walkthrough, live, on two local clusters (or two given ones).

1. A primary and a remote cluster form one mesh with Istio 1.2.5 (mesh expansion).
2. An echo workload runs on both, with a 1.2.5 sidecar.
3. The same `Istio` resource is applied with version 1.3.0.
4. The operator upgrades the primary, then the remote, phase by phase.
5. The echo workloads stay available; their sidecars still run 1.2.5 until restarted:
   `dataplane-upgrade --all-clusters`, a dry run then the restart, moves them to 1.3.0.
6. An unsupported version is refused in status and as an Event; nothing changes; the
   supported version is then restored.
7-10. Today's Istio (the istiod family) on two more local clusters: installed by revision,
   a canary to the newer version, workloads migrated in batches, the old revision removed
   (see `cli.demo_istiod`).

Each step is checked; the command exits 1 if any expectation fails.
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from istio_operator.api.crd import generate_crds
from istio_operator.api.keys import ObjectKey
from istio_operator.api.labels import API_VERSION
from istio_operator.cli import demo_istiod as istiod_act
from istio_operator.cli.localcluster import default_workdir
from istio_operator.cli.main import build_parser
from istio_operator.cli.status import columns
from istio_operator.kube.blocking import BlockingClient
from istio_operator.kube.client import ApiRefusedError
from istio_operator.kube.resources import register_crds
from istio_operator.localcluster import LocalClusterError, Workspace
from istio_operator.localcluster.binaries import BinariesMissingError
from istio_operator.reconcile.status import State
from istio_operator.versions import UNSUPPORTED_VERSION_MESSAGE, unsupported_example

FROM, TO = "1.2.5", "1.3.0"
# A version no supported family accepts: the operator must refuse it and change nothing.
UNSUPPORTED = unsupported_example()
NAMESPACE, REMOTE = "istio-system", "remote"
PRIMARY_COMPONENTS = ("citadel", "galley", "mixer", "pilot", "proxyv2", "sidecar_injector")
REMOTE_COMPONENTS = ("citadel", "proxyv2", "sidecar_injector")
CRD_API_VERSION = "apiextensions.k8s.io/v1"


class ExpectationFailed(AssertionError):
    """A step of the walkthrough did not turn out as it must."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="replay the multi-cluster upgrade walkthrough (local clusters by default)",
        description=(
            f"Replay the walkthrough, each step checked: two local clusters, the operator as a "
            f"process, Istio {FROM} on a primary and a remote, an echo workload on each, the "
            f"upgrade to {TO} followed phase by phase, the sidecars moved by "
            f"`dataplane-upgrade`, an unsupported version refused with nothing changed; then "
            f"the istiod family on two more local clusters ({istiod_act.OLDER} by revision, a "
            f"canary to {istiod_act.NEWER}, the workloads migrated, the old revision removed). "
            "Exits 1 if any expectation fails. The clusters are deleted at the end unless "
            "--keep."
        ),
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the clusters and the operator running, and say how to reach them",
    )
    parser.add_argument(
        "--primary-kubeconfig",
        type=Path,
        default=None,
        help="use this cluster as the primary instead of a local one",
    )
    parser.add_argument(
        "--remote-kubeconfig",
        type=Path,
        default=None,
        help="use this cluster as the remote instead of a local one",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per step")
    parser.set_defaults(handler=run)


@dataclass
class Stage:
    """The two clusters, their clients and the operator process."""

    primary_kubeconfig: Path
    remote_kubeconfig: Path
    remote_kubeconfig_text: str
    workdir: Path
    timeout: float
    workspace: Workspace | None = None
    primary: BlockingClient = field(init=False)
    remote: BlockingClient = field(init=False)
    operator: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        register_crds(generate_crds())  # the Istio and RemoteIstio kinds
        self.primary = _client("primary", self.primary_kubeconfig)
        self.remote = _client("remote", self.remote_kubeconfig)


def run(args: argparse.Namespace) -> int:
    try:
        with _stage(args) as stage:
            _walkthrough(stage)
            _istiod_act(stage)
            print("\nwalkthrough complete: every expectation held")
            return 0
    except ExpectationFailed as failure:
        print(f"\nFAILED: {failure}", file=sys.stderr)
        return 1
    except (LocalClusterError, BinariesMissingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


@contextmanager
def _stage(args: argparse.Namespace) -> Iterator[Stage]:
    workdir = default_workdir().parent / "demo"
    workspace = None
    if args.primary_kubeconfig and args.remote_kubeconfig:
        primary_cfg, remote_cfg = args.primary_kubeconfig, args.remote_kubeconfig
        remote_text = remote_cfg.read_text()
    else:
        workspace = Workspace(workdir / "clusters")
        workspace.delete_all()
        say(
            "bringing up two local clusters (etcd, kube-apiserver, controller-manager, "
            "scheduler, KWOK nodes)"
        )
        primary_cluster = workspace.create("primary")
        remote_cluster = workspace.create("remote")
        primary_cfg, remote_cfg = primary_cluster.kubeconfig, remote_cluster.kubeconfig
        remote_text = remote_cluster.standalone_kubeconfig()
    workdir.mkdir(parents=True, exist_ok=True)
    stage = Stage(primary_cfg, remote_cfg, remote_text, workdir, args.timeout, workspace)
    try:
        yield stage
    finally:
        if args.keep:
            _explain_kept(stage)
        else:
            _stop_operator(stage)
            if workspace is not None:
                workspace.delete_all()


def _walkthrough(stage: Stage) -> None:
    step(1, f"Istio {FROM} on the primary and the remote, one mesh (mesh expansion)")
    _install_crds(stage.primary)
    _start_operator(stage)
    for client in (stage.primary, stage.remote):
        client.apply(_namespace(NAMESPACE))
    _apply_remote_access(stage)
    citadel_ca_stand_in(stage.primary)
    stage.primary.apply(istio_body(FROM), force=True)
    stage.primary.apply(remote_istio_body(), force=True)
    _follow(stage, FROM)
    _show_and_check(stage, FROM)

    step(2, f"an echo workload on both clusters, its sidecar at {FROM}")
    for client in (stage.primary, stage.remote):
        deploy_echo(client)
    wait(
        stage,
        "echo available on both clusters",
        lambda: all(_echo_available(c) for c in (stage.primary, stage.remote)),
    )
    generations = [_echo_generation(c) for c in (stage.primary, stage.remote)]

    step(3, f"the same Istio resource, now with version {TO}")
    stage.primary.apply(istio_body(TO), force=True)

    step(4, "the operator upgrades the primary, then the remote, phase by phase")
    gaps = _follow(stage, TO, watch_echo=True)
    _show_and_check(stage, TO)

    step(5, f"the workloads stayed available on {FROM} sidecars; dataplane-upgrade moves them")
    expect(not gaps, f"echo was not fully available at moments: {gaps[:3]}")
    expect(
        [_echo_generation(c) for c in (stage.primary, stage.remote)] == generations,
        "the echo Deployments were modified",
    )
    _show_sidecars(stage, FROM)
    _dataplane_upgrade(stage)
    _show_sidecars(stage, TO)

    step(6, f"version {UNSUPPORTED} is refused; nothing changes")
    before = _workload_versions(stage.primary)
    stage.primary.apply(istio_body(UNSUPPORTED), force=True)
    status = wait(
        stage,
        "the refusal in status",
        lambda: (s := _status(stage.primary)).get("Status") == State.FAILED and s,
    )
    print(f"  status: {status['Status']}: {status['ErrorMessage']}")
    expect(status["ErrorMessage"].startswith(UNSUPPORTED_VERSION_MESSAGE), "wrong refusal message")
    time.sleep(2)
    expect(_workload_versions(stage.primary) == before, "workloads changed after the refusal")
    say(f"the control plane still runs {_status(stage.primary).get('version')}, untouched")
    say(f"spec.version restored to {TO}: the refusal clears, the mesh is Available again")
    stage.primary.apply(istio_body(TO), force=True)
    _follow(stage, TO)


def _istiod_act(stage: Stage) -> None:
    """Steps 7 to 10 (see `cli.demo_istiod`), on two local clusters of their own."""
    if stage.workspace is None:
        say("the istiod-family act runs on local clusters only: skipped")
        return
    step(7, f"today's Istio: {istiod_act.OLDER} from Istio's own charts, by revision, two clusters")
    say("two more local clusters, calling no admission webhook (no istiod runs on fake nodes)")
    primary = stage.workspace.create("istiod", admission_webhooks=False)
    remote = stage.workspace.create("istiod-west", admission_webhooks=False)
    workdir = stage.workdir / "istiod"
    workdir.mkdir(parents=True, exist_ok=True)
    act = istiod_act.Act(
        primary.kubeconfig,
        workdir,
        stage.timeout,
        _client("istiod", primary.kubeconfig),
        _client("istiod-west", remote.kubeconfig),
    )
    _install_crds(act.client)
    act.operator = start_operator(primary.kubeconfig, workdir)
    try:
        _join(act, remote.standalone_kubeconfig())
        _istiod_steps(act)
    finally:
        stop_operator(act.operator)


def _join(act: istiod_act.Act, remote_kubeconfig: str) -> None:
    for client in act.clusters.values():
        client.apply(_namespace(NAMESPACE))
        labels = {"istio-injection": "enabled"}
        client.apply(
            {**_namespace(istiod_act.APPS), "metadata": {"name": istiod_act.APPS, "labels": labels}}
        )
    encoded = base64.b64encode(remote_kubeconfig.encode()).decode()
    secret = {"name": istiod_act.REMOTE, "namespace": NAMESPACE}
    act.client.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": secret,
            "data": {istiod_act.REMOTE: encoded},
        }
    )


def _istiod_steps(act: istiod_act.Act) -> None:
    older, newer = istiod_act.OLDER, istiod_act.NEWER
    act.client.apply(istiod_act.istio(older), force=True)
    act.client.apply(istiod_act.remote_istio(), force=True)
    found = wait(act, f"{older} Available on both clusters", lambda: _istiod_at(act, older))
    print("\n".join(istiod_act.revisions_table(found)))
    act.client.apply(istiod_act.workload("echo", 2), force=True)
    act.client.apply(istiod_act.workload("web", 1), force=True)
    act.remote.apply(istiod_act.workload("echo", 1), force=True)
    pods = wait(
        act,
        "the workloads injected by the old revision",
        lambda: _injected_by(act, istiod_act.OLD_REVISION),
    )
    _show_pods(pods)

    step(8, f"the same Istio resource at {newer}: a canary beside the old revision, on both")
    act.client.apply(istiod_act.istio(newer), force=True)
    found = wait(
        act, f"{newer} active on both, the default tag moved", lambda: _istiod_at(act, newer)
    )
    print("\n".join(istiod_act.revisions_table(found)))
    tags = [[c, t, r] for c, seen in found.items() for t, r in (seen.get("tags") or {}).items()]
    print("\n".join(table(("CLUSTER", "TAG", "REVISION"), tags)))

    step(9, "the workloads migrate, one workload per batch: the primary, then the remote")
    pods = wait(
        act, "every pod on the new revision", lambda: _injected_by(act, istiod_act.NEW_REVISION)
    )
    migration = wait(act, "the migrations Done", lambda: _migrated(act))
    _show_pods(pods)
    say("workloads migrated: " + ", ".join(f"{c} {n}" for c, n in migration.items()))

    step(10, "nothing uses the old revision: it is removed from both clusters")
    found = wait(act, "only the new revision left", lambda: _only(act, istiod_act.NEW_REVISION))
    print("\n".join(istiod_act.revisions_table(found)))


def _show_pods(pods: dict[str, dict[str, int]]) -> None:
    rows = [[c, r, str(n)] for c, by_revision in pods.items() for r, n in by_revision.items()]
    print("\n".join(table(("CLUSTER", "REVISION", "PODS"), rows)))


def _inject(act: istiod_act.Act) -> None:
    for client in act.clusters.values():
        istiod_act.inject(client)


def _istiod_at(act: istiod_act.Act, version: str) -> dict[str, dict[str, Any]] | None:
    _inject(act)
    found = istiod_act.statuses(act)
    wanted = f"mesh-{version.replace('.', '-')}"
    for seen in found.values():
        active = [r["name"] for r in seen.get("revisions") or [] if r.get("active")]
        tagged = (seen.get("tags") or {}).get("default")
        if seen.get("Status") != State.AVAILABLE or seen.get("version") != version:
            return None
        if active != [wanted] or tagged != wanted:
            return None
    return found


def _injected_by(act: istiod_act.Act, revision: str) -> dict[str, dict[str, int]] | None:
    _inject(act)
    found = {name: istiod_act.pods_by_revision(c) for name, c in act.clusters.items()}
    expected = {"primary": {revision: 3}, istiod_act.REMOTE: {revision: 1}}
    return found if found == expected else None


def _migrated(act: istiod_act.Act) -> dict[str, int] | None:
    _inject(act)
    found = {c: s.get("migration") or {} for c, s in istiod_act.statuses(act).items()}
    if any(m.get("state") != "Done" for m in found.values()):
        return None
    return {cluster: int(m.get("migrated") or 0) for cluster, m in found.items()}


def _only(act: istiod_act.Act, revision: str) -> dict[str, dict[str, Any]] | None:
    _inject(act)
    found = istiod_act.statuses(act)
    names = [[r["name"] for r in s.get("revisions") or []] for s in found.values()]
    return found if all(n == [revision] for n in names) else None


# -- the resources ---------------------------------------------------------------------------


def _namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def istio_body(version: str) -> dict[str, Any]:
    """The walkthrough's Istio resource (`mesh` in istio-system) at `version`."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Istio",
        "metadata": {"name": "mesh", "namespace": NAMESPACE},
        "spec": {"version": version, "mtls": False, "meshExpansion": True},
    }


def remote_istio_body(name: str = REMOTE, namespace: str = NAMESPACE) -> dict[str, Any]:
    """A RemoteIstio mirroring the primary's pilot, policy and telemetry."""
    return {
        "apiVersion": API_VERSION,
        "kind": "RemoteIstio",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "enabledServices": [
                {"name": "istio-pilot", "labelSelector": "istio=pilot"},
                {"name": "istio-policy", "labelSelector": "istio-mixer-type=policy"},
                {"name": "istio-telemetry", "labelSelector": "istio-mixer-type=telemetry"},
            ],
        },
    }


def _apply_remote_access(stage: Stage) -> None:
    encoded = base64.b64encode(stage.remote_kubeconfig_text.encode()).decode()
    stage.primary.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": REMOTE, "namespace": NAMESPACE},
            "data": {REMOTE: encoded},
        }
    )


def echo_manifest(proxy_version: str, replicas: int = 2) -> dict[str, Any]:
    """An echo Deployment with an explicit `istio-proxy` sidecar, standing in for injection."""
    labels = {"app": "echo"}
    containers = [
        {"name": "echo", "image": "docker.io/hashicorp/http-echo:1.0"},
        {"name": "istio-proxy", "image": f"docker.io/istio/proxyv2:{proxy_version}"},
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "echo", "namespace": "echo"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
        },
    }


def citadel_ca_stand_in(client: BlockingClient, namespace: str = NAMESPACE) -> None:
    """The CA Secret the primary's citadel creates when it first starts (`istio-ca-secret`,
    its self-signed root), which remotes copy so that the mesh has one root. Fake nodes
    run no citadel, so the demo and the tests put a placeholder in its place."""
    placeholder = {
        key: base64.b64encode(f"stand-in for citadel's {key}\n".encode()).decode()
        for key in ("ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem")
    }
    client.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "istio-ca-secret", "namespace": namespace},
            "type": "istio.io/ca-root",
            "data": placeholder,
        },
        field_manager="citadel-stand-in",
    )


def deploy_echo(client: BlockingClient, proxy_version: str = FROM, replicas: int = 2) -> None:
    client.apply(_namespace("echo"))
    client.apply(echo_manifest(proxy_version, replicas), force=True)


def _install_crds(client: BlockingClient) -> None:
    crds = generate_crds()
    for crd in crds:
        client.apply(crd, force=True)

    def established() -> bool:
        for crd in crds:
            key = ObjectKey(
                CRD_API_VERSION, "CustomResourceDefinition", "", crd["metadata"]["name"]
            )
            conditions = ((client.get(key) or {}).get("status") or {}).get("conditions") or []
            if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                return False
        return True

    _poll(established, 60, "the operator's CRDs to be Established")


# -- the operator ----------------------------------------------------------------------------


def _start_operator(stage: Stage) -> None:
    stage.operator = start_operator(stage.primary_kubeconfig, stage.workdir)


def start_operator(
    kubeconfig: Path,
    workdir: Path,
    *,
    log_name: str = "operator.log",
    resync_s: int = 30,
    metrics_port: int = 0,
) -> subprocess.Popen[bytes]:
    """`istio-operator run` for the primary, without leader election, its output in
    `workdir/log_name`."""
    log = workdir / log_name
    say(f"starting the operator (log: {log})")
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "istio_operator.cli.main",
                "run",
                "--kubeconfig",
                str(kubeconfig),
                "--resync-period",
                str(resync_s),
                "--metrics-port",
                str(metrics_port),
                "--health-port",
                "0",
                "--no-leader-election",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop_operator(stage: Stage) -> None:
    stop_operator(stage.operator)


def stop_operator(operator: subprocess.Popen[bytes] | None) -> None:
    if operator is not None and operator.poll() is None:
        os.killpg(operator.pid, signal.SIGTERM)
        try:
            operator.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(operator.pid, signal.SIGKILL)


def _explain_kept(stage: Stage) -> None:
    print("\nkept running:")
    print(f"  primary: export KUBECONFIG={stage.primary_kubeconfig}")
    print(f"  remote:  export KUBECONFIG={stage.remote_kubeconfig}")
    if stage.operator is not None:
        print(f"  operator: pid {stage.operator.pid}, log {stage.workdir / 'operator.log'}")
    print(
        "  to stop: kill the operator, then "
        f"istio-operator localcluster --workdir {stage.workdir / 'clusters'} down"
    )


# -- watching and checking -------------------------------------------------------------------


def _follow(stage: Stage, version: str, watch_echo: bool = False) -> list[str]:
    """Prints every change of the mesh's state until it is available at `version`."""
    last: tuple[str, ...] = ()
    gaps: list[str] = []

    def done() -> bool:
        nonlocal last
        primary, remote = _status(stage.primary), _remote_status(stage.primary)
        now = (state_line(primary), state_line(remote))
        if now != last:
            last = now
            print(f"  [{time.strftime('%H:%M:%S')}] primary {now[0]} | remote {now[1]}")
        if watch_echo:
            gaps.extend(
                f"{n}"
                for n, c in (("primary", stage.primary), ("remote", stage.remote))
                if not _echo_available(c)
            )
        return (
            primary.get("Status") == State.AVAILABLE
            and primary.get("version") == version
            and remote.get("Status") == State.AVAILABLE
            and remote.get("version") == version
        )

    wait(stage, f"the mesh to be available at {version}", done)
    return gaps


def state_line(status: dict[str, Any]) -> str:
    """One resource's state in words: never a None, always the version in effect."""
    state = status.get("Status") or "not reconciled yet"
    version = status.get("version")
    line = f"{state}, {f'version {version}' if version else 'no version in effect yet'}"
    if status.get("phase"):
        line += f", phase {status['phase']}"
    waiting = "; ".join(status.get("waitingFor") or [])
    return line + (f", waiting for {waiting}" if waiting else "")


def table(headers: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    """Rows under their headers, as the CLI's own tables are laid out, indented for a step."""
    return columns(headers, rows, indent="    ") if rows else ["    (none)"]


def sidecar_rows(counts: dict[str, dict[str, int]]) -> list[list[str]]:
    """Pods by cluster and `istio-proxy` image, as table rows (image tag as the version)."""
    return [
        [cluster, image.rsplit(":", 1)[-1], image, str(pods)]
        for cluster, by_image in counts.items()
        for image, pods in sorted(by_image.items())
    ]


def _show_sidecars(stage: Stage, version: str) -> None:
    counts = {name: _proxy_versions(client) for name, client in _clusters(stage)}
    say("echo's sidecars:")
    print("\n".join(table(("CLUSTER", "PROXY", "IMAGE", "PODS"), sidecar_rows(counts))))
    for name, found in counts.items():
        expect(
            found == {f"docker.io/istio/proxyv2:{version}": 2},
            f"{name}: sidecars should run {version}, found {found}",
        )


def _clusters(stage: Stage) -> tuple[tuple[str, BlockingClient], ...]:
    return (("primary", stage.primary), ("remote", stage.remote))


def _dataplane_upgrade(stage: Stage) -> None:
    """`istio-operator dataplane-upgrade --all-clusters`: a dry run, then the restart."""
    base = ["dataplane-upgrade", "--kubeconfig", str(stage.primary_kubeconfig), "--all-clusters"]
    say("istio-operator dataplane-upgrade --all-clusters --dry-run")
    expect(_cli([*base, "--dry-run"]) == 0, "dataplane-upgrade --dry-run failed")
    before = {name: _echo_pods(client) for name, client in _clusters(stage)}
    say("istio-operator dataplane-upgrade --all-clusters")
    expect(_cli(base) == 0, "dataplane-upgrade failed")
    say(f"the restarted pods get the {TO} proxy (the sidecar injector's part, stood in for)")
    wait(
        stage,
        f"echo rolled out with {TO} sidecars on both clusters",
        lambda: all(_injected_and_rolled_out(c, before[n], TO) for n, c in _clusters(stage)),
    )


def _cli(argv: list[str]) -> int:
    args = build_parser(argv[0]).parse_args(argv)
    result: int = args.handler(args)
    sys.stdout.flush()
    return result


def _echo_pods(client: BlockingClient) -> set[str]:
    return {p["metadata"]["name"] for p in client.list("v1", "Pod", "echo")}


def _injected_and_rolled_out(client: BlockingClient, old: set[str], version: str) -> bool:
    """Stands in for the sidecar injector (no webhook is served on fake nodes): every pod
    made since the restart gets the proxy image the injector would have given it. True
    once the rollout is done and only such pods are left."""
    pods = [
        p for p in client.list("v1", "Pod", "echo") if not p["metadata"].get("deletionTimestamp")
    ]
    image = f"docker.io/istio/proxyv2:{version}"
    for pod in pods:
        name = pod["metadata"]["name"]
        if name not in old and image not in _images(pod):
            client.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name, "namespace": "echo"},
                    "spec": {"containers": [{"name": "istio-proxy", "image": image}]},
                },
                field_manager="sidecar-injector-stand-in",
                force=True,
            )
    status = (_echo(client) or {}).get("status") or {}
    done = status.get("updatedReplicas") == status.get("availableReplicas") == 2
    return done and all(p["metadata"]["name"] not in old for p in pods) and len(pods) == 2


def _terminating(pod: dict[str, Any]) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def _images(pod: dict[str, Any]) -> set[str]:
    return {c["image"] for c in pod["spec"]["containers"]}


def _show_and_check(stage: Stage, version: str) -> None:
    for name, client, components in (
        ("primary", stage.primary, PRIMARY_COMPONENTS),
        ("remote", stage.remote, REMOTE_COMPONENTS),
    ):
        rows = _workloads(client)
        print(f"\n  {name} cluster, namespace {NAMESPACE}:")
        print(f"    {'WORKLOAD':34} {'READY':6} IMAGES")
        for workload, ready, images in rows:
            print(f"    {workload:34} {ready:6} {', '.join(sorted(images))}")
        found = {image for _, _, images in rows for image in images}
        wanted = {f"docker.io/istio/{c}:{version}" for c in components}
        expect(found == wanted, f"{name}: images {sorted(found)} != {sorted(wanted)}")
    print()


def _workloads(client: BlockingClient) -> list[tuple[str, str, set[str]]]:
    rows = []
    for kind in ("Deployment", "DaemonSet"):
        for obj in client.list("apps/v1", kind, NAMESPACE):
            status = obj.get("status") or {}
            if kind == "Deployment":
                ready = f"{status.get('readyReplicas', 0)}/{obj['spec'].get('replicas', 0)}"
            else:
                ready = f"{status.get('numberReady', 0)}/{status.get('desiredNumberScheduled', 0)}"
            images = {c["image"] for c in obj["spec"]["template"]["spec"]["containers"]}
            rows.append((f"{kind.lower()}/{obj['metadata']['name']}", ready, images))
    return sorted(rows)


def _workload_versions(client: BlockingClient) -> dict[str, str]:
    return {
        obj["metadata"]["name"]: obj["metadata"]["resourceVersion"]
        for obj in client.list("apps/v1", "Deployment", NAMESPACE)
    }


def _proxy_versions(client: BlockingClient) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pod in client.list("v1", "Pod", "echo"):
        for container in pod["spec"]["containers"]:
            if container["name"] == "istio-proxy":
                counts[container["image"]] = counts.get(container["image"], 0) + 1
    return counts


def _echo(client: BlockingClient) -> dict[str, Any] | None:
    try:
        return client.get(ObjectKey("apps/v1", "Deployment", "echo", "echo"))
    except (ApiRefusedError, OSError):
        return None


def _echo_available(client: BlockingClient) -> bool:
    deployment = _echo(client) or {}
    return int((deployment.get("status") or {}).get("availableReplicas") or 0) >= 2


def _echo_generation(client: BlockingClient) -> int:
    return int(((_echo(client) or {}).get("metadata") or {}).get("generation") or 0)


def _status(client: BlockingClient) -> dict[str, Any]:
    return _resource_status(client, ObjectKey(API_VERSION, "Istio", NAMESPACE, "mesh"))


def _remote_status(client: BlockingClient) -> dict[str, Any]:
    return _resource_status(client, ObjectKey(API_VERSION, "RemoteIstio", NAMESPACE, REMOTE))


def _resource_status(client: BlockingClient, key: ObjectKey) -> dict[str, Any]:
    try:
        return dict((client.get(key) or {}).get("status") or {})
    except ApiRefusedError:
        return {}


class Watched(Protocol):
    """What `wait` watches besides its condition: the operator process of a stage."""

    operator: subprocess.Popen[bytes] | None
    workdir: Path
    timeout: float


def wait(stage: Watched, what: str, check: Callable[[], Any]) -> Any:
    def checked() -> Any:
        if stage.operator is not None and stage.operator.poll() is not None:
            log = (stage.workdir / "operator.log").read_text(errors="replace")
            tail = "\n".join(log.splitlines()[-15:])
            raise ExpectationFailed(f"the operator exited while waiting for {what}:\n{tail}")
        return check()

    return _poll(checked, stage.timeout, what)


def _poll(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise ExpectationFailed(f"timed out after {timeout:.0f} s waiting for {what}")


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise ExpectationFailed(message)


def step(number: int, title: str) -> None:
    print(f"\n== step {number}: {title}", flush=True)


def say(message: str) -> None:
    print(f"   {message}", flush=True)


def _client(name: str, kubeconfig: Path) -> BlockingClient:
    return BlockingClient.from_kubeconfig(
        str(kubeconfig), name=name, field_manager="istio-operator-demo"
    )
