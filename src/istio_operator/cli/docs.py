"""`istio-operator docs`: the configuration reference, generated from the models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from istio_operator.plan.docs import configuration_reference


def reference() -> str:
    """`docs/configuration.md`: the configuration reference."""
    return configuration_reference()


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "docs",
        help="print the configuration reference (Markdown)",
        description="Print the configuration reference of the Istio and RemoteIstio specs "
        "(every field, its type, default and meaning) as Markdown.",
    )
    parser.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="write the reference to FILE instead of printing it",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    text = reference()
    output: Path | None = args.output
    if output is None:
        sys.stdout.write(text)
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    print(output)
    return 0
