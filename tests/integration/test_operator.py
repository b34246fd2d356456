"""The operator, as a process, against a real local cluster: install, upgrade, rollback,
drift, idle, crash, unsupported versions and deletion (also by a freshly started operator)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from lightkube import ApiError, Client
from lightkube.core.client import LabelSelector
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Event, Namespace

from istio_operator.api.labels import ownership_labels
from istio_operator.cli.demo import PRIMARY_COMPONENTS
from istio_operator.localcluster import LocalCluster
from istio_operator.reconcile.kinds import MANAGED_KINDS, register_managed_kinds
from istio_operator.versions import unsupported_example
from tests.operator_harness import (
    IstioResource,
    OperatorProcess,
    RolloutRecorder,
    all_images,
    apply_crds,
    apply_istio,
    create_namespaces,
    exists,
    images,
    istio_available_at,
    istio_body,
    istio_status,
    labels_of,
    list_kind,
    meta,
    name_of,
    operator_process,
    resource_versions,
    wait_for,
    workload_images,
    write_requests,
)

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def operator(
    primary: Client, primary_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    apply_crds(primary)
    create_namespaces(primary, "istio-system", "injected")
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with operator_process(primary_cluster.kubeconfig, log, tail=200) as process:
        process.start()
        time.sleep(2)
        process.assert_running()
        yield process


def ensure_installed(client: Client, version: str) -> None:
    """Each test starts from the control plane at `version`, whatever ran before it."""
    apply_istio(client, istio_body(version))
    wait_for(f"Available at {version}", lambda: available_at(client, version), timeout=120)


def available_at(client: Client, version: str) -> bool:
    return istio_available_at(client, version) and all_images(client) == images(
        PRIMARY_COMPONENTS, version
    )


def test_install_upgrade_and_rollback(primary: Client, operator: OperatorProcess) -> None:
    apply_istio(primary, istio_body("1.2.5"))
    wait_for("Available at 1.2.5", lambda: available_at(primary, "1.2.5"), timeout=120)
    status = istio_status(primary)
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Reconciled": "True",
        "Ready": "True",
    }
    for deployment in primary.list(Deployment, namespace="istio-system"):
        available = deployment.status and deployment.status.availableReplicas
        assert (available or 0) >= 1, name_of(deployment)
    assert labels_of(primary.get(Namespace, "injected")).get("istio-injection") == "enabled"

    with RolloutRecorder(primary, "1.3.0") as rollout:
        apply_istio(primary, istio_body("1.3.0"))
        wait_for("Available at 1.3.0", lambda: available_at(primary, "1.3.0"), timeout=120)
    phases = [phase for _, _, phase in sorted(rollout.order)]
    order = ["citadel", "galley", "pilot", "mixer", "sidecar-injector", "gateways", "addons"]
    ranks = [order.index(p) for p in phases if p in order]
    assert ranks == sorted(ranks), f"rolled out out of phase order: {rollout.order}"
    assert {"citadel", "galley", "pilot", "mixer", "sidecar-injector", "gateways"} <= set(phases)

    apply_istio(primary, istio_body("1.2.5"))
    wait_for("rolled back to 1.2.5", lambda: available_at(primary, "1.2.5"), timeout=120)


def test_mixerless_telemetry_and_switching_telemetry_off(
    primary: Client, operator: OperatorProcess
) -> None:
    def envoy_filter() -> set[str]:
        return {f["metadata"]["name"] for f in _envoy_filters(primary)}

    apply_istio(primary, istio_body("1.3.0", mixerlessTelemetry={"enabled": True}))
    wait_for("two EnvoyFilters", lambda: len(envoy_filter()) == 2)
    ensure_installed(primary, "1.3.0")
    assert "istio-telemetry" in workload_images(primary)

    body = istio_body("1.3.0", mixerlessTelemetry={"enabled": True}, telemetry={"enabled": False})
    apply_istio(primary, body)
    wait_for("istio-telemetry gone", lambda: "istio-telemetry" not in workload_images(primary))
    assert len(envoy_filter()) == 2

    apply_istio(primary, istio_body("1.3.0", mixerlessTelemetry={"enabled": False}))
    wait_for(
        "filters gone, telemetry back",
        lambda: not envoy_filter() and "istio-telemetry" in workload_images(primary),
    )
    wait_for("Available at 1.3.0", lambda: available_at(primary, "1.3.0"), timeout=120)


def _envoy_filters(client: Client) -> list[dict[str, Any]]:
    from lightkube.generic_resource import create_namespaced_resource

    envoy = create_namespaced_resource(
        "networking.istio.io", "v1alpha3", "EnvoyFilter", "envoyfilters"
    )
    try:
        return [dict(f) for f in client.list(envoy, namespace="istio-system")]
    except ApiError:
        return []


def test_drift_is_repaired_within_seconds(primary: Client, operator: OperatorProcess) -> None:
    ensure_installed(primary, "1.3.0")
    primary.delete(Deployment, "istio-galley", namespace="istio-system")
    start = time.monotonic()
    # A watch event, not the resync (10 s here), brings it back: the bound stays below it.
    wait_for("galley recreated", lambda: exists(primary, Deployment, "istio-galley"), timeout=9)
    print(f"galley recreated in {time.monotonic() - start:.1f} s")

    primary.patch(
        Deployment,
        "istio-pilot",
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "discovery", "image": "example/hacked:1"}]}
                }
            }
        },
        namespace="istio-system",
    )
    wait_for(
        "pilot image repaired",
        lambda: "example/hacked:1" not in workload_images(primary)["istio-pilot"],
        timeout=9,
    )


def test_no_write_requests_while_idle(
    primary: Client, primary_cluster: LocalCluster, operator: OperatorProcess
) -> None:
    ensure_installed(primary, "1.3.0")
    time.sleep(3)  # let the last status write land
    since = time.time()
    time.sleep(60)  # six resyncs of 10 s
    writes = write_requests(primary_cluster, since)
    assert writes == [], [f"{w['verb']} {w['requestURI']} ({w['userAgent']})" for w in writes]


def test_unsupported_version_changes_nothing(primary: Client, operator: OperatorProcess) -> None:
    ensure_installed(primary, "1.3.0")
    before = resource_versions(primary)
    apply_istio(primary, istio_body(unsupported_example()))
    message = "intended Istio version is unsupported by this version of the operator"
    status = wait_for(
        "ReconcileFailed",
        lambda: (s := istio_status(primary)).get("Status") == "ReconcileFailed" and s,
    )
    assert status["ErrorMessage"].startswith(message)
    events = wait_for(
        "an Event",
        lambda: [
            e for e in primary.list(Event, namespace="istio-system") if message in (e.message or "")
        ],
    )
    assert events[0].type == "Warning"
    after = resource_versions(primary)
    assert after == before
    apply_istio(primary, istio_body("1.3.0"))
    wait_for("Available again", lambda: available_at(primary, "1.3.0"), timeout=120)


def test_operator_killed_mid_upgrade_converges(primary: Client, operator: OperatorProcess) -> None:
    ensure_installed(primary, "1.3.0")
    apply_istio(primary, istio_body("1.2.5"))
    wait_for(
        "upgrade under way", lambda: any(":1.2.5" in i for i in all_images(primary)), timeout=60
    )
    operator.kill()
    operator.start()
    wait_for("converged at 1.2.5", lambda: available_at(primary, "1.2.5"), timeout=120)


def test_a_second_istio_resource_is_refused(primary: Client, operator: OperatorProcess) -> None:
    primary.apply(Namespace(metadata=ObjectMeta(name="other-mesh")))
    apply_istio(primary, istio_body("1.3.0", name="second", namespace="other-mesh"))
    status = wait_for(
        "refused",
        lambda: (
            (s := istio_status(primary, "second", "other-mesh")).get("Status") == "ReconcileFailed"
            and s
        ),
    )
    assert "only one Istio resource per cluster" in status["ErrorMessage"]
    assert not list(primary.list(Deployment, namespace="other-mesh"))
    primary.delete(IstioResource, "second", namespace="other-mesh")


def test_injection_labels_follow_the_list_including_later_namespaces(
    primary: Client, operator: OperatorProcess
) -> None:
    ensure_installed(primary, "1.3.0")
    apply_istio(primary, istio_body("1.3.0", autoInjectionNamespaces=["injected", "later"]))
    primary.apply(Namespace(metadata=ObjectMeta(name="later")))

    def labelled(name: str) -> bool:
        return labels_of(primary.get(Namespace, name)).get("istio-injection") == "enabled"

    wait_for("a namespace created later is labelled", lambda: labelled("later"), timeout=30)
    apply_istio(primary, istio_body("1.3.0"))
    wait_for("the label goes when the namespace leaves the list", lambda: not labelled("later"))
    assert labelled("injected")


def test_delete_removes_everything_but_crds_and_user_config(
    primary: Client, operator: OperatorProcess
) -> None:
    from lightkube.generic_resource import create_namespaced_resource

    vs = create_namespaced_resource(
        "networking.istio.io", "v1alpha3", "VirtualService", "virtualservices"
    )
    primary.apply(
        vs.from_dict(
            {
                "apiVersion": "networking.istio.io/v1alpha3",
                "kind": "VirtualService",
                "metadata": {"name": "users-route", "namespace": "injected"},
                "spec": {"hosts": ["reviews"]},
            }
        ),
        force=True,
    )
    primary.delete(IstioResource, "istio", namespace="istio-system")
    wait_for(
        "resource gone",
        lambda: not istio_status(primary) and not exists(primary, IstioResource, "istio"),
        timeout=60,
    )
    assert not list(primary.list(Deployment, namespace="istio-system"))
    assert primary.get(CustomResourceDefinition, "virtualservices.networking.istio.io")
    assert primary.get(vs, "users-route", namespace="injected")
    assert "istio-injection" not in labels_of(primary.get(Namespace, "injected"))


def test_delete_by_a_freshly_started_operator_leaves_nothing(
    primary: Client, operator: OperatorProcess
) -> None:
    """The operator is started only once the deletion is issued: the first thing it does
    for the resource is to remove its objects, Istio's own kinds included, which no
    reconcile of this process has rendered."""
    ensure_installed(primary, "1.3.0")
    istio_kinds = {"MeshPolicy", "DestinationRule", "attributemanifest", "handler", "instance"}
    assert istio_kinds | {"rule"} <= {kind for kind, _ in _owned_objects(primary)}
    operator.stop()

    primary.delete(IstioResource, "istio", namespace="istio-system")
    held = primary.get(IstioResource, "istio", namespace="istio-system")
    assert meta(held).deletionTimestamp, "the finalizer should hold the resource"
    operator.start()

    wait_for("resource gone", lambda: not exists(primary, IstioResource, "istio"), timeout=60)
    left: list[tuple[str, str]] = []

    def nothing_left() -> bool:
        left[:] = _owned_objects(primary)
        return not left

    try:
        wait_for("no owned object left", nothing_left, timeout=30)
    except AssertionError:
        pytest.fail(f"{len(left)} objects of the deleted Istio left: {left}")
    operator.assert_running()


def _owned_objects(client: Client) -> list[tuple[str, str]]:
    """(kind, namespace/name) of every object of a managed kind with the owner's labels."""
    register_managed_kinds()
    labels: LabelSelector = dict(ownership_labels("istio", "istio-system"))
    return [
        (kind, f"{meta(obj).namespace or ''}/{name_of(obj)}")
        for api_version, kind in MANAGED_KINDS
        for obj in list_kind(client, api_version, kind, labels)
    ]
