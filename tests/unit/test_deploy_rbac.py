"""The operator's RBAC is derived from what it renders: nothing missing, nothing extra.

The rules are recomputed here from the renderer (every optional component on, both
Istio families, with and without mTLS and mesh expansion) and from the operator's own
needs, and compared with deploy/base's ClusterRole, the chart's copy of it and
deploy/remote's ClusterRole.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

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

ROOT = Path(__file__).parent.parent.parent
DEPLOY = ROOT / "deploy"
SAMPLES = ROOT / "tests" / "fixtures" / "samples"

Rules = dict[tuple[str, str], frozenset[str]]  # (apiGroup, resource) -> verbs

READ = frozenset({"get", "list", "watch"})
APPLY = READ | {"create", "patch"}  # server-side apply may create
OWN = APPLY | {"delete"}  # pruned when no longer desired
# (Cluster)Roles that hold more than the operator does can be written only with
# `escalate` and bound only with `bind`.
PRIVILEGED_ROLES = frozenset({"bind", "escalate"})
ROLE_KINDS = {("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "clusterroles")}
# Istio's CRDs (users' configuration lives in them) and a remote's control-plane namespace.
NEVER_PRUNED = {("apiextensions.k8s.io", "customresourcedefinitions"), ("", "namespaces")}

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
IMAGE_FIELDS = ("pilot", "citadel", "galley", "mixer", "sidecarInjector", "nodeAgent")

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
# On a remote the operator only applies, prunes and labels namespaces.
OPERATOR_ON_REMOTE: Rules = {("", "namespaces"): frozenset({"get", "list", "watch", "patch"})}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def all_on_spec(version: str, mtls: bool, mesh_expansion: bool) -> dict[str, Any]:
    """The reference sample with every optional component switched on."""
    body = copy.deepcopy(load_yaml(SAMPLES / "istio_v1beta1_istio.yaml"))
    body["metadata"]["namespace"] = "istio-system"
    spec = body["spec"]
    spec.update(
        version=version,
        mtls=mtls,
        meshExpansion=mesh_expansion,
        multiMesh=True,
        controlPlaneSecurityEnabled=True,
    )
    for component in OPTIONAL_COMPONENTS:
        spec.setdefault(component, {})["enabled"] = True
    for component in IMAGE_FIELDS:  # the version's own images
        spec[component].pop("image", None)
    gateways = spec["gateways"]
    gateways.setdefault("k8singress", {})["enabled"] = True
    for gateway in ("ingress", "egress"):
        gateways.setdefault(gateway, {})["enabled"] = True
        gateways[gateway]["sds"] = {"enabled": True}
    spec["sidecarInjector"].setdefault("initCNIConfiguration", {})["enabled"] = True
    return body


def remote_sample() -> dict[str, Any]:
    body = load_yaml(SAMPLES / "istio_v1beta1_remoteistio.yaml")
    body["metadata"]["namespace"] = "istio-system"
    return dict(body)


VARIANTS = [
    all_on_spec(version, mtls, expansion)
    for version, mtls, expansion in itertools.product(
        ("1.2.8", "1.3.8"), (False, True), (False, True)
    )
]
REMOTE_FACTS = PrimaryFacts(
    ca_secret_data={"ca-cert.pem": "Y2E=", "ca-key.pem": "a2V5"},
    ingress_gateway_addresses=("192.0.2.10",),
    service_ports={
        s["name"]: [PortFact("grpc", 15010)] for s in remote_sample()["spec"]["enabledServices"]
    },
    service_pod_ips={s["name"]: ["10.0.0.1"] for s in remote_sample()["spec"]["enabledServices"]},
)


def rendered_primary() -> list[DesiredObject]:
    sample = load_yaml(SAMPLES / "istio_v1beta1_istio.yaml")
    sample["metadata"]["namespace"] = "istio-system"
    objects = render_primary(load_istio(sample).resource)
    for body in VARIANTS:
        objects += render_primary(
            load_istio(body).resource,
            remote_networks=[RemoteNetwork("remote", ("192.0.2.20",))],
            primary_gateway_addresses=("192.0.2.10",),
        )
    return objects


def rendered_remote() -> list[DesiredObject]:
    remote = load_remote_istio(remote_sample()).resource
    return [
        obj
        for body in VARIANTS
        for obj in render_remote(load_istio(body).resource, remote, REMOTE_FACTS)
    ]


def resource_of(api_version: str, kind: str) -> tuple[str, str]:
    """(apiGroup, plural) from lightkube's models and the rendered Istio CRDs."""
    info = resource_class(api_version, kind)._api_info
    return info.resource.group, info.plural


def merge(*parts: Mapping[tuple[str, str], Iterable[str]]) -> Rules:
    merged: dict[tuple[str, str], set[str]] = {}
    for part in parts:
        for key, verbs in part.items():
            merged.setdefault(key, set()).update(verbs)
    return {key: frozenset(verbs) for key, verbs in merged.items()}


def required(objects: list[DesiredObject], operator: Rules) -> Rules:
    register_crds(o.manifest for o in objects if o.kind == CRD_KIND)
    written = {resource_of(o.api_version, o.kind) for o in objects}
    owned = {resource_of(api_version, kind) for api_version, kind in MANAGED_KINDS}
    rules: dict[tuple[str, str], Iterable[str]] = dict.fromkeys(owned, READ)  # pruning lists
    for key in written:
        rules[key] = APPLY if key in NEVER_PRUNED else OWN
    for key in written & ROLE_KINDS:
        rules[key] = set(rules[key]) | PRIVILEGED_ROLES
    return merge(rules, operator)


def granted(role: Mapping[str, Any]) -> Rules:
    rules: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, f"unexpected keys in {rule}"
        for group, resource in itertools.product(rule["apiGroups"], rule["resources"]):
            rules.setdefault((group, resource), set()).update(rule["verbs"])
    return {key: frozenset(verbs) for key, verbs in rules.items()}


def describe(diff: Rules) -> list[str]:
    return [f"{g or 'core'}/{r}: {sorted(v)}" for (g, r), v in sorted(diff.items()) if v]


def assert_exactly(role: Mapping[str, Any], expected: Rules) -> None:
    actual = granted(role)
    missing = {k: v - actual.get(k, frozenset()) for k, v in expected.items()}
    extra = {k: v - expected.get(k, frozenset()) for k, v in actual.items()}
    assert not describe(missing), f"{role['metadata']['name']} lacks {describe(missing)}"
    assert not describe(extra), f"{role['metadata']['name']} grants more: {describe(extra)}"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def cluster_role(path: Path) -> dict[str, Any]:
    (role,) = [doc for doc in documents(path) if doc["kind"] == "ClusterRole"]
    return role


def chart_cluster_role() -> dict[str, Any]:
    """The chart's template, with its templated metadata cut off (the rules are static)."""
    text = (DEPLOY / "charts/istio-operator/templates/clusterrole.yaml").read_text()
    assert "{{" not in text[text.index("\nrules:") :], "the chart's rules must stay static"
    return {"metadata": {"name": "chart"}, **yaml.safe_load(text[text.index("\nrules:") :])}


@pytest.fixture(scope="module")
def primary_objects() -> list[DesiredObject]:
    return rendered_primary()


def test_every_rendered_kind_is_one_the_operator_prunes(
    primary_objects: list[DesiredObject],
) -> None:
    managed = set(MANAGED_KINDS)
    unowned = {("v1", "Namespace")}  # never pruned, so never listed
    rendered = {(o.api_version, o.kind) for o in primary_objects + rendered_remote()}
    assert rendered - managed - unowned == set()


def test_base_cluster_role_grants_exactly_what_the_operator_needs(
    primary_objects: list[DesiredObject],
) -> None:
    expected = required(primary_objects, OPERATOR_ON_PRIMARY)
    assert_exactly(cluster_role(DEPLOY / "base/clusterrole.yaml"), expected)


def test_chart_cluster_role_has_the_base_rules() -> None:
    assert granted(chart_cluster_role()) == granted(cluster_role(DEPLOY / "base/clusterrole.yaml"))


def test_remote_cluster_role_grants_exactly_what_reconciling_a_remote_needs() -> None:
    expected = required(rendered_remote(), OPERATOR_ON_REMOTE)
    assert_exactly(cluster_role(DEPLOY / "remote/rbac.yaml"), expected)


@pytest.mark.parametrize(
    "path",
    [
        DEPLOY / "base/clusterrole.yaml",
        DEPLOY / "base/leader-election-role.yaml",
        DEPLOY / "remote/rbac.yaml",
    ],
)
def test_no_wildcards(path: Path) -> None:
    for doc in documents(path):
        for rule in doc.get("rules", []):
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{path.name}: `*` in {field} of {rule}"
            assert not any(r.endswith("/*") for r in rule["resources"]), rule


def test_leader_election_is_limited_to_leases_in_the_operators_namespace() -> None:
    role, binding = documents(DEPLOY / "base/leader-election-role.yaml")
    assert role["kind"] == "Role"
    assert granted(role) == {
        ("coordination.k8s.io", "leases"): frozenset({"get", "create", "update", "patch"})
    }
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
