"""`istio-operator crds`: the CustomResourceDefinitions this operator serves."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from istio_operator.api.crd import crd_filename, generate_crds, to_yaml


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "crds",
        help="print the Istio and RemoteIstio CRDs",
        description="Print the Istio and RemoteIstio CustomResourceDefinitions as a YAML "
        "stream, or write one file per CRD.",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="write <group>_<plural>.yaml files into DIR instead of printing",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    crds = generate_crds()
    output_dir: Path | None = args.output_dir
    if output_dir is None:
        sys.stdout.write("---\n".join(to_yaml(crd) for crd in crds))
        return 0
    output_dir.mkdir(parents=True, exist_ok=True)
    for crd in crds:
        path = output_dir / crd_filename(crd)
        path.write_text(to_yaml(crd), encoding="utf-8")
        print(path)
    return 0
