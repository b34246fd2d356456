"""The RBAC rules the operator needs, derived from what it renders.

Every kind the renderer can produce (every optional component on, both Istio
families, with and without mTLS and mesh expansion) gets get/list/watch (live
state, owned objects found by label), create+patch (server-side apply) and
delete (pruning), except the kinds that are never pruned. The other kinds the
operator may own (`MANAGED_KINDS`) are only read: every reconcile lists them
for objects to prune. Writing and binding Istio's (Cluster)Roles, which hold
permissions the operator does not, needs `escalate` and `bind` on them.

`remote_rules()` is what `istio-operator remote-access` grants on a remote
cluster; deploy/base and deploy/remote are checked against the same functions.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from istio_operator.api.labels import API_VERSION
from istio_operator.api.parse import load_istio, load_remote_istio
from istio_operator.kube.resources import register_crds, resource_class
from istio_operator.reconcile.kinds import CRD_KIND, MANAGED_KINDS
from istio_operator.render import (
    DesiredObject,
    PortFact,
    PrimaryFacts,
    RemoteNetwork,
    render_primary,
    render_remote,
)

Rules = Mapping[tuple[str, str], frozenset[str]]  # (apiGroup, resource) -> verbs

READ = frozenset({"get", "list", "watch"})
APPLY = READ | {"create", "patch"}  # server-side apply may create
OWN = APPLY | {"delete"}  # pruned when no longer desired
# (Cluster)Roles that hold more than the operator does can be written only with
# `escalate` and bound only with `bind`.
PRIVILEGED_ROLES = frozenset({"bind", "escalate"})
ROLE_KINDS = frozenset(
    {("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "clusterroles")}
)
# Istio's CRDs (users' configuration lives in them) and a remote's control-plane namespace.
NEVER_PRUNED = frozenset(
    {("apiextensions.k8s.io", "customresourcedefinitions"), ("", "namespaces")}
)

# What the operator does on the primary beyond applying what it renders.
OPERATOR_ON_PRIMARY: Rules = {
    # kopf watches its resources and patches finalizers and annotations onto them.
    ("istio.banzaicloud.io", "istios"): frozenset({"get", "list", "watch", "patch"}),
    ("istio.banzaicloud.io", "remoteistios"): frozenset({"get", "list", "watch", "patch"}),
    ("istio.banzaicloud.io", "istios/status"): frozenset({"get", "patch"}),
    ("istio.banzaicloud.io", "remoteistios/status"): frozenset({"get", "patch"}),
    # ownerReferences with blockOwnerDeletion need `update` on the owner's finalizers.
    ("istio.banzaicloud.io", "istios/finalizers"): frozenset({"update"}),
    ("istio.banzaicloud.io", "remoteistios/finalizers"): frozenset({"update"}),
    # The istio-injection label of the auto-injection namespaces.
    ("", "namespaces"): frozenset({"get", "list", "watch", "patch"}),
    # Remote kubeconfigs and the primary's CA; the istio/multiCluster label.
    ("", "secrets"): frozenset({"get", "list", "watch", "patch"}),
    # Pod IPs behind the primary's services (flat-network remotes), sidecar versions.
    ("", "pods"): READ,
    ("", "events"): frozenset({"create", "patch"}),
}
# On a remote the operator applies, prunes and labels namespaces; `istio-operator status`
# reads the sidecar versions of the remote's pods with the same identity.
OPERATOR_ON_REMOTE: Rules = {
    ("", "namespaces"): frozenset({"get", "list", "watch", "patch"}),
    ("", "pods"): READ,
}

OPTIONAL_COMPONENTS = (
    "pilot",
    "citadel",
    "galley",
    "gateways",
    "mixer",
    "policy",
    "telemetry",
    "sidecarInjector",
    "nodeAgent",
    "sds",
    "tracing",
    "defaultPodDisruptionBudget",
    "istioCoreDNS",
    "mixerlessTelemetry",
    "localityLB",
)
# One release of each family the operator supports.
FAMILY_RELEASES = ("1.2.8", "1.3.8")
_NAMESPACE = "istio-system"
_SERVICE = "istio-pilot"


def all_on_istio(version: str, mtls: bool, mesh_expansion: bool) -> dict[str, Any]:
    """An Istio resource with every optional component switched on."""
    spec: dict[str, Any] = {
        "version": version,
        "mtls": mtls,
        "meshExpansion": mesh_expansion,
        "multiMesh": True,
        "controlPlaneSecurityEnabled": True,
    }
    for component in OPTIONAL_COMPONENTS:
        spec[component] = {"enabled": True}
    spec["gateways"] = {
        "enabled": True,
        "k8singress": {"enabled": True},
        "ingress": {"enabled": True, "sds": {"enabled": True}},
        "egress": {"enabled": True, "sds": {"enabled": True}},
    }
    spec["sidecarInjector"]["initCNIConfiguration"] = {"enabled": True}
    return {
        "apiVersion": API_VERSION,
        "kind": "Istio",
        "metadata": {"name": "istio", "namespace": _NAMESPACE},
        "spec": spec,
    }


def all_on_remote() -> dict[str, Any]:
    """A RemoteIstio with citadel and the sidecar injector on and one mirrored service."""
    return {
        "apiVersion": API_VERSION,
        "kind": "RemoteIstio",
        "metadata": {"name": "remote", "namespace": _NAMESPACE},
        "spec": {
            "enabledServices": [{"name": _SERVICE, "labelSelector": "istio=pilot"}],
            "citadel": {"enabled": True},
            "sidecarInjector": {"enabled": True},
        },
    }


def all_on_variants() -> list[dict[str, Any]]:
    return [
        all_on_istio(version, mtls, expansion)
        for version, mtls, expansion in itertools.product(
            FAMILY_RELEASES, (False, True), (False, True)
        )
    ]


def rendered_primary_variants() -> list[DesiredObject]:
    return [
        obj
        for body in all_on_variants()
        for obj in render_primary(
            load_istio(body).resource,
            remote_networks=[RemoteNetwork("remote", ("192.0.2.20",))],
            primary_gateway_addresses=("192.0.2.10",),
        )
    ]


def rendered_remote_variants() -> list[DesiredObject]:
    remote = load_remote_istio(all_on_remote()).resource
    facts = PrimaryFacts(
        ca_secret_data={"ca-cert.pem": "Y2E=", "ca-key.pem": "a2V5"},
        ingress_gateway_addresses=("192.0.2.10",),
        service_ports={_SERVICE: [PortFact("grpc", 15010)]},
        service_pod_ips={_SERVICE: ["10.0.0.1"]},
    )
    return [
        obj
        for body in all_on_variants()
        for obj in render_remote(load_istio(body).resource, remote, facts)
    ]


def resource_of(api_version: str, kind: str) -> tuple[str, str]:
    """(apiGroup, plural) from lightkube's models and the rendered Istio CRDs."""
    info = resource_class(api_version, kind)._api_info
    return str(info.resource.group), str(info.plural)


def merge(*parts: Mapping[tuple[str, str], Iterable[str]]) -> dict[tuple[str, str], frozenset[str]]:
    merged: dict[tuple[str, str], set[str]] = {}
    for part in parts:
        for key, verbs in part.items():
            merged.setdefault(key, set()).update(verbs)
    return {key: frozenset(verbs) for key, verbs in merged.items()}


def required(
    objects: Sequence[DesiredObject], operator: Rules
) -> dict[tuple[str, str], frozenset[str]]:
    """What applying, pruning and reading `objects` needs, plus the operator's own rules."""
    _register_istio_kinds()
    register_crds(o.manifest for o in objects if o.kind == CRD_KIND)
    written = {resource_of(o.api_version, o.kind) for o in objects}
    owned = {resource_of(api_version, kind) for api_version, kind in MANAGED_KINDS}
    rules: dict[tuple[str, str], Iterable[str]] = dict.fromkeys(owned, READ)  # pruning lists
    for key in written:
        rules[key] = APPLY if key in NEVER_PRUNED else OWN
    for key in written & ROLE_KINDS:
        rules[key] = set(rules[key]) | PRIVILEGED_ROLES
    return merge(rules, operator)


@functools.cache
def primary_rules() -> Rules:
    """What the operator needs on the primary cluster (deploy/base's ClusterRole)."""
    return required(rendered_primary_variants(), OPERATOR_ON_PRIMARY)


@functools.cache
def remote_rules() -> Rules:
    """What the operator needs on a remote cluster (deploy/remote, `remote-access`)."""
    return required(rendered_remote_variants(), OPERATOR_ON_REMOTE)


def policy_rules(rules: Rules) -> list[dict[str, list[str]]]:
    """The rules as a ClusterRole's `rules`: resources with the same group and verbs
    together, sorted, so that the same rules always give the same manifest."""
    grouped: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (group, resource), verbs in rules.items():
        if verbs:
            grouped.setdefault((group, tuple(sorted(verbs))), []).append(resource)
    return [
        {"apiGroups": [group], "resources": sorted(resources), "verbs": list(verbs)}
        for (group, verbs), resources in sorted(grouped.items())
    ]


def _register_istio_kinds() -> None:
    """Istio's own kinds (MANAGED_KINDS lists them) come from the rendered CRDs."""
    crds = render_primary(load_istio(all_on_variants()[0]).resource)
    register_crds(o.manifest for o in crds if o.kind == CRD_KIND)
