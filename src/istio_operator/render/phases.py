"""Rollout phases: the order in which rendered objects reach a cluster.

The reconcile layer applies one phase at a time and waits for its workloads
before starting the next, so a phase only ever depends on earlier ones.
"""

from __future__ import annotations

import enum


class Phase(enum.IntEnum):
    """Ordered rollout phases; comparing two phases compares their order."""

    # Istio's own CustomResourceDefinitions; Established before anything else.
    CRDS = 0
    # Namespace-level shared objects: the mesh ConfigMap, remote service mirrors, ...
    BASE = 1
    CITADEL = 2
    GALLEY = 3
    PILOT = 4
    # istiod family: istiod of a revision (its Deployment, Service, webhooks, RBAC).
    ISTIOD = 5
    # istiod family: what moves to a revision once its istiod is available (the revision
    # tags' webhooks and Services, the default revision's validator).
    REVISION_TAGS = 6
    MIXER = 7
    SIDECAR_INJECTOR = 8
    GATEWAYS = 9
    # Node agent, CNI, Istio CoreDNS, mixerless-telemetry EnvoyFilters; the istiod
    # family's CNI and ztunnel.
    ADDONS = 10

    @property
    def label(self) -> str:
        """The value of the phase label on objects of this phase."""
        return self.name.lower().replace("_", "-")

    @classmethod
    def from_label(cls, value: str) -> Phase:
        """The phase whose `label` is `value`."""
        for phase in cls:
            if phase.label == value:
                return phase
        raise ValueError(f"unknown phase label {value!r}")
