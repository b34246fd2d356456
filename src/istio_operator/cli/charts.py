"""`istio-operator charts`: the catalogue of Istio's own charts for istiod-era versions."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from istio_operator.charts import Catalogue, CatalogueError, default_catalogue_dir
from istio_operator.localcluster.binaries import default_cache_dir


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
    actions.add_parser(
        "list",
        help="list the versions, their charts and profiles",
        description="List each version the catalogue holds, with its charts, its profiles "
        "and where it came from.",
    )
    add = actions.add_parser(
        "add",
        help="add a version from a Helm chart repository or a directory",
        description="Add a version: pulled from a Helm chart repository (--repo, as Istio "
        "publishes its charts: base, istiod, gateway, cni, ztunnel) or copied from a "
        "directory laid out as Istio's manifests (--dir: charts/, profiles/).",
    )
    add.add_argument("version", help="the version, e.g. 1.30.3")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--repo", metavar="URL", help="a Helm chart repository")
    source.add_argument("--dir", type=Path, help="a directory holding charts/ and profiles/")
    add.add_argument(
        "--helm",
        type=Path,
        default=Path(os.environ.get("HELM") or default_cache_dir() / "helm"),
        help="the helm binary (default: $HELM, else the one `make k8s-binaries` builds)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    catalogue = Catalogue(args.catalogue or default_catalogue_dir())
    try:
        if args.action == "add":
            if args.repo:
                added = catalogue.add_repository(args.version, args.repo, args.helm)
            else:
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
