"""An istiod-family mesh of a primary and a remote cluster, on two real local clusters.

The primary's passes (`reconcile_mesh`) and the remote's (`reconcile_remote`) run as their
workers run them, each status fed back as the workers write it. The clusters call no
admission webhook (no istiod process runs on fake nodes): the webhooks, istiod Services
and routes are checked as objects (what they select, where they point); a pod "injected"
by a revision carries what the injector writes.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from lightkube import Client
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.core_v1 import Container, PodSpec, PodTemplateSpec
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.resources.admissionregistration_v1 import MutatingWebhookConfiguration
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, Pod, Secret, Service
from lightkube.resources.discovery_v1 import EndpointSlice
from lightkube.types import PatchType

from istio_operator.api.keys import ObjectKey
from istio_operator.api.labels import API_VERSION, REVISION
from istio_operator.kube.client import Cluster, config_from_file
from istio_operator.kube.remotes import RemoteClients
from istio_operator.localcluster import LocalCluster, Workspace
from istio_operator.localcluster.binaries import default_cache_dir
from istio_operator.reconcile.istio import Settings, reconcile_mesh
from istio_operator.reconcile.remote import RemoteSettings, reconcile_remote, remove_remote
from istio_operator.reconcile.status import compute_status, differs, merge_patch
from tests.operator_harness import (
    IstioResource,
    RemoteIstioResource,
    apply_crds,
    apply_remote_istio,
    cli,
    client_for,
    meta,
    name_of,
    owned_objects,
    put_kubeconfig,
    wait_for,
    write_requests,
)

pytestmark = pytest.mark.cluster

OLDER, NEWER = "1.31.0", "1.31.1"
NS = "istio-system"


@dataclass
class Clusters:
    primary: LocalCluster
    remote: LocalCluster
    workspace: Workspace


@pytest.fixture(scope="module")
def clusters(workspace: Workspace) -> Iterator[Clusters]:
    os.environ.setdefault("HELM", str(default_cache_dir() / "helm"))
    primary = workspace.create("istiod-primary", nodes=1, admission_webhooks=False)
    remote = workspace.create("istiod-remote", nodes=1, admission_webhooks=False)
    try:
        apply_crds(client_for(primary))
        for cluster in (primary, remote):
            client_for(cluster).apply(Namespace(metadata=ObjectMeta(name=NS)))
        client_for(remote).apply(Namespace(metadata=ObjectMeta(name="apps")))
        put_kubeconfig(client_for(primary), "remote", remote.standalone_kubeconfig())
        yield Clusters(primary, remote, workspace)
    finally:
        workspace.delete("istiod-primary")
        workspace.delete("istiod-remote")


def istio(version: str) -> dict[str, Any]:
    strategy = {"type": "RevisionBased", "inactiveRevisionDeletionGracePeriodSeconds": 1}
    return {
        "apiVersion": "istio.banzaicloud.io/v1beta1",
        "kind": "Istio",
        "metadata": {"name": "mesh", "namespace": NS, "generation": 1, "uid": "u1"},
        "spec": {"version": version, "profile": "minimal", "updateStrategy": strategy},
    }


REMOTE_BODY: dict[str, Any] = {
    "apiVersion": "istio.banzaicloud.io/v1beta1",
    "kind": "RemoteIstio",
    "metadata": {"name": "remote", "namespace": NS, "generation": 1},
    "spec": {"enabledServices": [], "autoInjectionNamespaces": ["apps"]},
}


class Mesh:
    """The Istio and RemoteIstio bodies, statuses included, and the passes of both."""

    def __init__(self, clusters: Clusters, version: str) -> None:
        self.clusters = clusters
        self.istio = istio(version)
        primary = client_for(clusters.primary)
        apply_remote_istio(primary, copy.deepcopy(REMOTE_BODY))
        self.early_tags: list[str] = []
        # The resource as the worker reads it (its creation time tells it from others).
        applied = primary.get(RemoteIstioResource, "remote", namespace=NS)
        created = meta(applied).creationTimestamp
        assert created is not None
        self.remote = copy.deepcopy(REMOTE_BODY)
        self.remote["metadata"].update(
            uid=meta(applied).uid, creationTimestamp=created.strftime("%Y-%m-%dT%H:%M:%SZ")
        )

    def edit(self, version: str) -> None:
        self.istio["spec"]["version"] = version
        self.istio["metadata"]["generation"] += 1

    async def passes(self, until: Any) -> tuple[int, int]:
        """Passes of the primary then the remote until both are Available with no grace
        period running and `until()` holds; the writes of one more pass on each cluster."""
        primary = Cluster.from_config(
            "primary", config_from_file(str(self.clusters.primary.kubeconfig))
        )
        clients = RemoteClients()
        try:
            for _ in range(60):
                await self.one_pass(primary, clients)
                wanted = until()  # (every pass: a condition may watch the way there)
                if self.settled() and wanted:
                    remote = clients.known("remote")
                    assert remote is not None
                    before = (primary.writes.total, remote.writes.total)
                    await self.one_pass(primary, clients)
                    return primary.writes.total - before[0], remote.writes.total - before[1]
                await asyncio.sleep(0.3)
            raise AssertionError(f"not settled: {self.istio['status']}, {self.remote['status']}")
        finally:
            await clients.close()
            await primary.close()

    async def passes_until(self, condition: Any, limit: int = 60) -> None:
        """Passes (as `passes`) until `condition()`, whatever the states."""
        primary = Cluster.from_config(
            "primary", config_from_file(str(self.clusters.primary.kubeconfig))
        )
        clients = RemoteClients()
        try:
            for _ in range(limit):
                await self.one_pass(primary, clients)
                if condition():
                    return
                await asyncio.sleep(0.3)
            raise AssertionError(f"never held: {self.istio['status']}, {self.remote['status']}")
        finally:
            await clients.close()
            await primary.close()

    async def one_pass(self, primary: Cluster, clients: RemoteClients) -> None:
        outcome = await reconcile_mesh(primary, copy.deepcopy(self.istio), [], Settings(30.0))
        self.istio["status"] = compute_status(self.istio.get("status") or {}, outcome.primary)
        tagged = (self.istio["status"].get("tags") or {}).get("default")
        on_remote = {r["name"] for r in (self.remote.get("status") or {}).get("revisions") or []}
        if tagged and tagged not in on_remote:
            self.early_tags.append(tagged)  # the primary's tags moved before the remote had it
        remote = await reconcile_remote(
            primary,
            clients,
            copy.deepcopy(self.istio),
            copy.deepcopy(self.remote),
            RemoteSettings(30.0),
        )
        if remote is not None:
            previous = self.remote.get("status") or {}
            self.remote["status"] = compute_status(previous, remote.observation)
            # As the remote's worker writes it: the primary's passes read it from there.
            key = ObjectKey(API_VERSION, "RemoteIstio", NS, "remote")
            if differs(previous, self.remote["status"]):
                await primary.patch_status(key, merge_patch(previous, self.remote["status"]))

    def settled(self) -> bool:
        """Both Available, no grace period running, every tag at the active revision."""
        statuses = (self.istio.get("status") or {}, self.remote.get("status") or {})
        return all(
            s.get("Status") == "Available"
            and all("unusedSince" not in r for r in s.get("revisions") or [])
            and set((s.get("tags") or {}).values())
            == {r["name"] for r in s.get("revisions") or [] if r.get("active")}
            for s in statuses
        )


def tag_targets(client: Client) -> dict[str, str]:
    return {
        name_of(w): (meta(w).labels or {}).get(REVISION, "")
        for w in client.list(MutatingWebhookConfiguration)
        if name_of(w).startswith("istio-revision-tag-")
    }


def east_west_address(client: Client) -> str:
    service = client.get(Service, "istio-eastwestgateway", namespace=NS)
    ingress = (
        service.status.loadBalancer.ingress
        if service.status and service.status.loadBalancer
        else None
    ) or []
    return str(ingress[0].ip) if ingress else ""


def istiod_endpoint(client: Client, revision: str) -> list[str]:
    slice_ = client.get(EndpointSlice, f"istiod-{revision}", namespace=NS)
    return [address for e in slice_.endpoints or [] for address in e.addresses]


def test_a_remote_joins_by_one_resource_and_follows_a_canary_then_leaves_nothing(
    clusters: Clusters,
) -> None:
    primary, remote = client_for(clusters.primary), client_for(clusters.remote)
    mesh = Mesh(clusters, OLDER)
    old, new = "mesh-1-31-0", "mesh-1-31-1"

    writes = asyncio.run(mesh.passes(lambda: True))
    assert writes == (0, 0), f"an idle pass wrote (primary, remote): {writes}"
    address = east_west_address(primary)
    assert address and istiod_endpoint(remote, old) == [address]
    webhook = remote.get(MutatingWebhookConfiguration, f"istio-sidecar-injector-{old}")
    assert {
        w.clientConfig.service.name for w in webhook.webhooks or [] if w.clientConfig.service
    } == {f"istiod-{old}"}
    assert tag_targets(remote) == {"istio-revision-tag-default": old}
    secret = primary.get(Secret, "istio-remote-secret-remote", namespace=NS)
    assert (meta(secret).labels or {})["istio/multiCluster"] == "true"
    kubeconfig = yaml.safe_load(base64.b64decode((secret.data or {})["remote"]))
    assert kubeconfig["clusters"][0]["cluster"]["server"] == clusters.remote.server
    assert kubeconfig["users"][0]["user"]["token"]
    assert mesh.remote["status"]["remoteSecret"] == "istio-remote-secret-remote"
    labels = meta(remote.get(Namespace, "apps")).labels or {}
    assert labels.get("istio-injection") == "enabled"

    # `istio-operator status` shows each cluster's revisions and the remote's secret.
    resource = {k: mesh.istio[k] for k in ("apiVersion", "kind", "spec")}
    resource["metadata"] = {"name": "mesh", "namespace": NS}
    primary.apply(IstioResource.from_dict(resource), force=True)
    primary.patch(
        IstioResource.Status,
        "mesh",
        {"status": mesh.istio["status"]},
        namespace=NS,
        patch_type=PatchType.MERGE,
    )
    shown = cli("status", "-n", NS, kubeconfig=clusters.primary.kubeconfig, check=True).stdout
    remote_part = shown.split("CLUSTER remote (remote)")[1]
    assert "remote secret on the primary: istio-remote-secret-remote" in remote_part, shown
    assert f"{old}  1.31.0   yes     yes" in remote_part, shown
    assert f"tags: default -> {old}" in remote_part, shown
    check_the_canary_plan(clusters, resource, old, new)

    # A pod on the remote injected by the old revision keeps it there during the canary.
    remote.create(
        Pod(
            metadata=ObjectMeta(
                name="app",
                namespace="apps",
                labels={"istio.io/rev": old},
                annotations={"sidecar.istio.io/status": "{}"},
            ),
            spec=PodSpec(containers=[Container(name="app", image="example/app:1")]),
        )
    )
    mesh.early_tags.clear()  # (the first install has no remote revision to wait for)
    mesh.edit(NEWER)
    writes = asyncio.run(mesh.passes(lambda: True))
    assert writes == (0, 0)
    assert mesh.early_tags == [], "the tags moved before the new revision was on the remote"
    assert istiod_endpoint(remote, new) == [address] == istiod_endpoint(remote, old)
    assert tag_targets(remote) == {"istio-revision-tag-default": new}
    remote_rows = {r["name"]: r for r in mesh.remote["status"]["revisions"]}
    assert remote_rows[old]["inUse"]["pods"] == 1 and remote_rows[new]["active"]
    routes = primary_routes(primary)
    assert {f"istiod-{old}.{NS}.svc", f"istiod-{new}.{NS}.svc"} <= routes

    remote.delete(Pod, "app", namespace="apps")
    asyncio.run(
        mesh.passes(lambda: [r["name"] for r in mesh.remote["status"]["revisions"]] == [new])
    )
    assert f"istiod-{old}" not in {name_of(s) for s in remote.list(Service, namespace=NS)}
    assert f"istiod-{old}.{NS}.svc" not in primary_routes(primary)

    asyncio.run(remove(clusters, mesh))
    assert owned_objects(remote, "remote") == []
    assert [
        s for s in primary.list(Secret, namespace=NS) if name_of(s) == "istio-remote-secret-remote"
    ] == []


def plan_json(clusters: Clusters, *documents: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    args = ["plan", "-n", NS, "-o", "json"]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as edited:
        if documents:
            yaml.safe_dump_all(documents, edited)
            edited.flush()
            args += ["-f", edited.name]
        result = cli(*args, kubeconfig=clusters.primary.kubeconfig, timeout=180)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def planned(document: dict[str, Any], cluster: str) -> dict[tuple[str, str, str], str]:
    """(action, kind, name) -> phase of one cluster's planned writes."""
    (found,) = [c for c in document["clusters"] if c["name"] == cluster]
    return {(w["action"], w["kind"], w["name"]): w["phase"] for w in found["writes"]}


def check_the_canary_plan(clusters: Clusters, resource: dict[str, Any], old: str, new: str) -> None:
    """`plan` of the settled mesh is no change; of the canary, the new revision on both
    clusters and the default tag moved on both, with no write to either cluster."""
    status, document = plan_json(clusters)
    assert status == 0, document
    since = time.time() - 1
    edited = copy.deepcopy(resource)
    edited["spec"]["version"] = NEWER
    status, document = plan_json(clusters, edited)
    assert status == 3, document
    primary, remote = planned(document, "primary"), planned(document, "remote")
    assert primary[("create", "Deployment", f"istiod-{new}")] == "istiod"
    assert ("change", "MutatingWebhookConfiguration", "istio-revision-tag-default") in primary
    assert ("create", "MutatingWebhookConfiguration", f"istio-sidecar-injector-{new}") in remote
    assert ("change", "MutatingWebhookConfiguration", "istio-revision-tag-default") in remote
    assert not any(action == "delete" and old in name for action, _, name in remote)
    for cluster in (clusters.primary, clusters.remote):
        kept = [e for e in write_requests(cluster, since) if "dryRun=All" not in e["requestURI"]]
        assert kept == [], [(e["verb"], e["requestURI"]) for e in kept]


VirtualService = create_namespaced_resource(
    "networking.istio.io", "v1alpha3", "VirtualService", "virtualservices"
)


def primary_routes(client: Client) -> set[str]:
    found = client.get(VirtualService, "istiod-routes", namespace=NS)
    return {
        host for route in found["spec"]["tls"] for m in route["match"] for host in m["sniHosts"]
    }


async def remove(clusters: Clusters, mesh: Mesh) -> None:
    primary = Cluster.from_config("primary", config_from_file(str(clusters.primary.kubeconfig)))
    clients = RemoteClients()
    try:
        await remove_remote(primary, clients, "mesh", mesh.remote)
    finally:
        await clients.close()
        await primary.close()


def inject(client: Client, namespace: str = "apps") -> None:
    """istiod's injector, stood in for: each new pod gets the revision its cluster's
    `default` tag points at."""
    revision = tag_targets(client).get("istio-revision-tag-default")
    for pod in client.list(Pod, namespace=namespace):
        if not revision or "sidecar.istio.io/status" in (meta(pod).annotations or {}):
            continue
        patch = {
            "metadata": {
                "labels": {"istio.io/rev": revision},
                "annotations": {"sidecar.istio.io/status": "{}"},
            }
        }
        client.patch(Pod, name_of(pod), patch, namespace=namespace)


def pod_revisions(client: Client, namespace: str = "apps") -> set[str]:
    return {
        (meta(p).labels or {}).get("istio.io/rev", "")
        for p in client.list(Pod, namespace=namespace)
        if not meta(p).deletionTimestamp
    }


def test_workloads_migrate_on_the_primary_then_on_the_remote(clusters: Clusters) -> None:
    primary, remote = client_for(clusters.primary), client_for(clusters.remote)
    client_for(clusters.primary).apply(
        Namespace(metadata=ObjectMeta(name="apps", labels={"istio-injection": "enabled"}))
    )
    mesh = Mesh(clusters, OLDER)
    migration = {"enabled": True, "batchSize": 1}
    mesh.istio["spec"]["updateStrategy"]["workloadMigration"] = migration
    asyncio.run(mesh.passes(lambda: True))
    for client in (primary, remote):
        client.apply(echo("echo"), field_manager="tests")

    def injected_by_the_older() -> bool:
        for client in (primary, remote):
            inject(client)
        return all(pod_revisions(c) == {"mesh-1-31-0"} for c in (primary, remote))

    wait_for("the echo pods injected by 1.31.0 on both clusters", injected_by_the_older)
    mesh.edit(NEWER)
    order: list[str] = []

    early: list[str] = []

    def both_done() -> bool:
        for client in (primary, remote):
            inject(client)
        primary_state = (mesh.istio["status"].get("migration") or {}).get("state")
        remote_state = (mesh.remote["status"].get("migration") or {}).get("state")
        if primary_state != "Done" and remote_state not in (None, "Waiting"):
            early.append(str(remote_state))
        for name, status in (("primary", mesh.istio["status"]), ("remote", mesh.remote["status"])):
            if (status.get("migration") or {}).get("state") == "Done" and name not in order:
                order.append(name)
        return len(order) == 2

    asyncio.run(mesh.passes(both_done))
    assert order == ["primary", "remote"], "the remote migrated before the primary"
    assert early == [], "the remote's migration started before the primary's was done"
    for client in (primary, remote):
        assert pod_revisions(client) == {"mesh-1-31-1"}
    assert mesh.remote["status"]["migration"]["migrated"] == 1
    asyncio.run(remove(clusters, mesh))


def echo(name: str) -> Deployment:
    labels = {"app": name}
    return Deployment(
        metadata=ObjectMeta(name=name, namespace="apps"),
        spec=DeploymentSpec(
            replicas=1,
            selector=LabelSelector(matchLabels=labels),
            template=PodTemplateSpec(
                metadata=ObjectMeta(labels=labels),
                spec=PodSpec(containers=[Container(name=name, image="example/echo:1")]),
            ),
        ),
    )


def test_a_remote_down_during_the_canary_holds_nothing_back_and_catches_up(
    clusters: Clusters,
) -> None:
    remote = client_for(clusters.remote)
    mesh = Mesh(clusters, OLDER)
    asyncio.run(mesh.passes(lambda: True))
    clusters.workspace.stop("istiod-remote")
    try:
        mesh.edit(NEWER)

        def primary_done_without_the_remote() -> bool:
            status, remote_status = mesh.istio["status"], mesh.remote.get("status") or {}
            return (
                status.get("Status") == "Available"
                and status.get("version") == NEWER
                and (status.get("tags") or {}).get("default") == "mesh-1-31-1"
                and remote_status.get("Status") == "Unreachable"
            )

        asyncio.run(mesh.passes_until(primary_done_without_the_remote))
        rows = {r["name"] for r in mesh.istio["status"]["revisions"]}
        assert "mesh-1-31-0" in rows, "the old revision stays while the remote may use it"
    finally:
        clusters.workspace.start("istiod-remote")
    writes = asyncio.run(mesh.passes(lambda: mesh.remote["status"].get("version") == NEWER))
    assert writes == (0, 0)
    assert tag_targets(remote) == {"istio-revision-tag-default": "mesh-1-31-1"}
    asyncio.run(remove(clusters, mesh))
