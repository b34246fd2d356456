"""The istio-proxy container and the certificate/SDS volumes shared by control-plane pods."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from istio_operator.render import builders as b
from istio_operator.render.builders import Manifest
from istio_operator.render.context import Context

CERTS_VOLUME = "istio-certs"
CERTS_PATH = "/etc/certs"
SDS_UDS_VOLUME = "sds-uds-path"
SDS_UDS_PATH = "/var/run/sds"
TOKEN_VOLUME = "istio-token"
TOKEN_PATH = "/var/run/secrets/tokens"
ENVOY_PROM_PORT = b.container_port(15090, "http-envoy-prom")


@dataclass(frozen=True)
class Volumes:
    """Volumes of a pod and the mounts one of its containers makes of them."""

    volumes: tuple[Manifest, ...] = ()
    mounts: tuple[Manifest, ...] = ()

    def __add__(self, other: Volumes) -> Volumes:
        return Volumes(self.volumes + other.volumes, self.mounts + other.mounts)


def certs(service_account_name: str, optional: bool = True, path: str = CERTS_PATH) -> Volumes:
    """The key and certificate Citadel issues for a service account (`istio.<sa>`)."""
    return Volumes(
        (b.secret_volume(CERTS_VOLUME, f"istio.{service_account_name}", optional=optional),),
        (b.mount(CERTS_VOLUME, path, read_only=True),),
    )


def sds(ctx: Context) -> Volumes:
    """The SDS socket directory and, where the family mounts one, the projected token."""
    if not ctx.plan.sds.enabled:
        return Volumes()
    result = Volumes(
        (b.host_path_volume(SDS_UDS_VOLUME, SDS_UDS_PATH),),
        (b.mount(SDS_UDS_VOLUME, SDS_UDS_PATH),),
    )
    audience = ctx.sds_token_audience
    if audience is not None:
        result += Volumes(
            (b.token_volume(TOKEN_VOLUME, audience, TOKEN_VOLUME),),
            (b.mount(TOKEN_VOLUME, TOKEN_PATH),),
        )
    return result


def sds_env(ctx: Context) -> list[Manifest]:
    """`SDS_ENABLED`, which the 1.3 family gives every control-plane proxy."""
    if ctx.family.sds_token != "audience":
        return []
    return [b.env("SDS_ENABLED", ctx.plan.sds.enabled)]


def domain_args(ctx: Context) -> list[str]:
    args = ["--domain", f"{ctx.namespace}.svc.{ctx.cluster_domain}"]
    if ctx.plan.trustDomain:
        args += ["--trust-domain", ctx.plan.trustDomain]
    return args


def sidecar(
    ctx: Context,
    service_cluster: str,
    template: str,
    ports: Sequence[Manifest],
    volumes: Volumes,
) -> Manifest:
    """The istio-proxy sidecar of a control-plane pod (pilot, policy, telemetry)."""
    return ctx.container(
        "istio-proxy",
        ctx.plan.proxy.image,
        args=[
            "proxy",
            "--serviceCluster",
            service_cluster,
            "--templateFile",
            f"/etc/istio/proxy/{template}",
            "--controlPlaneAuthPolicy",
            ctx.auth_policy,
            *domain_args(ctx),
        ],
        ports=ports,
        env_vars=[b.POD_NAME, b.POD_NAMESPACE, b.INSTANCE_IP, *sds_env(ctx)],
        resources=ctx.plan.proxy.resources,
        mounts=volumes.mounts,
    )


def core_dump_init_container(ctx: Context) -> Manifest:
    """The privileged init container that enables core dumps of the proxy."""
    return ctx.container(
        "enable-core-dump",
        ctx.plan.proxy.coreDumpImage,
        command=["/bin/sh"],
        args=[
            "-c",
            "sysctl -w kernel.core_pattern=/var/lib/istio/core.proxy && ulimit -c unlimited",
        ],
        security_context={"privileged": True, "runAsUser": 0, "runAsNonRoot": False},
    )
