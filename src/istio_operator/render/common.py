"""The mesh ConfigMap `istio`: keys `mesh` (MeshConfig) and `meshNetworks`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from istio_operator.api.istio import LocalityLBConfiguration
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


def locality_lb(config: LocalityLBConfiguration | None) -> dict[str, Any] | None:
    if config is None or not config.enabled:
        return None
    setting: dict[str, Any] = {}
    if config.distribute:
        setting["distribute"] = [
            d.model_dump(by_alias=True, exclude_none=True) for d in config.distribute
        ]
    elif config.failover:
        setting["failover"] = [
            f.model_dump(by_alias=True, exclude_none=True) for f in config.failover
        ]
    return setting


def _host_port(host: str | None, port: int | None) -> str:
    return f"{host or ''}:{port or ''}"


def tracing_config(ctx: Context) -> dict[str, Any]:
    tracing = ctx.tracing
    tracer = tracing.tracer or "zipkin"
    if tracer == "lightstep":
        lightstep = tracing.lightstep
        return {
            "lightstep": lightstep.model_dump(exclude_none=True) if lightstep else {},
        }
    if tracer == "datadog":
        return {"datadog": {"address": tracing.datadog.address if tracing.datadog else ""}}
    if tracer == "stackdriver":
        # Only the 1.3 family's MeshConfig knows the stackdriver tracer.
        return {"stackdriver": {}} if ctx.family.envoy_services else {}
    return {"zipkin": {"address": tracing.zipkin.address if tracing.zipkin else ""}}


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
    if ctx.family.envoy_services:
        proxy = ctx.proxy
        if proxy.envoyStatsD and proxy.envoyStatsD.enabled:
            config["statsdUdpAddress"] = _host_port(proxy.envoyStatsD.host, proxy.envoyStatsD.port)
        metrics = proxy.envoyMetricsService
        if metrics and metrics.enabled:
            config["envoyMetricsService"] = {"address": _host_port(metrics.host, metrics.port)}
        als = proxy.envoyAccessLogService
        if als and als.enabled:
            service: dict[str, Any] = {"address": _host_port(als.host, als.port)}
            if als.tlsSettings:
                service["tlsSettings"] = als.tlsSettings.model_dump(exclude_none=True)
            if als.tcpKeepalive:
                service["tcpKeepalive"] = als.tcpKeepalive.model_dump(exclude_none=True)
            config["envoyAccessLogService"] = service
    return config


def mesh_config(ctx: Context) -> dict[str, Any]:
    """MeshConfig of the control plane, as the family's pilot and proxies read it."""
    spec, family = ctx.spec, ctx.family
    proxy = ctx.proxy
    modern = family.access_log_settings
    mesh: dict[str, Any] = {
        "disablePolicyChecks": not ctx.policy.checksEnabled
        if family.policy_telemetry_split
        else False,
        "enableTracing": ctx.tracing_enabled,
        "accessLogFile": proxy.accessLogFile if modern else "/dev/stdout",
        "accessLogFormat": (proxy.accessLogFormat or "") if modern else "",
        "accessLogEncoding": (proxy.accessLogEncoding or "TEXT") if modern else "TEXT",
        "policyCheckFailOpen": False,
        "ingressService": "istio-ingressgateway",
        "ingressClass": "istio",
        "ingressControllerMode": 2,
        "sdsUdsPath": ctx.sds.udsPath or "",
        "trustDomain": ctx.trust_domain or "",
        "outboundTrafficPolicy": {
            "mode": spec.outboundTrafficPolicy.mode if spec.outboundTrafficPolicy else "ALLOW_ANY"
        },
        "rootNamespace": ctx.namespace,
        "connectTimeout": "10s",
        "defaultConfig": default_proxy_config(ctx),
    }
    locality = locality_lb(spec.localityLB)
    if locality is not None:
        mesh["localityLbSetting"] = locality
    if family.envoy_services:
        als = proxy.envoyAccessLogService
        mesh["enableEnvoyAccessLogService"] = bool(als and als.enabled)
    if family.protocol_sniffing:
        mesh["protocolDetectionTimeout"] = proxy.protocolDetectionTimeout or "100ms"
        mesh["dnsRefreshRate"] = proxy.dnsRefreshRate or "300s"
    if family.sds_token == "trustworthy-jwt":
        mesh["enableSdsTokenMount"] = bool(ctx.sds.useTrustworthyJwt)
        mesh["sdsUseK8sSaJwt"] = bool(ctx.sds.useNormalJwt)
    if family.policy_telemetry_split:
        if ctx.policy_enabled:
            mesh["mixerCheckServer"] = mixer_address(ctx, "policy")
            mesh["sidecarToTelemetrySessionAffinity"] = bool(ctx.policy.sessionAffinityEnabled)
        if ctx.telemetry_enabled:
            mesh["mixerReportServer"] = mixer_address(ctx, "telemetry")
            mesh["reportBatchMaxEntries"] = ctx.telemetry.reportBatchMaxEntries
            mesh["reportBatchMaxTime"] = ctx.telemetry.reportBatchMaxTime
    else:
        # The 1.2 family always names both servers, whether mixer runs or not.
        mesh["mixerCheckServer"] = mixer_address(ctx, "policy")
        mesh["mixerReportServer"] = mixer_address(ctx, "telemetry")
    if ctx.use_mcp:
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
