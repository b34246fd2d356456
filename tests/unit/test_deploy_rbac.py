"""The operator's RBAC is derived from what it renders: nothing missing, nothing extra.

The rules come from `istio_operator.reconcile.rbac` (the renderer with every optional
component on, both Istio families, with and without mTLS and mesh expansion, plus the
operator's own needs), which `istio-operator remote-access` also applies; they are
compared with deploy/base's ClusterRole, the chart's copy of it and deploy/remote's
ClusterRole, and recomputed from the reference samples as a cross-check.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from istio_operator.api.parse import load_istio, load_remote_istio
from istio_operator.reconcile.access import remote_manifests
from istio_operator.reconcile.kinds import MANAGED_KINDS
from istio_operator.reconcile.rbac import (
    OPERATOR_ON_PRIMARY,
    OPERATOR_ON_REMOTE,
    OPTIONAL_COMPONENTS,
    Rules,
    policy_rules,
    primary_rules,
    remote_rules,
    required,
)
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

IMAGE_FIELDS = ("pilot", "citadel", "galley", "mixer", "sidecarInjector", "nodeAgent")


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


def test_base_cluster_role_grants_exactly_what_the_operator_needs() -> None:
    assert_exactly(cluster_role(DEPLOY / "base/clusterrole.yaml"), primary_rules())


def test_the_derivation_covers_what_the_reference_samples_render(
    primary_objects: list[DesiredObject],
) -> None:
    assert required(primary_objects, OPERATOR_ON_PRIMARY) == primary_rules()
    assert required(rendered_remote(), OPERATOR_ON_REMOTE) == remote_rules()


def test_chart_cluster_role_has_the_base_rules() -> None:
    assert granted(chart_cluster_role()) == granted(cluster_role(DEPLOY / "base/clusterrole.yaml"))


def test_remote_cluster_role_grants_exactly_what_reconciling_a_remote_needs() -> None:
    assert_exactly(cluster_role(DEPLOY / "remote/rbac.yaml"), remote_rules())


def test_remote_access_applies_exactly_the_remote_rules() -> None:
    _, role, binding = remote_manifests("istio-system")
    assert role["kind"] == "ClusterRole"
    assert_exactly(role, remote_rules())
    assert granted(role) == granted(cluster_role(DEPLOY / "remote/rbac.yaml"))
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "istio-operator", "namespace": "istio-system"}
    ]
    for rule in role["rules"]:
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule


def test_policy_rules_group_resources_by_group_and_verbs() -> None:
    rules: Rules = {
        ("", "pods"): frozenset({"get", "list"}),
        ("", "services"): frozenset({"list", "get"}),
        ("apps", "deployments"): frozenset({"get"}),
        ("", "events"): frozenset(),
    }
    assert policy_rules(rules) == [
        {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
    ]


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
