"""Events of the operator on a real API server: posted by `istio-operator`, and a
repetition counted on the existing Event, as kubectl's aggregation does."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator

import pytest
from lightkube import Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Event, Namespace

from istio_operator.controller.reporting import post_event
from istio_operator.kube.client import Cluster, config_from_file
from istio_operator.localcluster import LocalCluster
from istio_operator.reconcile.status import Observation, State

LOG = logging.getLogger(__name__)


@pytest.fixture
def involved(primary: Client) -> Iterator[dict[str, object]]:
    """An object to report about, in a namespace of its own."""
    namespace = f"events-{uuid.uuid4().hex[:8]}"
    primary.create(Namespace(metadata=ObjectMeta(name=namespace)))
    made = primary.create(ConfigMap(metadata=ObjectMeta(name="subject", namespace=namespace)))
    try:
        yield {"apiVersion": "v1", "kind": "ConfigMap", "metadata": made.to_dict()["metadata"]}
    finally:
        primary.delete(Namespace, namespace)


def report_twice(cluster: LocalCluster, body: dict[str, object], seen: Observation) -> None:
    async def run() -> None:
        ours = Cluster.from_config("primary", config_from_file(str(cluster.kubeconfig)))
        try:
            await post_event(ours, body, seen, LOG)
            await post_event(ours, body, seen, LOG)
        finally:
            await ours.close()

    asyncio.run(run())


def test_a_repeated_event_is_one_event_counted_twice(
    primary_cluster: LocalCluster, primary: Client, involved: dict[str, object]
) -> None:
    seen = Observation(1, State.FAILED, "ReconcileFailed", message="the API server refused")
    report_twice(primary_cluster, involved, seen)
    namespace = involved["metadata"]["namespace"]  # type: ignore[index]
    events = list(primary.list(Event, namespace=namespace))
    assert len(events) == 1
    (event,) = events
    assert event.count == 2
    assert event.type == "Warning"
    assert event.reason == "ReconcileFailed"
    assert event.message == "the API server refused"
    assert event.source is not None and event.source.component == "istio-operator"
    assert event.reportingComponent == "istio-operator"
    assert event.involvedObject.name == "subject"
    assert event.firstTimestamp is not None and event.lastTimestamp is not None
    assert event.lastTimestamp >= event.firstTimestamp


def test_another_message_is_another_event(
    primary_cluster: LocalCluster, primary: Client, involved: dict[str, object]
) -> None:
    report_twice(primary_cluster, involved, Observation(1, State.AVAILABLE, "Available"))
    report_twice(
        primary_cluster, involved, Observation(2, State.RECONCILING, "Upgrading", message="1.3.1")
    )
    namespace = involved["metadata"]["namespace"]  # type: ignore[index]
    counts = sorted((e.reason, e.count) for e in primary.list(Event, namespace=namespace))
    assert counts == [("Available", 2), ("Upgrading", 2)]
