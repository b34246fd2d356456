"""The RBAC rules the operator needs, derived from what it does on a cluster.

One derivation per kind of cluster, each the sum of four declared parts:

- applying, pruning and reading what the renderers can produce (the classic families'
  with every optional component on, with and without mTLS and mesh expansion; the istiod
  family's, every version of the chart catalogue: on the primary, each of
  `ISTIOD_PROFILES` in place and by revision with a tag, alone and with a remote (the
  east-west gateway, its Gateways and VirtualService), and a remote's secret; on a remote,
  Istio's `remote` profile of the same revisions, `ISTIOD_REMOTE`): get/list/watch
  (live state, owned objects found by label), create+patch (server-side apply), update
  (taking over what another writer made) and delete (pruning), except for the kinds
  never pruned; the other kinds the operator may
  own (`MANAGED_KINDS`) are only read, since every reconcile lists them to prune;
- what the operator does beyond that (`OPERATOR_ON_PRIMARY`, `OPERATOR_ON_REMOTE`, and on
  both `SUPERSEDED_DEPENDENTS`: what a workload replaced in a take-over ran; with the
  istiod family, `ISTIOD_ON_REMOTE`: the reader token it reads there);
- what `istio-operator status` and `dataplane-upgrade` read and patch on each cluster
  (`STATUS_*`, `DATAPLANE_*`, built from the kinds `operations.inventory` and
  `operations.dataplane` list and restart, so that a kind added there is granted here);
- every permission the rendered (Cluster)Roles grant, and `bind` on those roles by name.

`primary_rules()` is deploy/base's ClusterRole (and the chart's); `remote_rules()` is
deploy/remote's and the one `istio-operator remote-access` applies, rule for rule in the
same order, so that a server-side apply of one over the other finds the same value and
does not conflict. tests/unit/test_deploy_rbac.py checks every copy.

The istiod family's part is rendered from the chart catalogue (`charts.Catalogue`, through
helm) when derived: every version it holds is one the operator may install. Without a
catalogue that part is empty, and the derivation is the classic families' alone. deploy/'s
files are derived with the versions `make istio-charts` writes (so the test checks them
only where the catalogue holds those); a version added later is covered once they are
derived again with it (its charts' roles may grant more, its revisions' roles have other
names). The same holds of a remote's part, and so of what `remote-access` applies: it is
derived from the catalogue of the machine that runs the command (with its helm), and equals
deploy/remote's only where that catalogue holds the versions deploy/ is derived with.

Why here, among the operations, and not in `reconcile` or `kube`: the derivation reads
the renderer's output, the kinds the reconcile owns and the kinds that `status` and
`dataplane-upgrade` (`operations.inventory`, `operations.dataplane`) read and restart, so
it sits above all of them; and its one user at run time is `remote-access`
(`operations.access`), which applies it. Lower, it would have to know the commands.

No privilege escalation. The API server lets a subject write a (Cluster)Role only with
rules the subject holds itself, unless it has `escalate` on that role, and bind a role
only if it holds the role's rules, unless it has `bind` on it. The operator holds no
`escalate`, not even on the rendered roles by name:

- `escalate` is authorized against the request's object name (Kubernetes 1.36,
  pkg/registry/rbac/escalation_check.go, `RoleEscalationAuthorized`: `Name:
  requestInfo.Name`, checked by clusterrole/policybased/storage.go's Create and Update).
  A POST create has no name, so `resourceNames` cannot cover a plain create; they would
  cover server-side apply, a PATCH to the object's name that goes through Update even
  when it creates.
- Covered or not, it would leave the escalation open: with `escalate` and `bind` on a
  rendered role, the operator can write `*/*/*` into that role and bind it to itself.

Instead the operator holds every permission its rendered roles grant, so writing them
escalates nothing. That adds no reach it did not have: it runs Istio's pods with the
ServiceAccounts those roles are bound to. Any role it can write is then at most what it
holds. `bind` stays, by name, on the rendered roles only: without it, the API server
checks a binding against the live rules of the role it names (clusterrolebinding/policybased), so
a binding applied (or dry-run) before its role exists would be refused; binding a role
whose rules the operator holds grants it nothing more. `bind` is checked against the
roleRef's name (`BindingAuthorized`), so `resourceNames` do restrict it, on create too.

The istiod family needs that `bind` as well. Its charts put each role before its binding
and the engine applies a phase's objects in that order, so the real apply finds the role
(whose rules the operator holds); but the engine first dry-runs the whole change
(`reconcile.engine`, `_refusals`), and there a binding of a role not created yet is refused
without `bind`, and with it the whole change.

In place, its roles are named after the namespace only (`istiod-clusterrole-istio-system`,
Role `istiod`; on a remote, `istio-reader-clusterrole-istio-system`; the east-west
gateway's Role is `istio-eastwestgateway`); by revision, after the revision,
`<resource>-<version>` (`istiod-clusterrole-mesh-1-31-1-istio-system`, Role
`istiod-mesh-1-31-1`; on a remote, `istio-reader-clusterrole-mesh-1-31-1-istio-system`),
and so after the Istio resource's name, which no derivation knows. `bind` stays by name even
so, on what the reference resource renders (`ISTIOD_OWNER`, `mesh`, in istio-system, the
example of docs/istiod-family.md), for every catalogue version. `bind` on every
(Cluster)Role, without names, is not held: the operator writes ClusterRoleBindings, so it
could bind `cluster-admin` to itself, the very escalation the rest of this derivation
closes. What that leaves out is named, not granted: an istiod-family Istio in another
namespace, or a RevisionBased one of another name, renders bindings of roles the operator
may not bind before they exist, and its change is refused by the dry-run (the refusal names
the role). Such a mesh needs `bind` on those names (`istio-operator render` prints the
roles) granted to the operator by a ClusterRole of its own, or an operator running with a
kubeconfig that may bind them.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from istio_operator.api.labels import API_VERSION, GROUP
from istio_operator.api.parse import load_istio, load_remote_istio
from istio_operator.charts import Catalogue, ChartVersion, helm_binary
from istio_operator.kube.resources import api_resource, register_crds
from istio_operator.operations.dataplane import RESTARTABLE_KINDS
from istio_operator.operations.inventory import WORKLOAD_KINDS
from istio_operator.plan.istiod import (
    IstiodPlan,
    resolve_istiod,
    resolve_istiod_remote,
    with_remotes,
)
from istio_operator.reconcile.istiod_remote import remote_secret
from istio_operator.reconcile.kinds import CRD_KIND, MANAGED_KINDS
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
from istio_operator.versions import families
from istio_operator.versions.istiod import IN_PLACE, REVISION_BASED

Resource = tuple[str, str]  # (apiGroup, plural, or plural/subresource)
Rules = Mapping[Resource, frozenset[str]]  # resource -> verbs, on every object of it

RBAC_GROUP = "rbac.authorization.k8s.io"
ROLE_KINDS = ("ClusterRole", "Role")
ALL = "*"
GET = frozenset({"get"})
LIST = frozenset({"list"})
PATCH = frozenset({"patch"})
READ = frozenset({"get", "list", "watch"})
# Server-side apply may create; taking over an object another writer made is a replace.
APPLY = READ | {"create", "patch", "update"}
OWN = APPLY | {"delete"}  # pruned when no longer desired
BIND = frozenset({"bind"})
# Istio's CRDs (users' configuration lives in them) and a remote's control-plane namespace.
NEVER_PRUNED = frozenset(
    {("apiextensions.k8s.io", "customresourcedefinitions"), ("", "namespaces")}
)

# What the operator does on the primary beyond applying what it renders.
OPERATOR_ON_PRIMARY: Rules = {
    # kopf watches its resources and patches finalizers and annotations onto them.
    (GROUP, "istios"): READ | PATCH,
    (GROUP, "remoteistios"): READ | PATCH,
    (GROUP, "istios/status"): GET | PATCH,
    (GROUP, "remoteistios/status"): GET | PATCH,
    # ownerReferences with blockOwnerDeletion need `update` on the owner's finalizers.
    (GROUP, "istios/finalizers"): frozenset({"update"}),
    (GROUP, "remoteistios/finalizers"): frozenset({"update"}),
    # The istio-injection label of the auto-injection namespaces.
    ("", "namespaces"): READ | PATCH,
    # Remote kubeconfigs and the primary's CA; the istio/multiCluster label.
    ("", "secrets"): READ | PATCH,
    # Pod IPs behind the primary's services (flat-network remotes), sidecar versions.
    ("", "pods"): READ,
    # Events on Istio and RemoteIstio resources, in whatever namespace they live.
    # Repeated events are aggregated: the existing Event is read and its count moved.
    ("", "events"): frozenset({"get", "create", "patch"}),
}
# What a workload superseded in a take-over ran (see reconcile.takeover): labelled as
# ours, then pruned once the replacement is available.
SUPERSEDED_DEPENDENTS: Rules = {
    ("apps", "replicasets"): READ | PATCH | {"delete"},
    ("", "pods"): READ | PATCH | {"delete"},
}
# On a remote the operator applies, prunes and labels namespaces, and reads the
# kube-system Namespace, whose uid identifies the cluster (one RemoteIstio per cluster).
OPERATOR_ON_REMOTE: Rules = {
    ("", "namespaces"): READ | PATCH,
    ("", "pods"): READ,
}
# On a remote of the istiod family (with a catalogue only): the token Secret of its reader
# ServiceAccount, read in the control-plane namespace (`reconcile.istiod_remote`,
# `reader_kubeconfig`) for the remote secret on the primary. The token Secret is rendered,
# so applying it grants this already; declared so that the read does not rest on that.
ISTIOD_ON_REMOTE: Rules = {("", "secrets"): GET}


def resource_of(api_version: str, kind: str) -> Resource:
    """(apiGroup, plural) from the client's built-in kinds and the rendered Istio CRDs."""
    return api_resource(api_version, kind)


def _kinds(api_version: str, kinds: Iterable[str], verbs: frozenset[str]) -> Rules:
    return {resource_of(api_version, kind): verbs for kind in kinds}


# `status` and `dataplane-upgrade` find the mesh on the primary: its Istio and RemoteIstio
# resources, and each remote's kubeconfig Secret by name.
MESH_ON_PRIMARY: Rules = {
    (GROUP, "istios"): LIST,
    (GROUP, "remoteistios"): LIST,
    ("", "secrets"): GET,
}
# `status` (operations.inventory) on every cluster: the control-plane workloads, by label,
# and every pod for its sidecar's version.
STATUS_ON_EVERY_CLUSTER: Rules = {
    **_kinds("apps/v1", WORKLOAD_KINDS, LIST),
    ("", "pods"): LIST,
}
# `dataplane-upgrade` (operations.dataplane) on every cluster it restarts: pods, their
# ReplicaSets and workloads, listed; a restart is a server-side apply (PATCH) of the pod
# template's annotation. No create: a workload deleted meanwhile is not recreated.
DATAPLANE_ON_EVERY_CLUSTER: Rules = {
    ("", "pods"): LIST,
    **_kinds("apps/v1", ("ReplicaSet",), LIST),
    **_kinds("apps/v1", RESTARTABLE_KINDS, LIST | PATCH),
}


@dataclass(frozen=True)
class Role:
    """A ClusterRole's rules: verbs on every object of a resource, and the (Cluster)Roles
    that may be bound, by name."""

    rules: Rules
    bindable: Mapping[Resource, frozenset[str]]  # roles/clusterroles -> names


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
_NAMESPACE = "istio-system"
_SERVICE = "istio-pilot"
# The name of the istiod family's reference resource, that of docs/istiod-family.md's
# example: its revisions, and so their roles, are named after it (see `bind` above).
ISTIOD_OWNER = "mesh"
# The istiod family's variants of each catalogue version: the profiles docs/istiod-family.md
# names, in place and by revision (with a named tag besides `default`).
ISTIOD_PROFILES = ("default", "minimal", "demo", "ambient")
ISTIOD_STRATEGIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (IN_PLACE, ()),
    (REVISION_BASED, ("canary",)),
)
# The remote of the istiod family's variants: a RemoteIstio of the reference resource's
# namespace, reached through a primary's east-west gateway at a documentation address.
ISTIOD_REMOTE: dict[str, Any] = {
    "apiVersion": API_VERSION,
    "kind": "RemoteIstio",
    "metadata": {"name": "remote", "namespace": _NAMESPACE},
    "spec": {"enabledServices": []},
}
ISTIOD_PILOT_ADDRESS = "192.0.2.1"
# The primary's remotes (name -> network) in its variants with remotes: on another network,
# so that the cross-network Gateway is rendered besides istiod's Gateway and routes.
ISTIOD_REMOTE_NETWORKS = {"remote": "network2"}
# A remote's render replaces the primary's profile with Istio's `remote`: one profile of the
# primary is enough, with each of `ISTIOD_STRATEGIES`.
ISTIOD_REMOTE_PRIMARY_PROFILE = "default"
_HELM_CONCURRENCY = 8  # helm processes at once while the variants render


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
            # One release of each family the operator supports (read when called, so that
            # a family declared later is covered too).
            [family.reference_version for family in families.FAMILIES],
            (False, True),
            (False, True),
        )
    ]


def istiod_variants(version: str) -> list[dict[str, Any]]:
    """The istiod family's Istio resources of `version`: each of `ISTIOD_PROFILES` with
    each of `ISTIOD_STRATEGIES`."""
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "Istio",
            "metadata": {"name": ISTIOD_OWNER, "namespace": _NAMESPACE},
            "spec": {
                "version": version,
                "profile": profile,
                "updateStrategy": {"type": strategy, **({"tags": list(tags)} if tags else {})},
            },
        }
        for profile, (strategy, tags) in itertools.product(ISTIOD_PROFILES, ISTIOD_STRATEGIES)
    ]


def istiod_plans(charts: ChartVersion) -> list[IstiodPlan]:
    """The istiod family's plans of `charts` on the primary: each of `istiod_variants`,
    alone and with the remotes `ISTIOD_REMOTE_NETWORKS` (no older revision running)."""
    alone = [
        resolve_istiod(load_istio(body).resource, charts)
        for body in istiod_variants(charts.version)
    ]
    return alone + [with_remotes(plan, ISTIOD_REMOTE_NETWORKS, set()) for plan in alone]


def istiod_remote_plans(charts: ChartVersion) -> list[IstiodPlan]:
    """The istiod family's plans of `charts` on a remote (`ISTIOD_REMOTE`), of the primary
    in `ISTIOD_REMOTE_PRIMARY_PROFILE` with each of `ISTIOD_STRATEGIES`."""
    remote = load_remote_istio(ISTIOD_REMOTE).resource
    return [
        resolve_istiod_remote(load_istio(body).resource, remote, charts, ISTIOD_PILOT_ADDRESS)
        for body in istiod_variants(charts.version)
        if body["spec"]["profile"] == ISTIOD_REMOTE_PRIMARY_PROFILE
    ]


def istiod_remote_secret() -> DesiredObject:
    """The secret a remote's worker writes on the primary (its kubeconfig left empty)."""
    return DesiredObject(
        Phase.BASE, remote_secret(_NAMESPACE, ISTIOD_REMOTE["metadata"]["name"], "", {})
    )


def catalogue_charts(catalogue: Catalogue | None = None) -> tuple[ChartVersion, ...]:
    """Every version of the chart catalogue (the default one unless given), oldest first;
    none on a machine without one."""
    return tuple((catalogue or Catalogue.default()).versions())


def rendered_istiod_variants(charts: Iterable[ChartVersion]) -> list[DesiredObject]:
    """What the istiod family writes on the primary from `charts`, variant after variant
    (`istiod_plans`), then a remote's secret; nothing without charts. Rendered through
    helm (raises `HelmError` when there is none to run), once per set of versions: the
    objects are shared, not to be changed."""
    return list(_rendered_istiod(tuple(charts), remote=False))


def rendered_istiod_remote_variants(charts: Iterable[ChartVersion]) -> list[DesiredObject]:
    """What the istiod family writes on a remote from `charts` (`istiod_remote_plans`), as
    `rendered_istiod_variants`."""
    return list(_rendered_istiod(tuple(charts), remote=True))


@functools.cache
def _rendered_istiod(
    charts: tuple[ChartVersion, ...], *, remote: bool
) -> tuple[DesiredObject, ...]:
    plans_of = istiod_remote_plans if remote else istiod_plans
    variants = [(version, plan) for version in charts for plan in plans_of(version)]
    if not variants:
        return ()
    helm = helm_binary()

    def render(variant: tuple[ChartVersion, IstiodPlan]) -> list[DesiredObject]:
        version, plan = variant
        return render_istiod(plan, version, helm)

    # helm runs for several variants at once; `map` keeps the variants' order.
    with ThreadPoolExecutor(max_workers=_HELM_CONCURRENCY) as pool:
        objects = [obj for rendered in pool.map(render, variants) for obj in rendered]
    return tuple(objects if remote else [*objects, istiod_remote_secret()])


def rendered_primary_variants(
    charts: Sequence[ChartVersion] | None = None,
) -> list[DesiredObject]:
    """The classic families' objects, then the istiod family's of `charts` (default:
    `catalogue_charts()`)."""
    classic = [
        obj
        for body in all_on_variants()
        for obj in render_primary(
            load_istio(body).resource,
            remote_networks=[RemoteNetwork("remote", ("192.0.2.20",))],
            primary_gateway_addresses=("192.0.2.10",),
        )
    ]
    return classic + rendered_istiod_variants(catalogue_charts() if charts is None else charts)


def rendered_remote_variants(
    charts: Sequence[ChartVersion] | None = None,
) -> list[DesiredObject]:
    """The classic families' objects on a remote, then the istiod family's of `charts`
    (default: `catalogue_charts()`)."""
    return _rendered_classic_remote() + rendered_istiod_remote_variants(
        catalogue_charts() if charts is None else charts
    )


def _rendered_classic_remote() -> list[DesiredObject]:
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


def merge(*parts: Mapping[Resource, Iterable[str]]) -> dict[Resource, frozenset[str]]:
    merged: dict[Resource, set[str]] = {}
    for part in parts:
        for key, verbs in part.items():
            merged.setdefault(key, set()).update(verbs)
    return {key: frozenset(verbs) for key, verbs in merged.items()}


def written_and_pruned(objects: Sequence[DesiredObject]) -> Rules:
    """Applying, pruning and reading `objects`; reading every other kind the operator owns."""
    _register_istio_kinds()
    register_crds(o.manifest for o in objects if o.kind == CRD_KIND)
    written = {resource_of(o.api_version, o.kind) for o in objects}
    owned = {resource_of(api_version, kind) for api_version, kind in MANAGED_KINDS}
    rules: dict[Resource, frozenset[str]] = dict.fromkeys(owned, READ)  # pruning lists
    for key in written:
        rules[key] = APPLY if key in NEVER_PRUNED else OWN
    return rules


class UnsupportedRoleRuleError(ValueError):
    """A rendered role rule this derivation cannot hold (non-resource URLs)."""


# Keys a rendered role rule may have. A rule restricted by `resourceNames` is held
# without the restriction: the unrestricted right covers the named one.
_ROLE_RULE_KEYS = frozenset({"apiGroups", "resources", "verbs"})


def held_for_rendered_roles(objects: Sequence[DesiredObject]) -> Rules:
    """Every permission the rendered (Cluster)Roles grant: held, so that writing them
    needs no `escalate`."""
    held: dict[Resource, set[str]] = {}
    for obj in objects:
        if obj.kind not in ROLE_KINDS:
            continue
        for rule in obj.manifest.get("rules") or []:
            if set(rule) - {"resourceNames"} != _ROLE_RULE_KEYS:
                raise UnsupportedRoleRuleError(f"{obj.kind} {obj.name}: {rule}")
            for key in itertools.product(rule["apiGroups"], rule["resources"]):
                held.setdefault(key, set()).update(rule["verbs"])
    return merge(held)


def bindable_roles(objects: Sequence[DesiredObject]) -> dict[Resource, frozenset[str]]:
    """The rendered (Cluster)Roles by name: the only ones the operator may bind."""
    names: dict[Resource, set[str]] = {}
    for obj in objects:
        if obj.kind in ROLE_KINDS:
            names.setdefault((RBAC_GROUP, f"{obj.kind.lower()}s"), set()).add(obj.name)
    return {key: frozenset(found) for key, found in names.items()}


def without_covered(rules: Rules) -> dict[Resource, frozenset[str]]:
    """The same permissions, each granted once: a `*` verb stands for every verb, and a
    `*` resource of a group for each of the group's resources."""
    simplified: dict[Resource, frozenset[str]] = {}
    for (group, resource), verbs in rules.items():
        remaining = frozenset({ALL}) if ALL in verbs else verbs
        if resource != ALL:
            group_wide = rules.get((group, ALL), frozenset())
            remaining = frozenset() if ALL in group_wide else remaining - group_wide
        if remaining:
            simplified[(group, resource)] = remaining
    return simplified


def required(objects: Sequence[DesiredObject], *uses: Rules) -> Role:
    """What reconciling `objects` needs, plus the declared `uses` (the operator's own, the
    commands')."""
    rules = merge(written_and_pruned(objects), held_for_rendered_roles(objects), *uses)
    return Role(without_covered(rules), bindable_roles(objects))


PRIMARY_USES: tuple[Rules, ...] = (
    OPERATOR_ON_PRIMARY,
    SUPERSEDED_DEPENDENTS,
    MESH_ON_PRIMARY,
    STATUS_ON_EVERY_CLUSTER,
    DATAPLANE_ON_EVERY_CLUSTER,
)
REMOTE_USES: tuple[Rules, ...] = (
    OPERATOR_ON_REMOTE,
    SUPERSEDED_DEPENDENTS,
    STATUS_ON_EVERY_CLUSTER,
    DATAPLANE_ON_EVERY_CLUSTER,
)


def primary_rules(charts: Sequence[ChartVersion] | None = None) -> Role:
    """What the operator needs on the primary cluster (deploy/base's ClusterRole), with
    the istiod family's versions `charts` (default: every version of the catalogue)."""
    return _primary_rules(catalogue_charts() if charts is None else tuple(charts))


@functools.cache
def _primary_rules(charts: tuple[ChartVersion, ...]) -> Role:
    return required(rendered_primary_variants(charts), *PRIMARY_USES)


def remote_rules(charts: Sequence[ChartVersion] | None = None) -> Role:
    """What the operator needs on a remote cluster (deploy/remote, `remote-access`), with
    the istiod family's versions `charts` (default: every version of the catalogue)."""
    return _remote_rules(catalogue_charts() if charts is None else tuple(charts))


@functools.cache
def _remote_rules(charts: tuple[ChartVersion, ...]) -> Role:
    objects = rendered_remote_variants(charts)
    istiod = (ISTIOD_ON_REMOTE,) if rendered_istiod_remote_variants(charts) else ()
    return required(objects, *REMOTE_USES, *istiod)


def policy_rules(role: Role) -> list[dict[str, list[str]]]:
    """The role as a ClusterRole's `rules`: resources with the same group and verbs
    together, sorted, then `bind` by name; the same role always gives the same list."""
    grouped: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (group, resource), verbs in role.rules.items():
        if verbs:
            grouped.setdefault((group, tuple(sorted(verbs))), []).append(resource)
    rules = [
        {"apiGroups": [group], "resources": sorted(resources), "verbs": list(verbs)}
        for (group, verbs), resources in sorted(grouped.items())
    ]
    rules += [
        {
            "apiGroups": [group],
            "resources": [resource],
            "verbs": sorted(BIND),
            "resourceNames": sorted(names),
        }
        for (group, resource), names in sorted(role.bindable.items())
        if names
    ]
    return rules


def _register_istio_kinds() -> None:
    """Istio's own kinds (MANAGED_KINDS lists them) come from the rendered CRDs."""
    crds = render_primary(load_istio(all_on_variants()[0]).resource)
    register_crds(o.manifest for o in crds if o.kind == CRD_KIND)
