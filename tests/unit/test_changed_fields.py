"""The fields an update's log line names (`reconcile.engine.changed_fields`)."""

from __future__ import annotations

import copy
from typing import Any

from istio_operator.kube.objects import with_desired_hash
from istio_operator.reconcile.engine import changed_fields


def deployment(image: str = "docker.io/istio/pilot:1.3.0", replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "istio-pilot", "namespace": "istio-system", "labels": {"a": "b"}},
        "spec": {
            "replicas": replicas,
            "template": {
                "spec": {"containers": [{"name": "discovery", "image": image, "args": ["x"]}]}
            },
        },
    }


def test_a_changed_image_is_named_by_its_container() -> None:
    live = with_desired_hash(deployment())
    desired = with_desired_hash(deployment("docker.io/istio/pilot:1.3.1"))
    assert changed_fields(live, desired) == "spec.template.spec.containers[discovery].image"


def test_several_changes_are_listed_and_the_rest_counted() -> None:
    live = with_desired_hash(deployment())
    changed = deployment("other:1", replicas=3)
    changed["metadata"]["labels"] = {"a": "c", "d": "e"}
    desired = with_desired_hash(changed)
    assert changed_fields(live, desired) == (
        "metadata.labels.a, metadata.labels.d, spec.replicas and 1 more"
    )
    assert changed_fields(live, desired, shown=4).endswith("containers[discovery].image")


def test_a_dropped_field_shows_as_such_not_as_the_hash() -> None:
    before = deployment()
    after = copy.deepcopy(before)
    del after["metadata"]["labels"]
    live = with_desired_hash(before)
    assert changed_fields(live, with_desired_hash(after)) == "a field no longer desired"


def test_extra_live_fields_are_not_changes() -> None:
    live = with_desired_hash(deployment())
    live["status"] = {"readyReplicas": 1}
    live["spec"]["strategy"] = {"type": "RollingUpdate"}
    desired = copy.deepcopy(live)
    desired.pop("status")
    desired["spec"]["replicas"] = 2
    assert changed_fields(live, desired) == "spec.replicas"
