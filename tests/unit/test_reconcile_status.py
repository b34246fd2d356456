"""Status computation: reference fields, conditions and their transition times."""

from __future__ import annotations

from typing import Any

from istio_operator.reconcile.status import Observation, State, compute_status, differs


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def test_available_sets_version_and_both_conditions() -> None:
    status = compute_status(
        {}, Observation(3, State.AVAILABLE, "Available", version="1.3.0", ready=True)
    )
    assert status["Status"] == "Available"
    assert status["version"] == "1.3.0"
    assert status["observedGeneration"] == 3
    assert conditions(status) == {"Reconciled": "True", "Ready": "True"}
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])


def test_failure_keeps_version_in_effect_and_ready_as_it_was() -> None:
    available = compute_status(
        {}, Observation(1, State.AVAILABLE, "Available", version="1.2.5", ready=True)
    )
    failed = compute_status(
        available,
        Observation(2, State.FAILED, "UnsupportedVersion", message="intended ... unsupported"),
    )
    assert failed["Status"] == "ReconcileFailed"
    assert failed["ErrorMessage"] == "intended ... unsupported"
    assert failed["version"] == "1.2.5"
    assert conditions(failed) == {"Reconciled": "False", "Ready": "True"}


def test_transition_time_moves_only_with_the_condition_status() -> None:
    first = compute_status({}, Observation(1, State.RECONCILING, "RolloutInProgress", ready=False))
    again = compute_status(
        first, Observation(1, State.RECONCILING, "RolloutInProgress", ready=False)
    )
    assert not differs(first, again)
    first["conditions"][0]["lastTransitionTime"] = "2000-01-01T00:00:00Z"
    done = compute_status(
        first, Observation(1, State.AVAILABLE, "Available", version="1", ready=True)
    )
    assert done["conditions"][0]["lastTransitionTime"] != "2000-01-01T00:00:00Z"


def test_waiting_phase_and_awaited_objects_are_reported() -> None:
    status = compute_status(
        {},
        Observation(
            1,
            State.RECONCILING,
            "RolloutInProgress",
            phase="pilot",
            waiting_for=("Deployment istio-system/istio-pilot: 0/1 available",),
            ready=False,
        ),
    )
    assert status["phase"] == "pilot"
    assert status["waitingFor"] == ["Deployment istio-system/istio-pilot: 0/1 available"]
    assert status["ErrorMessage"] == ""


def test_merge_patch_removes_what_is_gone() -> None:
    from istio_operator.reconcile.status import merge_patch

    previous = {"Status": "Available", "remotes": {"a": "Available", "b": "Available"}, "x": 1}
    new = {"Status": "Available", "remotes": {"a": "Available"}}
    assert merge_patch(previous, new) == {
        "Status": "Available",
        "remotes": {"a": "Available", "b": None},
        "x": None,
    }


def test_unreachable_carries_its_message_and_is_not_ready() -> None:
    available = compute_status(
        {}, Observation(1, State.AVAILABLE, "Available", version="1", ready=True)
    )
    seen = Observation(
        1, State.UNREACHABLE, State.UNREACHABLE, "cluster a is unreachable at x", ready=False
    )
    status = compute_status(available, seen)
    assert status["ErrorMessage"] == "cluster a is unreachable at x"
    assert conditions(status)["Ready"] == "False"


def test_remote_identity_and_istio_generation_are_kept_until_seen_again() -> None:
    first = compute_status(
        {},
        Observation(
            1, State.AVAILABLE, "Available", ready=True, istio_generation=4, cluster_id="u"
        ),
    )
    rolling = compute_status(first, Observation(1, State.RECONCILING, "RollingOut"))
    assert (rolling["istioObservedGeneration"], rolling["clusterID"]) == (4, "u")


def test_remotes_and_gateways_as_column_text() -> None:
    seen = Observation(
        1,
        State.AVAILABLE,
        "Available",
        gateway_addresses=("100.64.0.1", "100.64.0.2"),
        remotes={"a": State.AVAILABLE, "b": State.UNREACHABLE},
    )
    status = compute_status({}, seen)
    assert status["remotesReady"] == "1/2"
    assert status["gateways"] == "100.64.0.1,100.64.0.2"
    assert status["GatewayAddress"] == ["100.64.0.1", "100.64.0.2"]


def test_no_remotes_no_gateways_no_column_text() -> None:
    status = compute_status({}, Observation(1, State.RECONCILING, "Reconciling"))
    assert "remotesReady" not in status
    assert "gateways" not in status
