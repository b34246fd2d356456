"""Mixer: the policy and telemetry Deployments and their config.istio.io configuration.

The 1.3 family switches and sizes policy and telemetry separately; the 1.2
family has one `mixer` switch and size for both.
"""

from __future__ import annotations

from typing import Any

from istio_operator.plan.model import MixerPart as Workload
from istio_operator.render import builders as b
from istio_operator.render import data, proxy
from istio_operator.render.builders import Manifest
from istio_operator.render.context import Context
from istio_operator.render.objects import DesiredObject
from istio_operator.render.phases import Phase
from istio_operator.render.scaling import autoscaler, disruption_budget

TYPES = ("policy", "telemetry")
SERVICE_ACCOUNT = "istio-mixer-service-account"
LABELS = {"app": "mixer", "istio": "mixer"}
CONFIG_API = "config.istio.io/v1alpha2"
SOCKET_VOLUME = "uds-socket"


def selector(kind: str) -> dict[str, str]:
    return {"istio": "mixer", "app": kind, "istio-mixer-type": kind}


def settings(ctx: Context, kind: str) -> Workload:
    """Switch, image, sizes and placement of one mixer Deployment."""
    return ctx.plan.policy if kind == "policy" else ctx.plan.telemetry


CORE_READ = (
    "configmaps",
    "endpoints",
    "pods",
    "services",
    "namespaces",
    "secrets",
    "replicationcontrollers",
)


def rbac(ctx: Context) -> list[Manifest]:
    return b.rbac_for(
        SERVICE_ACCOUNT,
        *b.role_names("istio-mixer"),
        ctx.namespace,
        LABELS,
        [
            b.rule(["config.istio.io"], ["*"], ["create", "get", "list", "watch", "patch"]),
            b.rule(["apiextensions.k8s.io"], ["customresourcedefinitions"], b.READ),
            b.rule([""], CORE_READ, b.READ),
            b.rule(["extensions", "apps"], ["replicasets"], b.READ),
        ],
    )


def config_store_url(ctx: Context) -> str:
    if not ctx.plan.useMCP:
        return "k8s://"
    scheme = "mcps" if ctx.cp_security else "mcp"
    return f"{scheme}://istio-galley.{ctx.namespace}.svc:9901"


def mixer_args(ctx: Context, kind: str) -> list[str]:
    args = [
        "--monitoringPort=15014",
        "--address",
        "unix:///sock/mixer.socket",
        "--configDefaultNamespace",
        ctx.namespace,
    ]
    if ctx.zipkin_address is not None:
        args += ["--trace_zipkin_url", f"http://{ctx.zipkin_address}/api/v1/spans"]
    args += ["--configStoreURL", config_store_url(ctx)]
    if kind == "telemetry" and ctx.plan.useMCP and ctx.cp_security:
        args += [
            "--certFile",
            f"{proxy.CERTS_PATH}/cert-chain.pem",
            "--keyFile",
            f"{proxy.CERTS_PATH}/key.pem",
            "--caCertFile",
            f"{proxy.CERTS_PATH}/root-cert.pem",
        ]
    # The 1.3 family always turns adapter CRDs off (the reference passes the
    # flag twice, the user's value then `false`; only the last one counts).
    use_adapter_crds = ctx.plan.watchAdapterCRDs and not ctx.family.stdio_adapter_switch
    args.append(f"--useAdapterCRDs={'true' if use_adapter_crds else 'false'}")
    if kind == "telemetry":
        args += ["--averageLatencyThreshold", "100ms", "--loadsheddingMode", "enforce"]
    return args


def adapter_secret(kind: str) -> proxy.Volumes:
    """The optional secret out-of-process adapters read (`<kind>-adapter-secret`)."""
    name = f"{kind}-adapter-secret"
    return proxy.Volumes(
        (b.secret_volume(name, name, optional=True),),
        (b.mount(name, f"/var/run/secrets/istio.io/{kind}/adapter", read_only=True),),
    )


def deployment(ctx: Context, kind: str) -> Manifest:
    config = settings(ctx, kind)
    certs = proxy.certs(SERVICE_ACCOUNT)
    socket = proxy.Volumes((b.empty_dir_volume(SOCKET_VOLUME),), (b.mount(SOCKET_VOLUME, "/sock"),))
    adapter = adapter_secret(kind)
    # Istio's chart mounts the adapter secret into the mixer container of telemetry and
    # into the proxy of policy; both mixer containers expose 42422.
    mixer_volumes = socket + certs + (adapter if kind == "telemetry" else proxy.Volumes())
    mixer = ctx.container(
        "mixer",
        config.image,
        args=mixer_args(ctx, kind),
        ports=[b.container_port(15014), b.container_port(42422)],
        env_vars=[b.env("GODEBUG", "gctrace=1"), b.env("GOMAXPROCS", 6)],
        resources=config.resources,
        mounts=mixer_volumes.mounts,
        liveness=b.http_probe("/version", 15014, initial_delay=5, period=5),
    )
    sidecar_volumes = certs + socket + proxy.sds(ctx)
    if kind == "policy":
        sidecar_volumes += adapter
    sidecar = proxy.sidecar(
        ctx,
        f"istio-{kind}",
        f"envoy_{kind}.yaml.tmpl",
        [b.container_port(9091), b.container_port(15004), proxy.ENVOY_PROM_PORT],
        sidecar_volumes,
    )
    pod = b.pod_spec(
        SERVICE_ACCOUNT,
        [mixer, sidecar],
        volumes=[*sidecar_volumes.volumes, *(adapter.volumes if kind == "telemetry" else ())],
        node_selector=config.nodeSelector,
        affinity=config.affinity,
        tolerations=config.tolerations,
    )
    labels = selector(kind)
    return b.deployment(f"istio-{kind}", ctx.namespace, labels, labels, pod, replicas=None)


def service(ctx: Context, kind: str) -> Manifest:
    ports = [
        b.service_port("grpc-mixer", 9091),
        b.service_port("grpc-mixer-mtls", 15004),
        b.service_port("http-monitoring", 15014),
    ]
    if kind == "telemetry":
        ports.append(b.service_port("prometheus", 42422))
    return b.service(
        f"istio-{kind}",
        ctx.namespace,
        selector(kind),
        {"istio": "mixer", "istio-mixer-type": kind},
        ports,
    )


def destination_rule(ctx: Context, kind: str) -> Manifest:
    """Connection limits (and mTLS to 15004 on a secured control plane) for one mixer."""
    policy: dict[str, Any] = {
        "connectionPool": {"http": {"http2MaxRequests": 10000, "maxRequestsPerConnection": 10000}}
    }
    if ctx.cp_security:
        policy["portLevelSettings"] = [{"port": {"number": 15004}, "tls": {"mode": "ISTIO_MUTUAL"}}]
    spec: dict[str, Any] = {"host": ctx.service_host(f"istio-{kind}"), "trafficPolicy": policy}
    visibility = ctx.plan.defaultConfigVisibility
    if visibility:
        spec["exportTo"] = [visibility if visibility == "." else "*"]
    return b.istio_object(
        "networking.istio.io/v1alpha3",
        "DestinationRule",
        f"istio-{kind}",
        ctx.namespace,
        selector(kind),
        spec,
    )


def workload(ctx: Context, kind: str) -> list[Manifest]:
    config = settings(ctx, kind)
    name = f"istio-{kind}"
    labels = selector(kind)
    return [
        deployment(ctx, kind),
        service(ctx, kind),
        autoscaler(ctx, name, labels, config),
        *disruption_budget(ctx, name, labels, labels),
        destination_rule(ctx, kind),
    ]


# --- config.istio.io ------------------------------------------------------------

HTTP_METRICS = (
    ("requestcount", "1"),
    ("requestduration", 'response.duration | "0ms"'),
    ("requestsize", "request.size | 0"),
    ("responsesize", "response.size | 0"),
)
TCP_METRICS = (
    ("tcpbytesent", "connection.sent.bytes | 0"),
    ("tcpbytereceived", "connection.received.bytes | 0"),
    ("tcpconnectionsopened", "1"),
    ("tcpconnectionsclosed", "1"),
)
_REPORTER = (
    'conditional((context.reporter.kind | "inbound") == "outbound", "source", "destination")'
)
_SECURITY_POLICY = (
    'conditional((context.reporter.kind | "inbound") == "outbound", "unknown", '
    'conditional(connection.mtls | false, "mutual_tls", "none"))'
)


def metric_dimensions(ctx: Context, http: bool) -> dict[str, str]:
    service_host = 'destination.service.host | "unknown"'
    if http and not ctx.legacy:
        service_host = (
            'destination.service.host | conditional((destination.service.name | "unknown") '
            '== "unknown", "unknown", request.host)'
        )
    dimensions = {
        "reporter": _REPORTER,
        "source_workload": 'source.workload.name | "unknown"',
        "source_workload_namespace": 'source.workload.namespace | "unknown"',
        "source_principal": 'source.principal | "unknown"',
        "source_app": 'source.labels["app"] | "unknown"',
        "source_version": 'source.labels["version"] | "unknown"',
        "destination_workload": 'destination.workload.name | "unknown"',
        "destination_workload_namespace": 'destination.workload.namespace | "unknown"',
        "destination_principal": 'destination.principal | "unknown"',
        "destination_app": 'destination.labels["app"] | "unknown"',
        "destination_version": 'destination.labels["version"] | "unknown"',
        "destination_service": service_host,
        "destination_service_name": 'destination.service.name | "unknown"',
        "destination_service_namespace": 'destination.service.namespace | "unknown"',
        "connection_security_policy": _SECURITY_POLICY,
        "response_flags": 'context.proxy_error_code | "-"',
    }
    # The HTTP metrics add the protocol, the response code and the RBAC permissive-mode
    # outcome (`mixer/templates/config.yaml` of Istio 1.2.8 and 1.3.8); the TCP metrics
    # have none of them.
    if http:
        dimensions.update(
            {
                "request_protocol": 'api.protocol | context.protocol | "unknown"',
                "response_code": "response.code | 200",
                "permissive_response_code": 'rbac.permissive.response_code | "none"',
                "permissive_response_policyid": ('rbac.permissive.effective_policy_id | "none"'),
            }
        )
    return dimensions


def metric_instances(ctx: Context) -> list[dict[str, Any]]:
    result = []
    for metrics, http in ((HTTP_METRICS, True), (TCP_METRICS, False)):
        for name, value in metrics:
            params = {
                "value": value,
                "dimensions": metric_dimensions(ctx, http),
                "monitored_resource_type": '"UNSPECIFIED"',
            }
            spec = {"compiledTemplate": "metric", "params": params}
            result.append({"kind": "instance", "name": name, "spec": spec})
    return result


_PROMETHEUS_METRICS = (
    ("requests_total", "requestcount", "COUNTER", None),
    (
        "request_duration_seconds",
        "requestduration",
        "DISTRIBUTION",
        {"explicit_buckets": {"bounds": [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]}},
    ),
    (
        "request_bytes",
        "requestsize",
        "DISTRIBUTION",
        {"exponentialBuckets": {"numFiniteBuckets": 8, "scale": 1, "growthFactor": 10}},
    ),
    (
        "response_bytes",
        "responsesize",
        "DISTRIBUTION",
        {"exponentialBuckets": {"numFiniteBuckets": 8, "scale": 1, "growthFactor": 10}},
    ),
    ("tcp_sent_bytes_total", "tcpbytesent", "COUNTER", None),
    ("tcp_received_bytes_total", "tcpbytereceived", "COUNTER", None),
    ("tcp_connections_opened_total", "tcpconnectionsopened", "COUNTER", None),
    ("tcp_connections_closed_total", "tcpconnectionsclosed", "COUNTER", None),
)


def prometheus_handler(ctx: Context) -> dict[str, Any]:
    metrics = []
    for name, instance, kind, buckets in _PROMETHEUS_METRICS:
        http = instance in dict(HTTP_METRICS)
        metric: dict[str, Any] = {
            "name": name,
            "instance_name": f"{instance}.instance.{ctx.namespace}",
            "kind": kind,
            "label_names": sorted(metric_dimensions(ctx, http)),
        }
        if buckets:
            metric["buckets"] = buckets
        metrics.append(metric)
    spec = {
        "compiledAdapter": "prometheus",
        "params": {
            "metricsExpirationPolicy": {"metricsExpiryDuration": "10m"},
            "metrics": metrics,
        },
    }
    return {"kind": "handler", "name": "prometheus", "spec": spec}


_HTTP_MATCH = (
    '(context.protocol == "http" || context.protocol == "grpc") && '
    '(match((request.useragent | "-"), "kube-probe*") == false) && '
    '(match((request.useragent | "-"), "Prometheus*") == false)'
)
_TCP_MATCH = 'context.protocol == "tcp"'


def prometheus_rules() -> list[dict[str, Any]]:
    def prom_rule(name: str, match: str, instances: list[str]) -> dict[str, Any]:
        spec = {"match": match, "actions": [{"handler": "prometheus", "instances": instances}]}
        return {"kind": "rule", "name": name, "spec": spec}

    return [
        prom_rule("promhttp", _HTTP_MATCH, [name for name, _ in HTTP_METRICS]),
        prom_rule("promtcp", _TCP_MATCH, ["tcpbytesent", "tcpbytereceived"]),
        prom_rule(
            "promtcpconnectionopen",
            f'{_TCP_MATCH} && ((connection.event | "na") == "open")',
            ["tcpconnectionsopened"],
        ),
        prom_rule(
            "promtcpconnectionclosed",
            f'{_TCP_MATCH} && ((connection.event | "na") == "close")',
            ["tcpconnectionsclosed"],
        ),
    ]


def _family_specific(ctx: Context, document: dict[str, Any]) -> dict[str, Any]:
    """Fill in the values of the data file that differ between families."""
    spec = document["spec"]
    if document["name"] == "istioproxy" and not ctx.legacy:
        spec["attributes"]["context.proxy_version"] = {"valueType": "STRING"}
    if document["name"] == "accesslog":
        host = 'destination.service.host | ""'
        if not ctx.legacy:
            host = 'destination.service.host | request.host | ""'
        spec["params"]["variables"]["destinationServiceHost"] = host
    if document["name"] == "kubernetes" and ctx.plan.mixer.multiClusterSupport:
        # The attributes bound below must be declared for mixer to accept the binding.
        spec["attributes"]["source.cluster.id"] = {"valueType": "STRING"}
        spec["attributes"]["destination.cluster.id"] = {"valueType": "STRING"}
    if document["name"] == "attributes" and ctx.plan.mixer.multiClusterSupport:
        bindings = spec["attributeBindings"]
        bindings["source.cluster.id"] = '$out.source_cluster_id | "unknown"'
        bindings["destination.cluster.id"] = '$out.destination_cluster_id | "unknown"'
    return document


def config_documents(ctx: Context) -> list[dict[str, Any]]:
    """The config.istio.io objects wanted with the current switches."""
    sets: set[str] = set()
    if ctx.plan.policy.enabled or ctx.plan.telemetry.enabled:
        sets.add("shared")
    if ctx.plan.telemetry.enabled:
        sets.add("telemetry")
        if not ctx.family.stdio_adapter_switch or ctx.plan.mixer.stdioAdapterEnabled:
            sets.add("stdio")
    documents = [
        _family_specific(ctx, document)
        for document in data.load_yaml("mixer-config.yaml")
        if document.pop("set") in sets
    ]
    if "telemetry" in sets:
        documents += [*metric_instances(ctx), prometheus_handler(ctx), *prometheus_rules()]
    return documents


def config_objects(ctx: Context) -> list[Manifest]:
    return [
        b.istio_object(
            CONFIG_API, document["kind"], document["name"], ctx.namespace, LABELS, document["spec"]
        )
        for document in config_documents(ctx)
    ]


def render(ctx: Context) -> list[DesiredObject]:
    kinds = [kind for kind in TYPES if settings(ctx, kind).enabled]
    if not kinds:
        return []
    manifests = rbac(ctx)
    for kind in kinds:
        manifests += workload(ctx, kind)
    manifests += config_objects(ctx)
    return ctx.emit(Phase.MIXER, manifests)
