"""The istiod family's pure parts: the plan, the chart values, what the render marks, and
which revisions are kept (no helm, no cluster: a catalogue version made in a tmp dir)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from istio_operator.api.errors import SpecError
from istio_operator.api.labels import OWNER_NAME, PHASE, REVISION
from istio_operator.api.parse import load_istio, load_remote_istio
from istio_operator.charts import ChartVersion
from istio_operator.plan.istiod import (
    IstiodPlan,
    resolve_istiod,
    resolve_istiod_remote,
    revision_name,
    with_remotes,
)
from istio_operator.reconcile.istiod import Inventory, Revision, Usage, retained, usage
from istio_operator.reconcile.migration import on_older_revisions
from istio_operator.render.istiod import (
    as_stored,
    istiod_routes,
    marked,
    operator_objects,
    releases,
)
from istio_operator.render.phases import Phase
from istio_operator.versions.istiod import Components


@pytest.fixture
def charts(tmp_path: Path) -> ChartVersion:
    """A version with the two required charts, the istiod chart's `demo` profile file, and
    istioctl's default and ambient profiles."""
    root = tmp_path / "1.30.3"
    for chart in ("base", "istio-control/istio-discovery"):
        (root / "charts" / chart / "files").mkdir(parents=True)
        (root / "charts" / chart / "Chart.yaml").write_text("name: x\n")
    (root / "charts/istio-control/istio-discovery/files/profile-demo.yaml").write_text("{}\n")
    (root / "profiles").mkdir()
    (root / "profiles/default.yaml").write_text(
        "spec:\n  components:\n    ingressGateways: [{name: istio-ingressgateway, enabled: true}]\n"
    )
    (root / "profiles/ambient.yaml").write_text(
        "spec:\n  components:\n    cni: {enabled: true}\n    ztunnel: {enabled: true}\n"
        "    ingressGateways: [{name: istio-ingressgateway, enabled: false}]\n"
    )
    return ChartVersion("1.30.3", root)


def plan_of(charts: ChartVersion, **spec: Any) -> IstiodPlan:
    body = {
        "apiVersion": "istio.banzaicloud.io/v1beta1",
        "kind": "Istio",
        "metadata": {"name": "mesh", "namespace": "istio-system"},
        "spec": {"version": "1.30.3", **spec},
    }
    return resolve_istiod(load_istio(body).resource, charts)


def test_the_profile_decides_the_components_as_istioctls_profiles_do(charts: ChartVersion) -> None:
    assert plan_of(charts).components == Components(ingress_gateway=True)
    assert plan_of(charts, profile="ambient").components == Components(
        ingress_gateway=False, cni=True, ztunnel=True
    )
    # No istioctl profile file: the family's table (released charts carry none).
    assert plan_of(charts, profile="demo").components == Components(egress_gateway=True)
    egress_off = plan_of(charts, profile="demo", gateways={"egress": {"enabled": False}})
    assert egress_off.components == Components()
    with pytest.raises(SpecError, match=r"^spec\.profile: unknown profile 'nope'"):
        plan_of(charts, profile="nope")


def test_classic_only_fields_are_refused_by_name(charts: ChartVersion) -> None:
    with pytest.raises(SpecError) as info:
        plan_of(charts, mtls=True, pilot={"replicaCount": 2}, gateways={"ingress": {"ports": []}})
    assert info.value.path == "spec.gateways.ingress.ports"
    assert "spec.mtls" in str(info.value) and "spec.pilot" in str(info.value)
    assert plan_of(charts, autoInjectionNamespaces=["apps"]).injection_namespaces == ("apps",)


def test_revisions_are_named_for_the_resource_and_version() -> None:
    assert revision_name("mesh", "1.31.1") == "mesh-1-31-1"
    assert revision_name("Mesh", "1.31.1-rc.1") == "mesh-1-31-1-rc-1"
    assert len(revision_name("m" * 70, "1.31.1")) == 63


def test_what_the_operator_sets_wins_over_the_given_values(charts: ChartVersion) -> None:
    given = {"revision": "mine", "global": {"tag": "9.9.9", "hub": "example.com/istio"}}
    plan = plan_of(charts, values=given, updateStrategy={"type": "RevisionBased", "tags": ["prod"]})
    istiod = next(r for r in releases(plan) if r.chart == "istiod")
    assert istiod.values["revision"] == "mesh-1-30-3"
    assert istiod.values["revisionTags"] == ["default", "prod"]
    assert istiod.values["global"]["tag"] == "1.30.3"
    assert istiod.values["global"]["hub"] == "example.com/istio"  # the hub is the user's
    base = next(r for r in releases(plan) if r.chart == "base")
    assert base.values["defaultRevision"] == "mesh-1-30-3"
    in_place = plan_of(charts)
    assert next(r for r in releases(in_place) if r.chart == "base").values["defaultRevision"] == ""


def test_chart_values_keys_go_to_their_charts(charts: ChartVersion) -> None:
    plan = plan_of(
        charts, profile="ambient", values={"cni": {"cniBinDir": "/x"}, "pilot": {"env": {}}}
    )
    by_chart = {r.chart: r.values for r in releases(plan)}
    assert by_chart["cni"]["cniBinDir"] == "/x"
    assert "cni" not in by_chart["istiod"] and by_chart["istiod"]["pilot"] == {"env": {}}


def test_marked_objects_are_ours_and_leave_istiods_webhook_fields_alone(
    charts: ChartVersion,
) -> None:
    plan = plan_of(charts, updateStrategy={"type": "RevisionBased"})
    release = next(r for r in releases(plan) if r.chart == "istiod")
    webhook = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "istio-validator", "labels": {"app.kubernetes.io/managed-by": "Helm"}},
        "webhooks": [{"name": "v", "failurePolicy": "Ignore", "clientConfig": {"caBundle": ""}}],
    }
    obj = marked(plan, release, webhook)
    assert obj.phase == Phase.ISTIOD and obj.namespace is None
    assert obj.labels[OWNER_NAME] == "mesh" and obj.labels[REVISION] == "mesh-1-30-3"
    assert obj.labels["app.kubernetes.io/managed-by"] == "istio-operator"
    assert obj.manifest["webhooks"] == [{"name": "v", "clientConfig": {}}]
    tag = marked(plan, release, {"kind": "Service", "metadata": {"name": "istiod-revision-tag-x"}})
    assert tag.phase == Phase.REVISION_TAGS and tag.namespace == "istio-system"
    assert tag.labels[PHASE] == "revision-tags"


def test_what_the_api_server_drops_is_not_rendered() -> None:
    rendered = {"env": [{"name": "A", "value": ""}, {"name": "B", "value": "b"}], "x": None}
    assert as_stored(rendered) == {"env": [{"name": "A"}, {"name": "B", "value": "b"}]}


def _revisions(*names: str) -> dict[str, Revision]:
    return {name: Revision(name, "1.30.3", True) for name in names}


def test_usage_counts_namespaces_through_tags_and_only_injected_pods() -> None:
    tags = {"default": "new", "prod": "new"}
    namespaces: list[dict[str, Any]] = [
        {"metadata": {"labels": {"istio-injection": "enabled"}}},
        {"metadata": {"labels": {"istio.io/rev": "prod"}}},
        {"metadata": {"labels": {"istio.io/rev": "old"}}},
        {"metadata": {"labels": {}}},
    ]
    injected = {"sidecar.istio.io/status": "{}"}
    pods: list[dict[str, Any]] = [
        {"metadata": {"labels": {"istio.io/rev": "old"}, "annotations": injected}},
        {"metadata": {"labels": {"istio.io/rev": "old"}}},  # istiod's own pod
    ]
    found = usage(_revisions("old", "new"), tags, namespaces, pods)
    assert found == {"old": Usage(namespaces=1, pods=1), "new": Usage(namespaces=2, pods=0)}


def test_an_unused_revision_is_kept_for_the_grace_period_then_let_go(
    charts: ChartVersion,
) -> None:
    plan = plan_of(
        charts,
        updateStrategy={"type": "RevisionBased", "inactiveRevisionDeletionGracePeriodSeconds": 60},
    )
    now = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
    found = Inventory(_revisions(plan.revision, "used", "idle"), {}, {"used": Usage(pods=1)})
    kept, since, recheck = retained(plan, found, {}, now)
    assert kept == {"used", "idle"} and since == {"idle": "2026-12-02T12:00:00Z"}
    assert recheck == 60
    previous = {"idle": {"unusedSince": "2026-12-02T11:58:30Z"}}
    kept, since, recheck = retained(plan, found, previous, now)
    assert kept == {"used"} and since == {} and recheck is None


def _pod(
    namespace: str, revision: str | None, owner: tuple[str, str], **meta: Any
) -> dict[str, Any]:
    labels = {"pod-template-hash": "abc12"} if owner[0] == "ReplicaSet" else {}
    if revision is not None:
        labels["istio.io/rev"] = revision
    return {
        "metadata": {
            "namespace": namespace,
            "labels": labels,
            "annotations": {"sidecar.istio.io/status": "{}"},
            "ownerReferences": [{"kind": owner[0], "name": owner[1]}],
            **meta,
        }
    }


def test_the_workloads_to_migrate_are_those_an_older_revision_injected() -> None:
    pods = [
        _pod("apps", "old", ("ReplicaSet", "echo-abc12")),
        _pod("apps", "old", ("ReplicaSet", "echo-abc12")),
        _pod("apps", "new", ("ReplicaSet", "web-abc12")),
        _pod("apps", "old", ("StatefulSet", "db")),
        _pod("apps", "old", ("DaemonSet", "agent"), deletionTimestamp="2026-12-02T00:00:00Z"),
        _pod("istio-system", "old", ("ReplicaSet", "istio-ingressgateway-abc12")),
    ]
    keys = on_older_revisions(pods, "new", "istio-system")
    assert [(k.kind, k.namespace, k.name) for k in keys] == [
        ("Deployment", "apps", "echo"),
        ("StatefulSet", "apps", "db"),
    ]


def test_migration_is_asked_for_only_with_revisions(charts: ChartVersion) -> None:
    wanted = {"enabled": True, "batchSize": 3}
    assert plan_of(charts, updateStrategy={"workloadMigration": wanted}).migration is None
    plan = plan_of(charts, updateStrategy={"type": "RevisionBased", "workloadMigration": wanted})
    assert plan.migration is not None and plan.migration.batch_size == 3
    assert plan.migration.readiness_timeout_s == 300


def test_each_revision_is_reached_through_the_east_west_gateway_by_its_own_name(
    charts: ChartVersion,
) -> None:
    plan = plan_of(charts, updateStrategy={"type": "RevisionBased"})
    joined = with_remotes(plan, {"west": "", "east": "net-east"}, {"mesh-1-30-2"})
    assert joined.remotes == ("east", "west") and joined.cross_network
    assert with_remotes(plan, {"west": ""}, set()).cross_network is False
    routes = istiod_routes("istio-system", joined.exposed_revisions, joined.revision)["spec"]["tls"]
    by_name = {
        r["match"][0]["sniHosts"][0]: r["route"][0]["destination"]["host"]
        for r in routes
        if r["match"][0]["port"] == 15017
    }
    assert by_name == {
        "istiod-mesh-1-30-2.istio-system.svc": "istiod-mesh-1-30-2.istio-system.svc.cluster.local",
        "istiod-mesh-1-30-3.istio-system.svc": "istiod-mesh-1-30-3.istio-system.svc.cluster.local",
        "istiod.istio-system.svc": "istiod-mesh-1-30-3.istio-system.svc.cluster.local",
    }
    gateways = {m["kind"] + "/" + m["metadata"]["name"] for _, m in operator_objects(joined)}
    assert gateways == {
        "Gateway/istiod-gateway",
        "VirtualService/istiod-routes",
        "Gateway/cross-network-gateway",
    }


def test_a_remote_takes_the_primarys_revision_with_its_own_name_and_network(
    charts: ChartVersion,
) -> None:
    body = {
        "apiVersion": "istio.banzaicloud.io/v1beta1",
        "kind": "Istio",
        "metadata": {"name": "mesh", "namespace": "istio-system"},
        "spec": {"version": "1.30.3", "updateStrategy": {"type": "RevisionBased"}},
    }
    remote = load_remote_istio(
        {
            "apiVersion": "istio.banzaicloud.io/v1beta1",
            "kind": "RemoteIstio",
            "metadata": {"name": "west", "namespace": "istio-system"},
            "spec": {"enabledServices": [], "network": "net-west"},
        }
    ).resource
    plan = resolve_istiod_remote(load_istio(body).resource, remote, charts, "100.64.0.9")
    assert (plan.remote, plan.cluster_name, plan.network) == ("west", "west", "net-west")
    assert plan.revision == "mesh-1-30-3" and plan.components == Components(ingress_gateway=False)
    istiod = next(r for r in releases(plan) if r.chart == "istiod")
    assert istiod.values["global"]["remotePilotAddress"] == "100.64.0.9"
    assert istiod.values["global"]["multiCluster"] == {"clusterName": "west"}
    added = [m["metadata"]["name"] for _, m in operator_objects(plan)]
    assert added == ["istio-reader-service-account-token"]
