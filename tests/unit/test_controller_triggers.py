"""Triggers coalesce: any number of requests wake the owner's worker once; a change the
watches see wakes the owner of the changed object."""

from __future__ import annotations

from istio_operator.api.labels import ownership_labels
from istio_operator.controller.handlers import drift_listener
from istio_operator.controller.triggers import Triggers


def test_requests_for_an_owner_coalesce_into_one_event() -> None:
    triggers = Triggers()
    event = triggers.event_for(("istio-system", "mesh"))
    for _ in range(5):
        triggers.fire_owner_of(ownership_labels("mesh", "istio-system"))
    assert event.is_set()
    event.clear()
    assert not event.is_set()


def test_objects_without_owner_labels_and_unknown_owners_wake_nobody() -> None:
    triggers = Triggers()
    event = triggers.event_for(("istio-system", "mesh"))
    triggers.fire_owner_of({"app": "x"})
    triggers.fire_owner_of(ownership_labels("other", "istio-system"))
    assert not event.is_set()
    triggers.fire_all()
    assert event.is_set()


def service(name: str) -> dict[str, object]:
    labels = ownership_labels("mesh", "istio-system")
    meta = {"name": name, "namespace": "istio-system", "labels": labels}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta}


def test_the_primary_ingress_gateway_wakes_the_meshs_remotes_as_well() -> None:
    istio, remotes = Triggers(), Triggers()
    mesh = istio.event_for(("istio-system", "mesh"))
    remote = remotes.event_for(("istio-system", "remote-0"))
    elsewhere = remotes.event_for(("other", "remote-1"))
    changed = drift_listener(istio, remotes, None)

    changed("MODIFIED", service("istio-pilot"))
    assert mesh.is_set() and not remote.is_set()

    changed("MODIFIED", service("istio-ingressgateway"))
    assert remote.is_set() and not elsewhere.is_set()


def test_a_labelled_kubeconfig_secret_wakes_the_remote_of_its_name_on_the_primary_only() -> None:
    istio, remotes = Triggers(), Triggers()
    remote = remotes.event_for(("istio-system", "remote-0"))
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "remote-0", "namespace": "istio-system", "labels": {}},
    }
    drift_listener(istio, remotes, None)("MODIFIED", secret)
    assert not remote.is_set()  # not (yet) labelled for the mesh

    secret["metadata"]["labels"] = {"istio/multiCluster": "true"}  # type: ignore[index]
    drift_listener(istio, remotes, "remote-1")("MODIFIED", secret)
    assert not remote.is_set()  # a Secret of that name on some remote cluster
    drift_listener(istio, remotes, None)("MODIFIED", secret)
    assert remote.is_set()
