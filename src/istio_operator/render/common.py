"""The mesh ConfigMap `istio`: keys `mesh` (MeshConfig) and `meshNetworks`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from istio_operator.plan.model import EnvoyAccessLogService, LocalityLB
from istio_operator.render import builders as b
from istio_operator.render.context import Context
from istio_operator.render.objects import DesiredObject
from istio_operator.render.phases import Phase
from istio_operator.render.serialize import dump

MESH_CONFIG_MAP = "istio"
LABELS = {"app": "istio", "istio": "mesh-config"}


def to_yaml(document: Any) -> str:
    return dump(document, sort_keys=True)


def mesh_networks_hash(mesh_networks: Mapping[str, Any]) -> str:
    """A digest of meshNetworks; pilot carries it so that it restarts when they change."""
    canonical = json.dumps(mesh_networks, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def mixer_address(ctx: Context, kind: str) -> str:
    if ctx.is_remote:
        # Remote sidecars reach the primary's mixer through mirrored Services.
        return f"istio-{kind}.{ctx.namespace}:15004"
    return f"{ctx.service_host(f'istio-{kind}')}:{15004 if ctx.cp_security else 9091}"


def locality_lb(config: LocalityLB) -> dict[str, Any] | None:
    if not config.enabled:
        return None
    if config.distribute:
        return {"distribute": list(config.distribute)}
    return {"failover": list(config.failover)} if config.failover else {}


def tracing_config(ctx: Context) -> dict[str, Any]:
    tracing = ctx.plan.tracing
    if tracing.tracer == "lightstep":
        return {"lightstep": dict(tracing.lightstep.settings)}
    if tracing.tracer == "datadog":
        return {"datadog": {"address": tracing.datadog.address}}
    if tracing.tracer == "stackdriver":
        # Only the 1.3 family's MeshConfig knows the stackdriver tracer.
        return {"stackdriver": {}} if ctx.family.envoy_services else {}
    return {"zipkin": {"address": tracing.zipkin.address}}


def access_log_service(als: EnvoyAccessLogService) -> dict[str, Any]:
    """Where and how the proxies send access logs over gRPC."""
    service: dict[str, Any] = {"address": als.address}
    if als.tlsSettings:
        service["tlsSettings"] = dict(als.tlsSettings)
    if als.tcpKeepalive:
        service["tcpKeepalive"] = dict(als.tcpKeepalive)
    return service


def default_proxy_config(ctx: Context) -> dict[str, Any]:
    config: dict[str, Any] = {
        "connectTimeout": "10s",
        "configPath": "/etc/istio/proxy",
        "binaryPath": "/usr/local/bin/envoy",
        "serviceCluster": "istio-proxy",
        "drainDuration": "45s",
        "parentShutdownDuration": "1m0s",
        "proxyAdminPort": 15000,
        "concurrency": 0,
        "controlPlaneAuthPolicy": ctx.auth_policy,
        "discoveryAddress": ctx.discovery_address,
    }
    if ctx.tracing_enabled:
        tracing = tracing_config(ctx)
        if tracing:
            config["tracing"] = tracing
    proxy = ctx.plan.proxy
    if proxy.envoyStatsD.enabled:
        config["statsdUdpAddress"] = proxy.envoyStatsD.address
    if proxy.envoyMetricsService.enabled:
        config["envoyMetricsService"] = {"address": proxy.envoyMetricsService.address}
    if proxy.envoyAccessLogService.enabled:
        config["envoyAccessLogService"] = access_log_service(proxy.envoyAccessLogService)
    return config


def mesh_config(ctx: Context) -> dict[str, Any]:
    """MeshConfig of the control plane, as the family's pilot and proxies read it."""
    plan, family = ctx.plan, ctx.family
    proxy = plan.proxy
    mesh: dict[str, Any] = {
        "disablePolicyChecks": not plan.policy.checksEnabled,
        "enableTracing": ctx.tracing_enabled,
        "accessLogFile": proxy.accessLogFile,
        "accessLogFormat": proxy.accessLogFormat,
        "accessLogEncoding": proxy.accessLogEncoding,
        "policyCheckFailOpen": False,
        "ingressService": "istio-ingressgateway",
        "ingressClass": "istio",
        "ingressControllerMode": 2,
        "sdsUdsPath": plan.sds.udsPath,
        "trustDomain": plan.trustDomain,
        "outboundTrafficPolicy": {"mode": plan.outboundTrafficPolicy.mode},
        "rootNamespace": ctx.namespace,
        "connectTimeout": "10s",
        "defaultConfig": default_proxy_config(ctx),
    }
    locality = locality_lb(plan.localityLB)
    if locality is not None:
        mesh["localityLbSetting"] = locality
    if family.envoy_services:
        mesh["enableEnvoyAccessLogService"] = proxy.envoyAccessLogService.enabled
    if family.protocol_sniffing:
        mesh["protocolDetectionTimeout"] = proxy.protocolDetectionTimeout
        mesh["dnsRefreshRate"] = proxy.dnsRefreshRate
    if family.sds_token == "trustworthy-jwt":
        mesh["enableSdsTokenMount"] = plan.sds.useTrustworthyJwt
        mesh["sdsUseK8sSaJwt"] = plan.sds.useNormalJwt
    if family.policy_telemetry_split:
        if plan.policy.enabled:
            mesh["mixerCheckServer"] = mixer_address(ctx, "policy")
            mesh["sidecarToTelemetrySessionAffinity"] = plan.policy.sessionAffinityEnabled
        if plan.telemetry.enabled:
            mesh["mixerReportServer"] = mixer_address(ctx, "telemetry")
            mesh["reportBatchMaxEntries"] = plan.telemetry.reportBatchMaxEntries
            mesh["reportBatchMaxTime"] = plan.telemetry.reportBatchMaxTime
    else:
        # The 1.2 family always names both servers, whether mixer runs or not.
        mesh["mixerCheckServer"] = mixer_address(ctx, "policy")
        mesh["mixerReportServer"] = mixer_address(ctx, "telemetry")
    if plan.useMCP:
        source: dict[str, Any] = {"address": f"istio-galley.{ctx.namespace}.svc:9901"}
        if ctx.cp_security:
            source["tlsSettings"] = {"mode": "ISTIO_MUTUAL"}
        mesh["configSources"] = [source]
    return mesh


def render(ctx: Context) -> list[DesiredObject]:
    data = {
        "mesh": to_yaml(mesh_config(ctx)),
        "meshNetworks": to_yaml(dict(ctx.mesh_networks)),
    }
    return ctx.emit(Phase.BASE, [b.config_map(MESH_CONFIG_MAP, ctx.namespace, LABELS, data)])
