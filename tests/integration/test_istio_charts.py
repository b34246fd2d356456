"""The chart catalogue `make istio-charts` builds from the istio.io/istio Go module: the two
stand-in versions, each with Istio's charts and profiles, rendered by the helm the
binaries build includes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from istio_operator.charts import Catalogue
from istio_operator.localcluster.binaries import default_cache_dir

REPO = Path(__file__).resolve().parents[2]
# The stand-ins and the module files that pin them (see tools/build-istio-charts.sh).
STAND_INS = {"1.31.0": "1.31.0.mod", "1.31.1": "go.mod"}


def pinned(modfile: str) -> str:
    """The istio.io/istio version a module file of tools/istio-charts requires."""
    text = (REPO / "tools" / "istio-charts" / modfile).read_text()
    (line,) = [line for line in text.splitlines() if line.startswith("require istio.io/istio ")]
    return line.split()[-1]


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    found = Catalogue.default()
    missing = set(STAND_INS) - {v.version for v in found.versions()}
    assert not missing, f"{sorted(missing)} not in {found.root}: run `make istio-charts`"
    return found


@pytest.mark.parametrize("version", sorted(STAND_INS))
def test_each_stand_in_holds_istios_charts_from_its_pinned_module(
    catalogue: Catalogue, version: str
) -> None:
    found = catalogue.get(version)
    assert found.source == f"istio.io/istio {pinned(STAND_INS[version])}"
    assert found.charts() == ["base", "istiod", "gateway", "cni", "ztunnel"]
    assert {"default", "minimal", "remote", "ambient"} <= set(found.profiles())


def test_the_two_stand_ins_are_different_snapshots(catalogue: Catalogue) -> None:
    older, newer = (catalogue.get(v) for v in ("1.31.0", "1.31.1"))
    assert older.source != newer.source


@pytest.mark.parametrize("version", sorted(STAND_INS))
def test_helm_renders_istiod_from_the_catalogue(catalogue: Catalogue, version: str) -> None:
    chart = catalogue.get(version).chart("istiod")
    rendered = subprocess.run(
        [str(default_cache_dir() / "helm"), "template", "istiod", str(chart), "-n", "istio-system"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    kinds = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(rendered) if d}
    assert ("Deployment", "istiod") in kinds
    assert ("MutatingWebhookConfiguration", "istio-sidecar-injector") in kinds
