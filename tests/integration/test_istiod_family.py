"""The istiod family on a real local cluster: Istio's own charts, applied by the engine.

Each test drives `reconcile_mesh` (what the operator's worker runs) pass after pass, the
status each pass computes fed into the next as the worker's status write would, until
the control plane is Available. The cluster runs without admission webhooks: no istiod
process answers them on fake nodes, so the injector's and validators' objects are
checked as objects (what they select, where they point), not by injecting pods. A pod
"injected" by a revision is one carrying its `istio.io/rev` label, as the injector
writes it.
"""

from __future__ import annotations

import asyncio
import copy
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.core_v1 import Container, PodSpec, PodTemplateSpec
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.resources.admissionregistration_v1 import MutatingWebhookConfiguration
from lightkube.resources.apps_v1 import DaemonSet, Deployment
from lightkube.resources.core_v1 import Namespace, Pod
from lightkube.types import PatchType

from istio_operator.api.istio import Istio
from istio_operator.api.labels import REVISION
from istio_operator.api.parse import load_istio, load_remote_istio
from istio_operator.charts import Catalogue, ChartVersion, helm_binary
from istio_operator.kube.client import Cluster, config_from_file
from istio_operator.kube.objects import with_desired_hash
from istio_operator.kube.resources import register_crds
from istio_operator.localcluster import LocalCluster, Workspace
from istio_operator.localcluster.binaries import default_cache_dir
from istio_operator.plan.istiod import resolve_istiod, resolve_istiod_remote, with_remotes
from istio_operator.reconcile.istio import MeshOutcome, Settings, reconcile_mesh
from istio_operator.reconcile.status import compute_status
from istio_operator.render.istiod import render_istiod
from istio_operator.render.objects import DesiredObject
from tests.operator_harness import (
    CLI,
    IstioResource,
    apply_crds,
    apply_istio,
    cli,
    client_for,
    istio_status,
    meta,
    name_of,
    operator_process,
    wait_for,
)

pytestmark = pytest.mark.cluster

CLUSTER = "istiod-family"
OLDER, NEWER = "1.31.0", "1.31.1"  # the catalogue's stand-ins (docs/istiod-charts.md)
PASSES = 40


@pytest.fixture(scope="module")
def local(workspace: Workspace) -> Iterator[LocalCluster]:
    os.environ.setdefault("HELM", str(default_cache_dir() / "helm"))
    created = workspace.create(CLUSTER, nodes=1, admission_webhooks=False)
    try:
        client = client_for(created)
        apply_crds(client)
        # The Istio resource's own namespace, which exists before the operator reconciles it.
        client.apply(Namespace(metadata=ObjectMeta(name="istio-system")))
        yield created
    finally:
        workspace.delete(CLUSTER)


@pytest.fixture(scope="module")
def client(local: LocalCluster) -> Client:
    return client_for(local)


def istio(version: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "istio.banzaicloud.io/v1beta1",
        "kind": "Istio",
        "metadata": {"name": "mesh", "namespace": "istio-system", "generation": 1, "uid": "u1"},
        "spec": {"version": version, **spec},
    }


class Mesh:
    """One Istio resource as the worker sees it: its body, status included."""

    def __init__(self, local: LocalCluster, body: dict[str, Any]) -> None:
        self.local, self.body = local, body

    def edit(self, **spec: Any) -> None:
        self.body["spec"].update(spec)
        self.body["metadata"]["generation"] += 1

    async def one_pass(self, cluster: Cluster) -> MeshOutcome:
        outcome = await reconcile_mesh(cluster, copy.deepcopy(self.body), [], Settings(30.0))
        self.body["status"] = compute_status(self.body.get("status") or {}, outcome.primary)
        return outcome

    def settle(
        self, until: Any = None, between: Any = None, grace: bool = True
    ) -> tuple[MeshOutcome, int]:
        """Passes until Available with no grace period running (`grace=False`: whatever
        grace period runs) and `until(body)`, if given; `between()` runs after each pass
        (the test's stand-in injector). The outcome and the writes of one more pass, which
        must find nothing to do."""

        async def run() -> tuple[MeshOutcome, int]:
            cluster = Cluster.from_config(CLUSTER, config_from_file(str(self.local.kubeconfig)))
            try:
                for _ in range(PASSES):
                    outcome = await self.one_pass(cluster)
                    done = outcome.primary.state == "Available"
                    if between is not None:
                        between()
                    done = done and (not grace or outcome.primary.recheck_after is None)
                    migrating = (self.body["status"].get("migration") or {}).get("state")
                    done = done and migrating != "InProgress"
                    if done and (until is None or until(self.body)):
                        before = cluster.writes.total
                        await self.one_pass(cluster)
                        return outcome, cluster.writes.total - before
                    assert outcome.primary.state in ("Available", "Reconciling"), outcome.primary
                    await asyncio.sleep(outcome.primary.recheck_after or 0.2)
                raise AssertionError(f"not settled after {PASSES} passes: {self.body['status']}")
            finally:
                await cluster.close()

        return asyncio.run(run())

    def refused(self) -> tuple[MeshOutcome, int]:
        async def run() -> tuple[MeshOutcome, int]:
            cluster = Cluster.from_config(CLUSTER, config_from_file(str(self.local.kubeconfig)))
            try:
                outcome = await self.one_pass(cluster)
                return outcome, cluster.writes.total
            finally:
                await cluster.close()

        return asyncio.run(run())


def deployments(client: Client) -> dict[str, str]:
    """The Deployments of istio-system: name -> first container's image."""
    return {
        str(d.metadata.name): str(d.spec.template.spec.containers[0].image)
        for d in client.list(Deployment, namespace="istio-system")
        if d.metadata and d.spec and d.spec.template.spec
    }


def daemonsets(client: Client) -> set[str]:
    return {
        str(d.metadata.name) for d in client.list(DaemonSet, namespace="istio-system") if d.metadata
    }


def test_each_profile_installs_and_changing_it_prunes_what_it_no_longer_has(
    local: LocalCluster, client: Client
) -> None:
    mesh = Mesh(local, istio(NEWER))
    expected = {
        "default": ({"istiod", "istio-ingressgateway"}, set()),
        "demo": ({"istiod", "istio-ingressgateway", "istio-egressgateway"}, set()),
        "ambient": ({"istiod"}, {"istio-cni-node", "ztunnel"}),
        "minimal": ({"istiod"}, set()),
    }
    for profile, (workloads, agents) in expected.items():
        mesh.edit(profile=profile)
        outcome, idle_writes = mesh.settle()
        assert set(deployments(client)) == workloads, profile
        assert daemonsets(client) == agents, profile
        # (the ambient profile asks for the distroless variant: `1.31.1-distroless`)
        assert deployments(client)["istiod"].startswith(f"docker.io/istio/pilot:{NEWER}")
        assert outcome.primary.version == NEWER
        assert idle_writes == 0, f"{profile}: an idle pass wrote {idle_writes} times"
    status = mesh.body["status"]
    assert status["version"] == NEWER
    assert status["revisions"] == [
        {
            "name": "default",
            "version": NEWER,
            "active": True,
            "ready": True,
            "inUse": {"namespaces": 0, "pods": 0},
        }
    ]


def test_in_place_upgrade_and_rollback_between_the_two_versions(
    local: LocalCluster, client: Client
) -> None:
    mesh = Mesh(local, istio(OLDER, profile="default"))
    mesh.settle()
    assert deployments(client)["istiod"] == f"docker.io/istio/pilot:{OLDER}"
    for version in (NEWER, OLDER):
        mesh.edit(version=version)
        outcome, idle_writes = mesh.settle()
        assert deployments(client)["istiod"] == f"docker.io/istio/pilot:{version}"
        assert outcome.primary.version == version == mesh.body["status"]["version"]
        assert idle_writes == 0


def test_a_change_from_the_classic_family_is_refused_and_changes_nothing(
    local: LocalCluster, client: Client
) -> None:
    body = istio(NEWER)
    body["status"] = {"Status": "Available", "version": "1.3.0"}
    before = deployments(client)
    outcome, writes = Mesh(local, body).refused()
    assert outcome.primary.reason == "FamilyChange"
    assert "classic family" in outcome.primary.message and "1.3.0" in outcome.primary.message
    assert writes == 0 and deployments(client) == before


def test_classic_only_fields_with_an_istiod_version_are_refused(local: LocalCluster) -> None:
    outcome, writes = Mesh(local, istio(NEWER, mtls=True, pilot={"replicaCount": 2})).refused()
    assert outcome.primary.reason == "InvalidSpec"
    assert "spec.mtls" in outcome.primary.message and "spec.pilot" in outcome.primary.message
    assert writes == 0


def label_namespace(client: Client, name: str, labels: dict[str, str]) -> None:
    client.apply(Namespace(metadata=ObjectMeta(name=name, labels=labels)), force=True)


def injected_pod(client: Client, namespace: str, revision: str) -> str:
    name = f"app-{revision}"
    client.create(
        Pod(
            metadata=ObjectMeta(
                name=name,
                namespace=namespace,
                labels={"istio.io/rev": revision},
                annotations={"sidecar.istio.io/status": '{"containers":["istio-proxy"]}'},
            ),
            spec=PodSpec(containers=[Container(name="app", image="example/app:1")]),
        )
    )
    return name


def tag_targets(client: Client) -> dict[str, str]:
    return {
        str(w.metadata.name): (w.metadata.labels or {}).get(REVISION, "")
        for w in client.list(MutatingWebhookConfiguration)
        if w.metadata and str(w.metadata.name).startswith("istio-revision-tag-")
    }


def test_a_canary_by_revision_moves_the_tags_and_keeps_the_old_revision_while_used(
    local: LocalCluster, client: Client
) -> None:
    strategy = {
        "type": "RevisionBased",
        "tags": ["prod"],
        "inactiveRevisionDeletionGracePeriodSeconds": 2,
    }
    old, new = "mesh-1-31-0", "mesh-1-31-1"
    label_namespace(client, "apps", {"istio-injection": "enabled"})
    label_namespace(client, "prod-apps", {"istio.io/rev": "prod"})
    mesh = Mesh(local, istio(OLDER, profile="minimal", updateStrategy=strategy))
    mesh.settle()
    assert tag_targets(client) == {
        "istio-revision-tag-default": old,
        "istio-revision-tag-prod": old,
    }
    pod = injected_pod(client, "apps", old)

    mesh.edit(version=NEWER)
    _, idle_writes = mesh.settle()
    assert client.get(Pod, pod, namespace="apps"), "the injected pod is still there"
    assert idle_writes == 0
    assert {f"istiod-{old}", f"istiod-{new}"} <= set(deployments(client))
    assert tag_targets(client) == {
        "istio-revision-tag-default": new,
        "istio-revision-tag-prod": new,
    }
    rows = {r["name"]: r for r in mesh.body["status"]["revisions"]}
    assert rows[new]["active"] and rows[new]["inUse"] == {"namespaces": 2, "pods": 0}
    assert rows[old]["inUse"] == {"namespaces": 0, "pods": 1}, "the pod it injected uses it"
    assert mesh.body["status"]["tags"] == {"default": new, "prod": new}

    client.delete(Pod, pod, namespace="apps")
    started = time.monotonic()
    mesh.settle(until=lambda body: len(body["status"]["revisions"]) == 1)
    assert time.monotonic() - started >= 2, "pruned before its grace period ended"
    assert f"istiod-{old}" not in deployments(client)
    assert [r["name"] for r in mesh.body["status"]["revisions"]] == [new]


PROFILES = ("default", "minimal", "demo", "ambient")


@pytest.mark.parametrize("version", [OLDER, NEWER])
def test_every_object_of_every_profile_passes_the_strict_server_side_dry_run(
    local: LocalCluster, version: str
) -> None:
    async def refusals() -> list[str]:
        cluster = Cluster.from_config(CLUSTER, config_from_file(str(local.kubeconfig)))
        try:
            found = []
            for profile in PROFILES:
                for strategy in ("InPlace", "RevisionBased"):
                    body = istio(version, profile=profile, updateStrategy={"type": strategy})
                    charts = Catalogue.default().get(version)
                    resource = load_istio(body).resource
                    for label, objects in renders(resource, charts, profile == "default"):
                        # The kinds the engine learns from the render's CRDs before it applies.
                        register_crds(
                            o.manifest for o in objects if o.kind == "CustomResourceDefinition"
                        )
                        for obj in objects:
                            refusal = (await cluster.judge(with_desired_hash(obj.manifest))).refusal
                            if refusal is not None:
                                found.append(f"{profile}/{strategy}/{label}: {obj.key}: {refusal}")
            return found
        finally:
            await cluster.close()

    assert asyncio.run(refusals()) == []


REMOTE = {
    "apiVersion": "istio.banzaicloud.io/v1beta1",
    "kind": "RemoteIstio",
    "metadata": {"name": "west", "namespace": "istio-system"},
    "spec": {"enabledServices": [], "network": "net-west"},
}


def renders(
    resource: Istio, charts: ChartVersion, with_remote: bool
) -> list[tuple[str, list[DesiredObject]]]:
    """The primary alone and, `with_remote`, the primary with a remote on another network
    (its east-west gateway and routes) and that remote's own render (the remote profile is
    the same whatever the primary's)."""
    plan = resolve_istiod(resource, charts)
    joined = with_remotes(plan, {"west": "net-west"}, set())
    remote = resolve_istiod_remote(
        resource, load_remote_istio(REMOTE).resource, charts, "192.0.2.1"
    )
    return [
        (label, render_istiod(p, charts, helm_binary()))
        for label, p in (("primary", plan), ("primary+remote", joined), ("remote", remote))
        if with_remote or label == "primary"
    ]


def inject(client: Client, namespace: str) -> None:
    """The injector's stand-in: each pod of `namespace` not yet injected gets what
    istiod's injector would write, the revision its namespace's tag points at."""
    labels = meta(client.get(Namespace, namespace)).labels or {}
    chosen = labels.get("istio.io/rev", "default")
    revision = tag_targets(client).get(f"istio-revision-tag-{chosen}", chosen)
    for pod in client.list(Pod, namespace=namespace):
        if "sidecar.istio.io/status" in (meta(pod).annotations or {}):
            continue
        patch = {
            "metadata": {
                "labels": {"istio.io/rev": revision},
                "annotations": {"sidecar.istio.io/status": '{"containers":["istio-proxy"]}'},
            }
        }
        client.patch(Pod, name_of(pod), patch, namespace=namespace)


def revisions_of_pods(client: Client, namespace: str) -> dict[str, str]:
    return {
        str(p.metadata.name): (p.metadata.labels or {}).get("istio.io/rev", "")
        for p in client.list(Pod, namespace=namespace)
        if p.metadata and not p.metadata.deletionTimestamp
    }


def echo_deployment(name: str, replicas: int, namespace: str = "migrate") -> Deployment:
    labels = {"app": name}
    return Deployment(
        metadata=ObjectMeta(name=name, namespace=namespace),
        spec=DeploymentSpec(
            replicas=replicas,
            selector=LabelSelector(matchLabels=labels),
            template=PodTemplateSpec(
                metadata=ObjectMeta(labels=labels),
                spec=PodSpec(containers=[Container(name="echo", image="example/echo:1")]),
            ),
        ),
    )


def test_workloads_migrate_in_batches_and_back_while_the_old_revision_runs(
    local: LocalCluster, client: Client
) -> None:
    migration = {"enabled": True, "batchSize": 1, "readinessTimeoutSeconds": 60}
    strategy = {
        "type": "RevisionBased",
        "inactiveRevisionDeletionGracePeriodSeconds": 3600,
        "workloadMigration": migration,
    }
    label_namespace(client, "migrate", {"istio-injection": "enabled"})
    mesh = Mesh(local, istio(NEWER, profile="minimal", updateStrategy=strategy))
    mesh.settle(grace=False)
    for name, replicas in (("echo", 2), ("web", 1)):
        client.create(echo_deployment(name, replicas))

    def injected() -> None:
        inject(client, "migrate")

    def injected_by_the_newer() -> bool:
        injected()
        found = revisions_of_pods(client, "migrate").values()
        return len([r for r in found if r == "mesh-1-31-1"]) == 3

    wait_for("three pods injected by 1.31.1", injected_by_the_newer)

    for version, revision in ((OLDER, "mesh-1-31-0"), (NEWER, "mesh-1-31-1")):
        mesh.edit(version=version)
        _, idle_writes = mesh.settle(between=injected, grace=False)
        assert idle_writes == 0
        status = mesh.body["status"]
        assert status["tags"] == {"default": revision}
        assert status["migration"]["state"] == "Done", status["migration"]
        assert status["migration"]["revision"] == revision
        assert status["migration"]["migrated"] == 2
        assert set(revisions_of_pods(client, "migrate").values()) == {revision}
        # Both revisions run: the other is kept for its (long) grace period.
        assert {r["name"] for r in status["revisions"]} == {"mesh-1-31-0", "mesh-1-31-1"}

    # `istio-operator status` shows the revisions, the tags and the migration.
    publish(client, mesh)
    shown = cli("status", "-n", "istio-system", kubeconfig=local.kubeconfig, check=True).stdout
    assert "REVISION     VERSION  ACTIVE  READY  NAMESPACES  PODS" in shown, shown
    # (the namespaces count those of the earlier tests too; the pods are echo's and web's)
    assert re.search(r"mesh-1-31-1  1\.31\.1   yes     yes    \d+ +3 ", shown), shown
    assert "tags: default -> mesh-1-31-1" in shown
    assert "migration to mesh-1-31-1: Done, 2 migrated, 0 remaining" in shown


def publish(client: Client, mesh: Mesh) -> None:
    """The Istio resource on the cluster, with the status the passes computed, for the
    commands that read it."""
    resource = {k: mesh.body[k] for k in ("apiVersion", "kind", "spec")}
    resource["metadata"] = {"name": "mesh", "namespace": "istio-system"}
    client.apply(IstioResource.from_dict(resource), force=True)
    status = {"status": mesh.body["status"]}
    client.patch(
        IstioResource.Status, "mesh", status, namespace="istio-system", patch_type=PatchType.MERGE
    )


def test_dataplane_upgrade_moves_workloads_by_revision_and_stops_at_one_not_ready(
    local: LocalCluster, client: Client
) -> None:
    strategy = {"type": "RevisionBased", "inactiveRevisionDeletionGracePeriodSeconds": 3600}
    mesh = Mesh(local, istio(OLDER, profile="minimal", updateStrategy=strategy))
    mesh.settle(grace=False)
    label_namespace(client, "cli-apps", {"istio.io/rev": "mesh-1-31-0"})
    for name in ("good", "stuck"):
        client.create(echo_deployment(name, 1, namespace="cli-apps"))

    def injected_by_the_older() -> bool:
        inject(client, "cli-apps")
        return sorted(revisions_of_pods(client, "cli-apps").values()) == ["mesh-1-31-0"] * 2

    wait_for("both pods injected by 1.31.0", injected_by_the_older)
    # The stuck workload's new pods will find no node.
    client.patch(
        Deployment,
        "stuck",
        {"spec": {"template": {"spec": {"nodeSelector": {"no-such": "node"}}}}},
        namespace="cli-apps",
    )
    mesh.edit(version=NEWER)
    mesh.settle(grace=False)
    publish(client, mesh)
    kubeconfig = ["--kubeconfig", str(local.kubeconfig)]

    listed = cli("dataplane-upgrade", *kubeconfig, "--dry-run", check=True).stdout
    assert "to move to revision mesh-1-31-1" in listed
    assert "Deployment/good" in listed and "Deployment/stuck" in listed

    args = ["--batch-size", "1", "--readiness-timeout", "3"]
    upgrade = subprocess.Popen(
        [*CLI, "dataplane-upgrade", *kubeconfig, *args], stdout=subprocess.PIPE, text=True
    )
    while upgrade.poll() is None:
        inject(client, "cli-apps")
        time.sleep(0.2)
    output = upgrade.stdout.read() if upgrade.stdout else ""
    assert upgrade.returncode == 1, output
    assert "Failed" in output and "Deployment cli-apps/stuck not ready within 3s" in output
    labels = meta(client.get(Namespace, "cli-apps")).labels or {}
    assert labels["istio.io/rev"] == "mesh-1-31-1", "the namespace follows the revision"
    pods = revisions_of_pods(client, "cli-apps")
    assert [r for p, r in pods.items() if p.startswith("good-")] == ["mesh-1-31-1"]


def test_the_operator_process_upgrades_an_istiod_mesh_by_revision(
    local: LocalCluster, client: Client, tmp_path: Path
) -> None:
    strategy = {"type": "RevisionBased", "inactiveRevisionDeletionGracePeriodSeconds": 1}
    body = istio(OLDER, profile="minimal", updateStrategy=strategy)
    body["metadata"] = {"name": "mesh", "namespace": "istio-system"}

    def available_at(version: str, active: str) -> bool:
        status = istio_status(client, "mesh", "istio-system")
        rows = status.get("revisions") or []
        return (
            status.get("Status") == "Available"
            and status.get("version") == version
            and [r["name"] for r in rows if r.get("active")] == [active]
            and (status.get("tags") or {}).get("default") == active
        )

    with operator_process(local.kubeconfig, tmp_path / "operator.log") as operator:
        operator.start()
        apply_istio(client, body)
        wait_for("1.31.0 by revision", lambda: available_at(OLDER, "mesh-1-31-0"), timeout=120)
        body["spec"]["version"] = NEWER
        apply_istio(client, body)
        wait_for("the canary to 1.31.1", lambda: available_at(NEWER, "mesh-1-31-1"), timeout=120)
        operator.assert_running()
    assert deployments(client)["istiod-mesh-1-31-1"] == f"docker.io/istio/pilot:{NEWER}"
