"""`istio-operator status`: the control plane and data plane of a mesh, cluster by cluster.

Reads the `Istio` resource of a namespace on the primary cluster and every
`RemoteIstio` next to it (each remote through its kubeconfig Secret), and shows
for each cluster the status the operator wrote, the control-plane workloads by
rollout phase (images, ready replicas) and the sidecar proxy versions of the
data plane per namespace. Nothing is written. The formatting is pure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Coroutine, Sequence
from typing import Any, NoReturn

from istio_operator.cli.clusters import (
    add_mesh_arguments,
    crds_missing_message,
    mesh_clients,
    missing_crds,
    report,
)
from istio_operator.kube.client import (
    ApiRefusedError,
    Cluster,
    ClusterUnreachableError,
    KubeconfigError,
)
from istio_operator.kube.remotes import RemoteClients
from istio_operator.operations.inventory import (
    ClusterInventory,
    Component,
    Inventory,
    ProxyGroup,
    ResourceState,
    gather,
    image_version,
)

CLEAR_SCREEN = "\x1b[H\x1b[2J"
# After Ctrl-C, how long the command may take to close its clients before it leaves
# whatever is still in flight behind: it ends within a second in any case.
INTERRUPT_GRACE_S = 0.5


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status",
        help="show the control plane and sidecar versions on the primary and every remote",
        description="Show, for the Istio resource of a namespace on the primary cluster and "
        "every RemoteIstio next to it: the resource's status, each control-plane component "
        "(workloads by rollout phase: images, ready/total replicas, state) and the data plane "
        "(pods with an istio-proxy container, per namespace and proxy version). Remote "
        "clusters are read through their kubeconfig Secrets; one that cannot be reached is "
        "shown as such. Nothing is changed.",
    )
    add_mesh_arguments(parser)
    parser.add_argument(
        "-o", "--output", choices=("table", "json"), default="table", help="default: table"
    )
    parser.add_argument(
        "-w", "--watch", action="store_true", help="print again every --interval until Ctrl-C"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between two prints with --watch (default 5)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="give up on a cluster that has not answered after this long (default 20)",
    )
    parser.set_defaults(handler=run)


# -- formatting (pure) -------------------------------------------------------------------------


def _resource_json(resource: ResourceState | None) -> dict[str, Any] | None:
    if resource is None:
        return None
    return {
        "kind": resource.kind,
        "namespace": resource.namespace,
        "name": resource.name,
        "status": resource.status,
        "version": resource.version,
        "desiredVersion": resource.desired_version,
        "phase": resource.phase,
        "waitingFor": list(resource.waiting_for),
        "message": resource.message,
        "generation": resource.generation,
        "observedGeneration": resource.observed_generation,
        **({"remotes": dict(resource.remotes)} if resource.kind == "Istio" else {}),
        **(
            {
                "revisions": [dict(r) for r in resource.revisions],
                "tags": dict(resource.tags),
                "migration": dict(resource.migration) or None,
                **(
                    {"remoteSecret": resource.remote_secret or None}
                    if resource.kind == "RemoteIstio"
                    else {}
                ),
            }
            if resource.revisions
            else {}
        ),
    }


def _current(versions: Sequence[str], desired: str) -> bool | None:
    return None if not desired else list(versions) == [desired]


def _component_json(component: Component, desired: str) -> dict[str, Any]:
    return {
        "phase": component.phase,
        "state": component.state,
        "ready": component.ready,
        "total": component.total,
        "versions": list(component.versions),
        "current": _current(component.versions, desired),
        "images": list(component.images),
        "workloads": [
            {
                "kind": w.kind,
                "namespace": w.namespace,
                "name": w.name,
                "state": w.state,
                "reason": w.reason,
                "ready": w.ready,
                "total": w.total,
                "images": list(w.images),
            }
            for w in component.workloads
        ],
    }


def _proxies_json(group: ProxyGroup, desired: str) -> dict[str, Any]:
    return {
        "namespace": group.namespace,
        "version": group.version,
        "current": _current([group.version], desired),
        "image": group.image,
        "pods": group.pods,
        "ready": group.ready,
        "workloads": list(group.workloads),
        **({"revision": group.revision} if group.revision else {}),
    }


def to_json(inventory: Inventory) -> dict[str, Any]:
    desired = inventory.desired_version
    return {
        "namespace": inventory.namespace,
        "desiredVersion": desired or None,
        "clusters": [
            {
                "name": cluster.name,
                "role": cluster.role,
                "reachable": cluster.reachable,
                "error": cluster.error or None,
                "resource": _resource_json(cluster.resource),
                "components": [_component_json(c, desired) for c in cluster.components],
                "dataPlane": [_proxies_json(g, desired) for g in cluster.data_plane],
                "dataPlaneError": cluster.data_plane_error or None,
            }
            for cluster in inventory.clusters
        ],
    }


def columns(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Rows aligned under their headers, two spaces apart, no trailing blanks."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    return [
        (
            indent
            + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        ).rstrip()
        for row in [headers, *rows]
    ]


def _version_cell(versions: Sequence[str], desired: str) -> str:
    text = ",".join(versions) or "-"
    return text if _current(versions, desired) in (True, None) else f"{text} (want {desired})"


def _short_image(image: str) -> str:
    return image.rsplit("/", 1)[-1]


def _resource_line(resource: ResourceState) -> str:
    state = resource.status or "no status yet"
    parts = [f"{resource.kind} {resource.namespace}/{resource.name}: {state}"]
    if resource.version:
        parts.append(f"version {resource.version}")
    if resource.kind == "Istio" and resource.desired_version:
        parts.append(f"spec.version {resource.desired_version}")
    if resource.generation and resource.observed_generation < resource.generation:
        parts.append(
            f"status is of generation {resource.observed_generation}, not {resource.generation}"
        )
    return ", ".join(parts)


def _cluster_lines(cluster: ClusterInventory, desired: str) -> list[str]:
    title = cluster.name if cluster.role == "primary" else f"{cluster.name} ({cluster.role})"
    lines = [f"CLUSTER {title}"]
    resource = cluster.resource
    if resource is not None:
        lines.append(f"  {_resource_line(resource)}")
        if resource.phase:
            lines.append(
                f"  phase {resource.phase}, waiting for: {'; '.join(resource.waiting_for) or '-'}"
            )
        if resource.message:
            lines.append(f"  error: {resource.message}")
        if resource.remotes:
            remotes = ", ".join(f"{k}={v}" for k, v in sorted(resource.remotes.items()))
            lines.append(f"  remotes: {remotes}")
        lines += _revision_lines(resource)
    if cluster.error:
        lines.append(f"  UNREACHABLE: {cluster.error}")
        return lines
    lines.append("  control plane:")
    if cluster.components:
        rows = [
            [
                component.phase,
                component.state,
                f"{w.kind}/{w.name}",
                f"{w.ready}/{w.total}",
                _version_cell(sorted({image_version(i) for i in w.images}), desired),
                ",".join(_short_image(i) for i in w.images),
            ]
            for component in cluster.components
            for w in component.workloads
        ]
        headers = ["PHASE", "STATE", "WORKLOAD", "READY", "VERSION", "IMAGES"]
        lines += columns(headers, rows, indent="    ")
    else:
        lines.append("    no workloads of the operator")
    lines.append("  data plane (pods with an istio-proxy container):")
    if cluster.data_plane_error:
        lines.append(f"    not readable: {cluster.data_plane_error}")
    elif cluster.data_plane:
        with_revisions = any(g.revision for g in cluster.data_plane)
        rows = [
            [
                g.namespace,
                *([g.revision or "-"] if with_revisions else []),
                _version_cell([g.version], desired),
                f"{g.ready}/{g.pods}",
                ",".join(g.workloads),
            ]
            for g in cluster.data_plane
        ]
        headers = ["NAMESPACE", *(["REVISION"] if with_revisions else []), "PROXY"]
        lines += columns([*headers, "READY PODS", "WORKLOADS"], rows, indent="    ")
    else:
        lines.append("    none")
    return lines


def _revision_lines(resource: ResourceState) -> list[str]:
    """istiod family: each revision, what uses it, where the tags point, the migration."""
    if not resource.revisions:
        return []
    secret = (
        [f"  remote secret on the primary: {resource.remote_secret or 'not yet written'}"]
        if resource.kind == "RemoteIstio"
        else []
    )
    rows = [
        [
            str(r.get("name")),
            str(r.get("version")),
            "yes" if r.get("active") else "no",
            "yes" if r.get("ready") else "no",
            str((r.get("inUse") or {}).get("namespaces", 0)),
            str((r.get("inUse") or {}).get("pods", 0)),
            str(r.get("unusedSince") or "-"),
        ]
        for r in resource.revisions
    ]
    headers = ["REVISION", "VERSION", "ACTIVE", "READY", "NAMESPACES", "PODS", "UNUSED SINCE"]
    lines = [*secret, "  revisions:", *columns(headers, rows, indent="    ")]
    if resource.tags:
        lines.append(
            "  tags: " + ", ".join(f"{t} -> {r}" for t, r in sorted(resource.tags.items()))
        )
    migration = resource.migration
    if migration:
        line = (
            f"  migration to {migration.get('revision')}: {migration.get('state')}, "
            f"{migration.get('migrated', 0)} migrated, {migration.get('remaining', 0)} remaining"
        )
        lines.append(line + (f" ({migration['message']})" if migration.get("message") else ""))
    return lines


def format_table(inventory: Inventory) -> str:
    desired = inventory.desired_version
    lines: list[str] = []
    if inventory.istio is None:
        lines.append(f"no Istio resource in namespace {inventory.namespace}")
        lines.append("")
    for cluster in inventory.clusters:
        lines += _cluster_lines(cluster, desired)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render(inventory: Inventory, output: str, watching: bool = False) -> str:
    if output == "json":
        indent = None if watching else 2  # one JSON document per line while watching
        return json.dumps(to_json(inventory), indent=indent) + "\n"
    return format_table(inventory)


def frame_header(interval: float, *, tty: bool, output: str, now: float | None = None) -> str:
    """What precedes each frame of `--watch`: on a terminal, the screen is cleared and the
    time shown; elsewhere (a pipe, a log) a table frame follows a timestamped separator,
    so that frames can be told apart. JSON frames are one document a line: none."""
    if output != "table":
        return ""
    if tty:
        return (
            CLEAR_SCREEN
            + time.strftime("%H:%M:%S", time.localtime(now))
            + (f"  every {interval:g} s\n\n")
        )
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return f"--- {stamp} ---\n"


# -- running -----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    try:
        return run_until_interrupted(_run(args))
    except KeyboardInterrupt:  # before the event loop took SIGINT over
        return 0
    except BrokenPipeError:  # `status --watch | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def run_until_interrupted(main: Coroutine[Any, Any, int]) -> int:
    """Runs `main` to its end, or until SIGINT (Ctrl-C), which ends the process, with
    status 0, within INTERRUPT_GRACE_S.

    Cancelling `main` is not enough: a cancellation can be lost (on Python 3.11,
    `asyncio.wait_for` swallows one that arrives as its inner task completes, and the
    watch loop goes on), and `asyncio.run` waits for whatever is still in flight (a call
    that ignores cancellation, a DNS lookup in a worker thread), as the interpreter does
    at exit. So the signal only sets an event that a supervisor waits on beside `main`:
    then `main` is cancelled and given the grace to close its clients, and the process
    ends. Nothing is written anywhere, so nothing is left half done."""
    loop = asyncio.new_event_loop()
    try:
        code = loop.run_until_complete(_until_interrupted(main))
        if code is None:
            _end_now()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        return code
    finally:
        loop.close()


async def _until_interrupted(main: Coroutine[Any, Any, int]) -> int | None:
    """`main`'s result, or None once SIGINT has come and `main` had its grace."""
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, interrupted.set)
    work = asyncio.ensure_future(main)
    stop = asyncio.ensure_future(interrupted.wait())
    try:
        await asyncio.wait((work, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        await asyncio.wait((stop,))
    if not interrupted.is_set():
        loop.remove_signal_handler(signal.SIGINT)  # Ctrl-C is KeyboardInterrupt again
        return work.result()
    work.cancel()  # a second Ctrl-C during the grace changes nothing
    await asyncio.wait((work,), timeout=INTERRUPT_GRACE_S)
    return None


def _end_now() -> NoReturn:
    """Exits at once, without waiting for calls still in flight."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(0)


async def _run(args: argparse.Namespace) -> int:
    try:
        async with mesh_clients(args.kubeconfig) as (primary, clients):
            while True:
                started = time.monotonic()
                code = await _once(primary, clients, args)
                if not args.watch:
                    return code
                await asyncio.sleep(max(0.0, args.interval - (time.monotonic() - started)))
    except KubeconfigError as error:
        return report(error)


async def _once(primary: Cluster, clients: RemoteClients, args: argparse.Namespace) -> int:
    try:
        inventory = await gather(primary, args.namespace, clients, per_cluster_s=args.timeout)
    except (ClusterUnreachableError, ApiRefusedError, TimeoutError) as error:
        message = "timed out" if isinstance(error, TimeoutError) else str(error)
        print(f"error: primary cluster: {message}", file=sys.stderr, flush=True)
        return 1
    if inventory.istio is None and (missing := await missing_crds(primary)):
        print(f"error: {crds_missing_message(primary.server, missing)}", file=sys.stderr)
        return 1
    text = render(inventory, args.output, watching=args.watch)
    if args.watch:
        text = frame_header(args.interval, tty=sys.stdout.isatty(), output=args.output) + text
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0
