"""`istio-operator charts`: the catalogue of Istio's own charts for istiod-era versions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from istio_operator.charts import Catalogue, CatalogueError, default_catalogue_dir


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "charts",
        help="list or add versions of Istio's charts (istiod-era Istio)",
        description="The chart catalogue: for each istiod-era Istio version, Istio's own Helm "
        "charts and profiles. `make istio-charts` fills it from the istio.io/istio Go module; "
        f"$ISTIO_OPERATOR_CHARTS_DIR names another one (default: {default_catalogue_dir()}).",
    )
    parser.add_argument("--catalogue", type=Path, help="the catalogue directory")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="list the versions, their charts and profiles")
    add = actions.add_parser(
        "add", help="add a version from a directory laid out as Istio's manifests"
    )
    add.add_argument("version", help="the version it is registered as, e.g. 1.30.3")
    add.add_argument(
        "--dir", type=Path, required=True, help="a directory holding charts/ and profiles/"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    catalogue = Catalogue(args.catalogue or default_catalogue_dir())
    try:
        if args.action == "add":
            added = catalogue.add_directory(args.version, args.dir)
            print(f"added Istio {added.version}: {', '.join(added.charts())} in {added.root}")
            return 0
    except CatalogueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    versions = catalogue.versions()
    if not versions:
        print(f"no versions in {catalogue.root} (run `make istio-charts`)", file=sys.stderr)
        return 1
    for found in versions:
        print(f"{found.version}\t{found.source}")
        print(f"  charts: {', '.join(found.charts())}; profiles: {', '.join(found.profiles())}")
    return 0
