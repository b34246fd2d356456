"""Random specs around the sample either render or raise the spec layer's errors."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from istio_operator.api.errors import SpecError
from istio_operator.render import render_primary, render_remote
from istio_operator.versions import UnsupportedVersionError

from .render_support import FACTS, istio, remote, sample_body, with_spec

SWITCHES = (
    "mtls",
    "controlPlaneSecurityEnabled",
    "meshExpansion",
    "multiMesh",
    "useMCP",
    "watchOneNamespace",
    "pilot.enabled",
    "pilot.sidecar",
    "citadel.enabled",
    "citadel.healthCheck",
    "galley.enabled",
    "galley.configValidation",
    "gateways.enabled",
    "gateways.ingress.enabled",
    "gateways.egress.enabled",
    "gateways.k8singress.enabled",
    "gateways.ingress.sds.enabled",
    "mixer.enabled",
    "mixer.stdioAdapterEnabled",
    "policy.enabled",
    "telemetry.enabled",
    "sidecarInjector.enabled",
    "sidecarInjector.enableNamespacesByDefault",
    "sidecarInjector.initCNIConfiguration.enabled",
    "nodeAgent.enabled",
    "istioCoreDNS.enabled",
    "mixerlessTelemetry.enabled",
    "sds.enabled",
    "tracing.enabled",
    "proxy.enableCoreDump",
    "defaultPodDisruptionBudget.enabled",
)

values = st.one_of(
    st.booleans(),
    st.integers(min_value=-3, max_value=70000),
    st.sampled_from(["", "x", "ClusterIP", "NodePort", "zipkin", "datadog", "lightstep"]),
    st.none(),
)
edits = st.lists(
    st.tuples(
        st.one_of(
            st.sampled_from(SWITCHES),
            st.sampled_from(
                [
                    "pilot.minReplicas",
                    "pilot.maxReplicas",
                    "gateways.ingress.serviceType",
                    "gateways.ingress.maxReplicas",
                    "tracing.tracer",
                    "galley.replicaCount",
                    "proxy.logLevel",
                ]
            ),
        ),
        values,
    ),
    max_size=8,
)
versions = st.sampled_from(["1.2.5", "1.3.0", "1.3.8", "1.4.0", "1.3", "2.0.0"])


def body_with(version: str, changes: list[tuple[str, Any]]) -> dict[str, Any]:
    body = sample_body(version)
    for path, value in changes:
        body = with_spec(body, path, value)
    return body


@settings(max_examples=60, deadline=None)
@given(version=versions, changes=edits)
def test_render_or_spec_error(version: str, changes: list[tuple[str, Any]]) -> None:
    try:
        resource = istio(body_with(version, changes))
        objects = render_primary(resource)
        remote_result = render_remote(resource, remote(), FACTS)
    except (SpecError, UnsupportedVersionError):
        return
    assert len({obj.key for obj in objects}) == len(objects)
    assert len({obj.key for obj in remote_result}) == len(remote_result)
