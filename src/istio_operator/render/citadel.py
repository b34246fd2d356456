"""Citadel, the mesh certificate authority, and (on the primary) the mesh-wide mTLS policy."""

from __future__ import annotations

from istio_operator.render import builders as b
from istio_operator.render.builders import Manifest
from istio_operator.render.context import Context
from istio_operator.render.objects import DesiredObject
from istio_operator.render.phases import Phase

NAME = "istio-citadel"
SERVICE_ACCOUNT = "istio-citadel-service-account"
SELECTOR = {"app": "security", "istio": "citadel"}
SELF_SIGNED_CA_SECRET = "istio-ca-secret"
CACERTS_VOLUME = "cacerts"
CACERTS_PATH = "/etc/cacerts"


def rbac(ctx: Context) -> list[Manifest]:
    core_read = ["serviceaccounts", "services"]
    if ctx.family.citadel_namespaces_by_default:
        core_read.append("namespaces")
    return b.rbac_for(
        SERVICE_ACCOUNT,
        *b.role_names(NAME),
        ctx.namespace,
        SELECTOR,
        [
            b.rule([""], ["configmaps"], ["create", "get", "update"]),
            b.rule([""], ["secrets"], ["create", "get", "watch", "list", "update", "delete"]),
            b.rule([""], core_read, b.READ),
            b.rule(["authentication.k8s.io"], ["tokenreviews"], ["create"]),
        ],
    )


def args(ctx: Context) -> list[str]:
    citadel = ctx.plan.citadel
    ns = ctx.namespace
    result = [
        "--append-dns-names=true",
        "--grpc-port=8060",
        f"--citadel-storage-namespace={ns}",
        f"--custom-dns-names=istio-pilot-service-account.{ns}:istio-pilot.{ns}",
        "--monitoring-port=15014",
    ]
    if ctx.plan.trustDomain:
        result.append(f"--trust-domain={ctx.plan.trustDomain}")
    if ctx.plan.sds.enabled:
        result.append("--sds-enabled=true")
    if citadel.caSecretName:
        result += [
            "--self-signed-ca=false",
            f"--signing-cert={CACERTS_PATH}/ca-cert.pem",
            f"--signing-key={CACERTS_PATH}/ca-key.pem",
            f"--root-cert={CACERTS_PATH}/root-cert.pem",
            f"--cert-chain={CACERTS_PATH}/cert-chain.pem",
        ]
    else:
        result.append("--self-signed-ca=true")
    if citadel.healthCheck:
        result += [
            "--liveness-probe-path=/tmp/ca.liveness",
            "--liveness-probe-interval=60s",
            "--probe-check-interval=15s",
        ]
    if citadel.workloadCertTTL:
        result.append(f"--workload-cert-ttl={citadel.workloadCertTTL}")
    if citadel.maxWorkloadCertTTL:
        result.append(f"--max-workload-cert-ttl={citadel.maxWorkloadCertTTL}")
    return result


def deployment(ctx: Context) -> Manifest:
    citadel = ctx.plan.citadel
    volumes: list[Manifest] = []
    mounts: list[Manifest] = []
    if citadel.caSecretName:
        volumes.append(b.secret_volume(CACERTS_VOLUME, citadel.caSecretName))
        mounts.append(b.mount(CACERTS_VOLUME, CACERTS_PATH, read_only=True))
    env = []
    if ctx.family.citadel_namespaces_by_default:
        env.append(b.env("CITADEL_ENABLE_NAMESPACES_BY_DEFAULT", citadel.enableNamespacesByDefault))
    liveness = None
    if citadel.healthCheck:
        liveness = b.exec_probe(
            [
                "/usr/local/bin/istio_ca",
                "probe",
                "--probe-path=/tmp/ca.liveness",
                "--interval=125s",
            ],
            initial_delay=60,
            period=60,
        )
    container = ctx.container(
        "citadel",
        citadel.image,
        args=args(ctx),
        env_vars=env,
        resources=citadel.resources,
        mounts=mounts,
        liveness=liveness,
    )
    pod = b.pod_spec(
        SERVICE_ACCOUNT,
        [container],
        volumes=volumes,
        node_selector=citadel.nodeSelector,
        affinity=citadel.affinity,
        tolerations=citadel.tolerations,
    )
    return b.deployment(NAME, ctx.namespace, SELECTOR, SELECTOR, pod, replicas=1)


def service(ctx: Context) -> Manifest:
    ports = b.named_ports(("grpc-citadel", 8060), ("http-monitoring", 15014))
    return b.service(NAME, ctx.namespace, SELECTOR, {"istio": "citadel"}, ports)


def mesh_policy(ctx: Context) -> Manifest:
    peer = {"mtls": {}} if ctx.plan.mtls else {"mtls": {"mode": "PERMISSIVE"}}
    return b.istio_object(
        "authentication.istio.io/v1alpha1",
        "MeshPolicy",
        "default",
        None,
        SELECTOR,
        {"peers": [peer]},
    )


def destination_rules(ctx: Context) -> list[Manifest]:
    """Mutual TLS to every mesh host, plain TLS to the Kubernetes API server."""
    networking = "networking.istio.io/v1alpha3"
    return [
        b.istio_object(
            networking,
            "DestinationRule",
            "default",
            ctx.namespace,
            SELECTOR,
            {"host": "*.local", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}},
        ),
        b.istio_object(
            networking,
            "DestinationRule",
            "api-server",
            ctx.namespace,
            SELECTOR,
            {
                "host": f"kubernetes.default.svc.{ctx.cluster_domain}",
                "trafficPolicy": {"tls": {"mode": "DISABLE"}},
            },
        ),
    ]


def mesh_expansion_virtual_service(ctx: Context) -> Manifest:
    host = ctx.service_host(NAME)
    return b.mesh_expansion_route("meshexpansion-vs-citadel", ctx.namespace, SELECTOR, host, 8060)


def render(ctx: Context) -> list[DesiredObject]:
    if not ctx.plan.citadel.enabled:
        return []
    manifests = [*rbac(ctx), deployment(ctx), service(ctx)]
    if not ctx.is_remote:
        manifests.append(mesh_policy(ctx))
        if ctx.plan.mtls:
            manifests += destination_rules(ctx)
        if ctx.plan.meshExpansion:
            manifests.append(mesh_expansion_virtual_service(ctx))
    return ctx.emit(Phase.CITADEL, manifests)
