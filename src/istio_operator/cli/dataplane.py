"""`istio-operator dataplane-upgrade`: restart the workloads whose sidecars run an old proxy.

After a control-plane upgrade, pods keep the `istio-proxy` they were injected with. This
command finds the Deployments, StatefulSets and DaemonSets whose pods run a proxy other
than the control plane's version in effect (the Istio resource's `status.version`) and
restarts them as `kubectl rollout restart` does, namespace by namespace, on the primary
and, with `--all-clusters`, on every remote. The selection and the restart live in
`operations.dataplane`; this module parses arguments and prints.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from istio_operator.cli.clusters import add_mesh_arguments, mesh_clients, report
from istio_operator.cli.status import columns
from istio_operator.kube.client import (
    ApiRefusedError,
    Cluster,
    ClusterUnreachableError,
    KubeconfigError,
)
from istio_operator.kube.remotes import RemoteClients
from istio_operator.operations.dataplane import (
    ClusterPlan,
    NotReadyError,
    migrate_by_revision,
    pending_by_revision,
    plan,
    restart,
    revision_istio,
    revision_target,
)
from istio_operator.operations.inventory import describe
from istio_operator.reconcile.migration import MigrationSettings, Progress

HEADERS = ("NAMESPACE", "WORKLOAD", "PODS", "PROXY", "RESULT")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "dataplane-upgrade",
        help="restart the workloads whose sidecars run an older proxy than the control plane",
        description="Find the Deployments, StatefulSets and DaemonSets whose pods run an "
        "istio-proxy of another version than the control plane's version in effect (the Istio "
        "resource's status.version) and restart them as `kubectl rollout restart` does (the "
        "kubectl.kubernetes.io/restartedAt annotation on the pod template, by server-side "
        "apply with the field manager istio-operator-dataplane), namespace by namespace. The "
        "sidecar injector gives the new pods the new proxy. The control plane's namespace and "
        "the operator's own workloads are never touched. Refuses while the Istio resource is "
        "not Available, unless --force.",
    )
    add_mesh_arguments(parser)
    parser.add_argument(
        "--workload-namespace",
        action="extend",
        nargs="+",
        default=[],
        metavar="NS",
        help="only restart workloads in these namespaces (repeatable; default: every namespace)",
    )
    parser.add_argument(
        "--all-clusters",
        action="store_true",
        help="also every remote cluster of the mesh (through its RemoteIstio's kubeconfig "
        "Secret), each against the version in effect there",
    )
    parser.add_argument("--dry-run", action="store_true", help="only list what would be restarted")
    revisions = parser.add_argument_group(
        "istiod family, by revision",
        "When the Istio resource has revisions (updateStrategy RevisionBased), workloads "
        "move to the active revision: namespaces labelled istio.io/rev=<an older revision> "
        "are labelled for the active one, then the workloads an older revision injected are "
        "restarted in batches, each batch waited for. A workload not ready in time stops it.",
    )
    revisions.add_argument("--batch-size", type=int, default=1, help="workloads per batch (1)")
    revisions.add_argument(
        "--delay", type=int, default=0, metavar="S", help="seconds between batches (0)"
    )
    revisions.add_argument(
        "--readiness-timeout",
        type=int,
        default=300,
        metavar="S",
        help="seconds a restarted workload may take to be ready (300)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="proceed although the Istio (or a RemoteIstio) resource is not Available",
    )
    parser.set_defaults(handler=run)


# -- formatting (pure) -------------------------------------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def format_plan(cluster: ClusterPlan, results: dict[str, str], dry_run: bool) -> list[str]:
    """The lines of one cluster: a title, then one row per workload restarted (or that
    would be) and per outdated workload skipped. `results` maps `namespace/Kind/name` to
    the outcome of its restart."""
    title = cluster.name if cluster.role == "primary" else f"{cluster.name} ({cluster.role})"
    if cluster.error or cluster.selection is None:
        return [f"CLUSTER {title}: {cluster.error or 'not read'}"]
    selection = cluster.selection
    summary = (
        f"{_plural(len(selection.restarts), 'workload')} to restart "
        f"in {_plural(len(selection.namespaces), 'namespace')}"
        if selection.restarts
        else "every sidecar is up to date"
    )
    lines = [f"CLUSTER {title}: control plane {cluster.target}, {summary}"]
    rows: list[list[str]] = []
    for item in selection.restarts:
        key = f"{item.namespace}/{item.workload}"
        outcome = "would restart" if dry_run else results.get(key, "not restarted")
        versions = ",".join(item.proxy_versions)
        rows.append(
            [item.namespace, item.workload, str(item.pods), f"{versions} -> {item.target}", outcome]
        )
    for skip in selection.skipped:
        versions = ",".join(skip.proxy_versions)
        rows.append(
            [
                skip.namespace,
                skip.owner,
                str(skip.pods),
                f"{versions} -> {cluster.target}",
                f"skipped: {skip.reason}",
            ]
        )
    if rows:
        lines += columns(HEADERS, rows)
    return lines


# -- running -----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130


async def _run(args: argparse.Namespace) -> int:
    try:
        async with mesh_clients(args.kubeconfig) as (primary, clients):
            return await _upgrade(primary, clients, args)
    except KubeconfigError as error:
        return report(error)


async def _upgrade(primary: Cluster, clients: RemoteClients, args: argparse.Namespace) -> int:
    try:
        istio = await revision_istio(primary, args.namespace)
    except (ClusterUnreachableError, ApiRefusedError, TimeoutError) as error:
        print(f"error: primary cluster: {describe(error)}", file=sys.stderr)
        return 1
    if istio is not None:
        return await _by_revision(primary, istio, args)
    try:
        plans = await plan(
            primary,
            args.namespace,
            clients,
            all_clusters=args.all_clusters,
            force=args.force,
            namespaces=args.workload_namespace,
        )
    except NotReadyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (ClusterUnreachableError, ApiRefusedError, TimeoutError) as error:
        print(f"error: primary cluster: {describe(error)}", file=sys.stderr)
        return 1
    if args.dry_run:
        print("dry run: nothing is changed")
    failed = False
    for cluster in plans:
        results = {} if args.dry_run else await _restart_all(cluster)
        failed |= bool(cluster.error) or any(
            not r.startswith("restarted") for r in results.values()
        )
        print("\n".join(format_plan(cluster, results, args.dry_run)), flush=True)
    return 1 if failed else 0


def format_progress(cluster: str, progress: Progress) -> str:
    line = (
        f"{cluster}: migration to {progress.revision or 'default'}: {progress.state}, "
        f"{progress.migrated} restarted, {progress.remaining} to go"
    )
    return line + (f": {progress.message}" if progress.message else "")


async def _by_revision(primary: Cluster, istio: Mapping[str, Any], args: argparse.Namespace) -> int:
    """Moves the primary's workloads to the active revision, batch by batch."""
    target = revision_target(istio)
    assert target is not None  # revision_istio found it
    try:
        pending = await pending_by_revision(primary, target, args.namespace)
        if args.dry_run:
            shown = target.active or "default"
            print(f"dry run: nothing is changed; to move to revision {shown}:")
            rows = [[k.namespace, f"{k.kind}/{k.name}"] for k in pending]
            print("\n".join(columns(("NAMESPACE", "WORKLOAD"), rows)) if rows else "  none")
            return 0
        settings = MigrationSettings(args.batch_size, args.delay, args.readiness_timeout)
        done = await migrate_by_revision(
            primary,
            target,
            args.namespace,
            settings,
            lambda progress: print(format_progress(primary.name, progress), flush=True),
        )
    except (ClusterUnreachableError, ApiRefusedError, TimeoutError) as error:
        print(f"error: {primary.name}: {describe(error)}", file=sys.stderr)
        return 1
    return 0 if done.state == "Done" else 1


async def _restart_all(cluster: ClusterPlan) -> dict[str, str]:
    """Restarts the selection of one cluster, namespace by namespace; the outcome of each."""
    results: dict[str, str] = {}
    if cluster.cluster is None or cluster.selection is None:
        return results
    restarted_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for namespace in cluster.selection.namespaces:
        for item in cluster.selection.in_namespace(namespace):
            key = f"{item.namespace}/{item.workload}"
            try:
                await restart(cluster.cluster, item, restarted_at)
                results[key] = "restarted"
            except (ClusterUnreachableError, ApiRefusedError, TimeoutError) as error:
                results[key] = f"failed: {describe(error)}"
    return results
