"""Entry point of the `istio-operator` command.

Each subcommand lives in its own module under `istio_operator.cli` and exposes
`register(subparsers)`, which adds its parser and sets `handler`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Subcommand modules, in the order `--help` lists them.
COMMANDS: tuple[str, ...] = (
    "run",
    "render",
    "crds",
    "docs",
    "charts",
    "status",
    "dataplane",
    "remote_access",
    "demo",
    "localcluster",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="istio-operator",
        description="Install, configure and upgrade Istio control planes across clusters.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"istio_operator.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
