"""The sidecar injector: its webhook, its Deployment and the injection template it applies."""

from __future__ import annotations

import json
from typing import Any

from istio_operator.render import builders as b
from istio_operator.render import data, proxy
from istio_operator.render.builders import Manifest
from istio_operator.render.common import MESH_CONFIG_MAP, to_yaml
from istio_operator.render.context import LEGACY_CLUSTER_DOMAIN, Context
from istio_operator.render.objects import DesiredObject
from istio_operator.render.phases import Phase

NAME = "istio-sidecar-injector"
SERVICE_ACCOUNT = "istio-sidecar-injector-service-account"
SELECTOR = {"app": "sidecarInjectorWebhook", "istio": "sidecar-injector"}
WEBHOOK = "sidecar-injector.istio.io"
TEMPLATES = {"1.2": "injection-template-1.2.tpl", "1.3": "injection-template-1.3.tpl"}


def rbac(ctx: Context) -> list[Manifest]:
    webhooks = b.rule(
        ["admissionregistration.k8s.io"],
        ["mutatingwebhookconfigurations"],
        ["get", "list", "watch", "patch"],
    )
    rules = [b.rule([""], ["configmaps"], b.READ), webhooks]
    return b.rbac_for(SERVICE_ACCOUNT, *b.role_names(NAME), ctx.namespace, SELECTOR, rules)


def _tracer(ctx: Context) -> str:
    """The tracer the template renders arguments for ("" when tracing is off)."""
    return ctx.plan.tracing.tracer if ctx.tracing_enabled else ""


def proxy_values(ctx: Context) -> dict[str, Any]:
    proxy_config = ctx.plan.proxy
    modern = ctx.family.envoy_services
    values: dict[str, Any] = {
        "image": ctx.plan.proxy.image,
        "statusPort": 15020,
        "tracer": _tracer(ctx),
        "clusterDomain": ctx.cluster_domain,
        "logLevel": proxy_config.logLevel,
        "componentLogLevel": proxy_config.componentLogLevel,
        "dnsRefreshRate": proxy_config.dnsRefreshRate,
        "enableCoreDump": proxy_config.enableCoreDump,
        "coreDumpImage": ctx.plan.proxy.coreDumpImage,
        "includeIPRanges": ctx.plan.includeIPRanges,
        "excludeIPRanges": ctx.plan.excludeIPRanges,
        "excludeInboundPorts": "",
        "excludeOutboundPorts": "",
        "privileged": proxy_config.privileged,
        "readinessInitialDelaySeconds": 1,
        "readinessPeriodSeconds": 2,
        "readinessFailureThreshold": 30,
        "resources": dict(proxy_config.resources),
        "envoyStatsd": {"enabled": proxy_config.envoyStatsD.enabled},
        "envoyMetricsService": {"enabled": proxy_config.envoyMetricsService.enabled},
    }
    if modern:
        values["envoyAccessLogService"] = {"enabled": proxy_config.envoyAccessLogService.enabled}
    return values


def values(ctx: Context) -> dict[str, Any]:
    """The `values` document the injection template reads (`.Values`)."""
    plan = ctx.plan
    tracing = plan.tracing
    sds = plan.sds
    global_values: dict[str, Any] = {
        "trustDomain": ctx.plan.trustDomain or LEGACY_CLUSTER_DOMAIN,
        "imagePullPolicy": ctx.plan.imagePullPolicy,
        "network": ctx.network,
        # The template adds "<pod namespace>.global" after these.
        "podDNSSearchNamespaces": ["global"] if ctx.plan.multiMesh else [],
        "proxy_init": {
            "image": ctx.plan.proxyInit.image,
            "resources": dict(plan.sidecarInjector.init.resources),
        },
        "tracer": {
            "lightstep": {"CACertPath": tracing.lightstep.cacertPath},
        },
        "proxy": proxy_values(ctx),
    }
    if ctx.family.sds_token == "audience":
        global_values["sds"] = {
            "customTokenDirectory": sds.customTokenDirectory,
            "enabled": sds.enabled,
            "token": {"aud": sds.tokenAudience},
        }
    else:
        global_values["sds"] = {
            "customTokenDirectory": sds.customTokenDirectory,
            "useTrustworthyJwt": sds.useTrustworthyJwt,
            "enabled": sds.enabled,
        }
    if ctx.family.cluster_name:
        global_values["multicluster"] = {"clusterName": plan.clusterName}
        global_values["meshID"] = plan.meshID
    return {
        "sidecarInjectorWebhook": {
            "rewriteAppHTTPProbe": ctx.plan.sidecarInjector.rewriteAppHTTPProbe,
        },
        "istio_cni": {"enabled": ctx.plan.sidecarInjector.initCNIConfiguration.enabled},
        "global": global_values,
    }


def injection_config(ctx: Context) -> dict[str, Any]:
    injector = ctx.plan.sidecarInjector
    config: dict[str, Any] = {
        "policy": "enabled" if injector.autoInjectionPolicyEnabled else "disabled",
        "template": data.text(TEMPLATES[ctx.family.injector_template]),
    }
    if injector.alwaysInjectSelector:
        config["alwaysInjectSelector"] = list(injector.alwaysInjectSelector)
    if injector.neverInjectSelector:
        config["neverInjectSelector"] = list(injector.neverInjectSelector)
    return config


def config_map(ctx: Context) -> Manifest:
    return b.config_map(
        NAME,
        ctx.namespace,
        SELECTOR,
        {
            "config": to_yaml(injection_config(ctx)),
            "values": json.dumps(values(ctx), sort_keys=True, indent=2),
        },
    )


def _probe() -> Manifest:
    return b.exec_probe(
        ["/usr/local/bin/sidecar-injector", "probe", "--probe-path=/health", "--interval=4s"],
        initial_delay=4,
        period=4,
    )


def deployment(ctx: Context) -> Manifest:
    injector = ctx.plan.sidecarInjector
    certs = proxy.certs(SERVICE_ACCOUNT, optional=False, path="/etc/istio/certs")
    config = proxy.Volumes(
        (
            b.config_map_volume("config-volume", MESH_CONFIG_MAP),
            b.config_map_volume("inject-config", NAME, {"config": "config", "values": "values"}),
        ),
        (
            b.mount("config-volume", "/etc/istio/config", read_only=True),
            b.mount("inject-config", "/etc/istio/inject", read_only=True),
        ),
    )
    volumes = config + certs
    container = ctx.container(
        "sidecar-injector-webhook",
        injector.image,
        args=[
            "--caCertFile=/etc/istio/certs/root-cert.pem",
            "--tlsCertFile=/etc/istio/certs/cert-chain.pem",
            "--tlsKeyFile=/etc/istio/certs/key.pem",
            "--injectConfig=/etc/istio/inject/config",
            "--meshConfig=/etc/istio/config/mesh",
            "--healthCheckInterval=2s",
            "--healthCheckFile=/health",
        ],
        resources=injector.resources,
        mounts=volumes.mounts,
        liveness=_probe(),
        readiness=_probe(),
    )
    pod = b.pod_spec(
        SERVICE_ACCOUNT,
        [container],
        volumes=volumes.volumes,
        node_selector=injector.nodeSelector,
        affinity=injector.affinity,
        tolerations=injector.tolerations,
    )
    return b.deployment(
        NAME, ctx.namespace, SELECTOR, SELECTOR, pod, replicas=injector.replicaCount
    )


def service(ctx: Context) -> Manifest:
    if ctx.legacy:
        ports = [b.service_port(None, 443)]
    else:
        ports = [b.service_port("https-inject", 443), b.service_port("http-monitoring", 15014)]
    return b.service(NAME, ctx.namespace, SELECTOR, {"istio": "sidecar-injector"}, ports)


def namespace_selector(ctx: Context) -> Manifest:
    if ctx.plan.sidecarInjector.enableNamespacesByDefault:
        return {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": sorted({ctx.namespace, "kube-system"}),
                },
                {"key": "istio-injection", "operator": "NotIn", "values": ["disabled"]},
            ]
        }
    return {"matchLabels": {"istio-injection": "enabled"}}


def mutating_webhook_configuration(ctx: Context) -> Manifest:
    # No caBundle: the injector patches in its own CA, and apply leaves that field to it.
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": b.metadata(NAME, labels=SELECTOR),
        "webhooks": [
            {
                "name": WEBHOOK,
                "clientConfig": {
                    "service": {
                        "name": NAME,
                        "namespace": ctx.namespace,
                        "path": "/inject",
                        "port": 443,
                    }
                },
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "failurePolicy": "Fail",
                "sideEffects": "None",
                # Istio 1.2/1.3 injectors speak admission.k8s.io/v1beta1 only.
                "admissionReviewVersions": ["v1beta1"],
                "timeoutSeconds": 10,
                "namespaceSelector": namespace_selector(ctx),
            }
        ],
    }


def render(ctx: Context) -> list[DesiredObject]:
    if not ctx.plan.sidecarInjector.enabled:
        return []
    webhook = mutating_webhook_configuration(ctx)
    manifests = [*rbac(ctx), config_map(ctx), deployment(ctx), service(ctx), webhook]
    return ctx.emit(Phase.SIDECAR_INJECTOR, manifests)
