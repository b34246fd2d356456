"""Prometheus metrics of the operator."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from istio_operator.controller.triggers import Key
from istio_operator.kube.client import Cluster
from istio_operator.reconcile.status import State
from istio_operator.render.phases import Phase

RECONCILES = Counter(
    "istio_operator_reconciles_total",
    "Reconciles of Istio resources, by outcome.",
    ["namespace", "name", "status"],
)
RECONCILE_SECONDS = Histogram(
    "istio_operator_reconcile_duration_seconds",
    "Duration of one reconcile of a whole mesh.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
RECONCILE_ERRORS = Counter(
    "istio_operator_reconcile_errors_total",
    "Reconciles that ended in an error, by reason.",
    ["reason"],
)
PHASE = Gauge(
    "istio_operator_rollout_phase",
    "Rollout phase being waited for, 1 (crds) to 9 (addons); 0 when none. Per resource.",
    ["namespace", "name"],
)
OBJECT_WRITES = Counter(
    "istio_operator_object_writes_total",
    "Applies, deletes and status writes sent to the primary cluster.",
    ["cluster"],
)


def record_reconcile(
    key: Key, state: str, reason: str, phase: str, seconds: float, writes: int
) -> None:
    """Records one reconcile of the Istio resource `key` (namespace, name)."""
    namespace, name = key
    RECONCILE_SECONDS.observe(seconds)
    RECONCILES.labels(namespace, name, state).inc()
    if state == State.FAILED:
        RECONCILE_ERRORS.labels(reason).inc()
    PHASE.labels(namespace, name).set(Phase.from_label(phase) + 1 if phase else 0)
    OBJECT_WRITES.labels("primary").inc(writes)


class ClusterRequests(Collector):
    """Requests sent to each cluster, the watches and idle connections kept open there,
    read at each scrape from the clients themselves (a pass at rest should move neither
    of the first two)."""

    def __init__(self, clusters: Callable[[], Iterable[Cluster]]) -> None:
        self.clusters = clusters

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        requests = CounterMetricFamily(
            "istio_operator_api_requests",
            "Requests sent to a cluster's API server (watches excepted), retries included.",
            labels=["cluster"],
        )
        watches = GaugeMetricFamily(
            "istio_operator_watches",
            "Watches feeding the operator's copies of a cluster's objects.",
            labels=["cluster"],
        )
        idle = GaugeMetricFamily(
            "istio_operator_idle_connections",
            "Open connections to a cluster's API server carrying no request (closed a "
            "minute after their last use).",
            labels=["cluster"],
        )
        for cluster in self.clusters():
            requests.add_metric([cluster.name], cluster.requests)
            watches.add_metric([cluster.name], cluster.cache.watches if cluster.cache else 0)
            idle.add_metric([cluster.name], cluster.idle_connections)
        yield requests
        yield watches
        yield idle


_COLLECTOR = ClusterRequests(list)  # no clusters until an operator starts
REGISTRY.register(_COLLECTOR)


def watch_clusters(clusters: Callable[[], Iterable[Cluster]]) -> None:
    """Reports the clients `clusters()` gives (the latest call's wins: one operator a
    process, though its registry may be built again)."""
    _COLLECTOR.clusters = clusters
