"""Defaults of the Istio and RemoteIstio specs."""

from __future__ import annotations

from typing import Any

import pytest

from istio_operator.api.defaults import (
    PROXY_RESOURCES,
    SPEC_DEFAULTS,
    apply_defaults,
    apply_remote_defaults,
    get_path,
)
from istio_operator.api.istio import IstioSpec, MixerConfiguration, PolicyConfiguration
from istio_operator.api.remoteistio import IstioService, RemoteIstioSpec


def bare(**fields: Any) -> IstioSpec:
    return IstioSpec.model_validate({"version": "1.3.0", "mtls": False, **fields})


def dumped(spec: IstioSpec) -> dict[str, Any]:
    return spec.model_dump(by_alias=True, exclude_none=True)


DEFAULTED = apply_defaults(bare(), namespace="mesh-ns")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("includeIPRanges", "*"),
        ("excludeIPRanges", ""),
        ("controlPlaneSecurityEnabled", False),
        ("defaultResources", {"requests": {"cpu": "10m"}}),
        ("sds.enabled", False),
        ("sds.tokenAudience", "istio-ca"),
        ("pilot.enabled", True),
        ("pilot.sidecar", True),
        ("pilot.replicaCount", 1),
        ("pilot.minReplicas", 1),
        ("pilot.maxReplicas", 5),
        ("pilot.traceSampling", 1.0),
        ("pilot.enableProtocolSniffing", True),
        ("pilot.enableProtocolSniffingOutbound", True),
        ("pilot.enableProtocolSniffingInbound", False),
        ("citadel.enabled", True),
        ("citadel.enableNamespacesByDefault", True),
        ("galley.replicaCount", 1),
        ("galley.configValidation", True),
        ("gateways.enabled", True),
        ("gateways.ingress.serviceType", "LoadBalancer"),
        ("gateways.egress.serviceType", "ClusterIP"),
        ("gateways.egress.maxReplicas", 5),
        ("gateways.ingress.sds.enabled", False),
        ("gateways.k8singress.enabled", False),
        ("mixer.enabled", True),
        ("mixer.reportBatchMaxEntries", 100),
        ("mixer.reportBatchMaxTime", "1s"),
        ("mixer.sessionAffinityEnabled", False),
        ("mixer.stdioAdapterEnabled", False),
        ("policy.checksEnabled", False),
        ("telemetry.reportBatchMaxTime", "1s"),
        ("sidecarInjector.replicaCount", 1),
        ("sidecarInjector.autoInjectionPolicyEnabled", True),
        (
            "sidecarInjector.init.resources",
            {
                "requests": {"cpu": "10m", "memory": "10Mi"},
                "limits": {"cpu": "100m", "memory": "50Mi"},
            },
        ),
        ("sidecarInjector.initCNIConfiguration.enabled", False),
        ("sidecarInjector.initCNIConfiguration.binDir", "/opt/cni/bin"),
        ("sidecarInjector.initCNIConfiguration.confDir", "/etc/cni/net.d"),
        ("sidecarInjector.initCNIConfiguration.excludeNamespaces", ["mesh-ns"]),
        ("sidecarInjector.initCNIConfiguration.logLevel", "info"),
        ("nodeAgent.enabled", False),
        ("proxy.accessLogFile", "/dev/stdout"),
        ("proxy.accessLogFormat", ""),
        ("proxy.accessLogEncoding", "TEXT"),
        ("proxy.logLevel", "warning"),
        ("proxy.componentLogLevel", "misc:error"),
        ("proxy.dnsRefreshRate", "300s"),
        ("proxy.clusterDomain", "cluster.local"),
        ("proxy.protocolDetectionTimeout", "100ms"),
        ("proxy.envoyStatsD.enabled", False),
        ("proxy.envoyMetricsService.enabled", False),
        ("proxy.envoyAccessLogService.enabled", False),
        ("proxy.resources", PROXY_RESOURCES),
        ("useMCP", True),
        ("watchOneNamespace", False),
        ("defaultConfigVisibility", ""),
        ("defaultPodDisruptionBudget.enabled", False),
        ("outboundTrafficPolicy.mode", "ALLOW_ANY"),
        ("tracing.enabled", True),
        ("tracing.tracer", "zipkin"),
        ("tracing.zipkin.address", "zipkin.mesh-ns:9411"),
        ("tracing.datadog.address", "$(HOST_IP):8126"),
        ("imagePullPolicy", "IfNotPresent"),
        ("meshExpansion", False),
        ("multiMesh", False),
        ("istioCoreDNS.enabled", False),
        ("istioCoreDNS.replicaCount", 1),
        ("mixerlessTelemetry.enabled", False),
        ("trustDomain", "cluster.local"),
        ("clusterName", ""),
        ("meshID", ""),
    ],
)
def test_reference_defaults(path: str, value: Any) -> None:
    assert get_path(dumped(DEFAULTED), path) == value


def test_every_declared_default_is_set_and_unset_means_none_before() -> None:
    before = dumped(bare())
    after = dumped(DEFAULTED)
    for path, _ in SPEC_DEFAULTS:
        assert get_path(before, path) is None, path
        assert get_path(after, path) is not None, path


def test_gateway_default_ports() -> None:
    gateways = DEFAULTED.gateways
    assert gateways is not None and gateways.ingress is not None and gateways.egress is not None
    ingress = [(p.name, p.port, p.nodePort) for p in gateways.ingress.ports or []]
    egress = [(p.name, p.port) for p in gateways.egress.ports or []]
    assert ingress == [
        ("status-port", 15020, 31460),
        ("http2", 80, 31380),
        ("https", 443, 31390),
        ("tls", 15443, 31450),
    ]
    assert egress == [("http2", 80), ("https", 443), ("tls", 15443)]


def test_images_are_left_to_version_resolution() -> None:
    assert DEFAULTED.pilot is not None and DEFAULTED.pilot.image is None
    assert DEFAULTED.proxy is not None and DEFAULTED.proxy.image is None
    assert DEFAULTED.proxy.coreDumpImage is None


def test_apply_defaults_is_idempotent_and_does_not_modify_its_input() -> None:
    spec = bare(pilot={"replicaCount": 3}, mixer={"enabled": False})
    original = spec.model_copy(deep=True)
    once = apply_defaults(spec, namespace="x")
    assert spec == original
    assert apply_defaults(once, namespace="x") == once


def test_values_the_user_set_win_over_defaults() -> None:
    spec = apply_defaults(
        bare(
            includeIPRanges="10.0.0.0/8",
            pilot={"replicaCount": 3, "enableProtocolSniffing": False},
            gateways={"ingress": {"serviceType": "NodePort", "ports": [{"port": 8080}]}},
            useMCP=False,
        )
    )
    assert spec.includeIPRanges == "10.0.0.0/8"
    assert spec.pilot is not None
    assert spec.pilot.replicaCount == 3
    assert spec.pilot.maxReplicas == 5
    # Outbound sniffing follows the sniffing switch when unset.
    assert spec.pilot.enableProtocolSniffingOutbound is False
    assert spec.gateways is not None and spec.gateways.ingress is not None
    assert spec.gateways.ingress.serviceType == "NodePort"
    assert [p.port for p in spec.gateways.ingress.ports or []] == [8080]
    assert spec.useMCP is False


def test_policy_and_telemetry_inherit_from_mixer_except_checks() -> None:
    spec = apply_defaults(
        bare(
            mixer={
                "enabled": False,
                "replicaCount": 2,
                "checksEnabled": True,
                "sessionAffinityEnabled": True,
                "reportBatchMaxEntries": 7,
                "nodeSelector": {"pool": "mesh"},
            },
            telemetry={"replicaCount": 4},
        )
    )
    assert spec.policy == PolicyConfiguration(
        enabled=False,
        replicaCount=2,
        minReplicas=1,
        maxReplicas=5,
        nodeSelector={"pool": "mesh"},
        checksEnabled=False,
        sessionAffinityEnabled=True,
    )
    assert spec.telemetry is not None
    assert spec.telemetry.enabled is False
    assert spec.telemetry.replicaCount == 4
    assert spec.telemetry.reportBatchMaxEntries == 7
    assert spec.telemetry.reportBatchMaxTime == "1s"
    assert spec.mixer == MixerConfiguration.model_validate(
        {**dumped(spec)["mixer"], "checksEnabled": True}
    )


def test_proxy_resources_follow_the_users_default_resources() -> None:
    mine = {"requests": {"cpu": "50m"}}
    spec = apply_defaults(bare(defaultResources=mine))
    assert spec.proxy is not None
    assert spec.proxy.resources == mine
    assert spec.defaultResources == mine

    explicit = {"limits": {"cpu": "1"}}
    spec = apply_defaults(bare(defaultResources=mine, proxy={"resources": explicit}))
    assert spec.proxy is not None
    assert spec.proxy.resources == explicit


def test_defaults_without_namespace() -> None:
    spec = apply_defaults(bare())
    assert spec.tracing is not None and spec.tracing.zipkin is not None
    assert spec.tracing.zipkin.address == "zipkin.istio-system:9411"
    assert spec.sidecarInjector is not None
    assert spec.sidecarInjector.initCNIConfiguration is not None
    assert spec.sidecarInjector.initCNIConfiguration.excludeNamespaces is None


def test_remote_defaults() -> None:
    spec = RemoteIstioSpec(enabledServices=[IstioService(name="istio-pilot")])
    defaulted = apply_remote_defaults(spec)
    assert defaulted.includeIPRanges == "*"
    assert defaulted.sidecarInjector is not None
    assert defaulted.sidecarInjector.replicaCount == 1
    assert defaulted.citadel is None
    assert apply_remote_defaults(defaulted) == defaulted
    assert spec.includeIPRanges is None
