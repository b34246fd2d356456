"""Taking over a control plane that the reference operator installed, on a real cluster.

The reference's objects for its own sample (tests/fixtures/reference) are loaded as it
would have written them (its field manager, labels, selectors, annotation and
ownerReferences), its workloads run on fake nodes, and then our operator starts. Every
control-plane Service must keep a ready endpoint throughout, watched event by event;
at the end nothing of the reference is left but what the user keeps.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import yaml
from lightkube import ALL_NS, ApiError, Client
from lightkube.models.core_v1 import Taint
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, Node, Pod, Service
from lightkube.resources.discovery_v1 import EndpointSlice

from istio_operator.api.labels import FIELD_MANAGER, MANAGED_BY
from istio_operator.kube.resources import register_crds, resource_class
from istio_operator.localcluster import Workspace
from istio_operator.reconcile.injection import (
    INJECTION_LABEL,
    INJECTION_OWNER,
    MANAGED_INJECTION_LABEL,
)
from istio_operator.reconcile.kinds import MANAGED_KINDS, register_managed_kinds
from istio_operator.reconcile.takeover import REFERENCE_ANNOTATION, REFERENCE_FINALIZERS
from tests.operator_harness import (
    NAMESPACE,
    REMOTE_NAME,
    REPO,
    IstioResource,
    Plane,
    apply_istio,
    apply_remote,
    client_for,
    create_namespaces,
    istio_body,
    istio_status,
    list_kind,
    meta,
    name_of,
    operator_plane,
    primary_and_remote,
    remote_mesh_at,
    wait_for,
)

pytestmark = pytest.mark.cluster

FIXTURE = REPO / "tests" / "fixtures" / "reference" / "banzai-1.3-sample.yaml"
SAMPLE = REPO / "tests" / "fixtures" / "samples" / "istio_v1beta1_istio.yaml"
SAMPLE_NAME = "istio-sample"
REFERENCE_MANAGER = "manager"  # controller-runtime's default field manager
HOLD = {"key": "takeover-test/hold", "value": "galley", "effect": "NoSchedule"}
HOLD_TOLERATION = {"key": HOLD["key"], "operator": "Exists", "effect": "NoSchedule"}
REFERENCE_LABELLED = {INJECTION_LABEL: "enabled", MANAGED_INJECTION_LABEL: "enabled"}


class EndpointWatch:
    """Ready endpoints per Service of the namespace, from every EndpointSlice event, and
    each moment a Service that had one had none."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.ready: dict[str, dict[str, int]] = defaultdict(dict)  # service -> slice -> n
        self.outages: list[str] = []
        self.events = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def serving(self) -> set[str]:
        return {s for s, slices in self.ready.items() if sum(slices.values()) > 0}

    def __enter__(self) -> EndpointWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()

    def _run(self) -> None:
        try:
            for event, item in self.client.watch(EndpointSlice, namespace=NAMESPACE):
                if self._stop.is_set():
                    return
                self._record(event, item)
        except httpx.HTTPError as error:
            if not self._stop.is_set():  # events were lost: the test cannot vouch for them
                self.outages.append(f"the watch broke: {error}")

    def _record(self, event: str, item: EndpointSlice) -> None:
        service = (meta(item).labels or {}).get("kubernetes.io/service-name", "")
        slices = self.ready[service]
        had = sum(slices.values()) > 0
        ready = [e for e in item.endpoints or [] if e.conditions and e.conditions.ready]
        if event == "DELETED":
            slices.pop(name_of(item), None)
        else:
            slices[name_of(item)] = len(ready)
        self.events += 1
        if had and sum(slices.values()) == 0:
            self.outages.append(f"{service}: no ready endpoint after {event} {name_of(item)}")


def reference_objects(uid: str) -> list[dict[str, Any]]:
    text = FIXTURE.read_text().replace("ISTIO_UID", uid)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def create_as_the_reference(client: Client, manifest: dict[str, Any]) -> None:
    resource = resource_class(manifest["apiVersion"], manifest["kind"])
    client.create(resource.from_dict(copy.deepcopy(manifest)), field_manager=REFERENCE_MANAGER)


def install_the_reference(client: Client) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The reference's Istio resource (its finalizer on), its objects, and its labels on
    the namespaces of the sample's auto-injection list and of an earlier one."""
    body = yaml.safe_load(SAMPLE.read_text())
    body["metadata"]["namespace"] = NAMESPACE
    body["metadata"]["finalizers"] = sorted(REFERENCE_FINALIZERS)[:1]
    body["spec"]["mixer"]["enabled"] = False  # as the fixture was written
    # Every new pod but galley's may start while the nodes are held (see `hold_nodes`).
    spec = body["spec"]
    for part in (spec["pilot"], spec["citadel"], spec["sidecarInjector"]):
        part["tolerations"] = [HOLD_TOLERATION]
    for part in (spec["gateways"]["ingress"], spec["gateways"]["egress"]):
        part["tolerations"] = [HOLD_TOLERATION]
    created = client.create(IstioResource.from_dict(body), field_manager=REFERENCE_MANAGER)
    objects = reference_objects(str(meta(created).uid))
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    for crd in crds:
        create_as_the_reference(client, crd)
    register_crds(crds)
    register_managed_kinds()
    for obj in objects:
        if obj["kind"] != "CustomResourceDefinition":
            wait_for(
                f"{obj['kind']} {obj['metadata']['name']} created",
                functools.partial(_create, client, obj),
            )
    for name, labels in (
        ("default", REFERENCE_LABELLED),
        ("legacy", REFERENCE_LABELLED),  # listed once, no longer
        ("by-hand", {INJECTION_LABEL: "enabled"}),  # a user's
    ):
        client.apply(
            Namespace(metadata=ObjectMeta(name=name, labels=labels)),
            field_manager=REFERENCE_MANAGER,
            force=True,
        )
    return dict(created), objects


def _create(client: Client, obj: dict[str, Any]) -> bool:
    """True once created (a kind whose CRD is not yet Established is refused meanwhile)."""
    try:
        create_as_the_reference(client, obj)
    except Exception as error:
        return "AlreadyExists" in str(error) or "already exists" in str(error)
    return True


def hold_nodes(client: Client, held: bool) -> None:
    """Taints every node so that the new galley pods stay Pending (the others tolerate it):
    the superseded galley pods must then serve alone, and they do only if its Service
    still selects them."""
    for node in client.list(Node):
        taints = [
            t for t in (node.spec.taints if node.spec else None) or [] if t.key != HOLD["key"]
        ]
        if held:
            taints.append(Taint(key=HOLD["key"], value=HOLD["value"], effect=HOLD["effect"]))
        client.patch(Node, name_of(node), {"spec": {"taints": [t.to_dict() for t in taints]}})


def ours_waiting_for_its_pods(client: Client, name: str) -> bool:
    deployment = client.get(Deployment, name, namespace=NAMESPACE)
    labels = meta(deployment).labels or {}
    status = deployment.status
    return MANAGED_BY in labels and status is not None and not status.availableReplicas


def deployments_available(client: Client) -> bool:
    found = list(client.list(Deployment, namespace=NAMESPACE))
    return bool(found) and all(
        d.status is not None and (d.status.availableReplicas or 0) >= 1 for d in found
    )


@pytest.fixture(scope="module")
def takeover(
    workspace: Workspace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    directory: Path = tmp_path_factory.mktemp("takeover")
    plane: Plane
    with operator_plane(workspace, directory, "takeover", namespaces=(NAMESPACE,)) as plane:
        client = plane.primary
        istio, objects = install_the_reference(client)
        wait_for("the reference's workloads available", lambda: deployments_available(client))
        services = {o["metadata"]["name"] for o in objects if o["kind"] == "Service"}
        # Its own client: a sync client's connection is not shared with a watch in a thread.
        with EndpointWatch(client_for(plane.primary_cluster)) as watch:
            wait_for(
                "every Service serving before the take-over", lambda: watch.serving() >= services
            )
            hold_nodes(client, True)
            plane.operator.start()
            wait_for(
                "our galley created beside the reference's, its pods held",
                lambda: _exists_and(ours_waiting_for_its_pods, client, "istio-galley"),
            )
            held_serving = watch.serving()
            hold_nodes(client, False)
            wait_for(
                "the Istio Available, ours",
                lambda: _available(istio_status(client, SAMPLE_NAME)),
                timeout=240,
            )
            wait_for(
                "the superseded pods gone",
                lambda: not [p for p in client.list(Pod, namespace=NAMESPACE) if _reference_pod(p)],
            )
            outages = list(watch.outages)
            served = watch.serving()
            events = watch.events
        yield {
            "client": client,
            "istio": istio,
            "objects": objects,
            "outages": outages,
            "services": services,
            "served": served,
            "events": events,
            "held_serving": held_serving,
        }


def _exists_and(check: Any, client: Client, name: str) -> bool:
    try:
        return bool(check(client, name))
    except ApiError:
        return False  # between the old one's deletion and the creation of ours


def _available(status: dict[str, Any]) -> bool:
    return status.get("Status") == "Available" and status.get("version") == "1.3.8"


SUPERSEDED_COMPONENTS = {"galley", "sidecar-injector"}


def _reference_pod(pod: Pod) -> bool:
    """A pod of a workload the reference made and ours superseded (its `app` label)."""
    labels = meta(pod).labels or {}
    return labels.get("istio") in SUPERSEDED_COMPONENTS and "app" not in labels


def _every_object(client: Client) -> list[Any]:
    found = []
    for api_version, kind in MANAGED_KINDS:
        if kind in ("Pod", "ReplicaSet", "Endpoints"):
            continue
        found += list_kind(client, api_version, kind)
    return found


def test_every_service_kept_a_ready_endpoint_throughout(takeover: dict[str, Any]) -> None:
    assert takeover["outages"] == []
    # While galley's new pods could not start, its old ones still served.
    assert "istio-galley" in takeover["held_serving"]
    assert takeover["served"] >= takeover["services"]
    # The watch saw the endpoints move (the superseded pods leaving), not only the start.
    assert takeover["events"] > len(takeover["services"])


def test_nothing_carries_the_references_marks(takeover: dict[str, Any]) -> None:
    uid = meta(takeover["client"].get(IstioResource, SAMPLE_NAME, namespace=NAMESPACE)).uid
    marked = [
        f"{obj.kind} {name_of(obj)}"
        for obj in _every_object(takeover["client"])
        if REFERENCE_ANNOTATION in (meta(obj).annotations or {})
        or any(ref.uid == uid for ref in meta(obj).ownerReferences or [])
    ]
    assert marked == []


def test_what_the_reference_made_is_now_ours_alone(takeover: dict[str, Any]) -> None:
    client = takeover["client"]
    for obj in takeover["objects"]:
        if obj["metadata"]["name"].startswith("istio-mixer"):
            continue
        resource = resource_class(obj["apiVersion"], obj["kind"])
        scope = (
            {"namespace": obj["metadata"]["namespace"]} if "namespace" in obj["metadata"] else {}
        )
        live = client.get(resource, obj["metadata"]["name"], **scope)
        labels = meta(live).labels or {}
        managers = {m.manager for m in meta(live).managedFields or [] if not m.subresource}
        assert MANAGED_BY in labels, f"{obj['kind']} {obj['metadata']['name']}"
        assert managers == {FIELD_MANAGER}, f"{obj['kind']} {obj['metadata']['name']}: {managers}"


def test_workloads_whose_selector_changed_were_replaced(takeover: dict[str, Any]) -> None:
    client = takeover["client"]
    galley = client.get(Deployment, "istio-galley", namespace=NAMESPACE)
    theirs = next(
        o
        for o in takeover["objects"]
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "istio-galley"
    )
    assert galley.spec.selector.matchLabels != theirs["spec"]["selector"]["matchLabels"]
    pods = list(client.list(Pod, namespace=ALL_NS))
    assert not [name_of(p) for p in pods if _reference_pod(p)]


def test_the_references_leftovers_and_finalizer_are_gone(takeover: dict[str, Any]) -> None:
    client = takeover["client"]
    names = {f"{o.kind} {name_of(o)}" for o in _every_object(client)}
    assert not {n for n in names if "istio-mixer" in n}
    istio = client.get(IstioResource, SAMPLE_NAME, namespace=NAMESPACE)
    assert not set(meta(istio).finalizers or []) & REFERENCE_FINALIZERS


def test_the_injection_labels_are_taken_over(takeover: dict[str, Any]) -> None:
    client = takeover["client"]

    def labels(name: str) -> dict[str, str]:
        return dict(meta(client.get(Namespace, name)).labels or {})

    wait_for("the earlier namespace unlabelled", lambda: INJECTION_LABEL not in labels("legacy"))
    default = client.get(Namespace, "default")
    assert REFERENCE_LABELLED.items() <= (meta(default).labels or {}).items()
    assert (meta(default).annotations or {}).get(INJECTION_OWNER) == f"{NAMESPACE}/{SAMPLE_NAME}"
    assert MANAGED_INJECTION_LABEL not in labels("legacy")
    assert labels("by-hand").get(INJECTION_LABEL) == "enabled"


# -- a remote cluster the reference had joined ------------------------------------------------

HUB = "docker.io/istio"
INJECT_PORTS = [{"name": "https-inject", "port": 443}]
REMOTE_INJECTOR = {"app": "istio-sidecar-injector", "istio": "sidecar-injector"}


def reference_remote_objects() -> list[dict[str, Any]]:
    """What the reference's remote reconciler wrote for the sidecar injector on a remote:
    its selector, its pod labels, its annotation (its `istio-config` owner is left out:
    this cluster serves no Istio kind before the take-over)."""
    marks = {"namespace": NAMESPACE, "annotations": {REFERENCE_ANNOTATION: "{}"}}
    pod = {
        "metadata": {"labels": {"istio": "sidecar-injector"}},
        "spec": {
            "containers": [
                {
                    "name": "sidecar-injector-webhook",
                    "image": "docker.io/istio/sidecar_injector:1.3.8",
                }
            ]
        },
    }
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "istio-sidecar-injector", "labels": REMOTE_INJECTOR, **marks},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"istio": "sidecar-injector"}},
                "template": pod,
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "istio-sidecar-injector", **marks},
            "spec": {
                "selector": {"istio": "sidecar-injector"},
                "ports": [{"name": "https-inject", "port": 443}],
            },
        },
    ]


@pytest.fixture(scope="module")
def remote_takeover(
    workspace: Workspace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    directory: Path = tmp_path_factory.mktemp("remote-takeover")
    with primary_and_remote(workspace, directory, "adopt") as mesh:
        remote = mesh.remote
        create_namespaces(remote, NAMESPACE)
        for obj in reference_remote_objects():
            create_as_the_reference(remote, obj)
        wait_for("the reference's injector available", lambda: deployments_available(remote))
        with EndpointWatch(client_for(mesh.remote_cluster)) as watch:
            wait_for("the injector serving", lambda: "istio-sidecar-injector" in watch.serving())
            apply_istio(mesh.primary, istio_body("1.3.8"))
            apply_remote(mesh.primary, REMOTE_NAME)
            wait_for(
                "the remote Available, ours",
                lambda: remote_mesh_at(mesh.primary, remote, REMOTE_NAME, "1.3.8"),
                timeout=240,
            )
            wait_for(
                "the superseded injector pods gone",
                lambda: not [p for p in remote.list(Pod, namespace=NAMESPACE) if _reference_pod(p)],
            )
            outages = list(watch.outages)
        yield {"remote": remote, "outages": outages}


def test_a_remote_injector_is_taken_over_serving_throughout(
    remote_takeover: dict[str, Any],
) -> None:
    remote = remote_takeover["remote"]
    assert remote_takeover["outages"] == []
    for kind in (Deployment, Service):
        live = remote.get(kind, "istio-sidecar-injector", namespace=NAMESPACE)
        managers = {m.manager for m in meta(live).managedFields or [] if not m.subresource}
        assert managers == {FIELD_MANAGER}, f"{kind.__name__}: {managers}"
        assert REFERENCE_ANNOTATION not in (meta(live).annotations or {})
        assert MANAGED_BY in (meta(live).labels or {})
