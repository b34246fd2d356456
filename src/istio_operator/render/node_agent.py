"""The SDS node agent DaemonSet, serving workload certificates over a node-local socket."""

from __future__ import annotations

from istio_operator.render import builders as b
from istio_operator.render.builders import Manifest
from istio_operator.render.context import Context
from istio_operator.render.objects import DesiredObject
from istio_operator.render.phases import Phase
from istio_operator.render.proxy import SDS_UDS_PATH

NAME = "istio-nodeagent"
SERVICE_ACCOUNT = "istio-nodeagent-service-account"
SELECTOR = {"app": "nodeagent", "istio": "nodeagent"}


def env(ctx: Context) -> list[Manifest]:
    variables = [
        b.env("CA_PROVIDER", "Citadel"),
        b.env("CA_ADDR", "istio-citadel:8060"),
        b.env("VALID_TOKEN", True),
    ]
    if ctx.plan.trustDomain:
        # The 1.2 agent reads the first spelling, the 1.3 agent the second.
        variables += [
            b.env("Trust_Domain", ctx.plan.trustDomain),
            b.env("TRUST_DOMAIN", ctx.plan.trustDomain),
        ]
    variables.append(b.env_field("NAMESPACE", "metadata.namespace"))
    return variables


def daemon_set(ctx: Context) -> Manifest:
    agent = ctx.plan.nodeAgent
    container = ctx.container(
        "nodeagent",
        agent.image,
        env_vars=env(ctx),
        resources=agent.resources,
        mounts=[b.mount("sdsudspath", SDS_UDS_PATH)],
    )
    pod = b.pod_spec(
        SERVICE_ACCOUNT,
        [container],
        volumes=[b.host_path_volume("sdsudspath", SDS_UDS_PATH)],
        node_selector=agent.nodeSelector,
        affinity=agent.affinity,
        tolerations=agent.tolerations,
    )
    return b.daemon_set(NAME, ctx.namespace, SELECTOR, SELECTOR, pod)


def render(ctx: Context) -> list[DesiredObject]:
    if not ctx.plan.nodeAgent.enabled:
        return []
    manifests = [
        *b.rbac_for(
            SERVICE_ACCOUNT,
            "istio-nodeagent-cluster-role",
            "istio-nodeagent-cluster-role-binding",
            ctx.namespace,
            SELECTOR,
            [b.rule([""], ["configmaps"], ["get"])],
        ),
        daemon_set(ctx),
    ]
    return ctx.emit(Phase.ADDONS, manifests)
