"""The demo's istiod-family act: today's Istio from Istio's own charts, upgraded by canary.

7. Istio 1.31.0 (the older stand-in of the chart catalogue) by revision, on a primary of
   its own and a remote joined by a `RemoteIstio`; workloads on both, in namespaces
   labelled `istio-injection=enabled`.
8. The same resource at 1.31.1: the new revision beside the old one on both clusters, the
   `default` tag moved on both once the remote has the new revision too.
9. The workloads migrate in batches of one (`updateStrategy.workloadMigration`), on the
   primary, then on the remote.
10. Nothing uses the old revision any more: it is removed from both clusters.

No istiod process runs on fake nodes, so nothing would answer the injection webhook: the
act's cluster calls no admission webhook, and the demo labels each new pod as istiod's
injector would (the revision its namespace's tag points at). Everything else is the
operator's own doing.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from istio_operator.api.keys import ObjectKey
from istio_operator.api.labels import API_VERSION, REVISION
from istio_operator.cli.status import columns
from istio_operator.kube.blocking import BlockingClient

OLDER, NEWER = "1.31.0", "1.31.1"
NAMESPACE, APPS = "istio-system", "apps"
OLD_REVISION, NEW_REVISION = "mesh-1-31-0", "mesh-1-31-1"
WEBHOOKS = "admissionregistration.k8s.io/v1"
INJECTED = "sidecar.istio.io/status"


REMOTE = "west"


@dataclass
class Act:
    """The act's clusters (a primary and a remote), their clients, the operator process."""

    kubeconfig: Path
    workdir: Path
    timeout: float
    client: BlockingClient
    remote: BlockingClient
    operator: subprocess.Popen[bytes] | None = None

    @property
    def clusters(self) -> dict[str, BlockingClient]:
        return {"primary": self.client, REMOTE: self.remote}


def remote_istio() -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "RemoteIstio",
        "metadata": {"name": REMOTE, "namespace": NAMESPACE},
        "spec": {"enabledServices": []},
    }


def statuses(act: Act) -> dict[str, dict[str, Any]]:
    """The Istio resource's status and the RemoteIstio's, by cluster."""
    remote = act.client.get(ObjectKey(API_VERSION, "RemoteIstio", NAMESPACE, REMOTE)) or {}
    return {"primary": status(act), REMOTE: dict(remote.get("status") or {})}


def istio(version: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Istio",
        "metadata": {"name": "mesh", "namespace": NAMESPACE},
        "spec": {
            "version": version,
            "profile": "default",
            "updateStrategy": {
                "type": "RevisionBased",
                "inactiveRevisionDeletionGracePeriodSeconds": 5,
                "workloadMigration": {"enabled": True, "batchSize": 1},
            },
        },
    }


def workload(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": APPS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": name, "image": f"example/{name}:1"}]},
            },
        },
    }


def status(act: Act) -> dict[str, Any]:
    found = act.client.get(ObjectKey(API_VERSION, "Istio", NAMESPACE, "mesh")) or {}
    return dict(found.get("status") or {})


def default_tag_target(client: BlockingClient) -> str:
    key = ObjectKey(WEBHOOKS, "MutatingWebhookConfiguration", "", "istio-revision-tag-default")
    labels = ((client.get(key) or {}).get("metadata") or {}).get("labels") or {}
    return str(labels.get(REVISION, ""))


def inject(client: BlockingClient) -> None:
    """istiod's injector, stood in for: each new pod of the namespace is labelled with the
    revision the `default` tag points at, and annotated as injected."""
    revision = default_tag_target(client)
    if not revision:
        return
    for pod in client.list("v1", "Pod", APPS):
        meta = pod["metadata"]
        if INJECTED in (meta.get("annotations") or {}) or meta.get("deletionTimestamp"):
            continue
        client.apply(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": meta["name"],
                    "namespace": APPS,
                    "labels": {"istio.io/rev": revision},
                    "annotations": {INJECTED: '{"containers":["istio-proxy"]}'},
                },
            },
            force=True,
        )


def pods_by_revision(client: BlockingClient) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pod in client.list("v1", "Pod", APPS):
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            continue
        revision = (meta.get("labels") or {}).get("istio.io/rev", "-")
        counts[revision] = counts.get(revision, 0) + 1
    return counts


def revisions_table(found: dict[str, dict[str, Any]]) -> list[str]:
    """Each cluster's revisions and what uses them, from the resources' statuses."""
    rows = [
        [
            cluster,
            r["name"],
            r["version"],
            "active" if r.get("active") else "kept",
            str(r["inUse"]["namespaces"]),
            str(r["inUse"]["pods"]),
        ]
        for cluster, seen in found.items()
        for r in seen.get("revisions") or []
    ]
    headers = ("CLUSTER", "REVISION", "VERSION", "STATE", "NAMESPACES", "PODS")
    return columns(headers, rows, indent="    ")
