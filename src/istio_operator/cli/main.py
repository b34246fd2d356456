"""Entry point of the `istio-operator` command.

Each subcommand lives in its own module under `istio_operator.cli` and exposes
`register(subparsers)`, which adds its parser and sets `handler`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# Subcommands and their modules, in the order `--help` lists them. Only the module of
# the command given is imported: `render` need not load kopf.
COMMANDS: dict[str, str] = {
    "run": "run",
    "render": "render",
    "plan": "plan",
    "crds": "crds",
    "docs": "docs",
    "charts": "charts",
    "status": "status",
    "dataplane-upgrade": "dataplane",
    "remote-access": "remote_access",
    "demo": "demo",
    "localcluster": "localcluster",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of `command` alone if it is one, else of every command (for `--help`
    and for the message that names them)."""
    parser = argparse.ArgumentParser(
        prog="istio-operator",
        description="Install, configure and upgrade Istio control planes across clusters.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = [command] if command in COMMANDS else list(COMMANDS)
    for name in chosen:
        importlib.import_module(f"istio_operator.cli.{COMMANDS[name]}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(given[0] if given else None)
    args = parser.parse_args(given)
    if args.command is None:
        parser.print_help()
        return 0
    _default_helm()
    result: int = args.handler(args)
    return result


def _default_helm() -> None:
    """$HELM, when unset, names the helm `make k8s-binaries` built, if there is one: the
    istiod family renders Istio's charts with it (`charts.helm_binary`)."""
    if os.environ.get("HELM"):
        return
    from istio_operator.localcluster.binaries import default_cache_dir

    built = default_cache_dir() / "helm"
    if built.is_file():
        os.environ["HELM"] = str(built)


if __name__ == "__main__":
    sys.exit(main())
