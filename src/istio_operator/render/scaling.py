"""HorizontalPodAutoscalers and PodDisruptionBudgets of scalable control-plane Deployments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from istio_operator.plan.resolve import replica_bounds
from istio_operator.render import builders as b
from istio_operator.render.builders import Manifest
from istio_operator.render.context import Context


class Scaled(Protocol):
    @property
    def minReplicas(self) -> int: ...
    @property
    def maxReplicas(self) -> int: ...


def autoscaler(
    ctx: Context, deployment_name: str, labels: Mapping[str, str], scaled: Scaled
) -> Manifest:
    """The HPA `<deployment>-autoscaler`; its Deployment must then leave `replicas` unset.

    The plan has refused bounds that cross (`plan.resolve.check_replicas`).
    """
    low, high = replica_bounds(scaled.minReplicas, scaled.maxReplicas)
    return b.horizontal_pod_autoscaler(
        f"{deployment_name}-autoscaler", ctx.namespace, labels, deployment_name, low, high
    )


def disruption_budget(
    ctx: Context, name: str, labels: Mapping[str, str], selector: Mapping[str, str]
) -> list[Manifest]:
    """A PDB keeping one pod up, when the spec asks for default disruption budgets."""
    if not ctx.plan.defaultPodDisruptionBudget.enabled:
        return []
    return [b.pod_disruption_budget(name, ctx.namespace, labels, selector)]
