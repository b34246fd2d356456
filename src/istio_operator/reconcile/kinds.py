"""Every kind the renderer can produce: where pruning and deletion look for owned objects."""

from __future__ import annotations

import functools

from istio_operator.kube.resources import register_crds
from istio_operator.render.crds import ISTIO_CRDS, crd_manifest

CRD_KIND = "CustomResourceDefinition"

MANAGED_KINDS: tuple[tuple[str, str], ...] = (
    ("apiextensions.k8s.io/v1", CRD_KIND),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("v1", "Endpoints"),
    # The istiod family's remote profile: the EndpointSlice of each `istiod-<rev>` Service,
    # at the primary's east-west gateway. The slices Kubernetes' EndpointSlice controllers
    # make for our Services (from their selectors, or mirrored from our Endpoints) copy the
    # labels of the Service (or Endpoints), ours included, so they are listed as owned;
    # but the prune deletes only what our field manager applied (`kube.objects`,
    # `applied_by_us`), and kube-controller-manager writes theirs, so they are never
    # pruned; nor swept (`takeover.reference_leftovers`: their controller is the Service,
    # not an Istio resource).
    ("discovery.k8s.io/v1", "EndpointSlice"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    # What a superseded workload ran, until its replacement is available (see takeover).
    ("apps/v1", "ReplicaSet"),
    ("v1", "Pod"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
    # The istiod family's charts, with some profiles.
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding"),
    ("authentication.istio.io/v1alpha1", "MeshPolicy"),
    ("authentication.istio.io/v1alpha1", "Policy"),
    ("networking.istio.io/v1alpha3", "DestinationRule"),
    ("networking.istio.io/v1alpha3", "Gateway"),
    ("networking.istio.io/v1alpha3", "VirtualService"),
    ("networking.istio.io/v1alpha3", "ServiceEntry"),
    ("networking.istio.io/v1alpha3", "EnvoyFilter"),
    ("config.istio.io/v1alpha2", "attributemanifest"),
    ("config.istio.io/v1alpha2", "handler"),
    ("config.istio.io/v1alpha2", "instance"),
    ("config.istio.io/v1alpha2", "rule"),
)


@functools.cache
def register_managed_kinds() -> None:
    """Makes Istio's own kinds known to the client from the CRDs the families render.

    Done before any listing, not when a reconcile happens to render them: an operator
    that starts and at once deletes an `Istio` must find its MeshPolicy and mixer rules.
    """
    register_crds(crd_manifest(crd) for crd in ISTIO_CRDS)
