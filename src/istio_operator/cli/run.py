"""`istio-operator run`: the operator process."""

from __future__ import annotations

import argparse
import contextlib
import logging

import kopf
from prometheus_client import start_http_server

from istio_operator.controller.handlers import RunConfig, build_registry


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("run", help="run the operator (KUBECONFIG or in-cluster)")
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch Istio resources in this namespace (repeatable; default: all namespaces)",
    )
    parser.add_argument("--kubeconfig", default=None, help="default: KUBECONFIG, else in-cluster")
    parser.add_argument(
        "--resync-period",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="reconcile every resource at least this often (default 300)",
    )
    parser.add_argument(
        "--phase-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long one reconcile waits for a rollout phase before requeueing (default 60)",
    )
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--metrics-port", type=int, default=8080, help="Prometheus /metrics (0 disables)"
    )
    parser.add_argument(
        "--health-port", type=int, default=8081, help="liveness at /healthz (0 disables)"
    )
    parser.add_argument("--verbose", action="store_true", help="log every reconcile step")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL,
    )
    # One line per HTTP request is noise; the operator logs what it changes.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    if args.metrics_port:
        start_http_server(args.metrics_port)
    registry = build_registry(
        RunConfig(
            kubeconfig=args.kubeconfig,
            resync_period=args.resync_period,
            phase_timeout=args.phase_timeout,
        )
    )
    liveness = f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None
    with contextlib.suppress(KeyboardInterrupt):
        kopf.run(
            registry=registry,
            standalone=True,
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            liveness_endpoint=liveness,
        )
    logging.getLogger(__name__).info("operator stopped")
    return 0
