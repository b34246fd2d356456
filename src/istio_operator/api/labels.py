"""Labels and annotations that mark what the operator owns.

Pruning and deletion find objects by these labels alone, on every cluster, so
a restarted operator knows what it created without any in-memory state.
"""

from __future__ import annotations

GROUP = "istio.banzaicloud.io"
API_VERSION = f"{GROUP}/v1beta1"
FIELD_MANAGER = "istio-operator"

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "istio-operator"
# The owning Istio resource; objects that must outlive it (Istio's own CRDs) lack these.
OWNER_NAME = f"{GROUP}/owner-name"
OWNER_NAMESPACE = f"{GROUP}/owner-namespace"
# Set on objects rendered for a remote cluster: the RemoteIstio they belong to.
REMOTE = f"{GROUP}/remote"
# The rollout phase an object belongs to (see render.phases).
PHASE = f"{GROUP}/phase"


def ownership_labels(owner_name: str, owner_namespace: str) -> dict[str, str]:
    """Labels every object owned by one Istio resource carries."""
    return {
        MANAGED_BY: MANAGED_BY_VALUE,
        OWNER_NAME: owner_name,
        OWNER_NAMESPACE: owner_namespace,
    }


def owner_selector(owner_name: str, owner_namespace: str) -> str:
    """A label selector matching every object owned by one Istio resource."""
    return ",".join(f"{k}={v}" for k, v in ownership_labels(owner_name, owner_namespace).items())


# istiod family: the revision an object belongs to ("" with InPlace: the default one), and
# the Istio version that revision runs (what a later pass needs to keep it as it is).
REVISION = f"{GROUP}/revision"
REVISION_VERSION = f"{GROUP}/istio-version"
