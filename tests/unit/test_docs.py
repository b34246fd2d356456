"""The generated configuration reference: complete, true to the models, committed."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from istio_operator.api.crd import describe, structural_schema
from istio_operator.api.istio import FIELD_DOCS, SUFFIX_DOCS, IstioSpec
from istio_operator.api.remoteistio import REMOTE_FIELD_DOCS, RemoteIstioSpec
from istio_operator.cli import docs as docs_command
from istio_operator.cli.main import COMMANDS
from istio_operator.plan.docs import (
    REMOTE_DEFAULT_NOTES,
    REMOTE_USED,
    declared,
    fields,
)

ROOT = Path(__file__).parent.parent.parent
REFERENCE = ROOT / "docs" / "configuration.md"
ISTIO_PATHS = [f.path for f in fields(structural_schema(IstioSpec))]
REMOTE_PATHS = [f.path for f in fields(structural_schema(RemoteIstioSpec))]


def test_committed_reference_is_up_to_date() -> None:
    assert REFERENCE.is_file(), f"{REFERENCE} is missing: run `make docs`"
    assert REFERENCE.read_text() == docs_command.reference(), (
        f"{REFERENCE} is stale: run `make docs`"
    )


def test_every_field_has_a_description() -> None:
    assert [p for p in ISTIO_PATHS if not describe(p)] == []
    assert [p for p in REMOTE_PATHS if not describe(p, remote=True)] == []


def test_every_description_names_a_field() -> None:
    assert sorted(set(FIELD_DOCS) - set(ISTIO_PATHS)) == []
    assert sorted(set(REMOTE_FIELD_DOCS) - set(REMOTE_PATHS)) == []
    suffixes = {".".join(p.split(".")[i:]) for p in ISTIO_PATHS for i in range(len(p.split(".")))}
    assert sorted(set(SUFFIX_DOCS) - suffixes) == []


def test_the_remote_tables_name_remote_fields() -> None:
    assert sorted(REMOTE_USED - set(REMOTE_PATHS)) == []
    assert sorted(set(REMOTE_DEFAULT_NOTES) - REMOTE_USED) == []


def test_the_defaults_are_the_plans_declarations() -> None:
    """Every leaf field the plan declares is found from its spec path, and a derived
    default names its rule: the reference cannot drift from what the plan resolves."""
    leaves = [
        f.path for f in fields(structural_schema(IstioSpec)) if not (f.is_object or f.required)
    ]
    found = {path: declared(path) for path in leaves}
    assert len([p for p, f in found.items() if f is not None]) > 150
    derived = [p for p, f in found.items() if f is not None and "rule" in f.metadata]
    assert "pilot.image" in derived and "policy.replicaCount" in derived


@pytest.mark.parametrize(
    ("needle"),
    [
        "| `version` | string | **required** |",
        '| `serviceType` | one of `ClusterIP`, `NodePort`, `LoadBalancer` | `"LoadBalancer"` |',
        '| `image` | string | `"docker.io/istio/pilot:<version>"` |',
        "| `replicaCount` | integer ≥ 0 | as `mixer.replicaCount`: `1` |",
        '| `address` | string | `"zipkin.<namespace>:9411"` |',
        "| `dnsRefreshRate` | string matching `^[0-9]{1,5}s$` |",
        "| `caSecretName` | string | the primary's CA, copied | yes |",
        "| `replicaCount` | integer ≥ 0 | `1` | yes |",
    ],
)
def test_reference_rows(needle: str) -> None:
    assert needle in docs_command.reference()


def test_docs_is_a_registered_command() -> None:
    assert "docs" in COMMANDS


def test_cli_prints_or_writes_the_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    docs_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["docs"])
    assert args.handler(args) == 0
    assert capsys.readouterr().out == docs_command.reference()
    out = tmp_path / "docs" / "configuration.md"
    args = parser.parse_args(["docs", "--output", str(out)])
    assert args.handler(args) == 0
    assert out.read_text() == docs_command.reference()
