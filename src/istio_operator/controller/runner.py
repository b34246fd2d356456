"""Running the operator: kopf's logging, and kopf's event loop with the operator's
handlers. `istio-operator run` parses its flags, takes the Lease (`controller.leader`)
and calls these: kopf is used nowhere outside this package."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import cast

import kopf

from istio_operator.controller.handlers import RunConfig, build_registry

# The API server decodes JSON nested up to 10,000 levels (Go's encoding/json limit) and
# stores it in fields that keep unknown fields; kopf decodes every watched object with
# json.loads, which recurses once per level. The spec parser then refuses such a value
# (with a depth bound far below) instead of the whole operator dying on it.
DECODABLE_DEPTH = 25_000

# kopf's text format cuts logger names to 20 characters (`istio_operator.recon`); the
# full name says where a line comes from.
TEXT_FORMAT = "[%(asctime)s] %(name)s [%(levelname)-8s] %(message)s"
# kopf says so for every handler, timer or indexer call that did not fail: one line per
# watch event. A daemon's end (`Daemon '...' succeeded.`) is news and stays.
_SUCCESS = re.compile(r"^(Handler|Activity|Timer|Indexer) '[^']*' succeeded\.$")


class QuietSuccesses(logging.Filter):
    """Drops kopf's "Handler '...' succeeded." lines; failures, retries, warnings and
    errors (which say what went wrong) pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or not record.name.startswith("kopf."):
            return True
        return not _SUCCESS.match(record.getMessage())


def configure_logging(*, verbose: bool, json_lines: bool) -> None:
    """kopf's log format (text with full logger names, or one JSON object a line) and
    verbosity, for every logger; without kopf's line per successful handler call."""
    # kopf takes a format string where it declares its enum (`make_formatter` matches str).
    text = cast(kopf.LogFormat, TEXT_FORMAT)
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.JSON if json_lines else text)
    for handler in logging.getLogger().handlers:
        # On the handler, not kopf's loggers: what kopf posts as Events stays as it is.
        if not any(isinstance(f, QuietSuccesses) for f in handler.filters):
            handler.addFilter(QuietSuccesses())
    # One line per HTTP request is noise; the operator logs what it changes.
    logging.getLogger("httpx2").setLevel(logging.WARNING)


def run_operator(
    config: RunConfig, *, namespaces: Sequence[str], liveness_endpoint: str | None
) -> None:
    """Reconciles the Istio and RemoteIstio resources of `namespaces` (every namespace
    when empty) until the process is told to stop (SIGTERM, Ctrl-C)."""
    if config.kubeconfig:
        # kopf's own login reads KUBECONFIG; both clients must see the same cluster.
        os.environ["KUBECONFIG"] = str(config.kubeconfig)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), DECODABLE_DEPTH))
    with contextlib.suppress(KeyboardInterrupt):
        kopf.run(
            registry=build_registry(config),
            standalone=True,
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            liveness_endpoint=liveness_endpoint,
        )
