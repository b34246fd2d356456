"""Triggers coalesce: any number of requests wake the owner's worker once."""

from __future__ import annotations

from istio_operator.api.labels import ownership_labels
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
