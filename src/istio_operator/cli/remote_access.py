"""`istio-operator remote-access`: let the operator reach a remote cluster.

With an admin kubeconfig of the remote, creates there the operator's identity
(ServiceAccount, ClusterRole with only what the operator and its commands need there,
binding), asks the TokenRequest API for a token of it, and writes on the primary the
kubeconfig Secret a RemoteIstio of that name uses. The token and the kubeconfig are
never printed. `--revoke` takes all of it back.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from istio_operator.api.crd import generate_crds
from istio_operator.charts import HelmError
from istio_operator.kube.client import (
    ApiRefusedError,
    Cluster,
    ClusterUnreachableError,
    KubeconfigError,
    config_from_file,
)
from istio_operator.kube.credentials import CredentialsError, cluster_with_manager, endpoint_of
from istio_operator.kube.resources import register_crds
from istio_operator.operations.access import (
    CLUSTER_ROLE,
    FIELD_MANAGER,
    ONE_YEAR_S,
    SERVICE_ACCOUNT,
    AccessInUseError,
    grant_remote_access,
    revoke_remote_access,
)

COMMAND = "remote-access"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        COMMAND,
        help="give the operator access to a remote cluster (identity, role, kubeconfig Secret)",
        description=(
            "On the remote cluster (--remote-kubeconfig, an identity allowed to create RBAC "
            f"objects): server-side apply the ServiceAccount {SERVICE_ACCOUNT} in --namespace, "
            f"the ClusterRole {CLUSTER_ROLE} with exactly the rights the operator needs there "
            "(reconciling the kinds it renders for a remote, `status` and `dataplane-upgrade`, "
            "the rights of the Istio roles it writes; no `escalate`, `bind` only on those "
            "roles by name: the same rules as deploy/remote) and a ClusterRoleBinding; then "
            "request a token for the ServiceAccount with the TokenRequest API, valid for "
            "--token-expiration seconds (default one year; the API server may grant less). "
            "On the primary cluster (--kubeconfig, else KUBECONFIG): write the Secret NAME in "
            "--namespace with one key NAME, a kubeconfig with the remote's server and CA and "
            "the token: what the RemoteIstio NAME reads. Run it again to renew the token. "
            "Neither the token nor the kubeconfig is printed. With --revoke: delete the "
            "binding, the ServiceAccount (its tokens stop working) and the ClusterRole (unless "
            "another binding still uses it) on the remote, then the Secret NAME on the "
            "primary; refused while the RemoteIstio NAME exists, unless --force."
        ),
    )
    parser.add_argument(
        "--remote-kubeconfig", required=True, metavar="PATH", help="admin kubeconfig of the remote"
    )
    parser.add_argument(
        "--remote-context", default=None, metavar="CTX", help="its context (default: current)"
    )
    parser.add_argument(
        "--name", required=True, help="the RemoteIstio's name: the Secret's name and key"
    )
    parser.add_argument(
        "-n",
        "--namespace",
        default="istio-system",
        help="namespace of the RemoteIstio and the Secret on the primary, and of the "
        "ServiceAccount on the remote (default istio-system)",
    )
    parser.add_argument(
        "--kubeconfig", default=None, metavar="PATH", help="the primary (default: KUBECONFIG)"
    )
    parser.add_argument(
        "--token-expiration",
        type=int,
        default=ONE_YEAR_S,
        metavar="SECONDS",
        help=f"requested token lifetime (default {ONE_YEAR_S}: one year)",
    )
    parser.add_argument(
        "--revoke",
        action="store_true",
        help="remove what this command created, on the remote and on the primary",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="with --revoke: even while the RemoteIstio NAME still uses the Secret",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.force and not args.revoke:
        print("error: --force goes with --revoke", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_revoke(args) if args.revoke else _run(args))
    except (KubeconfigError, CredentialsError, OSError, HelmError) as error:
        # (HelmError: the rules cover the istiod family's renders, made with helm.)
        print(f"error: {error}", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace) -> int:
    remote_config = config_from_file(args.remote_kubeconfig, args.remote_context)
    endpoint = endpoint_of(remote_config)
    remote = cluster_with_manager("remote", remote_config, FIELD_MANAGER)
    primary = cluster_with_manager("primary", config_from_file(args.kubeconfig), FIELD_MANAGER)
    try:
        report = await grant_remote_access(
            remote,
            primary,
            name=args.name,
            namespace=args.namespace,
            endpoint=endpoint,
            expiration_seconds=args.token_expiration,
        )
    except ClusterUnreachableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ApiRefusedError as error:
        print(f"error: {error.summary}", file=sys.stderr)
        return 1
    finally:
        await remote.close()
        await primary.close()
    for action in report.actions:
        print(action)
    if report.other_secret_keys:
        print(
            f"warning: Secret {args.namespace}/{args.name} also has the keys "
            f"{', '.join(report.other_secret_keys)}; the operator reads the first key in "
            "sorted order: remove the others",
            file=sys.stderr,
        )
    print(
        f"next: a RemoteIstio {args.namespace}/{args.name} on the primary uses this access"
        f" (token valid until {report.token_expires or 'revoked'})"
    )
    return 0


async def _revoke(args: argparse.Namespace) -> int:
    remote = cluster_with_manager(
        "remote", config_from_file(args.remote_kubeconfig, args.remote_context), FIELD_MANAGER
    )
    primary = cluster_with_manager("primary", config_from_file(args.kubeconfig), FIELD_MANAGER)
    register_crds(generate_crds())  # the RemoteIstio kind, looked up on the primary
    try:
        actions = await revoke_remote_access(
            remote, primary, name=args.name, namespace=args.namespace, force=args.force
        )
    except AccessInUseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ClusterUnreachableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ApiRefusedError as error:
        print(f"error: {error.summary}", file=sys.stderr)
        return 1
    finally:
        await _close(remote, primary)
    print("\n".join(actions))
    print(f"revoked: the access of the RemoteIstio {args.namespace}/{args.name}")
    return 0


async def _close(*clusters: Cluster) -> None:
    for cluster in clusters:
        await cluster.close()
