"""plan layer: one cluster's control plane, every setting resolved (see `plan.model`)."""

from istio_operator.plan.model import MeshPlan
from istio_operator.plan.resolve import (
    control_plane_namespace,
    resolve_primary,
    resolve_remote,
)

__all__ = ["MeshPlan", "control_plane_namespace", "resolve_primary", "resolve_remote"]
