"""Taking over another operator's objects (`reconcile.takeover`), against the in-memory
cluster: what is replaced, what is superseded, when a Service's selector moves, what is
swept. The real API server's side (managedFields, orphaning, availability) is proven in
tests/integration/test_takeover.py."""

from __future__ import annotations

import asyncio
from typing import Any

from istio_operator.api.keys import key_of
from istio_operator.api.labels import FIELD_MANAGER, MANAGED_BY, owner_selector
from istio_operator.plan import resolve_primary
from istio_operator.reconcile.engine import Ownership, reconcile_cluster
from istio_operator.reconcile.injection import (
    INJECTION_LABEL,
    INJECTION_OWNER,
    MANAGED_INJECTION_LABEL,
    injection_namespaces,
    reconcile_injection_labels,
)
from istio_operator.render import DesiredObject
from istio_operator.render.phases import Phase
from tests.fakes import FakeCluster

from .render_support import istio, sample_body, with_spec
from .test_engine_fake import NS, deployment, owned

ISTIO_UID = "uid-of-the-istio"
OWNERSHIP = Ownership(owner_selector("mesh", NS), adopts_from=ISTIO_UID)
REFERENCE_REF = {
    "apiVersion": "istio.banzaicloud.io/v1beta1",
    "kind": "Istio",
    "name": "mesh",
    "uid": ISTIO_UID,
    "controller": True,
}


def as_the_reference_made_it(obj: DesiredObject, **spec: Any) -> dict[str, Any]:
    """The object without our labels, with the reference's annotation and ownerReference."""
    manifest: dict[str, Any] = {
        "apiVersion": obj.manifest["apiVersion"],
        "kind": obj.manifest["kind"],
        "metadata": {
            "name": obj.name,
            "namespace": NS,
            "labels": {"app": "theirs"},
            "annotations": {"banzaicloud.com/last-applied": "{}"},
            "ownerReferences": [REFERENCE_REF],
        },
    }
    manifest.update(spec or {k: v for k, v in obj.manifest.items() if k not in manifest})
    return manifest


def service(name: str, selector: dict[str, str], phase: Phase = Phase.GALLEY) -> DesiredObject:
    return owned("v1", "Service", name, phase, spec={"selector": selector, "ports": [{"port": 1}]})


def run(
    cluster: FakeCluster,
    objects: list[DesiredObject],
    ownership: Ownership = OWNERSHIP,
    phase_timeout: float = 5.0,
) -> Any:
    return asyncio.run(
        reconcile_cluster(cluster, objects, ownership, phase_timeout, poll_interval=0.01)
    )


def test_an_object_another_writer_made_is_replaced_by_ours_alone() -> None:
    cluster = FakeCluster()
    mesh = owned("v1", "ConfigMap", "istio", data={"mesh": "ours"})
    cluster.put(
        as_the_reference_made_it(mesh, data={"mesh": "theirs", "extra": "x"}), manager="manager"
    )
    report = run(cluster, [mesh])
    live = cluster.objects[key_of(mesh.manifest)]
    assert cluster.written("take-over") == [key_of(mesh.manifest)]
    assert live["data"] == {"mesh": "ours"}
    assert "ownerReferences" not in live["metadata"]
    assert "banzaicloud.com/last-applied" not in live["metadata"]["annotations"]
    assert live["metadata"]["labels"][MANAGED_BY]
    assert [m["manager"] for m in live["metadata"]["managedFields"]] == [FIELD_MANAGER]
    assert report.done and report.applied == [key_of(mesh.manifest)]


def test_an_object_of_someone_else_is_applied_over_and_keeps_their_fields() -> None:
    """Not the reference's (no annotation, no Istio owner): a user's namespace labels, say."""
    cluster = FakeCluster()
    mesh = owned("v1", "ConfigMap", "istio", data={"mesh": "ours"})
    users = {
        **mesh.manifest,
        "metadata": {"name": "istio", "namespace": NS, "labels": {"team": "x"}},
    }
    cluster.put({**users, "data": {"mesh": "theirs", "extra": "kept"}})
    run(cluster, [mesh])
    live = cluster.objects[key_of(mesh.manifest)]
    assert cluster.written("take-over") == []
    assert live["data"] == {"mesh": "ours", "extra": "kept"}
    assert live["metadata"]["labels"]["team"] == "x"


def test_a_taken_over_object_is_then_at_rest() -> None:
    cluster = FakeCluster()
    mesh = owned("v1", "ConfigMap", "istio", data={"mesh": "ours"})
    cluster.put(as_the_reference_made_it(mesh), manager="manager")
    run(cluster, [mesh])
    writes = len(cluster.audit)
    report = run(cluster, [mesh], Ownership(OWNERSHIP.selector, adopts_from=ISTIO_UID))
    assert report.applied == [] and len(cluster.audit) == writes


def test_a_workload_with_another_selector_is_superseded_and_its_replica_sets_pruned_after() -> None:
    cluster = FakeCluster()
    galley = deployment("istio-galley", Phase.GALLEY)
    theirs = as_the_reference_made_it(galley)
    theirs["spec"] = {**theirs["spec"], "selector": {"matchLabels": {"istio": "galley"}}}
    old = cluster.put(theirs, manager="manager")
    replica_set = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "istio-galley-abc",
            "namespace": NS,
            "ownerReferences": [
                {"kind": "Deployment", "name": "istio-galley", "uid": old["metadata"]["uid"]}
            ],
        },
    }
    rs_key = key_of(replica_set)
    cluster.put(replica_set, manager="kube-controller-manager")
    # As an API server would: the selector of a Deployment is immutable.
    cluster.refuse(key_of(galley.manifest), "spec.selector: field is immutable")
    report = run(cluster, [galley])
    live = cluster.objects[key_of(galley.manifest)]
    assert live["metadata"]["uid"] != old["metadata"]["uid"]  # a new Deployment, not a patch
    assert live["spec"]["selector"] == galley.manifest["spec"]["selector"]
    # Judged again as a create, under another name: the in-place refusal does not count.
    assert cluster.validated[-1].name == "istio-galley-replacement" and not report.refused
    # The old ReplicaSet was marked as ours before the old Deployment went, then pruned.
    writes = [(w.verb, w.key) for w in cluster.audit]
    assert writes.index(("apply", rs_key)) < writes.index(("delete", key_of(galley.manifest)))
    assert rs_key in report.pruned and rs_key not in cluster.objects


def test_a_service_moves_to_new_pods_only_once_the_phase_is_ready() -> None:
    cluster = FakeCluster(available_by_default=False)
    galley = deployment("istio-galley", Phase.GALLEY)
    svc = service("istio-galley", {"app": "istio-galley"})
    cluster.put(
        as_the_reference_made_it(
            svc, spec={"selector": {"istio": "galley"}, "ports": [{"port": 1}]}
        )
    )
    report = run(cluster, [galley, svc], phase_timeout=0.05)  # the phase stays unavailable
    assert report.waiting_phase is Phase.GALLEY
    assert cluster.objects[key_of(svc.manifest)]["spec"]["selector"] == {"istio": "galley"}
    cluster.set_available(key_of(galley.manifest), True)
    report = run(cluster, [galley, svc])
    assert report.done
    assert cluster.objects[key_of(svc.manifest)]["spec"]["selector"] == {"app": "istio-galley"}


def test_what_the_reference_made_and_we_do_not_render_is_swept_and_nothing_else() -> None:
    cluster = FakeCluster()
    mesh = owned("v1", "ConfigMap", "istio", data={"mesh": "ours"})
    leftover = as_the_reference_made_it(owned("v1", "ConfigMap", "istio-stray"), data={})
    someone_elses = {**leftover, "metadata": {**leftover["metadata"], "name": "other"}}
    someone_elses["metadata"]["ownerReferences"] = [{**REFERENCE_REF, "uid": "another-istio"}]
    users = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "users", "namespace": NS},
    }
    # The pass takes the reference's mesh ConfigMap over: its leftovers are then looked for.
    for obj in (as_the_reference_made_it(mesh), leftover, someone_elses, users):
        cluster.put(obj)
    report = run(cluster, [mesh])
    assert report.pruned == [key_of(leftover)]
    assert key_of(someone_elses) in cluster.objects and key_of(users) in cluster.objects


def test_only_a_take_over_or_a_first_pass_looks_for_the_references_leftovers() -> None:
    """An idle pass, or one that only creates or updates our own objects, lists nothing
    beyond what we own."""
    cluster = FakeCluster()
    mesh = owned("v1", "ConfigMap", "istio", data={"mesh": "ours"})
    run(cluster, [mesh])
    leftover = as_the_reference_made_it(owned("v1", "ConfigMap", "istio-stray"), data={})
    cluster.put(leftover)
    assert run(cluster, [mesh]).pruned == []
    changed = owned("v1", "ConfigMap", "istio", data={"mesh": "changed"})
    assert run(cluster, [changed]).pruned == []
    swept = run(
        cluster, [changed], Ownership(OWNERSHIP.selector, adopts_from=ISTIO_UID, sweep=True)
    )
    assert swept.pruned == [key_of(leftover)]


def namespace(
    name: str, labels: dict[str, str], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels, "annotations": annotations or {}},
    }


def test_namespaces_the_reference_labelled_are_taken_over() -> None:
    cluster = FakeCluster()
    theirs = {INJECTION_LABEL: "enabled", MANAGED_INJECTION_LABEL: "enabled"}
    cluster.put(namespace("kept", theirs), manager="manager")
    cluster.put(namespace("dropped", theirs), manager="manager")
    cluster.put(namespace("by-hand", {INJECTION_LABEL: "enabled"}))
    cluster.put(namespace("another-owner", theirs, {INJECTION_OWNER: "x/other"}))
    asyncio.run(reconcile_injection_labels(cluster, "mesh", NS, ["kept"]))
    labels = {
        k.name: v["metadata"].get("labels") or {}
        for k, v in cluster.objects.items()
        if k.kind == "Namespace"
    }
    annotations = {
        k.name: v["metadata"].get("annotations") or {}
        for k, v in cluster.objects.items()
        if k.kind == "Namespace"
    }
    assert labels["kept"] == theirs and annotations["kept"][INJECTION_OWNER] == f"{NS}/mesh"
    assert (
        INJECTION_LABEL not in labels["dropped"]
        and MANAGED_INJECTION_LABEL not in labels["dropped"]
    )
    assert labels["by-hand"] == {INJECTION_LABEL: "enabled"}
    assert labels["another-owner"] == theirs


def test_no_namespace_is_labelled_for_injection_while_the_injector_is_off() -> None:
    """The reference (`sidecarinjector/labels.go`) labels namespaces only when the sidecar
    injector is enabled: a label without an injector would promise sidecars."""
    body = sample_body()
    assert injection_namespaces(resolve_primary(istio(body))[0]) == ["default"]
    off = with_spec(body, "sidecarInjector.enabled", False)
    assert injection_namespaces(resolve_primary(istio(off))[0]) == []
