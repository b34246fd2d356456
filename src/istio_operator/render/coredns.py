"""Istio CoreDNS: resolves `*.global` names of remote meshes (multi-mesh).

Pointing the cluster DNS at it (the `global` stub domain in kube-system) needs
the Service's cluster IP, so it is not rendered here.
"""

from __future__ import annotations

from istio_operator.render import builders as b
from istio_operator.render.builders import Manifest
from istio_operator.render.context import Context
from istio_operator.render.objects import DesiredObject
from istio_operator.render.phases import Phase

NAME = "istiocoredns"
SERVICE_ACCOUNT = "istiocoredns-service-account"
SELECTOR = {"app": "istiocoredns"}

COREFILE = """\
.:53 {
    errors
    health
    proxy global 127.0.0.1:8053 {
        protocol grpc insecure
    }
    prometheus :9153
    proxy . /etc/resolv.conf
    cache 30
    reload
}
"""


def deployment(ctx: Context) -> Manifest:
    coredns = ctx.plan.istioCoreDNS
    dns = ctx.container(
        "coredns",
        coredns.image,
        args=["-conf", "/etc/coredns/Corefile"],
        ports=[
            b.container_port(53, "dns", "UDP"),
            b.container_port(53, "dns-tcp", "TCP"),
            b.container_port(9153, "metrics", "TCP"),
        ],
        resources=coredns.resources,
        mounts=[b.mount("config-volume", "/etc/coredns", read_only=True)],
        liveness=b.http_probe("/health", 8080, initial_delay=60, period=10, timeout=5),
    )
    plugin = ctx.container(
        "istio-coredns-plugin",
        coredns.pluginImage,
        command=["/usr/local/bin/plugin"],
        ports=[b.container_port(8053, "dns-grpc")],
        resources=coredns.resources,
    )
    pod = b.pod_spec(
        SERVICE_ACCOUNT,
        [dns, plugin],
        volumes=[b.config_map_volume("config-volume", NAME, {"Corefile": "Corefile"})],
        node_selector=coredns.nodeSelector,
        affinity=coredns.affinity,
        tolerations=coredns.tolerations,
        # The node's resolver: the plugin forwards non-`global` names to /etc/resolv.conf,
        # which must not point back at the cluster DNS (Istio's chart and the reference).
        extra={"dnsPolicy": "Default"},
    )
    return b.deployment(NAME, ctx.namespace, SELECTOR, SELECTOR, pod, replicas=coredns.replicaCount)


def render(ctx: Context) -> list[DesiredObject]:
    if not ctx.plan.istioCoreDNS.enabled:
        return []
    manifests = [
        *b.rbac_for(
            SERVICE_ACCOUNT,
            NAME,
            f"istio-istiocoredns-cluster-role-binding-{ctx.namespace}",
            ctx.namespace,
            SELECTOR,
            [b.rule(["networking.istio.io"], ["*"], b.READ)],
        ),
        b.config_map(NAME, ctx.namespace, SELECTOR, {"Corefile": COREFILE}),
        b.service(
            NAME,
            ctx.namespace,
            SELECTOR,
            SELECTOR,
            [
                b.service_port("dns", 53, protocol="UDP"),
                b.service_port("dns-tcp", 53, protocol="TCP"),
            ],
        ),
        deployment(ctx),
    ]
    return ctx.emit(Phase.ADDONS, manifests)
