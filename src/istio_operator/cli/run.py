"""`istio-operator run`: the operator process."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from prometheus_client import start_http_server

from istio_operator.cli.clusters import crd_keys, crds_missing_message
from istio_operator.controller.handlers import RunConfig
from istio_operator.controller.leader import (
    LeaderElector,
    LeaseHeldError,
    LeaseUnavailableError,
    election_namespace,
)
from istio_operator.controller.runner import configure_logging, run_operator
from istio_operator.controller.workers import REMOTE_CONCURRENCY
from istio_operator.kube.blocking import BlockingClient
from istio_operator.kube.client import ApiRefusedError, ClusterUnreachableError, KubeconfigError

# Exit status when leadership is lost: the pod restarts and comes back as a standby.
LOST_LEADERSHIP_EXIT_CODE = 3
# Exit status when the operator refuses to start (a port in use, another operator active).
REFUSED_EXIT_CODE = 1

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the operator (KUBECONFIG or in-cluster)",
        description="Run the operator against the cluster of --kubeconfig (else KUBECONFIG, "
        "else the in-cluster service account): reconcile every Istio and RemoteIstio "
        "resource of the watched namespaces until SIGTERM or Ctrl-C, serving Prometheus "
        "metrics and a liveness endpoint. It refuses to start, in one line and with exit "
        "status 1, without a cluster, without the Istio CRDs, on an occupied port, or while "
        "another operator leads with --no-leader-election.",
    )
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
    parser.add_argument(
        "--remote-concurrency",
        type=_positive,
        default=REMOTE_CONCURRENCY,
        metavar="N",
        help=f"reconcile at most N remote clusters at once (default {REMOTE_CONCURRENCY}); "
        "the others wait for a slot",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text lines (default) or one JSON object a line",
    )
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
        help="reconcile only while holding the Lease istio-operator-leader, waiting for it "
        "as a standby (default: on); with --no-leader-election the Lease is still held, but "
        "taken at once or refused: the operator exits if another one holds it",
    )
    parser.add_argument(
        "--leader-election-namespace",
        default=None,
        metavar="NS",
        help="namespace of the leader Lease (default: POD_NAMESPACE, else default)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every reconcile step")
    parser.set_defaults(handler=run)


class PortError(RuntimeError):
    """A port the operator serves on cannot be listened on (often: another local `run`)."""


class NoClusterError(RuntimeError):
    """No cluster to serve: no kubeconfig, or a cluster without the operator's CRDs."""


_KUBECONFIG_HINT = " (set KUBECONFIG or --kubeconfig, or run in a cluster)"


def _check_crds(client: BlockingClient) -> None:
    """Before the Lease: without its CRDs the operator would only wait, logging warnings.
    A CRD the identity may not read is taken as present (the watch will tell)."""
    missing: list[str] = []
    for key in crd_keys():
        with contextlib.suppress(ApiRefusedError):
            if client.get(key) is None:
                missing.append(key.name)
    if missing:
        raise NoClusterError(crds_missing_message(client.server, missing))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def run(args: argparse.Namespace) -> int:
    configure_logging(verbose=args.verbose, json_lines=args.log_format == "json")
    try:
        # Before the Lease: a process that cannot serve must not take it from others.
        _check_port_free("--health-port", args.health_port)
        _serve_metrics(args.metrics_port)
    except PortError as error:
        return _refuse(error)
    config = RunConfig(
        kubeconfig=args.kubeconfig,
        resync_period=args.resync_period,
        phase_timeout=args.phase_timeout,
        remote_concurrency=args.remote_concurrency,
    )
    liveness = f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # until the operator installs its own
    try:
        elector = LeaderElector.from_kubeconfig(
            args.kubeconfig,
            namespace=election_namespace(args.leader_election_namespace, os.environ),
        )
    except (KubeconfigError, OSError) as error:
        return _refuse(NoClusterError(f"no cluster to run against: {error}{_KUBECONFIG_HINT}"))
    try:
        _check_crds(elector.client)
    except (NoClusterError, ClusterUnreachableError) as error:
        elector.close()
        return _refuse(error)
    try:
        _hold_the_lease(elector, wait=args.leader_election, health_port=args.health_port)
        elector.start_renewing(on_lost=_stop_at_once)
        run_operator(config, namespaces=args.namespace, liveness_endpoint=liveness)
        logger.info("operator stopped")
    except (LeaseHeldError, LeaseUnavailableError, PortError) as error:
        return _refuse(error)
    except KeyboardInterrupt:
        logger.info("stopped while waiting for leadership")
    finally:
        elector.release()
        elector.close()
    return 0


def _hold_the_lease(elector: LeaderElector, *, wait: bool, health_port: int) -> None:
    """Leader election waits for the Lease as a standby; without it the Lease is taken
    at once or refused, so that there is one writer either way."""
    if not wait:
        elector.take_or_refuse()
        return
    with _standby_liveness(health_port):
        elector.acquire()


def _refuse(error: Exception) -> int:
    print(f"error: {error}", file=sys.stderr, flush=True)
    return REFUSED_EXIT_CODE


def _port_error(flag: str, port: int, error: OSError) -> PortError:
    reason = error.strerror or str(error)
    if error.errno == errno.EADDRINUSE:
        reason += ", perhaps by another istio-operator run"
    return PortError(f"{flag} {port}: {reason}; choose another port, or {flag} 0 to disable it")


def _check_port_free(flag: str, port: int) -> None:
    """Binds and releases the port as the servers will (all addresses, SO_REUSEADDR), so
    that only a listening socket makes it fail."""
    if not port:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as error:
            raise _port_error(flag, port, error) from None


def _serve_metrics(port: int) -> None:
    if not port:
        return
    try:
        start_http_server(port)
    except OSError as error:
        raise _port_error("--metrics-port", port, error) from None


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
    a standby; the port is handed to the operator's own endpoint once this replica leads."""
    if not port:
        yield
        return
    try:
        server = ThreadingHTTPServer(("0.0.0.0", port), _StandbyHealth)
    except OSError as error:
        raise _port_error("--health-port", port, error) from None
    thread = threading.Thread(target=server.serve_forever, name="standby-health", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
