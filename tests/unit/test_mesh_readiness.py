"""The mesh is Ready only when the primary and every remote are available at the
resource's generation and version; a remote's failure is its own state."""

from __future__ import annotations

from typing import Any

from istio_operator.api.parse import load_istio
from istio_operator.kube.client import ApiRefusedError, ClusterTrustError, ClusterUnreachableError
from istio_operator.reconcile.istio import with_remotes
from istio_operator.reconcile.remote import (
    _classify,
    primary_followable,
    primary_settled,
    remote_ready,
    remotes_follow,
)
from istio_operator.reconcile.status import Observation, State
from istio_operator.render.phases import Phase
from tests.operator_harness import istio_body


def remote(name: str, state: str, generation: int = 1, istio_generation: int = 3) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": generation},
        "status": {
            "Status": state,
            "observedGeneration": 1,
            "istioObservedGeneration": istio_generation,
            "version": "1.3.0",
        },
    }


def primary_available() -> Observation:
    return Observation(3, State.AVAILABLE, "Available", version="1.3.0", ready=True)


def istio() -> Any:
    return load_istio(istio_body("1.3.0")).resource


def test_ready_when_every_remote_is_available_at_this_generation() -> None:
    seen = with_remotes(primary_available(), istio(), 3, [remote("a", State.AVAILABLE)])
    assert seen.ready is True
    assert seen.remotes == {"a": State.AVAILABLE}


def test_not_ready_while_a_remote_lags_and_the_message_names_it() -> None:
    bodies = [remote("a", State.AVAILABLE), remote("b", State.AVAILABLE, istio_generation=2)]
    seen = with_remotes(primary_available(), istio(), 3, bodies)
    assert seen.ready is False
    assert seen.not_ready == ("RemotesNotReady", "waiting for remote clusters: b (Available)")
    assert seen.state == State.AVAILABLE  # the primary's own state stays as the reference has it


def test_a_remote_at_another_version_or_its_own_older_generation_is_not_ready() -> None:
    older_version = remote("a", State.AVAILABLE)
    older_version["status"]["version"] = "1.2.5"
    assert not remote_ready(older_version, 3, "1.3.0")
    assert not remote_ready(remote("a", State.AVAILABLE, generation=2), 3, "1.3.0")
    assert not remote_ready(remote("a", "Reconciling"), 3, "1.3.0")
    assert remote_ready(remote("a", State.AVAILABLE), 3, "1.3.0")


def test_remotes_hold_exactly_the_current_remotes() -> None:
    seen = with_remotes(primary_available(), istio(), 3, [])
    assert seen.remotes == {}
    assert seen.ready is True


def test_remotes_follow_only_a_settled_primary() -> None:
    body: dict[str, Any] = {
        "metadata": {"generation": 4},
        "status": {"Status": State.AVAILABLE, "observedGeneration": 3},
    }
    assert not primary_settled(body)
    body["status"]["observedGeneration"] = 4
    assert primary_settled(body)
    body["status"]["Status"] = "ReconcileFailed"
    assert not primary_settled(body)


def test_classic_remotes_follow_once_the_primary_is_past_what_they_depend_on() -> None:
    follows = remotes_follow("1.3.0")
    assert follows == Phase.MIXER
    body: dict[str, Any] = {
        "metadata": {"generation": 4},
        "status": {"Status": "Reconciling", "observedGeneration": 4, "phase": "mixer"},
    }
    assert not primary_followable(body, follows), "policy and telemetry still roll out"
    body["status"]["phase"] = "sidecar-injector"
    assert primary_followable(body, follows)
    assert not primary_followable(body, None), "without a phase, the whole primary"
    body["status"]["observedGeneration"] = 3
    assert not primary_followable(body, follows), "a rollout of an older generation"
    body["status"] = {"Status": "ReconcileFailed", "observedGeneration": 4, "phase": "addons"}
    assert not primary_followable(body, follows)
    body["status"] = {"Status": State.AVAILABLE, "observedGeneration": 4}
    assert primary_followable(body, None)


def test_istiod_remotes_wait_for_the_whole_primary() -> None:
    assert remotes_follow("1.31.1") is None
    assert remotes_follow("0.1.0") is None, "an unknown version: the safe answer"


def test_each_failure_of_a_remote_has_its_reason() -> None:
    refused = ApiRefusedError(403, "Forbidden", 'replicasets.apps is forbidden: User "x"')
    forbidden = _classify(refused)
    assert forbidden[0] == "Forbidden"
    assert "403" in forbidden[1] and "replicasets" in forbidden[1]
    assert _classify(ClusterUnreachableError("cluster a is unreachable"))[0] == "Unreachable"
    assert _classify(ClusterTrustError("untrusted"))[0] == "UntrustedServer"
    assert _classify(RuntimeError("boom")) == ("Error", "RuntimeError: boom")
