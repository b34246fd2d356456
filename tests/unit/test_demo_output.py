"""What the demo prints: states in words with their version (never a None), and the
sidecar, revision and tag counts as aligned tables, not Python dicts."""

from __future__ import annotations

from istio_operator.cli.demo import sidecar_rows, state_line, table
from istio_operator.cli.demo_istiod import revisions_table


def test_a_resource_without_status_reads_in_words() -> None:
    line = state_line({})
    assert "None" not in line
    assert line == "not reconciled yet, no version in effect yet"


def test_every_state_line_carries_the_version_phase_and_wait() -> None:
    status = {
        "Status": "Reconciling",
        "version": "1.2.5",
        "phase": "pilot",
        "waitingFor": ["deployment/istio-pilot", "deployment/istio-policy"],
    }
    assert state_line(status) == (
        "Reconciling, version 1.2.5, phase pilot, "
        "waiting for deployment/istio-pilot; deployment/istio-policy"
    )
    assert state_line({"Status": "Available", "version": "1.3.0"}) == "Available, version 1.3.0"


def test_sidecar_counts_are_a_table() -> None:
    counts = {
        "primary": {"docker.io/istio/proxyv2:1.3.0": 1, "docker.io/istio/proxyv2:1.2.5": 2},
        "remote": {"docker.io/istio/proxyv2:1.2.5": 2},
    }
    lines = table(("CLUSTER", "PROXY", "IMAGE", "PODS"), sidecar_rows(counts))
    assert lines == [
        "    CLUSTER  PROXY  IMAGE                          PODS",
        "    primary  1.2.5  docker.io/istio/proxyv2:1.2.5  2",
        "    primary  1.3.0  docker.io/istio/proxyv2:1.3.0  1",
        "    remote   1.2.5  docker.io/istio/proxyv2:1.2.5  2",
    ]
    assert not any("{" in line for line in lines)


def test_an_empty_table_says_so() -> None:
    assert table(("CLUSTER", "PODS"), []) == ["    (none)"]


def test_revisions_are_a_table_with_headers() -> None:
    found = {
        "primary": {
            "revisions": [
                {
                    "name": "mesh-1-31-1",
                    "version": "1.31.1",
                    "active": True,
                    "inUse": {"namespaces": 1, "pods": 3},
                },
                {
                    "name": "mesh-1-31-0",
                    "version": "1.31.0",
                    "active": False,
                    "inUse": {"namespaces": 0, "pods": 0},
                },
            ]
        }
    }
    header, active, kept = revisions_table(found)
    assert header.split() == ["CLUSTER", "REVISION", "VERSION", "STATE", "NAMESPACES", "PODS"]
    assert active.split() == ["primary", "mesh-1-31-1", "1.31.1", "active", "1", "3"]
    assert kept.split() == ["primary", "mesh-1-31-0", "1.31.0", "kept", "0", "0"]
