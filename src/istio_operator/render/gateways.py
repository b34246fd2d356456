"""Ingress and egress gateways; the Istio Gateways of k8s ingress, mesh expansion, multi-mesh."""

from __future__ import annotations

import json
from collections.abc import Mapping

from istio_operator.plan.model import Gateway as GatewayConfiguration
from istio_operator.render import builders as b
from istio_operator.render import proxy
from istio_operator.render.builders import Manifest
from istio_operator.render.common import access_log_service
from istio_operator.render.context import Context
from istio_operator.render.objects import DesiredObject
from istio_operator.render.phases import Phase
from istio_operator.render.scaling import autoscaler, disruption_budget

KINDS = ("ingress", "egress")
NETWORKING = "networking.istio.io/v1alpha3"
SDS_SOCKET_VOLUME = "ingressgatewaysdsudspath"
SDS_SOCKET_PATH = "/var/run/ingress_gateway"

# Ports the ingress gateway adds for remote sidecars when the mesh spans networks.
MESH_EXPANSION_PORTS = (
    ("tcp-pilot-grpc-tls", 15011, 31470),
    ("tcp-mixer-grpc-tls", 15004, 31480),
    ("tcp-citadel-grpc-tls", 8060, 31490),
    ("tcp-dns-tls", 853, 31500),
)


def gateway_name(kind: str) -> str:
    return f"{kind}gateway"


def deployment_name(kind: str) -> str:
    return f"istio-{gateway_name(kind)}"


def service_account_name(kind: str) -> str:
    return f"{deployment_name(kind)}-service-account"


def selector(kind: str) -> dict[str, str]:
    return {"app": deployment_name(kind), "istio": gateway_name(kind)}


def sds_enabled(config: GatewayConfiguration) -> bool:
    return config.sds.enabled


def rbac(ctx: Context, kind: str, config: GatewayConfiguration) -> list[Manifest]:
    name = deployment_name(kind)
    labels = selector(kind)
    manifests = b.rbac_for(
        service_account_name(kind),
        f"{name}-cluster-role",
        f"{name}-cluster-role-binding",
        ctx.namespace,
        labels,
        [
            b.rule(
                ["networking.istio.io"],
                ["virtualservices", "destinationrules", "gateways"],
                ["get", "watch", "list", "update"],
            )
        ],
    )
    if sds_enabled(config):
        manifests += [
            b.role(
                f"{name}-role-sds",
                ctx.namespace,
                labels,
                [b.rule([""], ["secrets"], b.READ)],
            ),
            b.role_binding(
                f"{name}-role-binding-sds",
                ctx.namespace,
                labels,
                f"{name}-role-sds",
                service_account_name(kind),
            ),
        ]
    return manifests


def service_ports(ctx: Context, kind: str, config: GatewayConfiguration) -> list[Manifest]:
    ports = [
        b.service_port(
            port.name,
            port.port,
            target_port=port.targetPort,
            protocol=port.protocol,
            node_port=port.nodePort,
        )
        for port in config.ports
    ]
    if kind == "ingress" and ctx.plan.meshExpansion:
        ports += [
            b.service_port(name, number, node_port=node_port)
            for name, number, node_port in MESH_EXPANSION_PORTS
        ]
    return ports


def container_ports(ports: list[Manifest]) -> list[Manifest]:
    result = []
    for port in ports:
        target = port["targetPort"]
        number = target if isinstance(target, int) else port["port"]
        result.append(b.container_port(number, protocol=port["protocol"]))
    return [*result, proxy.ENVOY_PROM_PORT]


def proxy_args(ctx: Context, kind: str, config: GatewayConfiguration) -> list[str]:
    domain = f"$(POD_NAMESPACE).svc.{ctx.cluster_domain}"
    args = [
        "proxy",
        "router",
        "--domain",
        domain,
        "--log_output_level",
        "info",
        "--drainDuration",
        "45s",
        "--parentShutdownDuration",
        "1m0s",
        "--connectTimeout",
        "10s",
        "--serviceCluster",
        deployment_name(kind),
        "--proxyAdminPort",
        "15000",
        "--statusPort",
        "15020",
        "--controlPlaneAuthPolicy",
        ctx.auth_policy,
        "--discoveryAddress",
        ctx.discovery_address,
    ]
    if ctx.plan.trustDomain:
        args += ["--trust-domain", ctx.plan.trustDomain]
    if ctx.zipkin_address is not None:
        args += ["--zipkinAddress", ctx.zipkin_address]
    if config.applicationPorts:
        args += ["--applicationPorts", config.applicationPorts]
    proxy_config = ctx.plan.proxy
    if proxy_config.logLevel:
        args += ["--proxyLogLevel", proxy_config.logLevel]
    if proxy_config.componentLogLevel:
        args += ["--proxyComponentLogLevel", proxy_config.componentLogLevel]
    metrics = proxy_config.envoyMetricsService
    if metrics.enabled:
        args += ["--envoyMetricsServiceAddress", metrics.address]
    als = proxy_config.envoyAccessLogService
    if als.enabled:
        args += ["--envoyAccessLogService", json.dumps(access_log_service(als), sort_keys=True)]
    return args


def proxy_env(ctx: Context, kind: str, config: GatewayConfiguration) -> list[Manifest]:
    modern = ctx.family.sds_token == "audience"
    name = deployment_name(kind)
    env = [b.POD_NAME, b.POD_NAMESPACE, b.INSTANCE_IP, b.HOST_IP]
    if modern:
        env.append(b.env_field("SERVICE_ACCOUNT", "spec.serviceAccountName"))
    env += [
        b.env_field("ISTIO_META_POD_NAME", "metadata.name"),
        b.env_field("ISTIO_META_CONFIG_NAMESPACE", "metadata.namespace"),
        b.env("ISTIO_META_ROUTER_MODE", "sni-dnat"),
        b.env_field("NODE_NAME", "spec.nodeName"),
    ]
    if modern:
        env += [
            b.env("ISTIO_META_WORKLOAD_NAME", name),
            b.env(
                "ISTIO_META_OWNER",
                f"kubernetes://api/apps/v1/namespaces/{ctx.namespace}/deployments/{name}",
            ),
            b.env("ISTIO_META_USER_SDS", sds_enabled(config)),
            # The gateway's own SDS switch; the reference also sets the mesh-wide
            # value first, which this one overrides.
            b.env("SDS_ENABLED", sds_enabled(config)),
        ]
    elif sds_enabled(config):
        env.append(b.env("ISTIO_META_USER_SDS", True))
    if ctx.plan.meshExpansion and ctx.network:
        env.append(b.env("ISTIO_META_NETWORK", ctx.network))
    if config.requestedNetworkView:
        env.append(b.env("ISTIO_META_REQUESTED_NETWORK_VIEW", config.requestedNetworkView))
    return env


def cert_volumes(kind: str) -> proxy.Volumes:
    name = deployment_name(kind)
    gateway = gateway_name(kind)
    return proxy.certs(service_account_name(kind)) + proxy.Volumes(
        (
            b.secret_volume(f"{gateway}-certs", f"{name}-certs", optional=True),
            b.secret_volume(f"{gateway}-ca-certs", f"{name}-ca-certs", optional=True),
        ),
        (
            b.mount(f"{gateway}-certs", f"/etc/istio/{gateway}-certs", read_only=True),
            b.mount(f"{gateway}-ca-certs", f"/etc/istio/{gateway}-ca-certs", read_only=True),
        ),
    )


def sds_sidecar(ctx: Context, kind: str, config: GatewayConfiguration) -> Manifest:
    sds = config.sds
    return ctx.container(
        f"{kind}-sds",
        sds.image,
        env_vars=[
            b.env("ENABLE_WORKLOAD_SDS", False),
            b.env("ENABLE_INGRESS_GATEWAY_SDS", True),
            b.env_field("INGRESS_GATEWAY_NAMESPACE", "metadata.namespace"),
        ],
        resources=sds.resources,
        mounts=[b.mount(SDS_SOCKET_VOLUME, SDS_SOCKET_PATH)],
    )


def deployment(ctx: Context, kind: str, config: GatewayConfiguration) -> Manifest:
    volumes = cert_volumes(kind) + proxy.sds(ctx)
    containers: list[Manifest] = []
    if sds_enabled(config):
        volumes += proxy.Volumes(
            (b.empty_dir_volume(SDS_SOCKET_VOLUME),),
            (b.mount(SDS_SOCKET_VOLUME, SDS_SOCKET_PATH),),
        )
    containers.append(
        ctx.container(
            "istio-proxy",
            ctx.plan.proxy.image,
            args=proxy_args(ctx, kind, config),
            ports=container_ports(service_ports(ctx, kind, config)),
            env_vars=proxy_env(ctx, kind, config),
            resources=config.resources,
            mounts=volumes.mounts,
            # Istio's gateway chart and the reference: 1s delay, every 2s, 30 failures.
            readiness=b.http_probe(
                "/healthz/ready", 15020, initial_delay=1, period=2, failure_threshold=30
            ),
        )
    )
    if sds_enabled(config):
        containers.append(sds_sidecar(ctx, kind, config))
    init = [proxy.core_dump_init_container(ctx)] if ctx.plan.proxy.enableCoreDump else []
    pod = b.pod_spec(
        service_account_name(kind),
        containers,
        init_containers=init,
        volumes=volumes.volumes,
        node_selector=config.nodeSelector,
        affinity=config.affinity,
        tolerations=config.tolerations,
    )
    labels = selector(kind)
    return b.deployment(
        deployment_name(kind), ctx.namespace, labels, labels, pod, replicas=None, strategy=None
    )


def service(ctx: Context, kind: str, config: GatewayConfiguration) -> Manifest:
    service_type = config.serviceType
    extra = {}
    if service_type == "LoadBalancer" and config.loadBalancerIP:
        extra["loadBalancerIP"] = config.loadBalancerIP
    return b.service(
        deployment_name(kind),
        ctx.namespace,
        {**config.serviceLabels, **selector(kind)},
        selector(kind),
        service_ports(ctx, kind, config),
        service_type=service_type,
        annotations=config.serviceAnnotations,
        extra=extra,
    )


def workload(ctx: Context, kind: str) -> list[Manifest]:
    config = ctx.gateway(kind)
    name = deployment_name(kind)
    labels = selector(kind)
    return [
        *rbac(ctx, kind, config),
        deployment(ctx, kind, config),
        service(ctx, kind, config),
        autoscaler(ctx, name, labels, config),
        *disruption_budget(ctx, name, labels, labels),
    ]


def _server(name: str, number: int, protocol: str, hosts: list[str], passthrough: bool) -> Manifest:
    server: Manifest = {
        "port": {"number": number, "name": name, "protocol": protocol},
        "hosts": hosts,
    }
    if passthrough:
        server["tls"] = {"mode": "AUTO_PASSTHROUGH"}
    return server


def istio_gateway(ctx: Context, name: str, kind: str, servers: list[Manifest]) -> Manifest:
    return b.istio_object(
        NETWORKING,
        "Gateway",
        name,
        ctx.namespace,
        selector(kind),
        {"selector": {"istio": gateway_name(kind)}, "servers": servers},
    )


# Istio Gateways on the ingress gateway: name -> servers (name, port, protocol, hosts, passthrough).
Server = tuple[str, int, str, str, bool]
K8S_INGRESS_GATEWAYS: Mapping[str, tuple[Server, ...]] = {
    "istio-autogenerated-k8s-ingress": (("http", 80, "HTTP2", "*", False),),
}
MESH_EXPANSION_GATEWAYS: Mapping[str, tuple[Server, ...]] = {
    "meshexpansion-gateway": (
        ("tcp-pilot", 15011, "TCP", "*", False),
        ("tcp-citadel", 8060, "TCP", "*", False),
        ("tls-mixer", 15004, "TLS", "*", True),
    ),
    "cluster-aware-gateway": (("tls", 443, "TLS", "*.local", True),),
}


def ingress_gateways(ctx: Context, gateways: Mapping[str, tuple[Server, ...]]) -> list[Manifest]:
    return [
        istio_gateway(
            ctx,
            name,
            "ingress",
            [
                _server(port, number, protocol, [hosts], passthrough)
                for port, number, protocol, hosts, passthrough in servers
            ],
        )
        for name, servers in gateways.items()
    ]


def k8s_ingress(ctx: Context) -> list[Manifest]:
    if not ctx.ingress_enabled or not ctx.plan.gateways.k8singress.enabled:
        return []
    return ingress_gateways(ctx, K8S_INGRESS_GATEWAYS)


def mesh_expansion(ctx: Context) -> list[Manifest]:
    if not ctx.plan.meshExpansion or not ctx.ingress_enabled:
        return []
    return ingress_gateways(ctx, MESH_EXPANSION_GATEWAYS)


def multi_mesh(ctx: Context) -> list[Manifest]:
    """Cross-mesh routing of `*.global` names through the gateways' port 15443."""
    if not ctx.plan.multiMesh:
        return []
    server = [_server("tls", 15443, "TLS", ["*.global"], passthrough=True)]
    manifests = []
    if ctx.gateway_enabled("egress"):
        manifests.append(istio_gateway(ctx, "istio-multicluster-egressgateway", "egress", server))
    if ctx.ingress_enabled:
        labels = selector("ingress")
        manifests += [
            istio_gateway(ctx, "istio-multicluster-ingressgateway", "ingress", server),
            b.istio_object(
                NETWORKING,
                "EnvoyFilter",
                "istio-multicluster-ingressgateway",
                ctx.namespace,
                labels,
                {
                    "workloadLabels": {"istio": "ingressgateway"},
                    "filters": [
                        {
                            "listenerMatch": {"portNumber": 15443, "listenerType": "GATEWAY"},
                            # Rewrite the cluster the SNI filter picked, so it must run after it.
                            "insertPosition": {
                                "index": "AFTER",
                                "relativeTo": "envoy.filters.network.sni_cluster",
                            },
                            "filterName": "envoy.filters.network.tcp_cluster_rewrite",
                            "filterType": "NETWORK",
                            "filterConfig": {
                                "cluster_pattern": "\\.global$",
                                "cluster_replacement": f".svc.{ctx.cluster_domain}",
                            },
                        }
                    ],
                },
            ),
        ]
    manifests.append(
        b.istio_object(
            NETWORKING,
            "DestinationRule",
            "istio-multicluster-destinationrule",
            ctx.namespace,
            selector("ingress"),
            {"host": "*.global", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}},
        )
    )
    return manifests


def render(ctx: Context) -> list[DesiredObject]:
    manifests: list[Manifest] = []
    for kind in KINDS:
        if ctx.gateway_enabled(kind):
            manifests += workload(ctx, kind)
    if not ctx.is_remote:
        manifests += k8s_ingress(ctx) + mesh_expansion(ctx) + multi_mesh(ctx)
    # A cloud load balancer takes minutes to provision, and remotes and meshNetworks wait
    # for its address: its Service goes out in the base phase, so that the address comes
    # while the control plane rolls out, not after the gateways.
    early = [m for m in manifests if _load_balanced(m)]
    later = [m for m in manifests if not _load_balanced(m)]
    return ctx.emit(Phase.BASE, early) + ctx.emit(Phase.GATEWAYS, later)


def _load_balanced(manifest: Manifest) -> bool:
    return bool(manifest["kind"] == "Service" and manifest["spec"].get("type") == "LoadBalancer")
