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
    "completion": "completion",
}
DISTRIBUTION = "istio-operator"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of `command` alone if it is one, else of every command (for `--help`
    and for the message that names them); none for `--version`, which needs none."""
    parser = argparse.ArgumentParser(
        prog="istio-operator",
        description="Install, configure and upgrade Istio control planes across clusters.",
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="print the version")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _modules_needed(command):
        importlib.import_module(f"istio_operator.cli.{COMMANDS[name]}").register(subparsers)
    return parser


class _VersionAction(argparse.Action):
    """`--version`, reading the package metadata only when asked (importing
    `importlib.metadata` costs a tenth of what `render` may take)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"{parser.prog} {package_version()}")
        parser.exit()


def _modules_needed(command: str | None) -> list[str]:
    if command == "--version":
        return []
    return [command] if command in COMMANDS else list(COMMANDS)


def package_version() -> str:
    """The installed package's version (its metadata), or "unknown" when run from a tree
    that was never installed."""
    import importlib.metadata

    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    # The API's models take no pydantic plugin: looking for them, at the first model built,
    # reads the metadata of every installed distribution (a twentieth of `render`'s time).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
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
