"""The operator's RBAC is derived from what it renders: nothing missing, nothing extra.

The rules come from `istio_operator.operations.rbac` (the classic renderer with every
optional component on, both classic families, with and without mTLS and mesh expansion;
the istiod family's charts of each catalogue version: on the primary each profile in place
and by revision, alone and with a remote, and a remote's secret; on a remote Istio's
`remote` profile of those revisions; plus the operator's own needs), which
`istio-operator remote-access` also applies; they are compared with deploy/base's
ClusterRole, the chart's copy of it and deploy/remote's ClusterRole, and recomputed from
the reference samples as a cross-check.

deploy/'s ClusterRoles cover the istiod family's charts of `ISTIOD_VERSIONS`, the versions
`make istio-charts` writes: where the catalogue lacks them, what depends on them is
skipped, saying so; the classic part is checked everywhere.
"""

from __future__ import annotations

import copy
import functools
import itertools
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from istio_operator.api.crd import generate_crds
from istio_operator.api.keys import ObjectKey
from istio_operator.api.parse import load_istio, load_remote_istio
from istio_operator.charts import Catalogue, ChartVersion, helm_binary
from istio_operator.kube.resources import register_crds
from istio_operator.localcluster.binaries import default_cache_dir
from istio_operator.operations import dataplane, inventory
from istio_operator.operations.access import remote_manifests
from istio_operator.operations.rbac import (
    ISTIOD_ON_REMOTE,
    ISTIOD_PROFILES,
    OPERATOR_ON_REMOTE,
    OPTIONAL_COMPONENTS,
    PRIMARY_USES,
    RBAC_GROUP,
    REMOTE_USES,
    STATUS_ON_EVERY_CLUSTER,
    Role,
    Rules,
    catalogue_charts,
    held_for_rendered_roles,
    istiod_plans,
    istiod_remote_plans,
    policy_rules,
    primary_rules,
    remote_rules,
    rendered_istiod_remote_variants,
    rendered_istiod_variants,
    rendered_primary_variants,
    rendered_remote_variants,
    required,
    resource_of,
    without_covered,
)
from istio_operator.operations.rbac import (
    istiod_variants as rbac_variants,
)
from istio_operator.plan.istiod import (
    IstiodPlan,
    resolve_istiod,
    resolve_istiod_remote,
    with_remotes,
)
from istio_operator.reconcile.istiod_remote import remote_secret
from istio_operator.reconcile.kinds import MANAGED_KINDS
from istio_operator.render import (
    DesiredObject,
    PortFact,
    PrimaryFacts,
    RemoteNetwork,
    render_primary,
    render_remote,
)
from istio_operator.render.istiod import render_istiod
from istio_operator.render.phases import Phase

# The helm `make k8s-binaries` builds, unless $HELM names another (the istiod renders).
os.environ.setdefault("HELM", str(default_cache_dir() / "helm"))

ROOT = Path(__file__).parent.parent.parent
DEPLOY = ROOT / "deploy"
SAMPLES = ROOT / "tests" / "fixtures" / "samples"

RBAC = RBAC_GROUP
IMAGE_FIELDS = ("pilot", "citadel", "galley", "mixer", "sidecarInjector", "nodeAgent")
# The istiod family's versions deploy/'s ClusterRoles are derived with: those
# `make istio-charts` writes (docs/istiod-charts.md). Derive them again when they change.
ISTIOD_VERSIONS = ("1.31.0", "1.31.1")


@functools.cache
def pinned_charts() -> tuple[ChartVersion, ...] | None:
    """The catalogue's charts of `ISTIOD_VERSIONS`, or None when it lacks one."""
    held = {charts.version: charts for charts in Catalogue.default().versions()}
    if not all(version in held for version in ISTIOD_VERSIONS):
        return None
    return tuple(held[version] for version in ISTIOD_VERSIONS)


def istiod_charts() -> tuple[ChartVersion, ...]:
    """The charts deploy/ is derived with; the test is skipped where they are missing."""
    charts = pinned_charts()
    if charts is None:
        held = [c.version for c in Catalogue.default().versions()] or ["nothing"]
        pytest.skip(
            f"the chart catalogue {Catalogue.default().root} holds {', '.join(held)}, not "
            f"Istio {', '.join(ISTIOD_VERSIONS)}: deploy/'s ClusterRoles cover the "
            "istiod family's charts of those versions, so they are checked only where they are "
            "(`make istio-charts`)"
        )
    return charts


def primary_role() -> Role:
    """deploy/base's ClusterRole as derived: the classic families and the pinned charts."""
    return primary_rules(istiod_charts())


def remote_role() -> Role:
    """deploy/remote's ClusterRole as derived: the classic families and the pinned charts."""
    return remote_rules(istiod_charts())


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
    return dict(body)


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


def istiod_spec(version: str, profile: str, revision_based: bool) -> dict[str, Any]:
    """The example of docs/istiod-family.md, in the given profile and update strategy."""
    strategy = {"type": "RevisionBased", "tags": ["canary"]} if revision_based else {}
    return {
        "apiVersion": "istio.banzaicloud.io/v1beta1",
        "kind": "Istio",
        "metadata": {"name": "mesh", "namespace": "istio-system"},
        "spec": {
            "version": version,
            "profile": profile,
            "updateStrategy": strategy or {"type": "InPlace"},
        },
    }


# The remote of the cross-check: a RemoteIstio beside the mesh, reached at a documentation
# address (the primary's east-west gateway).
ISTIOD_REMOTE_BODY = {
    "apiVersion": "istio.banzaicloud.io/v1beta1",
    "kind": "RemoteIstio",
    "metadata": {"name": "remote", "namespace": "istio-system"},
    "spec": {"enabledServices": []},
}
PILOT_ADDRESS = "192.0.2.1"

IstiodRender = tuple[str, list[DesiredObject]]  # (the variant, its objects)
IstiodVariant = tuple[str, ChartVersion, IstiodPlan]


def istiod_variants(charts: tuple[ChartVersion, ...]) -> list[IstiodVariant]:
    """Each profile and strategy of each version on the primary, alone and with a remote
    (on another network: the cross-network Gateway too); each strategy on a remote (its
    profile is `remote` whatever the primary's: see `remote_plans_of_every_profile`)."""
    found = []
    for version in charts:
        for profile in ("default", "minimal", "demo", "ambient"):
            for revision_based in (False, True):
                body = istiod_spec(version.version, profile, revision_based)
                alone = resolve_istiod(load_istio(body).resource, version)
                name = f"{version.version} {profile} {body['spec']['updateStrategy']['type']}"
                with_remote = with_remotes(alone, {"remote": "network2"}, set())
                found += [(f"{name} primary", version, alone)]
                found += [(f"{name} primary+remote", version, with_remote)]
        for revision_based in (False, True):
            (plan, *_) = remote_plans_of_every_profile(version, revision_based)
            found += [(f"{version.version} {revision_based=} remote", version, plan)]
    return found


def remote_plans_of_every_profile(version: ChartVersion, revision_based: bool) -> list[IstiodPlan]:
    remote = load_remote_istio(ISTIOD_REMOTE_BODY).resource
    return [
        resolve_istiod_remote(
            load_istio(istiod_spec(version.version, profile, revision_based)).resource,
            remote,
            version,
            PILOT_ADDRESS,
        )
        for profile in ("default", "minimal", "demo", "ambient")
    ]


def rendered_istiod(charts: tuple[ChartVersion, ...]) -> list[IstiodRender]:
    """Each variant, with what it renders (helm runs for several at once)."""
    helm = helm_binary()

    def render(variant: IstiodVariant) -> IstiodRender:
        name, version, plan = variant
        return name, render_istiod(plan, version, helm)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(render, istiod_variants(charts)))


def on_remote(render: IstiodRender) -> bool:
    return render[0].endswith(" remote")


def remote_secret_object() -> DesiredObject:
    """What a remote's worker writes on the primary: a v1 Secret."""
    return DesiredObject(Phase.BASE, remote_secret("istio-system", "other", "kubeconfig", {}))


def rendered_remote() -> list[DesiredObject]:
    remote = load_remote_istio(remote_sample()).resource
    return [
        obj
        for body in VARIANTS
        for obj in render_remote(load_istio(body).resource, remote, REMOTE_FACTS)
    ]


def granted(role: Mapping[str, Any]) -> Role:
    """A ClusterRole manifest as the derivation's Role: `resourceNames` only with `bind`."""
    rules: dict[tuple[str, str], set[str]] = {}
    bindable: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs", "resourceNames"}, rule
        for key in itertools.product(rule["apiGroups"], rule["resources"]):
            if "resourceNames" in rule:
                assert rule["verbs"] == ["bind"], f"names only restrict bind: {rule}"
                bindable.setdefault(key, set()).update(rule["resourceNames"])
            else:
                rules.setdefault(key, set()).update(rule["verbs"])
    return Role(
        {key: frozenset(verbs) for key, verbs in rules.items()},
        {key: frozenset(names) for key, names in bindable.items()},
    )


def describe(diff: Mapping[tuple[str, str], frozenset[str]]) -> list[str]:
    return [f"{g or 'core'}/{r}: {sorted(v)}" for (g, r), v in sorted(diff.items()) if v]


def difference(
    these: Mapping[tuple[str, str], frozenset[str]], those: Mapping[tuple[str, str], frozenset[str]]
) -> list[str]:
    return describe({k: v - those.get(k, frozenset()) for k, v in these.items()})


def rules_yaml(rules: list[dict[str, list[str]]]) -> str:
    """The rules as deploy/'s files write them, to paste when the derivation changes."""

    def flow(items: list[str]) -> str:
        return "[" + ", ".join(f'"{i}"' if i in ("", "*") else i for i in items) + "]"

    lines = []
    for rule in rules:
        lines += [
            f"  - apiGroups: {flow(rule['apiGroups'])}",
            f"    resources: {flow(rule['resources'])}",
            f"    verbs: {flow(rule['verbs'])}",
        ]
        if "resourceNames" in rule:
            lines += ["    resourceNames:", *(f"      - {n}" for n in rule["resourceNames"])]
    return "\n".join(lines)


def assert_exactly(role: Mapping[str, Any], expected: Role) -> None:
    """The same permissions, and the same rules in the same order: a server-side apply of
    one copy over another then finds an equal `rules` and takes no field from it."""
    name, actual = role["metadata"]["name"], granted(role)
    assert not difference(expected.rules, actual.rules), (
        f"{name} lacks {difference(expected.rules, actual.rules)}"
    )
    assert not difference(actual.rules, expected.rules), (
        f"{name} grants more: {difference(actual.rules, expected.rules)}"
    )
    assert not difference(expected.bindable, actual.bindable), f"{name} cannot bind them"
    assert not difference(actual.bindable, expected.bindable), (
        f"{name} may bind more: {difference(actual.bindable, expected.bindable)}"
    )
    assert role["rules"] == policy_rules(expected), (
        f"{name}: rules out of order; expected:\nrules:\n{rules_yaml(policy_rules(expected))}"
    )


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


@pytest.fixture(scope="module")
def istiod_renders() -> list[IstiodRender]:
    return rendered_istiod(istiod_charts())


@pytest.fixture(scope="module")
def istiod_objects(istiod_renders: list[IstiodRender]) -> list[DesiredObject]:
    """What the istiod family writes on the primary."""
    primary = [r for r in istiod_renders if not on_remote(r)]
    return [obj for _, objects in primary for obj in objects] + [remote_secret_object()]


@pytest.fixture(scope="module")
def istiod_remote_objects(istiod_renders: list[IstiodRender]) -> list[DesiredObject]:
    """What the istiod family writes on a remote."""
    return [obj for render in istiod_renders if on_remote(render) for obj in render[1]]


def test_every_rendered_kind_is_one_the_operator_prunes(
    primary_objects: list[DesiredObject],
) -> None:
    managed = set(MANAGED_KINDS)
    unowned = {("v1", "Namespace")}  # never pruned, so never listed
    rendered = {(o.api_version, o.kind) for o in primary_objects + rendered_remote()}
    assert rendered - managed - unowned == set()


def test_every_kind_the_istiod_family_renders_is_one_the_operator_prunes(
    istiod_objects: list[DesiredObject], istiod_remote_objects: list[DesiredObject]
) -> None:
    rendered = {(o.api_version, o.kind) for o in istiod_objects + istiod_remote_objects}
    assert rendered - set(MANAGED_KINDS) == set()
    # The remote's istiod Services' endpoints, and the primary's routes to its istiod.
    assert ("discovery.k8s.io/v1", "EndpointSlice") in rendered
    assert {("networking.istio.io/v1alpha3", k) for k in ("Gateway", "VirtualService")} <= (
        {(o.api_version, o.kind) for o in istiod_objects}
    )


def base_cluster_role() -> dict[str, Any]:
    return cluster_role(DEPLOY / "base/clusterrole.yaml")


def remote_cluster_role() -> dict[str, Any]:
    return cluster_role(DEPLOY / "remote/rbac.yaml")


def remote_access_cluster_role() -> dict[str, Any]:
    _, role, _ = remote_manifests("istio-system")
    return role


def operator_roles() -> list[dict[str, Any]]:
    """Every copy of the operator's roles: base, chart, remote, remote-access."""
    return [
        base_cluster_role(),
        chart_cluster_role(),
        remote_cluster_role(),
        remote_access_cluster_role(),
    ]


def test_base_cluster_role_grants_exactly_what_the_operator_needs() -> None:
    assert_exactly(base_cluster_role(), primary_role())


def test_base_cluster_role_grants_at_least_what_the_classic_families_need() -> None:
    """Checked with or without the catalogue: the classic part alone is in the file."""
    actual, classic = granted(base_cluster_role()), primary_rules(())
    lacking = [
        (group, resource, verb)
        for (group, resource), verbs in classic.rules.items()
        for verb in verbs
        if not holds(actual, group, resource, verb)
    ]
    assert not lacking, f"deploy/base lacks {lacking}"
    assert not difference(classic.bindable, actual.bindable)


def test_the_derivation_covers_what_the_reference_samples_render(
    primary_objects: list[DesiredObject], istiod_objects: list[DesiredObject]
) -> None:
    assert required(primary_objects + istiod_objects, *PRIMARY_USES) == primary_role()


def test_the_remote_derivation_covers_what_the_reference_samples_render(
    istiod_remote_objects: list[DesiredObject],
) -> None:
    """Remotes of the primary in every profile: its profile is replaced by `remote`."""
    objects = rendered_remote() + istiod_remote_objects
    assert required(objects, *REMOTE_USES, ISTIOD_ON_REMOTE) == remote_role()


def test_the_classic_derivation_covers_what_the_reference_samples_render(
    primary_objects: list[DesiredObject],
) -> None:
    assert required(primary_objects, *PRIMARY_USES) == primary_rules(())
    assert required(rendered_remote(), *REMOTE_USES) == remote_rules(())


def test_chart_cluster_role_has_the_base_rules() -> None:
    assert chart_cluster_role()["rules"] == base_cluster_role()["rules"]


def test_chart_cluster_role_grants_exactly_what_the_operator_needs() -> None:
    assert_exactly(chart_cluster_role(), primary_role())


def test_remote_cluster_role_grants_exactly_what_the_operator_needs_on_a_remote() -> None:
    assert_exactly(remote_cluster_role(), remote_role())


def test_remote_cluster_role_grants_at_least_what_the_classic_families_need() -> None:
    """Checked with or without the catalogue: the classic part alone is in the file."""
    actual, classic = granted(remote_cluster_role()), remote_rules(())
    lacking = [
        (group, resource, verb)
        for (group, resource), verbs in classic.rules.items()
        for verb in verbs
        if not holds(actual, group, resource, verb)
    ]
    assert not lacking, f"deploy/remote lacks {lacking}"
    assert not difference(classic.bindable, actual.bindable)


def test_remote_access_applies_the_rules_of_deploy_remote_in_the_same_order() -> None:
    istiod_charts()  # deploy/remote is derived with them
    _, role, binding = remote_manifests("istio-system")
    assert role["kind"] == "ClusterRole"
    assert role["metadata"]["name"] == remote_cluster_role()["metadata"]["name"]
    assert_exactly(role, remote_rules())
    # One value: no apply conflict (remote-access derives with the whole catalogue).
    assert role["rules"] == remote_cluster_role()["rules"], (
        f"the catalogue holds {[c.version for c in catalogue_charts()]}, deploy/remote is "
        f"derived with {list(ISTIOD_VERSIONS)}"
    )
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "istio-operator", "namespace": "istio-system"}
    ]


def without_rule(role: dict[str, Any], resource: str, verb: str) -> dict[str, Any]:
    changed = copy.deepcopy(role)
    for rule in changed["rules"]:
        if resource in rule["resources"] and verb in rule["verbs"]:
            rule["verbs"].remove(verb)
    return changed


def with_rule(role: dict[str, Any], rule: dict[str, list[str]]) -> dict[str, Any]:
    return {**role, "rules": [*role["rules"], rule]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: without_rule(r, "statefulsets", "patch"), "lacks"),
        (lambda r: without_rule(r, "replicasets", "list"), "lacks"),
        (lambda r: with_rule(r, {**r["rules"][0], "verbs": ["deletecollection"]}), "more"),
        (
            lambda r: with_rule(
                r, {"apiGroups": [RBAC], "resources": ["clusterroles"], "verbs": ["escalate"]}
            ),
            "more",
        ),
        (
            lambda r: with_rule(
                r,
                {
                    "apiGroups": [RBAC],
                    "resources": ["clusterroles"],
                    "verbs": ["bind"],
                    "resourceNames": ["cluster-admin"],
                },
            ),
            "may bind more",
        ),
        (lambda r: {**r, "rules": list(reversed(r["rules"]))}, "out of order"),
    ],
)
@pytest.mark.parametrize("which", ["primary", "remote"])
def test_a_missing_extra_or_reordered_rule_fails(
    which: str, change: Callable[[dict[str, Any]], dict[str, Any]], message: str
) -> None:
    role, expected = (
        (base_cluster_role(), primary_role())
        if which == "primary"
        else (remote_cluster_role(), remote_role())
    )
    with pytest.raises(AssertionError, match=message):
        assert_exactly(change(role), expected)


def test_policy_rules_group_resources_by_group_and_verbs_then_bind_by_name() -> None:
    role = Role(
        {
            ("", "pods"): frozenset({"get", "list"}),
            ("", "services"): frozenset({"list", "get"}),
            ("apps", "deployments"): frozenset({"get"}),
            ("", "events"): frozenset(),
        },
        {(RBAC, "roles"): frozenset({"b", "a"})},
    )
    assert policy_rules(role) == [
        {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
        {
            "apiGroups": [RBAC],
            "resources": ["roles"],
            "verbs": ["bind"],
            "resourceNames": ["a", "b"],
        },
    ]


def test_a_wildcard_covers_what_it_stands_for() -> None:
    rules: Rules = {
        ("g", "*"): frozenset({"get"}),
        ("g", "a"): frozenset({"get", "list"}),
        ("h", "*"): frozenset({"*"}),
        ("h", "b"): frozenset({"get"}),
        ("i", "c"): frozenset({"*", "get"}),
    }
    assert without_covered(rules) == {
        ("g", "*"): frozenset({"get"}),
        ("g", "a"): frozenset({"list"}),
        ("h", "*"): frozenset({"*"}),
        ("i", "c"): frozenset({"*"}),
    }


def holds(role: Role, group: str, resource: str, verb: str) -> bool:
    """Whether the role grants the verb on every object of the resource, as RBAC matches."""
    return any(role.rules.get((group, r), frozenset()) & {verb, "*"} for r in (resource, "*"))


# Each cluster's rendered objects, with the operator's rules there: the primary's with the
# classic families only (whatever the catalogue holds) and with the pinned charts too.
each_cluster_role = pytest.mark.parametrize(
    ("objects", "role"),
    [
        (lambda: rendered_primary_variants(()), lambda: primary_rules(())),
        (
            lambda: rendered_primary_variants(istiod_charts()),
            lambda: primary_rules(istiod_charts()),
        ),
        (lambda: rendered_remote_variants(()), lambda: remote_rules(())),
        (
            lambda: rendered_remote_variants(istiod_charts()),
            lambda: remote_rules(istiod_charts()),
        ),
    ],
    ids=["primary-classic", "primary", "remote-classic", "remote"],
)


@each_cluster_role
def test_the_operator_holds_every_right_of_the_roles_it_writes(
    objects: Callable[[], list[DesiredObject]], role: Callable[[], Role]
) -> None:
    """So that the API server lets it write them without `escalate`."""
    for obj in objects():
        if obj.kind not in ("ClusterRole", "Role"):
            continue
        for rule in obj.manifest["rules"]:
            for group, resource, verb in itertools.product(
                rule["apiGroups"], rule["resources"], rule["verbs"]
            ):
                assert holds(role(), group, resource, verb), (obj.name, group, resource, verb)


@each_cluster_role
def test_bind_only_on_the_rendered_roles_by_name(
    objects: Callable[[], list[DesiredObject]], role: Callable[[], Role]
) -> None:
    rendered = {
        (RBAC, f"{o.kind.lower()}s"): o.name for o in objects() if o.kind in ("ClusterRole", "Role")
    }
    assert set(role().bindable) == set(rendered)
    for key, names in role().bindable.items():
        assert names == {o.name for o in objects() if (RBAC, f"{o.kind.lower()}s") == key}


def test_bind_by_name_on_the_istiod_roles_in_place_and_of_each_revision() -> None:
    """In place, the names carry the namespace; by revision, the reference resource's
    revision `mesh-<version>` too (the names no derivation can know are not bound)."""
    bindable = primary_role().bindable
    clusterroles, roles = bindable[(RBAC, "clusterroles")], bindable[(RBAC, "roles")]
    assert {"istiod-clusterrole-istio-system", "istio-reader-clusterrole-istio-system"} <= (
        clusterroles
    )
    assert "istiod" in roles
    assert "istio-eastwestgateway" in roles  # the primary's gateway for its remotes
    remote = remote_role().bindable[(RBAC, "clusterroles")]
    assert "istio-reader-clusterrole-istio-system" in remote
    for version in ISTIOD_VERSIONS:
        revision = "mesh-" + version.replace(".", "-")
        assert f"istiod-clusterrole-{revision}-istio-system" in clusterroles
        assert f"istiod-gateway-controller-{revision}-istio-system" in clusterroles
        assert f"istiod-{revision}" in roles
        assert f"istio-reader-clusterrole-{revision}-istio-system" in remote


def test_a_remote_of_the_istiod_family_is_applied_pruned_and_its_reader_token_read() -> None:
    """The remote's EndpointSlices (its istiod Services' endpoints) are written and pruned,
    and the reader token Secret read, in the control-plane namespace (a ClusterRole: in
    every namespace); on the primary, the remote secret is a Secret, which it writes."""
    role = remote_role()
    for verb in ("get", "list", "watch", "create", "patch", "update", "delete"):
        assert holds(role, "discovery.k8s.io", "endpointslices", verb), verb
        assert holds(primary_role(), "", "secrets", verb), verb
    assert holds(role, "", "secrets", "get")
    assert holds(remote_rules(()), "discovery.k8s.io", "endpointslices", "list")  # pruning


def test_each_istiod_role_is_rendered_before_its_binding(
    istiod_renders: list[IstiodRender],
) -> None:
    """Applied in this order, a binding finds its role (whose rules the operator holds):
    `bind` is needed only for the dry-run of the whole change before the first write."""
    for name, objects in istiod_renders:
        seen: set[tuple[str, str, str]] = set()
        for obj in objects:
            namespace = obj.manifest["metadata"].get("namespace", "")
            if obj.kind in ("ClusterRole", "Role"):
                seen.add((obj.kind, obj.name, namespace if obj.kind == "Role" else ""))
            if obj.kind in ("ClusterRoleBinding", "RoleBinding"):
                ref = obj.manifest["roleRef"]
                wanted = (ref["kind"], ref["name"], namespace if ref["kind"] == "Role" else "")
                assert wanted in seen, (name, obj.name)


def test_the_samples_are_the_derivations_istiod_variants() -> None:
    """The cross-check renders what the derivation does (and more), written out
    independently."""
    variants = istiod_variants(istiod_charts())
    for charts in istiod_charts():
        ours = [istiod_spec(charts.version, p, r) for p in ISTIOD_PROFILES for r in (False, True)]
        assert ours == rbac_variants(charts.version)
        plans = [plan for _, version, plan in variants if version == charts]
        assert all(plan in plans for plan in istiod_plans(charts) + istiod_remote_plans(charts))
        assert {p.remotes for p in istiod_plans(charts)} == {(), ("remote",)}
        assert {p.revision_based for p in istiod_remote_plans(charts)} == {False, True}
        for revision_based in (False, True):  # a remote's plan is the same whatever profile
            first, *others = remote_plans_of_every_profile(charts, revision_based)
            assert all(other == first for other in others)


def test_without_a_catalogue_the_istiod_part_is_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ISTIO_OPERATOR_CHARTS_DIR", str(tmp_path / "none"))
    assert catalogue_charts() == ()
    assert rendered_istiod_variants(catalogue_charts()) == []
    assert rendered_istiod_remote_variants(catalogue_charts()) == []
    assert primary_rules() == primary_rules(())
    assert remote_rules() == remote_rules(())
    assert catalogue_charts(Catalogue(tmp_path)) == ()


@pytest.mark.parametrize("index", range(4), ids=["base", "chart", "remote", "remote-access"])
def test_no_escalate_and_no_unnamed_bind(index: int) -> None:
    manifest = operator_roles()[index]
    for rule in manifest["rules"]:
        assert "escalate" not in rule["verbs"], rule
        if "bind" in rule["verbs"]:
            assert rule["verbs"] == ["bind"] and rule.get("resourceNames"), rule
        if RBAC in rule["apiGroups"] or "*" in rule["apiGroups"]:  # `*` would hold escalate
            assert "*" not in rule["verbs"] + rule["resources"], rule


@pytest.mark.parametrize("index", range(4), ids=["base", "chart", "remote", "remote-access"])
def test_wildcards_only_where_a_rendered_istio_role_has_them(index: int) -> None:
    manifest = operator_roles()[index]
    objects = [
        rendered_primary_variants(istiod_charts()),
        rendered_primary_variants(istiod_charts()),
        rendered_remote_variants(istiod_charts()),
        rendered_remote_variants(),  # remote-access derives with the whole catalogue
    ][index]
    istio_roles = held_for_rendered_roles(objects)
    for rule in manifest["rules"]:
        assert "*" not in rule["apiGroups"], rule
        for group, resource in itertools.product(rule["apiGroups"], rule["resources"]):
            if "*" in rule["verbs"] or resource == "*":
                assert set(rule["verbs"]) <= istio_roles.get((group, resource), set()), rule


def test_no_wildcards_in_the_leader_election_role() -> None:
    for doc in documents(DEPLOY / "base/leader-election-role.yaml"):
        for rule in doc.get("rules", []):
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"`*` in {field} of {rule}"


def test_leader_election_is_limited_to_leases_in_the_operators_namespace() -> None:
    role, binding = documents(DEPLOY / "base/leader-election-role.yaml")
    assert role["kind"] == "Role"
    assert granted(role) == Role(
        {("coordination.k8s.io", "leases"): frozenset({"get", "create", "update", "patch"})}, {}
    )
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }


class RecordingCluster:
    """Stands in for `kube.client.Cluster` and records each request as (verb, group,
    resource), answering with the objects it holds."""

    def __init__(self, name: str, objects: Mapping[str, list[dict[str, Any]]]) -> None:
        self.name = name
        self.objects = objects
        self.requests: set[tuple[str, str, str]] = set()

    def record(self, verb: str, api_version: str, kind: str) -> None:
        self.requests.add((verb, *resource_of(api_version, kind)))

    async def list_all(
        self, api_version: str, kind: str, *, namespace: str | None = None, shared: bool = False
    ) -> list[dict[str, Any]]:
        self.record("list", api_version, kind)
        found = self.objects.get(kind, [])
        return [o for o in found if namespace in (None, o["metadata"].get("namespace"))]

    async def list_labelled(
        self, api_version: str, kind: str, selector: str
    ) -> list[dict[str, Any]]:
        self.record("list", api_version, kind)
        return []

    async def get(self, key: ObjectKey) -> dict[str, Any] | None:
        self.record("get", key.api_version, key.kind)
        return {"metadata": {"name": key.name}, "data": {}}

    async def apply_as(self, field_manager: str, manifest: dict[str, Any]) -> dict[str, Any]:
        self.record("patch", manifest["apiVersion"], manifest["kind"])
        return manifest


class OneRemote:
    def __init__(self, remote: RecordingCluster) -> None:
        self.remote = remote

    async def for_secret(self, name: str, secret: Mapping[str, Any]) -> RecordingCluster:
        return self.remote


def mesh_resource(kind: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "istio.banzaicloud.io/v1beta1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "istio-system"},
        "spec": {"version": "1.3.0"},
        "status": {"Status": "Available", "version": "1.3.0"},
    }


async def run_the_commands(primary: RecordingCluster, remote: RecordingCluster) -> None:
    """What `status` and `dataplane-upgrade --all-clusters` do: the inventory, the plan,
    and a restart of each kind of workload on each cluster."""
    clients: Any = OneRemote(remote)
    await inventory.gather(primary, "istio-system", clients)  # type: ignore[arg-type]
    plans = await dataplane.plan(
        primary,  # type: ignore[arg-type]
        "istio-system",
        clients,
        all_clusters=True,
        force=True,
    )
    assert [p.error for p in plans] == ["", ""]
    for cluster in (primary, remote):
        for kind in dataplane.RESTARTABLE_KINDS:
            workload = dataplane.Restart(kind, "app", "echo", ("1.2.5",), "1.3.0", 1)
            await dataplane.restart(cluster, workload, "now")  # type: ignore[arg-type]


async def test_status_and_dataplane_upgrade_need_only_what_the_roles_grant() -> None:
    register_crds(generate_crds())
    primary = RecordingCluster(
        "primary",
        {
            "Istio": [mesh_resource("Istio", "istio")],
            "RemoteIstio": [mesh_resource("RemoteIstio", "r")],
        },
    )
    remote = RecordingCluster("r", {})
    await run_the_commands(primary, remote)
    assert ("patch", "apps", "statefulsets") in remote.requests  # the restarts were recorded
    assert ("list", "apps", "replicasets") in remote.requests
    for cluster, role in ((primary, primary_rules()), (remote, remote_rules())):
        forbidden = {r for r in cluster.requests if not holds(role, r[1], r[2], r[0])}
        assert not forbidden, f"{cluster.name}: the role does not grant {sorted(forbidden)}"


def test_a_role_without_the_dataplane_rights_is_caught() -> None:
    """The check above can fail: without `DATAPLANE_ON_EVERY_CLUSTER`, it would."""
    without = required(rendered_remote_variants(), OPERATOR_ON_REMOTE, STATUS_ON_EVERY_CLUSTER)
    assert not holds(without, "apps", "statefulsets", "patch")
