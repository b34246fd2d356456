"""The resolved plan: every setting defaulted from its declaration, once per cluster."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from istio_operator.api.errors import SpecError
from istio_operator.api.istio import Istio
from istio_operator.api.remoteistio import RemoteIstio
from istio_operator.plan import MeshPlan, resolve_primary, resolve_remote
from istio_operator.plan.model import PROXY_RESOURCES, Port
from istio_operator.versions import ISTIO_1_2


def istio(namespace: str | None = "mesh-ns", **spec: Any) -> Istio:
    metadata: dict[str, Any] = {"name": "mesh"}
    if namespace:
        metadata["namespace"] = namespace
    return Istio.model_validate(
        {
            "apiVersion": "istio.banzaicloud.io/v1beta1",
            "kind": "Istio",
            "metadata": metadata,
            "spec": {"version": "1.3.0", "mtls": False, **spec},
        }
    )


def remote(**spec: Any) -> RemoteIstio:
    return RemoteIstio.model_validate(
        {
            "apiVersion": "istio.banzaicloud.io/v1beta1",
            "kind": "RemoteIstio",
            "metadata": {"name": "remote-a", "namespace": "mesh-ns"},
            "spec": {"enabledServices": [], **spec},
        }
    )


def plan_of(**spec: Any) -> MeshPlan:
    return resolve_primary(istio(**spec))[0]


def at(plan: Any, path: str) -> Any:
    for name in path.split("."):
        plan = getattr(plan, name)
    return plan


DEFAULTED = plan_of()


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
        ("pilot.image", "docker.io/istio/pilot:1.3.0"),
        ("policy.image", "docker.io/istio/mixer:1.3.0"),
        ("proxy.coreDumpImage", "docker.io/istio/proxy_init:1.3.0"),
        ("gateways.ingress.sds.image", "docker.io/istio/node-agent-k8s:1.3.0"),
        ("citadel.caSecretName", ""),
        ("gateways.ingress.loadBalancerIP", ""),
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
    assert at(DEFAULTED, path) == value


def test_no_setting_of_the_plan_is_none() -> None:
    def walk(node: Any, path: str) -> None:
        for spec_field in dataclasses.fields(node):
            value = getattr(node, spec_field.name)
            assert value is not None, f"{path}{spec_field.name}"
            if dataclasses.is_dataclass(value):
                walk(value, f"{path}{spec_field.name}.")

    walk(plan_of(), "")
    walk(resolve_remote(istio(), remote())[0], "")


def test_the_plan_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULTED.pilot.enabled = False  # type: ignore[misc]


def test_gateway_default_ports() -> None:
    ingress = [(p.name, p.port, p.targetPort, p.nodePort) for p in DEFAULTED.gateways.ingress.ports]
    egress = [(p.name, p.port, p.nodePort) for p in DEFAULTED.gateways.egress.ports]
    assert ingress == [
        ("status-port", 15020, 15020, 31460),
        ("http2", 80, 80, 31380),
        ("https", 443, 443, 31390),
        ("tls", 15443, 15443, 31450),
    ]
    assert egress == [("http2", 80, 0), ("https", 443, 0), ("tls", 15443, 0)]


def test_a_given_port_takes_the_declared_defaults_of_what_it_leaves_unset() -> None:
    plan = plan_of(gateways={"ingress": {"ports": [{"port": 8080}]}})
    assert list(plan.gateways.ingress.ports) == [
        Port(name="", protocol="TCP", port=8080, targetPort=8080, nodePort=0)
    ]


def test_values_the_user_set_win_over_defaults() -> None:
    plan = plan_of(
        includeIPRanges="10.0.0.0/8",
        pilot={"replicaCount": 3, "enableProtocolSniffing": False, "image": "my/pilot:x"},
        gateways={"ingress": {"serviceType": "NodePort"}},
        useMCP=False,
    )
    assert plan.includeIPRanges == "10.0.0.0/8"
    assert plan.pilot.replicaCount == 3
    assert plan.pilot.maxReplicas == 5
    assert plan.pilot.image == "my/pilot:x"
    # Outbound sniffing follows the sniffing switch when unset.
    assert plan.pilot.enableProtocolSniffingOutbound is False
    assert plan.gateways.ingress.serviceType == "NodePort"
    assert plan.useMCP is False


def test_policy_and_telemetry_inherit_from_mixer_except_checks() -> None:
    plan = plan_of(
        mixer={
            "enabled": False,
            "replicaCount": 2,
            "checksEnabled": True,
            "sessionAffinityEnabled": True,
            "reportBatchMaxEntries": 7,
            "nodeSelector": {"pool": "mesh"},
            "image": "my/mixer:1",
        },
        telemetry={"replicaCount": 4},
    )
    assert (plan.policy.enabled, plan.policy.replicaCount, plan.policy.image) == (
        False,
        2,
        "my/mixer:1",
    )
    assert plan.policy.nodeSelector == {"pool": "mesh"}
    assert plan.policy.checksEnabled is False
    assert plan.policy.sessionAffinityEnabled is True
    assert (plan.telemetry.replicaCount, plan.telemetry.reportBatchMaxEntries) == (4, 7)
    assert plan.telemetry.reportBatchMaxTime == "1s"
    assert plan.mixer.checksEnabled is True


def test_the_1_2_family_runs_both_mixer_deployments_with_mixers_settings() -> None:
    plan = plan_of(version="1.2.5", mixer={"replicaCount": 2}, policy={"enabled": False})
    assert plan.policy.enabled is True
    assert plan.policy.replicaCount == plan.telemetry.replicaCount == 2


def test_the_family_settles_domains_and_the_core_dump_image() -> None:
    given: dict[str, Any] = {
        "trustDomain": "example.org",
        "proxy": {"clusterDomain": "corp", "coreDumpImage": "c:1"},
    }
    modern = plan_of(**given)
    assert (modern.trustDomain, modern.proxy.clusterDomain, modern.proxy.coreDumpImage) == (
        "example.org",
        "corp",
        "c:1",
    )
    legacy, family = resolve_primary(istio(version="1.2.5", **given))
    assert family is ISTIO_1_2
    assert (legacy.trustDomain, legacy.proxy.clusterDomain) == ("", "cluster.local")
    assert legacy.proxy.coreDumpImage == "docker.io/istio/proxy_init:1.2.5"
    assert plan_of(trustDomain="").trustDomain == "cluster.local"


def test_component_resources_fall_back_to_default_resources() -> None:
    mine = {"requests": {"cpu": "50m"}}
    plan = plan_of(defaultResources=mine, galley={"resources": {"limits": {"cpu": "1"}}})
    assert plan.pilot.resources == mine
    assert plan.galley.resources == {"limits": {"cpu": "1"}}
    assert plan.policy.resources == mine
    assert plan.proxy.resources == mine
    assert plan.defaultResources == mine
    assert plan_of(defaultResources={}).pilot.resources == {}


def test_proxy_resources_follow_the_users_default_resources() -> None:
    mine = {"requests": {"cpu": "50m"}}
    explicit = {"limits": {"cpu": "1"}}
    assert plan_of(defaultResources=mine, proxy={"resources": explicit}).proxy.resources == explicit


def test_defaults_without_namespace() -> None:
    plan = resolve_primary(istio(namespace=None))[0]
    assert plan.tracing.zipkin.address == "zipkin.istio-system:9411"
    assert list(plan.sidecarInjector.initCNIConfiguration.excludeNamespaces) == ["istio-system"]


def test_crossed_replica_bounds_are_refused_with_their_path() -> None:
    with pytest.raises(SpecError, match=r"spec\.pilot\.maxReplicas"):
        plan_of(pilot={"minReplicas": 4, "maxReplicas": 2})
    with pytest.raises(SpecError, match=r"spec\.mixer\.maxReplicas"):
        plan_of(version="1.2.5", mixer={"minReplicas": 4, "maxReplicas": 2})
    # A component that does not run is not judged.
    plan_of(pilot={"enabled": False, "minReplicas": 4, "maxReplicas": 2})


def test_a_remote_takes_the_primarys_plan_with_its_own_settings() -> None:
    primary = istio(
        autoInjectionNamespaces=["a"],
        includeIPRanges="10.0.0.0/8",
        citadel={"nodeSelector": {"pool": "primary"}, "resources": {"limits": {"cpu": "2"}}},
        sidecarInjector={"replicaCount": 3, "tolerations": [{"operator": "Exists"}]},
        proxy={"privileged": True},
        meshExpansion=True,
        gateways={"ingress": {"enabled": False}},
    )
    plan, _ = resolve_remote(
        primary,
        remote(
            includeIPRanges="*",
            defaultResources={"requests": {"cpu": "1m"}},
            citadel={"affinity": {"nodeAffinity": {}}},
            proxy={"resources": {"limits": {"cpu": "3"}}},
            clusterName="east",
        ),
    )
    assert list(plan.autoInjectionNamespaces) == ["a"]
    assert plan.includeIPRanges == "10.0.0.0/8"
    assert plan.citadel.nodeSelector == {}
    assert plan.citadel.affinity == {"nodeAffinity": {}}
    assert plan.citadel.resources == {"limits": {"cpu": "2"}}
    assert plan.citadel.caSecretName == "cacerts"
    assert plan.sidecarInjector.replicaCount == 1
    assert plan.sidecarInjector.tolerations == []
    assert plan.sidecarInjector.resources == {"requests": {"cpu": "1m"}}
    assert plan.defaultResources == {"requests": {"cpu": "1m"}}
    assert plan.proxy.privileged is True
    assert plan.proxy.resources == {"limits": {"cpu": "3"}}
    assert plan.clusterName == "east"
    assert plan.gateways.ingress.enabled is True
    own = resolve_remote(
        primary, remote(autoInjectionNamespaces=["b"], citadel={"caSecretName": "mine"})
    )
    assert list(own[0].autoInjectionNamespaces) == ["b"]
    assert own[0].citadel.caSecretName == "mine"
