"""The demo's istiod-family act: today's Istio from Istio's own charts, upgraded by canary.

7. Istio 1.31.0 (the older stand-in of the chart catalogue) by revision, on a cluster of
   its own; an echo and a web workload in a namespace labelled `istio-injection=enabled`.
8. The same resource at 1.31.1: the new revision beside the old one, the `default` tag
   moved to it once its istiod is available.
9. The workloads migrate in batches of one (`updateStrategy.workloadMigration`).
10. Nothing uses the old revision any more: it is removed after its grace period.

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
from istio_operator.kube.blocking import BlockingClient

OLDER, NEWER = "1.31.0", "1.31.1"
NAMESPACE, APPS = "istio-system", "apps"
OLD_REVISION, NEW_REVISION = "mesh-1-31-0", "mesh-1-31-1"
WEBHOOKS = "admissionregistration.k8s.io/v1"
INJECTED = "sidecar.istio.io/status"


@dataclass
class Act:
    """The act's cluster, its client and its operator process."""

    kubeconfig: Path
    workdir: Path
    timeout: float
    client: BlockingClient
    operator: subprocess.Popen[bytes] | None = None


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


def revisions_table(found: dict[str, Any]) -> list[str]:
    rows = [
        f"{r['name']:<13} {r['version']:<8} {'active' if r.get('active') else 'kept':<7} "
        f"{r['inUse']['namespaces']} namespaces, {r['inUse']['pods']} pods"
        for r in found.get("revisions") or []
    ]
    return [f"  {row}" for row in rows]
