"""The `istio-injection=enabled` label on the resource's auto-injection namespaces.

As the reference operator does, namespaces the operator labels also carry
`istio-operator-managed-injection=enabled`, and an annotation names the owning resource.
The label is taken back when a namespace leaves the list, the sidecar injector is
switched off, or the resource goes; namespaces a user labelled by hand are left alone.
A namespace the reference labelled (the managed label, no owner) is taken over: kept
labelled if listed, unlabelled if not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from istio_operator.api.keys import key_of
from istio_operator.api.labels import GROUP
from istio_operator.kube.protocol import ClusterAccess
from istio_operator.plan.model import MeshPlan

INJECTION_LABEL = "istio-injection"
MANAGED_INJECTION_LABEL = "istio-operator-managed-injection"
INJECTION_OWNER = f"{GROUP}/injection-owner"


def injection_namespaces(plan: MeshPlan) -> list[str]:
    """The namespaces to label: none while the sidecar injector is off (nothing would
    inject their pods)."""
    return list(plan.autoInjectionNamespaces) if plan.sidecarInjector.enabled else []


def _labelled(name: str, owner: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {INJECTION_LABEL: "enabled", MANAGED_INJECTION_LABEL: "enabled"},
            "annotations": {INJECTION_OWNER: owner},
        },
    }


# A merge patch, not an apply: the reference's labels were written by another field
# manager, so giving up our own fields would leave them.
UNLABEL = {
    "metadata": {
        "labels": {INJECTION_LABEL: None, MANAGED_INJECTION_LABEL: None},
        "annotations": {INJECTION_OWNER: None},
    }
}


def _claim(meta: Mapping[str, Any], owner: str) -> tuple[bool, bool]:
    """(ours or the reference's to manage, already labelled by us exactly)."""
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    claimed_by = annotations.get(INJECTION_OWNER)
    managed = labels.get(MANAGED_INJECTION_LABEL) == "enabled"
    ours = claimed_by == owner or (claimed_by is None and managed)
    exact = claimed_by == owner and managed and labels.get(INJECTION_LABEL) == "enabled"
    return ours, exact


async def reconcile_injection_labels(
    cluster: ClusterAccess, name: str, namespace: str, wanted: Sequence[str]
) -> None:
    owner = f"{namespace}/{name}"
    for ns in await cluster.list_all("v1", "Namespace"):
        meta = ns.get("metadata") or {}
        ours, exact = _claim(meta, owner)
        if meta.get("name") in wanted and not exact:
            await cluster.apply(_labelled(meta["name"], owner))
        elif meta.get("name") not in wanted and ours:
            await cluster.merge_patch(key_of(ns), UNLABEL)
