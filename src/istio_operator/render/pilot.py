"""Pilot: service discovery and proxy configuration (xDS)."""

from __future__ import annotations

from istio_operator.render import builders as b
from istio_operator.render import proxy
from istio_operator.render.builders import Manifest
from istio_operator.render.common import MESH_CONFIG_MAP, mesh_networks_hash
from istio_operator.render.context import Context
from istio_operator.render.objects import DesiredObject
from istio_operator.render.phases import Phase
from istio_operator.render.scaling import autoscaler, disruption_budget

NAME = "istio-pilot"
SERVICE_ACCOUNT = "istio-pilot-service-account"
SELECTOR = {"app": "pilot", "istio": "pilot"}
LABELS = {**SELECTOR}
CONFIG_VOLUME = "config-volume"


def rbac(ctx: Context) -> list[Manifest]:
    istio_all = ["config.istio.io", "networking.istio.io", "authentication.istio.io"]
    return b.rbac_for(
        SERVICE_ACCOUNT,
        *b.role_names("istio-pilot"),
        ctx.namespace,
        LABELS,
        [
            *(b.rule([group], ["*"], ["*"]) for group in istio_all),
            b.rule(["rbac.istio.io"], ["*"], b.READ),
            b.rule(["apiextensions.k8s.io"], ["customresourcedefinitions"], ["*"]),
            b.rule(["extensions", "networking.k8s.io"], ["ingresses", "ingresses/status"], ["*"]),
            b.rule([""], ["configmaps"], ["create", "get", "list", "watch", "update"]),
            b.rule(
                [""], ["endpoints", "pods", "services", "namespaces", "nodes", "secrets"], b.READ
            ),
        ],
    )


def secure_grpc_args(ctx: Context) -> list[str]:
    if ctx.cp_security and not ctx.plan.pilot.sidecar:
        return ["--secureGrpcAddr", ":15011"]
    if ctx.cp_security and ctx.legacy:
        # The 1.2 family leaves the flag out when the sidecar terminates TLS.
        return []
    return ["--secureGrpcAddr", ""]


def discovery_args(ctx: Context) -> list[str]:
    args = [
        "discovery",
        "--monitoringAddr=:15014",
        "--domain",
        ctx.cluster_domain,
        "--keepaliveMaxServerConnectionAge",
        "30m",
    ]
    if ctx.plan.trustDomain:
        args += ["--trust-domain", ctx.plan.trustDomain]
    args += secure_grpc_args(ctx)
    if ctx.plan.watchOneNamespace:
        args += ["-a", ctx.namespace]
    return args


def discovery_env(ctx: Context) -> list[Manifest]:
    pilot = ctx.plan.pilot
    env = [
        b.POD_NAME,
        b.POD_NAMESPACE,
        b.env("PILOT_PUSH_THROTTLE", 100),
        b.env("GODEBUG", "gctrace=2"),
        b.env("PILOT_TRACE_SAMPLING", pilot.traceSampling),
    ]
    if not ctx.family.protocol_sniffing:
        env.append(b.env("PILOT_DISABLE_XDS_MARSHALING_TO_ANY", 1))
    env.append(b.env("MESHNETWORKS_HASH", mesh_networks_hash(ctx.mesh_networks)))
    if ctx.plan.localityLB.enabled:
        env.append(b.env("PILOT_ENABLE_LOCALITY_LOAD_BALANCING", 1))
    if ctx.family.protocol_sniffing:
        env += [
            b.env("PILOT_ENABLE_PROTOCOL_SNIFFING", pilot.enableProtocolSniffing),
            b.env(
                "PILOT_ENABLE_PROTOCOL_SNIFFING_FOR_OUTBOUND", pilot.enableProtocolSniffingOutbound
            ),
            b.env(
                "PILOT_ENABLE_PROTOCOL_SNIFFING_FOR_INBOUND", pilot.enableProtocolSniffingInbound
            ),
        ]
    env += proxy.sds_env(ctx)
    return env


def deployment(ctx: Context) -> Manifest:
    pilot = ctx.plan.pilot
    certs = proxy.certs(SERVICE_ACCOUNT)
    config = proxy.Volumes(
        (b.config_map_volume(CONFIG_VOLUME, MESH_CONFIG_MAP),),
        (b.mount(CONFIG_VOLUME, "/etc/istio/config"),),
    )
    discovery = ctx.container(
        "discovery",
        pilot.image,
        args=discovery_args(ctx),
        ports=[b.container_port(8080), b.container_port(15010)],
        env_vars=discovery_env(ctx),
        resources=pilot.resources,
        mounts=(config + certs).mounts,
        readiness=b.http_probe("/ready", 8080, initial_delay=5, period=30, timeout=5),
    )
    containers = [discovery]
    volumes = config + certs
    if pilot.sidecar:
        sidecar_volumes = certs + proxy.sds(ctx)
        containers.append(
            proxy.sidecar(
                ctx,
                NAME,
                "envoy_pilot.yaml.tmpl",
                [b.container_port(port) for port in (15003, 15005, 15007, 15011)],
                sidecar_volumes,
            )
        )
        volumes = config + sidecar_volumes
    pod = b.pod_spec(
        SERVICE_ACCOUNT,
        containers,
        volumes=volumes.volumes,
        node_selector=pilot.nodeSelector,
        affinity=pilot.affinity,
        tolerations=pilot.tolerations,
    )
    return b.deployment(NAME, ctx.namespace, LABELS, SELECTOR, pod, replicas=None)


def service(ctx: Context) -> Manifest:
    ports = b.named_ports(
        ("grpc-xds", 15010),
        ("https-xds", 15011),
        ("http-legacy-discovery", 8080),
        ("http-monitoring", 15014),
    )
    return b.service(NAME, ctx.namespace, LABELS, {"istio": "pilot"}, ports)


def mesh_expansion(ctx: Context) -> list[Manifest]:
    """Routes for workloads outside the cluster reaching pilot through the ingress gateway."""
    host = ctx.service_host(NAME)
    networking = "networking.istio.io/v1alpha3"
    manifests = []
    if ctx.plan.meshExpansion:
        manifests.append(
            b.mesh_expansion_route("meshexpansion-vs-pilot", ctx.namespace, LABELS, host, 15011)
        )
    # The 1.2 family renders the rule whenever the control plane is secured.
    wants_rule = ctx.plan.meshExpansion or ctx.legacy
    if ctx.cp_security and wants_rule:
        manifests.append(
            b.istio_object(
                networking,
                "DestinationRule",
                "meshexpansion-dr-pilot",
                ctx.namespace,
                LABELS,
                {
                    "host": host,
                    "trafficPolicy": {
                        "portLevelSettings": [
                            {"port": {"number": 15011}, "tls": {"mode": "DISABLE"}}
                        ]
                    },
                },
            )
        )
    return manifests


def render(ctx: Context) -> list[DesiredObject]:
    pilot = ctx.plan.pilot
    if not pilot.enabled:
        return []
    manifests = [
        *rbac(ctx),
        deployment(ctx),
        service(ctx),
        autoscaler(ctx, NAME, LABELS, pilot),
        *disruption_budget(ctx, NAME, LABELS, SELECTOR),
        *mesh_expansion(ctx),
    ]
    return ctx.emit(Phase.PILOT, manifests)
