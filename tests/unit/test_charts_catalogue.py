"""The chart catalogue (`istio_operator.charts`) on directories made here: which versions
it lists, what it refuses to add, and what a caller learns when a version is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from istio_operator.charts import CHARTS, Catalogue, CatalogueError, default_catalogue_dir


def manifests(root: Path, charts: tuple[str, ...] = tuple(CHARTS)) -> Path:
    """A directory laid out as Istio's `manifests` package, with these charts."""
    for name in charts:
        chart = root / "charts" / CHARTS[name]
        chart.mkdir(parents=True)
        (chart / "Chart.yaml").write_text(f"name: {name}\nversion: 1.0.0\n")
    (root / "profiles").mkdir(parents=True)
    for profile in ("default", "remote"):
        (root / "profiles" / f"{profile}.yaml").write_text("spec: {}\n")
    return root


def test_versions_are_listed_oldest_first_and_partial_ones_not(tmp_path: Path) -> None:
    catalogue = Catalogue(tmp_path / "catalogue")
    for version in ("1.31.1", "1.9.0", "1.31.0"):
        manifests(catalogue.root / version)
    manifests(catalogue.root / "1.32.0.partial")  # being written
    manifests(catalogue.root / "1.32.0", charts=("base",))  # no istiod chart
    assert [v.version for v in catalogue.versions()] == ["1.9.0", "1.31.0", "1.31.1"]


def test_a_version_knows_its_charts_profiles_and_source(tmp_path: Path) -> None:
    catalogue = Catalogue(tmp_path)
    root = manifests(tmp_path / "1.31.0", charts=("base", "istiod", "gateway"))
    (root / "SOURCE").write_text("istio.io/istio v0.0.0-x\n")
    version = catalogue.get("1.31.0")
    assert version.charts() == ["base", "istiod", "gateway"]
    assert version.profiles() == ["default", "remote"]
    assert version.source == "istio.io/istio v0.0.0-x"
    assert version.chart("istiod") == root / "charts" / "istio-control" / "istio-discovery"
    with pytest.raises(CatalogueError, match="no ztunnel chart"):
        version.chart("ztunnel")


def test_a_missing_version_names_those_there_are(tmp_path: Path) -> None:
    catalogue = Catalogue(tmp_path)
    with pytest.raises(CatalogueError, match=r"none \(run `make istio-charts`\)"):
        catalogue.get("1.31.0")
    manifests(tmp_path / "1.31.0")
    with pytest.raises(CatalogueError, match=r"1\.30\.3 is not in .* it holds: 1\.31\.0"):
        catalogue.get("1.30.3")


def test_a_directory_is_added_as_a_version(tmp_path: Path) -> None:
    catalogue = Catalogue(tmp_path / "catalogue")
    added = catalogue.add_directory("1.30.3", manifests(tmp_path / "elsewhere"))
    assert catalogue.get("1.30.3") == added
    assert added.source.startswith("directory ")


@pytest.mark.parametrize(
    ("version", "charts", "message"),
    [
        ("v1.30.3", tuple(CHARTS), "is not a version"),
        ("1.30.3", ("base",), "lacks charts/istio-control/istio-discovery"),
    ],
)
def test_what_is_no_version_is_refused_and_nothing_changes(
    tmp_path: Path, version: str, charts: tuple[str, ...], message: str
) -> None:
    catalogue = Catalogue(tmp_path / "catalogue")
    with pytest.raises(CatalogueError, match=message):
        catalogue.add_directory(version, manifests(tmp_path / "source", charts=charts))
    assert catalogue.versions() == []


def test_the_environment_names_another_catalogue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ISTIO_OPERATOR_CHARTS_DIR", str(tmp_path))
    assert default_catalogue_dir() == tmp_path
    monkeypatch.delenv("ISTIO_OPERATOR_CHARTS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_catalogue_dir() == tmp_path / "cache" / "istio-operator" / "istio-charts"
