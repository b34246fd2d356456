"""HorizontalPodAutoscalers and PodDisruptionBudgets of scalable control-plane Deployments."""

from __future__ import annotations

from collections.abc import Mapping

from istio_operator.api.errors import SpecError
from istio_operator.render import builders as b
from istio_operator.render.builders import Manifest
from istio_operator.render.context import Context


def autoscaler(
    ctx: Context,
    deployment_name: str,
    labels: Mapping[str, str],
    min_replicas: int | None,
    max_replicas: int | None,
    path: str,
) -> Manifest:
    """The HPA `<deployment>-autoscaler`; its Deployment must then leave `replicas` unset."""
    low = max(min_replicas or 1, 1)
    high = max_replicas or low
    if high < low:
        raise SpecError(f"{path}.maxReplicas", f"must be at least minReplicas ({low}), not {high}")
    return b.horizontal_pod_autoscaler(
        f"{deployment_name}-autoscaler", ctx.namespace, labels, deployment_name, low, high
    )


def disruption_budget(
    ctx: Context, name: str, labels: Mapping[str, str], selector: Mapping[str, str]
) -> list[Manifest]:
    """A PDB keeping one pod up, when the spec asks for default disruption budgets."""
    if not ctx.pdb_enabled:
        return []
    return [b.pod_disruption_budget(name, ctx.namespace, labels, selector)]
