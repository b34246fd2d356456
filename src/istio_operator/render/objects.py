"""The unit of render output: one Kubernetes object and the phase it belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from istio_operator.api.keys import ObjectKey, key_of
from istio_operator.render.phases import Phase

# Kinds rendered without a namespace.
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "MeshPolicy",
        "MutatingWebhookConfiguration",
        "Namespace",
        "ValidatingWebhookConfiguration",
    }
)


@dataclass(frozen=True)
class DesiredObject:
    """A fully rendered object, ready for server-side apply, and its rollout phase."""

    phase: Phase
    manifest: dict[str, Any]

    @property
    def api_version(self) -> str:
        return str(self.manifest["apiVersion"])

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        namespace = self.manifest["metadata"].get("namespace")
        return None if namespace is None else str(namespace)

    @property
    def group(self) -> str:
        """The API group ("" for the core group)."""
        return self.api_version.rpartition("/")[0]

    @property
    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = self.manifest["metadata"].get("labels", {})
        return labels

    @property
    def key(self) -> ObjectKey:
        """Identity of the object on a cluster."""
        return key_of(self.manifest)

    def __hash__(self) -> int:
        return hash(self.key)
