"""Giving the operator access to a remote cluster.

On the remote: a ServiceAccount, a ClusterRole with exactly the rules the operator needs
there (`rbac.remote_rules`, the same as deploy/remote's, in the same order, so that a
server-side apply of either over the other does not conflict) and its binding. On the
primary: the kubeconfig Secret a `RemoteIstio` names (its name and namespace, one key of
that name), holding the remote's server and CA and a token of that ServiceAccount from
the TokenRequest API. Everything is server-side applied with a field manager of its own,
so running it again renews the token and changes nothing the operator owns.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from istio_operator.api.keys import ObjectKey
from istio_operator.kube.client import Cluster
from istio_operator.kube.credentials import Endpoint, Token, request_token, token_kubeconfig
from istio_operator.operations.rbac import policy_rules, remote_rules

FIELD_MANAGER = "istio-operator-remote-access"
SERVICE_ACCOUNT = "istio-operator"
CLUSTER_ROLE = "istio-operator-remote"
ONE_YEAR_S = 365 * 24 * 3600
LABELS = {
    "app.kubernetes.io/name": "istio-operator-remote",
    "app.kubernetes.io/part-of": "istio-operator",
}


@dataclass(frozen=True)
class AccessReport:
    """What was done, in words safe to print (no token, no kubeconfig)."""

    actions: tuple[str, ...]
    token_expires: str
    other_secret_keys: tuple[str, ...] = ()


def binding_name(namespace: str) -> str:
    """One binding per ServiceAccount namespace, so that several primaries' namespaces
    can each hold an identity on the same remote."""
    return f"{CLUSTER_ROLE}-{namespace}"


def remote_manifests(namespace: str) -> list[dict[str, Any]]:
    """The ServiceAccount, ClusterRole and ClusterRoleBinding for the remote cluster."""
    rbac = "rbac.authorization.k8s.io"
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace, "labels": LABELS},
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRole",
            "metadata": {"name": CLUSTER_ROLE, "labels": LABELS},
            "rules": policy_rules(remote_rules()),
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": binding_name(namespace), "labels": LABELS},
            "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": CLUSTER_ROLE},
            "subjects": [
                {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}
            ],
        },
    ]


def kubeconfig_secret(name: str, namespace: str, kubeconfig: str) -> dict[str, Any]:
    """The Secret `kube.remotes.kubeconfig_from_secret` reads: one key, the name."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace},
        "data": {name: base64.b64encode(kubeconfig.encode()).decode()},
    }


def describe(manifest: dict[str, Any]) -> str:
    meta = manifest["metadata"]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{manifest['kind']} {where}{meta['name']}"


async def grant_remote_access(
    remote: Cluster,
    primary: Cluster,
    *,
    name: str,
    namespace: str,
    endpoint: Endpoint,
    expiration_seconds: int = ONE_YEAR_S,
) -> AccessReport:
    actions: list[str] = []
    if await remote.get(ObjectKey("v1", "Namespace", "", namespace)) is None:
        await remote.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
        actions.append(f"remote: created Namespace {namespace}")
    for manifest in remote_manifests(namespace):
        await remote.apply(manifest)
        actions.append(f"remote: applied {describe(manifest)}")
    token: Token = await request_token(remote, namespace, SERVICE_ACCOUNT, expiration_seconds)
    actions.append(
        f"remote: requested a token for ServiceAccount {namespace}/{SERVICE_ACCOUNT} "
        f"(expires {token.expires or 'never'})"
    )
    kubeconfig = token_kubeconfig(name, endpoint, SERVICE_ACCOUNT, token)
    secret = kubeconfig_secret(name, namespace, kubeconfig)
    live = await primary.apply(secret)
    actions.append(
        f"primary: applied {describe(secret)} (key {name}: a kubeconfig for {endpoint.server} "
        f"as {namespace}/{SERVICE_ACCOUNT})"
    )
    others = tuple(sorted(k for k in live.get("data") or {} if k != name))
    return AccessReport(tuple(actions), token.expires, others)
