"""`istio-operator localcluster up|down|list|stop|start`: local clusters for demos and tests."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from istio_operator.localcluster import LocalClusterError, Workspace
from istio_operator.localcluster.binaries import BinariesMissingError


def default_workdir() -> Path:
    explicit = os.environ.get("ISTIO_OPERATOR_CLUSTERS_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / (
        "istio-operator/clusters"
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "localcluster",
        help="run real local Kubernetes clusters (etcd, apiserver, KWOK nodes)",
        description="Create, list, stop, start and delete real local Kubernetes control "
        "planes (etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK fake "
        "nodes), each bound to 127.0.0.1 with its own kubeconfig file; ~/.kube/config is "
        "never touched.",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="directory holding the clusters (default: $ISTIO_OPERATOR_CLUSTERS_DIR or "
        "~/.cache/istio-operator/clusters)",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser(
        "up",
        help="create and start clusters",
        description="Create and start each cluster named, waiting until its API and nodes "
        "are ready; print its API server and KUBECONFIG.",
    )
    up.add_argument("names", nargs="+", metavar="NAME")
    up.add_argument("--nodes", type=int, default=3, help="fake nodes per cluster (default 3)")
    down = actions.add_parser(
        "down",
        help="stop and delete clusters",
        description="Stop every process of each cluster named (default: all) and remove its files.",
    )
    down.add_argument("names", nargs="*", metavar="NAME", help="default: all")
    actions.add_parser(
        "list",
        help="list clusters and their kubeconfigs",
        description="List the clusters: name, how many components run, API server, kubeconfig.",
    )
    descriptions = {
        "stop": "Stop every component of each cluster named, keeping its files: an outage.",
        "start": "Start again every component of each cluster named, with its state.",
    }
    for action, description in descriptions.items():
        sub = actions.add_parser(
            action, help=f"{action} every component of a cluster", description=description
        )
        sub.add_argument("names", nargs="+", metavar="NAME")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    workspace = Workspace(args.workdir or default_workdir())
    try:
        return _dispatch(workspace, args)
    except (LocalClusterError, BinariesMissingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _dispatch(workspace: Workspace, args: argparse.Namespace) -> int:
    if args.action == "up":
        for name in args.names:
            print(f"starting local cluster {name} ...", file=sys.stderr, flush=True)
            cluster = workspace.create(name, nodes=args.nodes)
            print(f"{name}: ready at {cluster.server}; export KUBECONFIG={cluster.kubeconfig}")
    elif args.action == "down":
        names = args.names or [c.name for c in workspace.list()]
        for name in names:
            workspace.delete(name)
            print(f"{name}: deleted")
    elif args.action == "list":
        for cluster in workspace.list():
            running = cluster.running_components()
            state = "running" if len(running) == 5 else f"{len(running)}/5 components running"
            print(f"{cluster.name}\t{state}\t{cluster.server}\t{cluster.kubeconfig}")
    elif args.action == "stop":
        for name in args.names:
            workspace.stop(name)
    else:
        for name in args.names:
            workspace.start(name)
    return 0
