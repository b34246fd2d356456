"""The pure parts of `istio-operator plan`: field-level differences, the edited resource,
grouping by phase, the text and the exit status."""

from __future__ import annotations

from istio_operator.api.keys import ObjectKey
from istio_operator.cli.plan import CHANGES, NO_CHANGE, REFUSED, as_text, exit_status
from istio_operator.kube.objects import MISSING, FieldChange, differences
from istio_operator.operations.planning import PlannedWrite, by_phase
from istio_operator.operations.upgrade_plan import (
    ClusterPlan,
    UpgradePlan,
    edited_body,
    not_available,
)

PILOT = ObjectKey("apps/v1", "Deployment", "istio-system", "istio-pilot")


def deployment(image: str, args: list[str]) -> dict[str, object]:
    container = {"name": "discovery", "image": image, "args": args}
    sidecar = {"name": "istio-proxy", "image": "proxyv2"}
    return {"spec": {"template": {"spec": {"containers": [container, sidecar]}}}}


def test_named_list_items_are_paired_by_name() -> None:
    live = deployment("pilot:1.2.5", ["discovery", "--log"])
    desired = deployment("pilot:1.3.0", ["discovery", "--log"])
    containers = live["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    containers.reverse()  # order differs: still paired by name
    assert differences(live, desired) == [
        FieldChange("spec.template.spec.containers[discovery].image", "pilot:1.2.5", "pilot:1.3.0")
    ]


def test_a_changed_arg_and_a_new_key_are_named() -> None:
    live = {"data": {"mesh": "a: 1"}, "args": ["x", "y"]}
    desired = {"data": {"mesh": "a: 2", "extra": "z"}, "args": ["x", "w"]}
    assert differences(live, desired) == [
        FieldChange("data.mesh", "a: 1", "a: 2"),
        FieldChange("data.extra", MISSING, "z"),
        FieldChange("args[1]", "y", "w"),
    ]


def test_server_defaults_and_equal_quantities_are_no_difference() -> None:
    live = {"spec": {"memory": "2Gi", "defaulted": True}}
    assert differences(live, {"spec": {"memory": "2048Mi"}}) == []


def test_the_edited_spec_gets_a_new_generation_and_keeps_the_live_status() -> None:
    live = {
        "kind": "Istio",
        "metadata": {"name": "mesh", "namespace": "istio-system", "generation": 4},
        "spec": {"version": "1.2.5"},
        "status": {"version": "1.2.5"},
    }
    edited = {"kind": "Istio", "metadata": {"name": "mesh"}, "spec": {"version": "1.3.0"}}
    body = edited_body(live, edited)
    assert body["metadata"]["generation"] == 5
    assert body["spec"] == {"version": "1.3.0"} and body["status"] == {"version": "1.2.5"}
    assert edited_body(live, {**edited, "spec": live["spec"]})["metadata"]["generation"] == 4
    fresh = edited_body(None, {**edited, "metadata": {"name": "m", "namespace": "ns"}})
    assert fresh["metadata"] == {"name": "m", "namespace": "ns", "generation": 1}


def test_writes_are_grouped_in_rollout_order_with_the_prune_last() -> None:
    writes = [
        PlannedWrite("delete", PILOT, "pilot"),
        PlannedWrite("change", PILOT, "sidecar-injector"),
        PlannedWrite("create", PILOT, "citadel"),
    ]
    assert [label for label, _ in by_phase(writes)] == ["citadel", "sidecar-injector", "prune"]


def test_only_a_pod_template_change_rolls_a_workload() -> None:
    image = FieldChange("spec.template.spec.containers[discovery].image", "a", "b")
    replicas = FieldChange("spec.replicas", 1, 2)
    assert PlannedWrite("change", PILOT, "pilot", (image,)).rolls
    assert not PlannedWrite("change", PILOT, "pilot", (replicas,)).rolls


def plan_of(*clusters: ClusterPlan, refusals: tuple[str, ...] = ()) -> UpgradePlan:
    key = ObjectKey("istio.banzaicloud.io/v1beta1", "Istio", "istio-system", "mesh")
    return UpgradePlan(key, "1.2.5", "1.3.0", list(clusters), list(refusals))


def test_the_exit_status_tells_no_change_changes_and_refused() -> None:
    change = PlannedWrite("change", PILOT, "pilot", ())
    assert exit_status(plan_of(ClusterPlan("primary", ""))) == NO_CHANGE
    assert exit_status(plan_of(ClusterPlan("primary", "", [change]))) == CHANGES
    refused = ClusterPlan("east", "", refusal="Unreachable: no route")
    assert exit_status(plan_of(ClusterPlan("primary", "", [change]), refused)) == REFUSED
    assert exit_status(plan_of(refusals=("not Available",))) == REFUSED


def test_the_text_shows_the_version_the_field_and_a_config_line_diff() -> None:
    image = FieldChange("spec.template.spec.containers[discovery].image", "p:1.2.5", "p:1.3.0")
    mesh = FieldChange("data.mesh", "a: 1\nb: 2\n", "a: 1\nb: 3\n")
    config = ObjectKey("v1", "ConfigMap", "istio-system", "istio")
    writes = [
        PlannedWrite("change", PILOT, "pilot", (image,)),
        PlannedWrite("change", config, "base", (mesh,)),
    ]
    text = as_text(plan_of(ClusterPlan("primary", "https://p", writes)))
    assert text.splitlines()[0] == "Istio istio-system/mesh: 1.2.5 → 1.3.0"
    assert "spec.template.spec.containers[discovery].image: p:1.2.5 → p:1.3.0" in text
    assert "  - b: 2" in text and "  + b: 3" in text
    assert text.index("phase base:") < text.index("phase pilot:")
    assert "workloads that roll: Deployment/istio-pilot" in text


def test_a_change_to_an_istio_that_is_not_available_is_refused_with_its_error() -> None:
    def istio(**status: str) -> dict[str, object]:
        meta = {"name": "mesh", "namespace": "istio-system"}
        return {"metadata": meta, "status": status}

    assert not_available(istio()) == []  # never reconciled yet: an install
    assert not_available(istio(Status="Available")) == []
    (refusal,) = not_available(istio(Status="ReconcileFailed", ErrorMessage="pilot: timeout"))
    assert refusal.startswith("Istio istio-system/mesh is ReconcileFailed, not Available")
    assert "(pilot: timeout)" in refusal
