"""Giving the operator access to a remote cluster.

On the remote: a ServiceAccount, a ClusterRole with exactly the rules the operator needs
there (`rbac.remote_rules`, the same as deploy/remote's, in the same order, so that a
server-side apply of either over the other does not conflict) and its binding. On the
primary: the kubeconfig Secret a `RemoteIstio` names (its name and namespace, one key of
that name), holding the remote's server and CA and a token of that ServiceAccount from
the TokenRequest API. Everything is server-side applied with a field manager of its own,
so running it again renews the token and changes nothing the operator owns.

`revoke_remote_access` takes all of it back (the Namespace stays: the remote's Istio lives
there); the token dies with its ServiceAccount.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from istio_operator.api.keys import ObjectKey
from istio_operator.api.labels import API_VERSION
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


# -- revoking ------------------------------------------------------------------------------------

RBAC_API = "rbac.authorization.k8s.io/v1"


class AccessInUseError(Exception):
    """The kubeconfig Secret still serves a RemoteIstio: revoking now would strand it."""


def _ours(obj: dict[str, Any]) -> bool:
    """Made by `remote-access` (or deploy/remote, which labels its objects alike)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in LABELS.items())


async def _delete_if_ours(cluster: Cluster, key: ObjectKey, where: str) -> str:
    what = f"{key.kind} {key.namespace + '/' if key.namespace else ''}{key.name}"
    live = await cluster.get(key)
    if live is None:
        return f"{where}: {what} already absent"
    if where == "remote" and not _ours(live):
        return f"{where}: kept {what} (not made by remote-access: it lacks its labels)"
    await cluster.delete(key)
    return f"{where}: deleted {what}"


async def _other_bindings(remote: Cluster, namespace: str) -> list[str]:
    """The ClusterRoleBindings, besides this namespace's, that still grant the role."""
    mine = binding_name(namespace)
    return sorted(
        str(b["metadata"]["name"])
        for b in await remote.list_all(RBAC_API, "ClusterRoleBinding")
        if (b.get("roleRef") or {}).get("name") == CLUSTER_ROLE and b["metadata"]["name"] != mine
    )


async def _revoke_on_remote(remote: Cluster, namespace: str) -> list[str]:
    # The binding first, so that no moment exists where the role is bound to nothing valid.
    actions = [
        await _delete_if_ours(
            remote, ObjectKey(RBAC_API, "ClusterRoleBinding", "", binding_name(namespace)), "remote"
        ),
        await _delete_if_ours(
            remote, ObjectKey("v1", "ServiceAccount", namespace, SERVICE_ACCOUNT), "remote"
        ),
    ]
    # One ClusterRole serves every namespace's identity (and deploy/remote's): it goes last.
    others = await _other_bindings(remote, namespace)
    if others:
        actions.append(
            f"remote: kept ClusterRole {CLUSTER_ROLE} (still bound by {', '.join(others)})"
        )
    else:
        key = ObjectKey(RBAC_API, "ClusterRole", "", CLUSTER_ROLE)
        actions.append(await _delete_if_ours(remote, key, "remote"))
    return actions


async def revoke_remote_access(
    remote: Cluster, primary: Cluster, *, name: str, namespace: str, force: bool = False
) -> tuple[str, ...]:
    """Removes the identity from the remote, then the kubeconfig Secret from the primary;
    what was done, line by line. Objects already gone are no error, so it can be rerun.
    Refuses (AccessInUseError, before any change) while the RemoteIstio `name` exists,
    unless `force`: its reconcile and its removal read the Secret."""
    user = await primary.get(ObjectKey(API_VERSION, "RemoteIstio", namespace, name))
    if user is not None and not force:
        removing = " (being removed: wait until it is gone)" if _deleting(user) else ""
        raise AccessInUseError(
            f"RemoteIstio {namespace}/{name}{removing} still uses the Secret {namespace}/{name}; "
            "delete the RemoteIstio first (its removal from the remote needs the access), or "
            "pass --force; nothing was changed"
        )
    actions = await _revoke_on_remote(remote, namespace)
    secret = ObjectKey("v1", "Secret", namespace, name)
    actions.append(await _delete_if_ours(primary, secret, "primary"))
    return tuple(actions)


def _deleting(obj: dict[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))
