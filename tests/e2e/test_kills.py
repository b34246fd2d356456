"""SIGKILL at random points of upgrades (1.2.5 -> 1.3.0 and back) on a primary and a remote
(issue 14): once the mesh has converged, every `Istio` and `RemoteIstio` status reflects
the clusters (no stale phase) and every object the renderer desires exists on every
cluster, the remote's `cacerts` with the primary's CA included.

The kill moments come from a seeded generator: the seed is printed (`KILL_SEED=<seed>`
replays a run), and so are the figures: kills, converged, stale statuses, missing objects.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError, Client
from lightkube.resources.core_v1 import Secret

from istio_operator.cli.demo import PRIMARY_COMPONENTS, REMOTE_COMPONENTS, remote_istio_body
from istio_operator.kube.objects import readiness
from istio_operator.kube.resources import register_crds
from istio_operator.localcluster import Workspace
from istio_operator.reconcile.kinds import register_managed_kinds
from tests.operator_harness import (
    REMOTE_NAME,
    IstioResource,
    Plane,
    RemoteIstioResource,
    apply_istio,
    apply_remote,
    cli,
    container_images,
    generation_of,
    images,
    istio_body,
    istio_status,
    list_kind,
    meta,
    name_of,
    primary_and_remote,
    wait_for,
    workloads,
)

pytestmark = pytest.mark.cluster

NAMESPACE = "istio-system"
UPGRADES = ("1.3.0", "1.2.5", "1.3.0")  # from 1.2.5, installed first
# A kill lands this long after the new spec is applied: an upgrade of both clusters takes
# a few seconds here, a restarted operator waits for the dead one's Lease to expire.
KILL_WITHIN_S = (0.3, 6.0)
CONVERGE_S = 180.0
# After the clusters converged, how long the statuses may take to say so (resyncs of 10 s).
STATUS_S = 40.0


@pytest.fixture(scope="module")
def mesh(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    with primary_and_remote(workspace, tmp_path_factory.mktemp("kills"), "kills") as mesh:
        apply_istio(mesh.primary, istio_body("1.2.5"))
        apply_remote(mesh.primary, REMOTE_NAME)
        yield mesh


# -- what the clusters say --------------------------------------------------------------------


def workloads_at(client: Client, components: tuple[str, ...], version: str) -> bool:
    """Every control-plane workload runs `version`'s images and is rolled out."""
    found: set[str] = set()
    for obj in workloads(client, NAMESPACE):
        found |= container_images(obj)
        if not readiness(obj.to_dict()).ready:
            return False
    return found == images(components, version)


def clusters_at(mesh: Plane, version: str) -> bool:
    return workloads_at(mesh.primary, PRIMARY_COMPONENTS, version) and workloads_at(
        mesh.remote, REMOTE_COMPONENTS, version
    )


def remote_resource(mesh: Plane) -> dict[str, Any]:
    try:
        found = mesh.primary.get(RemoteIstioResource, REMOTE_NAME, namespace=NAMESPACE)
    except ApiError:
        return {}
    return {"generation": generation_of(found), "status": dict(found.get("status") or {})}


def stale_fields(status: dict[str, Any], version: str, generation: int) -> list[str]:
    """What in a converged resource's status does not say so (empty when it all does)."""
    wrong = []
    expected = {"Status": "Available", "phase": "", "version": version}
    for key, value in expected.items():
        if (status.get(key) or "") != value:
            wrong.append(f"{key}={status.get(key)!r}")
    if status.get("waitingFor"):
        wrong.append(f"waitingFor={status['waitingFor']!r}")
    if status.get("observedGeneration") != generation:
        wrong.append(f"observedGeneration={status.get('observedGeneration')} != {generation}")
    return wrong


def stale_statuses(mesh: Plane, version: str) -> dict[str, list[str]]:
    istio = mesh.primary.get(IstioResource, "istio", namespace=NAMESPACE)
    status = istio_status(mesh.primary)
    found = {"Istio": stale_fields(status, version, generation_of(istio))}
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    if not ready or ready[0].get("status") != "True":
        found["Istio"].append(f"Ready={ready}")
    remote = remote_resource(mesh)
    # A RemoteIstio's spec does not change in an upgrade: its own generation is observed.
    found["RemoteIstio"] = stale_fields(remote.get("status") or {}, version, remote["generation"])
    return {kind: wrong for kind, wrong in found.items() if wrong}


# -- what the renderer desires ----------------------------------------------------------------


def render(files: list[Path], remote: str | None = None) -> list[dict[str, Any]]:
    args = ["render"]
    for path in files:
        args += ["-f", str(path)]
    if remote:
        args += ["--remote", remote]
    done = cli(*args, timeout=None, check=True)
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def missing_objects(client: Client, desired: list[dict[str, Any]]) -> list[str]:
    """The desired objects (kind, namespace, name) that the cluster lacks: one LIST per kind."""
    register_managed_kinds()
    register_crds(d for d in desired if d["kind"] == "CustomResourceDefinition")
    live: dict[tuple[str, str], set[tuple[str, str]]] = {}
    missing = []
    for obj in desired:
        kind = (obj["apiVersion"], obj["kind"])
        if kind not in live:
            try:
                items = list_kind(client, *kind)
                live[kind] = {(meta(i).namespace or "", name_of(i)) for i in items}
            except ApiError as error:
                if error.status.code != 404:
                    raise
                live[kind] = set()  # the kind is not served there
        metadata = obj["metadata"]
        namespace, name = metadata.get("namespace") or "", metadata["name"]
        if (namespace, name) not in live[kind]:
            missing.append(f"{obj['kind']} {namespace}/{name}")
    return missing


def missing_everywhere(mesh: Plane, version: str, figures: Figures) -> dict[str, list[str]]:
    istio_file = mesh.directory / f"istio-{version}.yaml"
    remote_file = mesh.directory / "remoteistio.yaml"
    istio_file.write_text(yaml.safe_dump(istio_body(version)))
    remote_file.write_text(yaml.safe_dump(remote_istio_body(REMOTE_NAME, NAMESPACE)))
    on_primary = render([istio_file])
    on_remote = render([istio_file, remote_file], REMOTE_NAME)
    assert any(o["kind"] == "Secret" and o["metadata"]["name"] == "cacerts" for o in on_remote)
    figures.checked += len(on_primary) + len(on_remote)
    found = {
        "primary": missing_objects(mesh.primary, on_primary),
        "remote": missing_objects(mesh.remote, on_remote),
    }
    # `render` stands in for the primary's CA; the remote's copy must hold the real one.
    ca = mesh.primary.get(Secret, "istio-ca-secret", namespace=NAMESPACE).data or {}
    try:
        copy = mesh.remote.get(Secret, "cacerts", namespace=NAMESPACE).data or {}
    except ApiError:
        copy = {}
    for key in ("ca-cert.pem", "ca-key.pem"):
        if copy and copy.get(key) != ca.get(key):
            found["remote"].append(f"Secret {NAMESPACE}/cacerts: {key} is not the primary's")
    return {cluster: objects for cluster, objects in found.items() if objects}


# -- the test ---------------------------------------------------------------------------------


@dataclass
class Figures:
    kills: int = 0
    mid_rollout: int = 0
    converged: int = 0
    stale: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    checked: int = 0  # desired objects looked for, over every check and cluster

    def show(self) -> str:
        return (
            f"kills {self.kills} ({self.mid_rollout} before the clusters converged), "
            f"converged {self.converged}/{len(UPGRADES) + 1}, stale statuses {len(self.stale)}, "
            f"missing objects {len(self.missing)} (of {self.checked} looked for)"
        )


def converge(mesh: Plane, version: str, figures: Figures, what: str) -> None:
    wait_for(f"both clusters at {version} ({what})", lambda: clusters_at(mesh, version), CONVERGE_S)
    figures.converged += 1
    stale: dict[str, list[str]] = {}

    def reflected() -> bool:
        stale.clear()
        stale.update(stale_statuses(mesh, version))
        return not stale

    try:
        wait_for(f"statuses at {version}", reflected, timeout=STATUS_S, every=1.0)
    except AssertionError:
        figures.stale += [f"{what}: {kind} {wrong}" for kind, wrong in stale.items()]
    figures.missing += [
        f"{what}: {cluster} lacks {objects}"
        for cluster, objects in missing_everywhere(mesh, version, figures).items()
    ]


def test_statuses_and_objects_are_right_after_kills_during_upgrades(mesh: Plane) -> None:
    seed = int(os.environ.get("KILL_SEED") or time.time_ns() % 2**32)
    print(f"\nKILL_SEED={seed}")
    rng = random.Random(seed)
    figures = Figures()
    converge(mesh, "1.2.5", figures, "install")
    try:
        for version in UPGRADES:
            apply_istio(mesh.primary, istio_body(version))
            delay = rng.uniform(*KILL_WITHIN_S)
            time.sleep(delay)  # the random kill moment, not a wait for anything
            mid_rollout = not clusters_at(mesh, version)
            mesh.operator.assert_running()
            mesh.operator.kill()
            figures.kills += 1
            figures.mid_rollout += mid_rollout
            print(
                f"killed {delay:.2f} s into the upgrade to {version} (mid-rollout: {mid_rollout})"
            )
            mesh.operator.start()
            converge(mesh, version, figures, f"upgrade to {version}")
            mesh.operator.assert_running()
    finally:
        print(figures.show())
        for line in figures.stale + figures.missing:
            print(f"  {line}")
    assert figures.converged == len(UPGRADES) + 1
    assert figures.stale == [], figures.stale
    assert figures.missing == [], figures.missing
