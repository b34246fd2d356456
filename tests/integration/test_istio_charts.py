"""The chart catalogue `make istio-charts` builds from the istio.io/istio Go module: the two
stand-in versions, each with Istio's charts and profiles, rendered by the helm the
binaries build includes."""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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
    rendered = helm("template", "istiod", str(chart), "-n", "istio-system")
    kinds = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(rendered) if d}
    assert ("Deployment", "istiod") in kinds
    assert ("MutatingWebhookConfiguration", "istio-sidecar-injector") in kinds


@pytest.fixture
def chart_repository(catalogue: Catalogue, tmp_path: Path) -> Iterator[str]:
    """A Helm chart repository on 127.0.0.1 serving `base`, `istiod` and `gateway` at
    1.30.3 (the newer stand-in's charts, packaged at that version), as Istio publishes
    them; it has no `cni` or `ztunnel`."""
    source = catalogue.get("1.31.1")
    repository = tmp_path / "repository"
    for name in ("base", "istiod", "gateway"):
        helm("package", str(source.chart(name)), "--version", "1.30.3", "-d", str(repository))
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(repository))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    helm("repo", "index", str(repository), "--url", url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()


def helm(*args: str) -> str:
    return subprocess.run(
        [str(default_cache_dir() / "helm"), *args], check=True, capture_output=True, text=True
    ).stdout


def charts_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "istio_operator.cli.main", "charts", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_version_is_added_from_a_chart_repository(chart_repository: str, tmp_path: Path) -> None:
    where = tmp_path / "catalogue"
    added = charts_cli("--catalogue", str(where), "add", "1.30.3", "--repo", chart_repository)
    assert added.returncode == 0, added.stderr
    version = Catalogue(where).get("1.30.3")
    assert version.charts() == ["base", "istiod", "gateway"]
    assert version.source == f"repository {chart_repository}"
    chart = yaml.safe_load((version.chart("istiod") / "Chart.yaml").read_text())
    assert chart["name"] == "istiod" and chart["version"] == "1.30.3"


def test_a_version_the_repository_lacks_is_refused_and_nothing_changes(
    chart_repository: str, tmp_path: Path
) -> None:
    where = tmp_path / "catalogue"
    refused = charts_cli("--catalogue", str(where), "add", "1.29.0", "--repo", chart_repository)
    assert refused.returncode == 1
    assert "has no base chart at 1.29.0" in refused.stderr
    assert Catalogue(where).versions() == []


def rendered(*args: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "istio_operator.cli.main", "render", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def names(documents: list[dict[str, Any]], kind: str) -> set[str]:
    return {str(d["metadata"]["name"]) for d in documents if d["kind"] == kind}


def test_render_of_an_istiod_mesh_with_a_remote(catalogue: Catalogue, tmp_path: Path) -> None:
    """`render` of the istiod sample with a RemoteIstio: the primary gains the east-west
    gateway that exposes istiod to remotes; `--remote` gives the remote profile, whose
    webhooks call the revision's `istiod-<rev>` Service and no istiod runs there."""
    remote = tmp_path / "remote.yaml"
    remote.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "istio.banzaicloud.io/v1beta1",
                "kind": "RemoteIstio",
                "metadata": {"name": "remote-a", "namespace": "istio-system"},
                "spec": {"enabledServices": [], "network": "network2"},
            }
        )
    )
    sample = str(REPO / "config" / "samples" / "istio_v1beta1_istio_istiod.yaml")
    alone = rendered("-f", sample)
    primary = rendered("-f", sample, "-f", str(remote))
    revision = "mesh-1-31-0"
    assert "istio-eastwestgateway" not in names(alone, "Deployment")
    assert {f"istiod-{revision}", "istio-eastwestgateway"} <= names(primary, "Deployment")

    on_remote = rendered("-f", sample, "-f", str(remote), "--remote", "remote-a")
    assert not any(name.startswith("istiod") for name in names(on_remote, "Deployment"))
    (webhook,) = [
        d
        for d in on_remote
        if d["kind"] == "MutatingWebhookConfiguration"
        and d["metadata"]["name"] == f"istio-sidecar-injector-{revision}"
    ]
    services = {w["clientConfig"]["service"]["name"] for w in webhook["webhooks"]}
    assert services == {f"istiod-{revision}"}
    assert f"istiod-{revision}" in names(on_remote, "Service")


def test_the_gateways_follow_the_active_revision(catalogue: Catalogue, tmp_path: Path) -> None:
    """By revision, the ingress gateway's pods are injected by the active revision (its
    template's `istio.io/rev`; the image is `auto`, the injector's): a canary moves them."""
    sample = yaml.safe_load(
        (REPO / "config" / "samples" / "istio_v1beta1_istio_istiod.yaml").read_text()
    )
    for version, revision in (("1.31.0", "mesh-1-31-0"), ("1.31.1", "mesh-1-31-1")):
        sample["spec"]["version"] = version
        path = tmp_path / f"{version}.yaml"
        path.write_text(yaml.safe_dump(sample))
        (gateway,) = [
            d
            for d in rendered("-f", str(path))
            if d["kind"] == "Deployment" and d["metadata"]["name"] == "istio-ingressgateway"
        ]
        template = gateway["spec"]["template"]
        assert template["metadata"]["labels"]["istio.io/rev"] == revision, version
        assert [c["image"] for c in template["spec"]["containers"]] == ["auto"]
