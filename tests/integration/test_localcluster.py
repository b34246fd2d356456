"""The local clusters are real: controllers, scheduler, fake kubelets, GC, validation."""

from __future__ import annotations

import pytest
from lightkube import ApiError, Client
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import Deployment, ReplicaSet
from lightkube.resources.core_v1 import ConfigMap, Namespace, Pod, Service

from istio_operator.localcluster import LocalCluster, Workspace
from tests.operator_harness import client_for, from_dict, wait_for

pytestmark = pytest.mark.cluster


def make_namespace(client: Client, name: str) -> str:
    client.apply(Namespace(metadata=ObjectMeta(name=name)))
    return name


def deployment(name: str, replicas: int, namespace: str) -> Deployment:
    labels = {"app": name}
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "echo", "image": "docker.io/library/echo:1"}]},
            },
        },
    }
    return from_dict(Deployment, manifest)


def available_replicas(client: Client, name: str, namespace: str) -> int:
    status = client.get(Deployment, name, namespace=namespace).status
    return (status.availableReplicas if status else None) or 0


def test_deployment_rolls_out_onto_fake_nodes(primary: Client) -> None:
    ns = make_namespace(primary, "rollout")
    primary.apply(deployment("echo", 3, ns))

    available = wait_for(
        "3 available replicas", lambda: available_replicas(primary, "echo", ns) == 3
    )
    assert available
    pods = list(primary.list(Pod, namespace=ns, labels={"app": "echo"}))
    assert len(pods) == 3
    nodes = {pod.spec.nodeName if pod.spec else None for pod in pods}
    assert all(node and node.startswith("node-") for node in nodes)
    for pod in pods:
        assert pod.status is not None
        assert pod.status.phase == "Running"
        ready = {c.type: c.status for c in pod.status.conditions or []}
        assert ready["Ready"] == "True"


def test_deleting_an_owner_garbage_collects_its_dependents(primary: Client) -> None:
    ns = make_namespace(primary, "gc")
    primary.apply(deployment("owner", 2, ns))
    wait_for("pods", lambda: len(list(primary.list(Pod, namespace=ns))) == 2)
    assert len(list(primary.list(ReplicaSet, namespace=ns))) == 1

    primary.delete(Deployment, "owner", namespace=ns)

    wait_for("ReplicaSet collected", lambda: not list(primary.list(ReplicaSet, namespace=ns)))
    wait_for("pods collected", lambda: not list(primary.list(Pod, namespace=ns)))


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.example.com"},
    "spec": {
        "group": "test.example.com",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"size": {"type": "integer", "minimum": 1}},
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_crd_becomes_established_and_invalid_resources_are_rejected(primary: Client) -> None:
    primary.apply(from_dict(CustomResourceDefinition, WIDGET_CRD))

    def established() -> bool:
        crd = primary.get(CustomResourceDefinition, "widgets.test.example.com")
        conditions = crd.status.conditions if crd.status else None
        return any(c.type == "Established" and c.status == "True" for c in conditions or [])

    wait_for("CRD Established", established)
    widget = create_namespaced_resource("test.example.com", "v1", "Widget", "widgets")
    primary.create(widget(metadata=ObjectMeta(name="good"), spec={"size": 2}), namespace="default")

    with pytest.raises(ApiError) as rejected:
        primary.create(
            widget(metadata=ObjectMeta(name="bad"), spec={"size": 0}), namespace="default"
        )
    assert rejected.value.status.code == 422
    assert "spec.size" in (rejected.value.status.message or "")


def test_two_clusters_are_isolated(primary: Client, remote: Client) -> None:
    primary.create(
        ConfigMap(metadata=ObjectMeta(name="only-on-primary"), data={"a": "1"}), namespace="default"
    )
    assert primary.get(ConfigMap, "only-on-primary", namespace="default").data == {"a": "1"}
    with pytest.raises(ApiError) as missing:
        remote.get(ConfigMap, "only-on-primary", namespace="default")
    assert missing.value.status.code == 404


def test_load_balancer_services_get_an_address(
    primary: Client, primary_cluster: LocalCluster
) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "gateway", "namespace": "default"},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "gw"},
            "ports": [{"name": "http", "port": 80}],
        },
    }
    primary.apply(from_dict(Service, service))

    def address() -> str | None:
        status = primary.get(Service, "gateway", namespace="default").status
        lb = status.loadBalancer if status else None
        return lb.ingress[0].ip if lb and lb.ingress else None

    ip = wait_for("a load-balancer address", address)
    assert ip.startswith(primary_cluster.address_prefix + ".")
    spec = primary.get(Service, "gateway", namespace="default").spec
    assert spec is not None and spec.type == "LoadBalancer"


def test_a_stopped_cluster_is_unreachable_and_comes_back_with_its_data(
    workspace: Workspace,
) -> None:
    cluster = workspace.create("outage", nodes=1)
    client = client_for(cluster)
    client.create(ConfigMap(metadata=ObjectMeta(name="kept"), data={"k": "v"}), namespace="default")

    workspace.stop("outage")
    assert cluster.running_components() == []
    with pytest.raises(Exception):  # noqa: B017 - any transport error: the server is gone
        client_for(cluster).get(ConfigMap, "kept", namespace="default")

    workspace.start("outage")
    assert client_for(cluster).get(ConfigMap, "kept", namespace="default").data == {"k": "v"}
    workspace.delete("outage")
    assert "outage" not in [c.name for c in workspace.list()]
