"""The `istio-injection=enabled` label on the resource's auto-injection namespaces.

Namespaces the operator labelled carry an annotation naming the owner, so the
label is taken back when a namespace leaves the list or the resource goes,
without touching namespaces a user labelled by hand.
"""

from __future__ import annotations

from collections.abc import Sequence

from istio_operator.api.labels import GROUP
from istio_operator.kube.client import Cluster

INJECTION_LABEL = "istio-injection"
INJECTION_OWNER = f"{GROUP}/injection-owner"


def _namespace(name: str, owner: str | None) -> dict[str, object]:
    metadata: dict[str, object] = {"name": name}
    if owner is not None:
        metadata["labels"] = {INJECTION_LABEL: "enabled"}
        metadata["annotations"] = {INJECTION_OWNER: owner}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


async def reconcile_injection_labels(
    cluster: Cluster, name: str, namespace: str, wanted: Sequence[str]
) -> None:
    owner = f"{namespace}/{name}"
    namespaces = await cluster.list_all("v1", "Namespace")
    for ns in namespaces:
        meta = ns.get("metadata") or {}
        ours = (meta.get("annotations") or {}).get(INJECTION_OWNER) == owner
        labelled = (meta.get("labels") or {}).get(INJECTION_LABEL) == "enabled"
        if meta.get("name") in wanted and not (ours and labelled):
            await cluster.apply(_namespace(meta["name"], owner))
        elif meta.get("name") not in wanted and ours:
            # Applying the bare name gives up our label and annotation: the server removes them.
            await cluster.apply(_namespace(meta["name"], None))
