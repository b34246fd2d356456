"""Rendered manifests, committed as plain YAML under __snapshots__/ (`make snapshots`)."""

from __future__ import annotations

from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion

from .render_support import YAMLSnapshotExtension, primary, remote_objects, sample_body


@pytest.fixture
def yaml_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(YAMLSnapshotExtension)


@pytest.mark.parametrize("version", ["1.2.5", "1.3.0"])
def test_primary(version: str, yaml_snapshot: SnapshotAssertion) -> None:
    assert primary(version) == yaml_snapshot


@pytest.mark.parametrize("version", ["1.2.5", "1.3.0"])
def test_remote(version: str, yaml_snapshot: SnapshotAssertion) -> None:
    assert remote_objects(sample_body(version)) == yaml_snapshot


EVERYTHING: dict[str, Any] = {
    "mtls": True,
    "controlPlaneSecurityEnabled": True,
    "meshExpansion": True,
    "multiMesh": True,
    "nodeAgent__enabled": True,
    "istioCoreDNS__enabled": True,
    "mixerlessTelemetry__enabled": True,
    "sidecarInjector__initCNIConfiguration__enabled": True,
    "gateways__k8singress__enabled": True,
    "sds__enabled": True,
    "gateways__ingress__sds__enabled": True,
}


def test_primary_with_every_option(yaml_snapshot: SnapshotAssertion) -> None:
    assert primary("1.3.0", **EVERYTHING) == yaml_snapshot
