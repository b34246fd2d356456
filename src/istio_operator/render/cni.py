"""The Istio CNI plugin: sets up traffic redirection on each node instead of istio-init."""

from __future__ import annotations

import json

from istio_operator.render import builders as b
from istio_operator.render.builders import Manifest
from istio_operator.render.context import Context
from istio_operator.render.objects import DesiredObject
from istio_operator.render.phases import Phase

NAME = "istio-cni"
CONFIG_MAP = "istio-cni-config"
DAEMON_SET = "istio-cni-node"
SELECTOR = {"k8s-app": "istio-cni-node"}
LABELS = {"app": "istio-cni", **SELECTOR}


def network_config(ctx: Context) -> str:
    cni = ctx.plan.sidecarInjector.initCNIConfiguration
    return json.dumps(
        {
            "type": "istio-cni",
            "log_level": cni.logLevel,
            "kubernetes": {
                "kubeconfig": "__KUBECONFIG_FILEPATH__",
                "cni_bin_dir": cni.binDir,
                "exclude_namespaces": list(cni.excludeNamespaces),
            },
        },
        indent=2,
    )


def daemon_set(ctx: Context) -> Manifest:
    cni = ctx.plan.sidecarInjector.initCNIConfiguration
    container = ctx.container(
        "install-cni",
        cni.image,
        command=["/install-cni.sh"],
        env_vars=[
            {
                "name": "CNI_NETWORK_CONFIG",
                "valueFrom": {"configMapKeyRef": {"name": CONFIG_MAP, "key": "cni_network_config"}},
            }
        ],
        mounts=[
            b.mount("cni-bin-dir", "/host/opt/cni/bin"),
            b.mount("cni-net-dir", "/host/etc/cni/net.d"),
        ],
    )
    pod = b.pod_spec(
        NAME,
        [container],
        volumes=[
            b.host_path_volume("cni-bin-dir", cni.binDir),
            b.host_path_volume("cni-net-dir", cni.confDir),
        ],
        node_selector={"kubernetes.io/os": "linux"},
        affinity=cni.affinity,
        tolerations=[{"operator": "Exists"}],
        extra={"hostNetwork": True, "terminationGracePeriodSeconds": 5},
    )
    return b.daemon_set(DAEMON_SET, ctx.namespace, LABELS, SELECTOR, pod)


def render(ctx: Context) -> list[DesiredObject]:
    if not ctx.plan.sidecarInjector.initCNIConfiguration.enabled:
        return []
    manifests = [
        *b.rbac_for(
            NAME,
            NAME,
            NAME,
            ctx.namespace,
            LABELS,
            [b.rule([""], ["pods", "nodes"], ["get"])],
        ),
        b.config_map(
            CONFIG_MAP, ctx.namespace, LABELS, {"cni_network_config": network_config(ctx)}
        ),
        daemon_set(ctx),
    ]
    return ctx.emit(Phase.ADDONS, manifests)
