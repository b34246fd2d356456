"""`istio-operator run`: the operator process."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

import kopf
from prometheus_client import start_http_server

from istio_operator.controller.handlers import RunConfig, build_registry
from istio_operator.controller.leader import LeaderElector, election_namespace
from istio_operator.kube.client import config_from_file

# Exit status when leadership is lost: the pod restarts and comes back as a standby.
LOST_LEADERSHIP_EXIT_CODE = 3

logger = logging.getLogger(__name__)


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
    parser.add_argument(
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reconcile only while holding the Lease istio-operator-leader, so that "
        "replicas can stand by (default: on)",
    )
    parser.add_argument(
        "--leader-election-namespace",
        default=None,
        metavar="NS",
        help="namespace of the leader Lease (default: POD_NAMESPACE, else default)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every reconcile step")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL,
    )
    if args.kubeconfig:
        # kopf's own login reads KUBECONFIG; both clients must see the same cluster.
        os.environ["KUBECONFIG"] = str(args.kubeconfig)
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
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # until kopf installs its own
    elector: LeaderElector | None = None
    try:
        if args.leader_election:
            elector = LeaderElector.from_config(
                config_from_file(args.kubeconfig),
                namespace=election_namespace(args.leader_election_namespace, os.environ),
            )
            with _standby_liveness(args.health_port):
                elector.acquire()
            elector.start_renewing(on_lost=_stop_at_once)
        with contextlib.suppress(KeyboardInterrupt):
            kopf.run(
                registry=registry,
                standalone=True,
                clusterwide=not args.namespace,
                namespaces=args.namespace,
                liveness_endpoint=liveness,
            )
        logger.info("operator stopped")
    except KeyboardInterrupt:
        logger.info("stopped while waiting for leadership")
    finally:
        if elector is not None:
            elector.release()
            elector.close()
    return 0


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _stop_at_once(reason: str) -> None:
    """Leadership is lost, or may be: another replica may lead within seconds, so this
    one must not write again. Exit without unwinding (a reconcile in flight must not
    get to its next write); the pod restarts as a standby."""
    logger.critical(f"lost leadership: {reason}; exiting")
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(LOST_LEADERSHIP_EXIT_CODE)


class _StandbyHealth(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        healthy = self.path.split("?")[0] == "/healthz"
        self.send_response(200 if healthy else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        if healthy:
            self.wfile.write(b'{"leader": false}')

    def log_message(self, format: str, *args: object) -> None:
        return


@contextlib.contextmanager
def _standby_liveness(port: int) -> Iterator[None]:
    """/healthz while waiting for leadership, so that a liveness probe does not restart
    a standby; the port is handed to kopf's own endpoint once this replica leads."""
    if not port:
        yield
        return
    server = ThreadingHTTPServer(("0.0.0.0", port), _StandbyHealth)
    thread = threading.Thread(target=server.serve_forever, name="standby-health", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
