"""The reconcile engine against an in-memory cluster (`tests/fakes.py`): phase gating,
no write without a change, pruning only what we applied, refusal before the first write.

The same engine runs against real API servers in tests/integration; these tests cover
its decisions in seconds."""

from __future__ import annotations

import asyncio
import copy
import inspect
from typing import Any

import pytest

from istio_operator.api.keys import ObjectKey, key_of
from istio_operator.api.labels import (
    FIELD_MANAGER,
    MANAGED_BY,
    MANAGED_BY_VALUE,
    OWNER_NAME,
    OWNER_NAMESPACE,
    PHASE,
    owner_selector,
    ownership_labels,
)
from istio_operator.kube.client import Cluster, ClusterUnreachableError
from istio_operator.kube.protocol import ClusterAccess
from istio_operator.reconcile.engine import Ownership, delete_owned, reconcile_cluster
from istio_operator.render import DesiredObject
from istio_operator.render.phases import Phase
from tests.fakes import FakeCluster

from .render_support import primary

NS = "istio-system"
CRD_API = "apiextensions.k8s.io/v1"
OWNER = ownership_labels("mesh", NS)
OWNERSHIP = Ownership(owner_selector("mesh", NS))
SAFETY_S = 10.0  # a bound on condition waits that must end much sooner; never a sleep


def deployment(name: str, phase: Phase, image: str = "docker.io/istio/x:1.3.0") -> DesiredObject:
    return DesiredObject(
        phase,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS, "labels": {**OWNER, PHASE: phase.label}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": name, "image": image}]},
                },
            },
        },
    )


def owned(
    api_version: str, kind: str, name: str, phase: Phase = Phase.BASE, **fields: Any
) -> DesiredObject:
    meta: dict[str, Any] = {"name": name, "labels": {**OWNER, PHASE: phase.label}}
    if not kind.endswith("WebhookConfiguration"):
        meta["namespace"] = NS
    return DesiredObject(
        phase, {"apiVersion": api_version, "kind": kind, "metadata": meta, **fields}
    )


def config_map(name: str, phase: Phase = Phase.BASE, **data: str) -> DesiredObject:
    return owned("v1", "ConfigMap", name, phase, data=data or {"mesh": "{}"})


def key(obj: DesiredObject) -> ObjectKey:
    return key_of(obj.manifest)


# -- the fake is a ClusterAccess, as the real client is ----------------------------------------


def test_the_fake_and_the_real_client_have_every_member_of_the_protocol() -> None:
    members = [n for n in vars(ClusterAccess) if not n.startswith("_")]
    assert {"get", "apply", "judge", "list_labelled", "delete", "patch_status"} <= set(members)
    attributes = {Cluster: set(Cluster.__dataclass_fields__), FakeCluster: set(vars(FakeCluster()))}
    for implementation, fields in attributes.items():
        for name in members:
            where = f"{implementation.__name__}.{name}"
            wanted = getattr(ClusterAccess, name)
            if isinstance(wanted, property):
                assert name in fields, where
                continue
            found = getattr(implementation, name)
            assert inspect.iscoroutinefunction(found) == inspect.iscoroutinefunction(wanted), where
            assert parameters(found) == parameters(wanted), where


def parameters(function: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


async def test_the_fake_applies_as_a_server_side_apply_would() -> None:
    fake = FakeCluster()
    pilot = deployment("istio-pilot", Phase.PILOT).manifest
    created = await fake.apply(pilot)
    relabelled = copy.deepcopy(pilot)
    relabelled["metadata"]["labels"]["extra"] = "1"
    assert await fake.apply(relabelled, dry_run=True) != created
    assert fake.written() == [key_of(pilot)]  # a dry-run is no write

    labelled = await fake.apply(relabelled)
    upgraded = copy.deepcopy(relabelled)
    upgraded["spec"]["template"]["spec"]["containers"][0]["image"] = "pilot:1.3.1"
    del upgraded["metadata"]["labels"]["extra"]
    after = await fake.apply(upgraded)

    generations = [o["metadata"]["generation"] for o in (created, labelled, after)]
    versions = [int(o["metadata"]["resourceVersion"]) for o in (created, labelled, after)]
    assert generations == [1, 1, 2]  # metadata alone is no new generation
    assert versions == sorted(set(versions))
    assert "extra" not in after["metadata"]["labels"]  # given up by its only manager
    assert after["status"]["observedGeneration"] == 2
    holder = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s", "namespace": NS}}
    fake.put({**holder, "status": {"a": 1, "b": 2}})
    await fake.patch_status(key_of(holder), {"a": None, "c": 3})
    assert fake.objects[key_of(holder)]["status"] == {"b": 2, "c": 3}


# -- phase gating ------------------------------------------------------------------------------


async def test_a_phase_is_not_applied_while_an_earlier_phases_workload_is_unavailable() -> None:
    fake = FakeCluster()
    citadel = deployment("istio-citadel", Phase.CITADEL)
    galley = deployment("istio-galley", Phase.GALLEY)
    galley_config = config_map("istio-galley-configuration", Phase.GALLEY)
    objects = [galley, galley_config, citadel]
    fake.set_available(key(citadel), False)

    report = await reconcile_cluster(fake, objects, OWNERSHIP, phase_timeout=0)

    assert report.waiting_phase == Phase.CITADEL
    assert report.awaiting == [f"{key(citadel)}: new generation not yet observed"]
    assert not report.done and report.completed == []
    assert fake.written() == [key(citadel)]
    assert key(galley) not in fake.objects and key(galley_config) not in fake.objects

    fake.set_available(key(citadel), True)
    report = await reconcile_cluster(fake, objects, OWNERSHIP, phase_timeout=0)

    assert report.done and report.completed == [Phase.CITADEL, Phase.GALLEY]
    assert sorted(report.applied) == sorted([key(galley), key(galley_config)])
    assert fake.written() == [key(citadel), *report.applied]


async def test_a_phases_writes_go_out_at_once_tier_by_tier() -> None:
    fake = FakeCluster()
    webhook = owned(
        "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "injector", webhooks=[]
    )
    workload = deployment("istio-sidecar-injector", Phase.BASE)
    namespace = DesiredObject(
        Phase.BASE,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": OWNER}},
    )
    configs = [config_map(f"config-{n}") for n in range(4)]
    # Rendered in an order where each object precedes what it needs.
    objects = [webhook, workload, *configs, namespace]

    report = await reconcile_cluster(fake, objects, OWNERSHIP, phase_timeout=0)

    assert report.done
    written = fake.written("apply")
    assert written[0] == key(namespace)
    assert sorted(written[1:5]) == sorted(key(o) for o in configs)
    assert written[5:] == [key(workload), key(webhook)]
    assert fake.most_applying > 1  # the config maps' writes overlapped


async def test_the_next_phase_starts_once_the_awaited_workload_becomes_available() -> None:
    fake = FakeCluster()
    citadel = deployment("istio-citadel", Phase.CITADEL)
    galley = deployment("istio-galley", Phase.GALLEY)
    fake.set_available(key(citadel), False)

    rollout = asyncio.ensure_future(
        reconcile_cluster(fake, [citadel, galley], OWNERSHIP, phase_timeout=60, poll_interval=0.01)
    )
    await asyncio.wait_for(fake.read_of(key(citadel)).wait(), SAFETY_S)  # it is waiting
    assert not rollout.done()
    assert key(galley) not in fake.objects

    fake.set_available(key(citadel), True)
    report = await asyncio.wait_for(rollout, SAFETY_S)

    assert report.done
    assert fake.written() == [key(citadel), key(galley)]


async def test_a_new_generation_is_awaited_even_where_the_old_one_was_available() -> None:
    fake = FakeCluster()
    pilot, mixer = deployment("istio-pilot", Phase.PILOT), deployment("istio-mixer", Phase.MIXER)
    assert (await reconcile_cluster(fake, [pilot, mixer], OWNERSHIP, phase_timeout=0)).done
    fake.set_available(key(pilot), False)  # its controller does not act on the upgrade (yet)

    upgrade = [
        deployment("istio-pilot", Phase.PILOT, "pilot:1.3.1"),
        deployment("istio-mixer", Phase.MIXER, "mixer:1.3.1"),
    ]
    report = await reconcile_cluster(fake, upgrade, OWNERSHIP, phase_timeout=0)

    assert report.waiting_phase == Phase.PILOT
    assert report.awaiting == [f"{key(pilot)}: new generation not yet observed"]
    assert fake.objects[key(pilot)]["metadata"]["generation"] == 2
    assert fake.objects[key(mixer)]["metadata"]["generation"] == 1  # not touched yet


# -- no write without a change -----------------------------------------------------------------


async def test_a_second_pass_over_a_whole_primary_render_writes_nothing() -> None:
    fake = FakeCluster()
    objects = primary()
    labels = next(o.labels for o in objects if OWNER_NAME in o.labels)
    ownership = Ownership(owner_selector(labels[OWNER_NAME], labels[OWNER_NAMESPACE]))
    first = await reconcile_cluster(fake, objects, ownership, phase_timeout=0)
    assert first.done, first.awaiting
    assert len(fake.audit) == len(objects) == len(first.applied)
    writes, validated = len(fake.audit), len(fake.validated)

    second = await reconcile_cluster(fake, objects, ownership, phase_timeout=0)

    assert second.done
    assert second.applied == [] and second.pruned == []
    assert fake.audit[writes:] == []
    assert fake.validated[validated:] == []  # nothing to judge either


async def test_a_create_is_judged_without_a_read_one_someone_else_made_is_read() -> None:
    fake = FakeCluster()
    theirs, ours = config_map("theirs"), config_map("ours")
    fake.put({**theirs.manifest, "metadata": {"name": "theirs", "namespace": NS}})

    report = await reconcile_cluster(fake, [theirs, ours], OWNERSHIP, phase_timeout=0)

    assert report.done and sorted(fake.validated) == sorted([key(theirs), key(ours)])
    # The dry-run said the new one does not exist: only the other writer's was read.
    assert fake.read_of(key(theirs)).is_set() and not fake.read_of(key(ours)).is_set()
    assert fake.objects[key(theirs)]["metadata"]["labels"][OWNER_NAME] == "mesh"


async def test_objects_in_a_namespace_not_made_yet_are_not_sent_to_the_dry_run() -> None:
    fake = FakeCluster()
    namespace = DesiredObject(
        Phase.BASE,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": OWNER}},
    )
    webhook = owned("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "inj")
    objects = [namespace, config_map("istio"), deployment("istio-pilot", Phase.PILOT), webhook]

    first = await reconcile_cluster(fake, objects, OWNERSHIP, phase_timeout=0)

    assert first.done and len(first.applied) == len(objects)
    assert sorted(map(str, fake.validated)) == sorted(map(str, [key(namespace), key(webhook)]))
    # Once the namespace exists, what changes in it is judged.
    changed = [namespace, config_map("istio", mesh="{x: 1}"), *objects[2:]]
    judged = len(fake.validated)
    await reconcile_cluster(fake, changed, OWNERSHIP, phase_timeout=0)
    assert fake.validated[judged:] == [key(changed[1])]


async def test_a_refused_object_in_an_existing_namespace_stops_the_change() -> None:
    fake = FakeCluster()
    fake.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    namespace = DesiredObject(
        Phase.BASE,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": OWNER}},
    )
    bad = config_map("istio")
    fake.refuse(key(bad), "data.mesh: invalid")

    report = await reconcile_cluster(fake, [namespace, bad], OWNERSHIP, phase_timeout=0)

    assert report.refused == [f"{key(bad)}: data.mesh: invalid"] and fake.written() == []


async def test_only_the_object_that_changed_is_applied_and_its_generation_grows() -> None:
    fake = FakeCluster()
    objects = [deployment("istio-pilot", Phase.PILOT), config_map("istio", Phase.BASE)]
    await reconcile_cluster(fake, objects, OWNERSHIP, phase_timeout=0)
    audited = len(fake.audit)

    changed = [deployment("istio-pilot", Phase.PILOT, "docker.io/istio/pilot:1.3.1"), objects[1]]
    report = await reconcile_cluster(fake, changed, OWNERSHIP, phase_timeout=0)

    assert report.applied == [key(changed[0])]
    assert fake.written()[audited:] == [key(changed[0])]
    assert fake.objects[key(changed[0])]["metadata"]["generation"] == 2


async def test_a_field_dropped_from_the_render_is_removed_from_the_cluster() -> None:
    fake = FakeCluster()
    await reconcile_cluster(fake, [config_map("istio", a="1", b="2")], OWNERSHIP, phase_timeout=0)

    report = await reconcile_cluster(fake, [config_map("istio", a="1")], OWNERSHIP, phase_timeout=0)

    assert len(report.applied) == 1  # the desired hash changed, though every field is there
    assert fake.objects[key(config_map("istio"))]["data"] == {"a": "1"}


# -- pruning -----------------------------------------------------------------------------------


async def test_a_stale_owned_object_is_deleted_webhooks_first() -> None:
    fake = FakeCluster()
    kept = config_map("istio")
    stale = [
        config_map("istio-old"),
        owned("v1", "Service", "istio-sidecar-injector", spec={"ports": [{"port": 443}]}),
        owned(
            "admissionregistration.k8s.io/v1",
            "MutatingWebhookConfiguration",
            "istio-sidecar-injector",
            webhooks=[],
        ),
        owned(
            "admissionregistration.k8s.io/v1",
            "ValidatingWebhookConfiguration",
            "istio-galley",
            webhooks=[],
        ),
    ]
    await reconcile_cluster(fake, [kept, *stale], OWNERSHIP, phase_timeout=0)
    audited = len(fake.audit)

    report = await reconcile_cluster(fake, [kept], OWNERSHIP, phase_timeout=0)

    deleted = fake.written("delete")
    assert fake.written()[audited:] == deleted == report.pruned
    assert sorted(deleted) == sorted(key(o) for o in stale)
    assert {k.kind for k in deleted[:2]} == {
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    }
    assert key(kept) in fake.objects and not any(key(o) in fake.objects for o in stale)


async def test_objects_we_did_not_apply_or_do_not_own_are_never_pruned() -> None:
    fake = FakeCluster()
    ours = config_map("istio")
    # A remote's namespace: applied by us with the managed-by label only, so that it
    # outlives its owner. Its kind is therefore listed by that label as well.
    namespace = DesiredObject(Phase.BASE, cluster_scoped("v1", "Namespace", NS))
    # Endpoints copy their Service's labels, ours included; we never applied them.
    endpoints = fake.put(
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "istio-pilot", "namespace": NS, "labels": dict(OWNER)},
        },
        manager="kube-controller-manager",
    )
    # Applied by us without the owner's labels: Istio's CRDs (users' configuration lives
    # in them), another namespace of ours; and one applied for another Istio resource.
    crd = put_as_ours(
        fake,
        cluster_scoped(CRD_API, "CustomResourceDefinition", "policies.authentication.istio.io"),
    )
    old_namespace = put_as_ours(fake, cluster_scoped("v1", "Namespace", "istio-old"))
    others = put_as_ours(
        fake, cluster_scoped("v1", "Namespace", "other-mesh", ownership_labels("other", NS))
    )

    report = await reconcile_cluster(fake, [ours, namespace], OWNERSHIP, phase_timeout=0)
    removed = await delete_owned(fake, OWNERSHIP)

    assert report.done and report.pruned == []
    assert removed == [key(ours)]
    assert fake.written("delete") == [key(ours)]
    for kept in (endpoints, crd, old_namespace, others, namespace.manifest):
        assert key_of(kept) in fake.objects, key_of(kept)


def cluster_scoped(
    api_version: str, kind: str, name: str, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    meta = {"name": name, "labels": labels or {MANAGED_BY: MANAGED_BY_VALUE}}
    return {"apiVersion": api_version, "kind": kind, "metadata": meta}


def put_as_ours(fake: FakeCluster, manifest: dict[str, Any]) -> dict[str, Any]:
    return fake.put(manifest, manager=FIELD_MANAGER, operation="Apply")


# -- refusal before the first write ------------------------------------------------------------


async def test_one_refused_object_and_nothing_is_applied() -> None:
    fake = FakeCluster()
    citadel = deployment("istio-citadel", Phase.CITADEL)
    gateway = owned(
        "v1",
        "Service",
        "istio-ingressgateway",
        Phase.GATEWAYS,
        spec={"ports": [{"port": 80, "nodePort": 1}]},
    )
    objects = [config_map("istio"), citadel, gateway]
    why = 'Service "istio-ingressgateway" is invalid: spec.ports[0].nodePort: Invalid value: 1'
    fake.refuse(key(gateway), why)

    report = await reconcile_cluster(fake, objects, OWNERSHIP, phase_timeout=0)

    assert report.refused == [f"{key(gateway)}: {why}"]
    assert not report.done and report.applied == []
    assert fake.audit == []
    assert sorted(fake.validated) == sorted(key(o) for o in objects)

    fake.refuse(key(gateway), None)
    assert (await reconcile_cluster(fake, objects, OWNERSHIP, phase_timeout=0)).done


async def test_a_refused_update_leaves_every_running_object_as_it_was() -> None:
    fake = FakeCluster()
    objects = [deployment("istio-pilot", Phase.PILOT), deployment("istio-mixer", Phase.MIXER)]
    await reconcile_cluster(fake, objects, OWNERSHIP, phase_timeout=0)
    before, audited = copy.deepcopy(fake.objects), len(fake.audit)
    upgrade = [deployment(o.name, o.phase, "docker.io/istio/x:1.3.1") for o in objects]
    fake.refuse(key(upgrade[1]), "spec.template: forbidden")

    report = await reconcile_cluster(fake, upgrade, OWNERSHIP, phase_timeout=0)

    assert len(report.refused) == 1
    assert fake.audit[audited:] == []
    assert fake.objects == before


async def test_an_unreachable_cluster_raises_and_nothing_is_written() -> None:
    fake = FakeCluster()
    fake.unreachable = True
    with pytest.raises(ClusterUnreachableError, match="unreachable"):
        await reconcile_cluster(fake, [config_map("istio")], OWNERSHIP, phase_timeout=0)
    assert fake.audit == []
