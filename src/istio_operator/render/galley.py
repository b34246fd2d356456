"""Galley: configuration validation (its own webhook) and distribution over MCP."""

from __future__ import annotations

from istio_operator.render import builders as b
from istio_operator.render.builders import Manifest
from istio_operator.render.common import MESH_CONFIG_MAP, to_yaml
from istio_operator.render.context import Context
from istio_operator.render.objects import DesiredObject
from istio_operator.render.phases import Phase
from istio_operator.render.proxy import certs
from istio_operator.render.scaling import disruption_budget

NAME = "istio-galley"
SERVICE_ACCOUNT = "istio-galley-service-account"
CONFIG_MAP = "istio-galley-configuration"
WEBHOOK_FILE = "validatingwebhookconfiguration.yaml"
SELECTOR = {"app": "galley", "istio": "galley"}
ISTIO_GROUPS = (
    "config.istio.io",
    "networking.istio.io",
    "authentication.istio.io",
    "rbac.istio.io",
)


def rbac(ctx: Context) -> list[Manifest]:
    """The reference's galley ClusterRole (`pkg/resources/galley/rbac.go`), rule for rule.

    Galley reads its own Deployment and updates its finalizers (it owns the
    ValidatingWebhookConfiguration it registers), so both rules name `istio-galley`.
    The 1.3 family also reads namespaces and CRDs.
    """
    core_read = ["pods", "nodes", "services", "endpoints"]
    if ctx.family.galley_config_validation:
        core_read.append("namespaces")
    rules = [
        b.rule(["admissionregistration.k8s.io"], ["validatingwebhookconfigurations"], ["*"]),
        *(b.rule([group], ["*"], b.READ) for group in ISTIO_GROUPS),
        {**b.rule(["extensions", "apps"], ["deployments"], ["get"]), "resourceNames": [NAME]},
        b.rule([""], core_read, b.READ),
        b.rule(["extensions"], ["ingresses"], b.READ),
        {
            **b.rule(["extensions"], ["deployments/finalizers"], ["update"]),
            "resourceNames": [NAME],
        },
    ]
    if ctx.family.galley_config_validation:
        rules.append(b.rule(["apiextensions.k8s.io"], ["customresourcedefinitions"], b.READ))
    return b.rbac_for(
        SERVICE_ACCOUNT,
        "istio-galley-cluster-role",
        "istio-galley-admin-role-binding",
        ctx.namespace,
        SELECTOR,
        rules,
    )


def _webhook(ctx: Context, name: str, path: str, rules: list[Manifest]) -> Manifest:
    return {
        "name": name,
        "clientConfig": {
            "service": {"name": NAME, "namespace": ctx.namespace, "path": path},
            "caBundle": "",
        },
        "rules": rules,
        # The 1.3 family lets API requests through while galley is unavailable.
        "failurePolicy": "Ignore" if ctx.family.galley_config_validation else "Fail",
        "sideEffects": "None",
    }


def _admission_rule(group: str, versions: str, resources: list[str]) -> Manifest:
    return {
        "operations": ["CREATE", "UPDATE"],
        "apiGroups": [group],
        "apiVersions": [versions],
        "resources": resources,
    }


def validating_webhook_configuration(ctx: Context) -> Manifest:
    """The webhook configuration galley registers itself (read from its ConfigMap)."""
    pilot_rules = [
        _admission_rule(
            "config.istio.io",
            "v1alpha2",
            ["httpapispecs", "httpapispecbindings", "quotaspecs", "quotaspecbindings"],
        ),
        _admission_rule("rbac.istio.io", "*", ["*"]),
        _admission_rule("authentication.istio.io", "*", ["*"]),
        _admission_rule(
            "networking.istio.io",
            "*",
            [
                "destinationrules",
                "envoyfilters",
                "gateways",
                "serviceentries",
                "sidecars",
                "virtualservices",
            ],
        ),
    ]
    mixer_rules = [
        _admission_rule(
            "config.istio.io",
            "v1alpha2",
            ["rules", "attributemanifests", "adapters", "handlers", "instances", "templates"],
        )
    ]
    return {
        # Galley 1.2/1.3 registers the configuration through the v1beta1 API.
        "apiVersion": "admissionregistration.k8s.io/v1beta1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": NAME, "labels": dict(SELECTOR)},
        "webhooks": [
            _webhook(ctx, "pilot.validation.istio.io", "/admitpilot", pilot_rules),
            _webhook(ctx, "mixer.validation.istio.io", "/admitmixer", mixer_rules),
        ],
    }


def validation_enabled(ctx: Context) -> bool:
    return not ctx.family.galley_config_validation or ctx.plan.galley.configValidation


def config_map(ctx: Context) -> Manifest:
    data = {}
    if validation_enabled(ctx):
        data[WEBHOOK_FILE] = to_yaml(validating_webhook_configuration(ctx))
    return b.config_map(CONFIG_MAP, ctx.namespace, SELECTOR, data)


def args(ctx: Context) -> list[str]:
    result = [
        "server",
        "--meshConfigFile=/etc/mesh-config/mesh",
        "--livenessProbeInterval=1s",
        "--livenessProbePath=/healthliveness",
        "--readinessProbePath=/healthready",
        "--readinessProbeInterval=1s",
        f"--deployment-namespace={ctx.namespace}",
        "--validation-webhook-config-file",
        f"/etc/config/{WEBHOOK_FILE}",
        "--monitoringPort=15014",
    ]
    if not validation_enabled(ctx):
        result.append("--enable-validation=false")
    result.append(f"--insecure={'false' if ctx.cp_security else 'true'}")
    if not ctx.plan.useMCP:
        result.append("--enable-server=false")
    return result


def _probe(path: str) -> Manifest:
    return b.exec_probe(
        ["/usr/local/bin/galley", "probe", f"--probe-path={path}", "--interval=10s"],
        initial_delay=5,
        period=5,
    )


def deployment(ctx: Context) -> Manifest:
    galley = ctx.plan.galley
    volumes = certs(SERVICE_ACCOUNT, optional=False)
    container = ctx.container(
        "galley",
        galley.image,
        command=["/usr/local/bin/galley"],
        args=args(ctx),
        ports=[b.container_port(443), b.container_port(15014), b.container_port(9901)],
        resources=galley.resources,
        mounts=[
            *volumes.mounts,
            b.mount("config", "/etc/config", read_only=True),
            b.mount("mesh-config", "/etc/mesh-config", read_only=True),
        ],
        liveness=_probe("/healthliveness"),
        readiness=_probe("/healthready"),
    )
    pod = b.pod_spec(
        SERVICE_ACCOUNT,
        [container],
        volumes=[
            *volumes.volumes,
            b.config_map_volume("config", CONFIG_MAP),
            b.config_map_volume("mesh-config", MESH_CONFIG_MAP),
        ],
        node_selector=galley.nodeSelector,
        affinity=galley.affinity,
        tolerations=galley.tolerations,
    )
    return b.deployment(NAME, ctx.namespace, SELECTOR, SELECTOR, pod, replicas=galley.replicaCount)


def service(ctx: Context) -> Manifest:
    ports = b.named_ports(("https-validation", 443), ("http-monitoring", 15014), ("grpc-mcp", 9901))
    return b.service(NAME, ctx.namespace, SELECTOR, {"istio": "galley"}, ports)


def render(ctx: Context) -> list[DesiredObject]:
    if not ctx.plan.galley.enabled:
        return []
    manifests = [
        *rbac(ctx),
        config_map(ctx),
        deployment(ctx),
        service(ctx),
        *disruption_budget(ctx, NAME, SELECTOR, SELECTOR),
    ]
    return ctx.emit(Phase.GALLEY, manifests)
