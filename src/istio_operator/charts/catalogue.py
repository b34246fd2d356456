"""Where the charts of each istiod-era Istio version live, outside the repository.

A catalogue is a directory with one subdirectory per version, each laid out as Istio's
`manifests` package: `charts/<chart>/Chart.yaml` and `profiles/<profile>.yaml`, plus a
`SOURCE` line saying where it came from. `make istio-charts` fills it from the
`istio.io/istio` Go module (tools/build-istio-charts.sh); `istio-operator charts add`
adds a version from a directory. The operator only reads it: where a version's charts
came from does not matter to it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CATALOGUE_ENV = "ISTIO_OPERATOR_CHARTS_DIR"
# The charts the operator installs, by its own name for each: their paths in a version.
CHARTS = {
    "base": "base",
    "istiod": "istio-control/istio-discovery",
    "gateway": "gateway",
    "cni": "istio-cni",
    "ztunnel": "ztunnel",
}
# Their names in Istio's Helm chart repository.
REPOSITORY_NAMES = {
    "base": "base",
    "istiod": "istiod",
    "gateway": "gateway",
    "cni": "cni",
    "ztunnel": "ztunnel",
}
REQUIRED = ("base", "istiod")  # a version without these cannot install anything
SOURCE_FILE = "SOURCE"
VERSION_PATTERN = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CatalogueError(LookupError):
    """A version the catalogue does not hold, or a directory that is no version of it."""


def default_catalogue_dir() -> Path:
    """$ISTIO_OPERATOR_CHARTS_DIR, else the user's cache (where `make istio-charts` writes)."""
    if found := os.environ.get(CATALOGUE_ENV):
        return Path(found)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "istio-operator" / "istio-charts"


@dataclass(frozen=True)
class ChartVersion:
    """One version of the catalogue."""

    version: str
    root: Path

    @property
    def source(self) -> str:
        path = self.root / SOURCE_FILE
        return path.read_text().strip() if path.is_file() else "unknown"

    def chart(self, name: str) -> Path:
        """The directory of one of `CHARTS`."""
        path = self.root / "charts" / CHARTS[name]
        if not (path / "Chart.yaml").is_file():
            raise CatalogueError(f"Istio {self.version} has no {name} chart ({path})")
        return path

    def charts(self) -> list[str]:
        return [n for n, p in CHARTS.items() if (self.root / "charts" / p / "Chart.yaml").is_file()]

    def profiles(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "profiles").glob("*.yaml"))

    def istioctl_profile(self, name: str) -> dict[str, Any] | None:
        """The `spec` of istioctl's profile `name` (an IstioOperator), or None when the
        version carries no such profile (released charts carry none)."""
        path = self.root / "profiles" / f"{name}.yaml"
        if not path.is_file():
            return None
        document = yaml.load(path.read_text(), Loader=_LOADER) or {}
        spec = document.get("spec") if isinstance(document, dict) else None
        return spec if isinstance(spec, dict) else {}

    def chart_profiles(self, chart: str = "istiod") -> list[str]:
        """The profiles a chart takes as its `profile` value (`files/profile-<name>.yaml`)."""
        return sorted(
            p.stem.removeprefix("profile-") for p in self.chart(chart).glob("files/profile-*.yaml")
        )


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("-", 1)[0].split("."))


@dataclass(frozen=True)
class Catalogue:
    root: Path

    @classmethod
    def default(cls) -> Catalogue:
        return cls(default_catalogue_dir())

    def versions(self) -> list[ChartVersion]:
        """The complete versions, oldest first (a partly written one is not listed)."""
        if not self.root.is_dir():
            return []
        found = [
            ChartVersion(d.name, d)
            for d in self.root.iterdir()
            if d.is_dir() and VERSION_PATTERN.match(d.name) and _complete(d)
        ]
        return sorted(found, key=lambda v: version_key(v.version))

    def get(self, version: str) -> ChartVersion:
        for found in self.versions():
            if found.version == version:
                return found
        known = ", ".join(v.version for v in self.versions()) or "none (run `make istio-charts`)"
        raise CatalogueError(
            f"Istio {version} is not in the chart catalogue {self.root}; it holds: {known}"
        )

    def add_directory(self, version: str, source: Path, origin: str | None = None) -> ChartVersion:
        """Copies a directory laid out as Istio's `manifests` (`charts/`, `profiles/`) in
        as `version` (`origin`, for its SOURCE line, defaults to the directory); the
        catalogue is unchanged if it is not one."""
        if not VERSION_PATTERN.match(version):
            raise CatalogueError(f"{version!r} is not a version (like 1.30.3)")
        if not _complete(source):
            missing = [CHARTS[n] for n in REQUIRED if not (source / "charts" / CHARTS[n]).is_dir()]
            raise CatalogueError(f"{source} lacks charts/{', charts/'.join(missing)}")
        target = self.root / version
        partial = self.root / f".{version}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(source, partial)
        (partial / SOURCE_FILE).write_text(f"{origin or f'directory {source.resolve()}'}\n")
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        return ChartVersion(version, target)

    def add_repository(self, version: str, repository: str, helm: Path) -> ChartVersion:
        """Pulls the version's charts from a Helm chart repository (Istio's publishes `base`,
        `istiod`, `gateway`, `cni`, `ztunnel`) with `helm pull`, then adds them as a
        directory would be; the charts the repository lacks, other than `base` and
        `istiod`, are left out. Nothing changes if a required one cannot be pulled."""
        with tempfile.TemporaryDirectory(prefix="istio-charts-") as scratch:
            layout = Path(scratch) / "manifests"
            for name, path in CHARTS.items():
                pulled = _pull(helm, repository, REPOSITORY_NAMES[name], version, Path(scratch))
                if pulled is None:
                    if name in REQUIRED:
                        raise CatalogueError(
                            f"{repository} has no {REPOSITORY_NAMES[name]} chart at {version}"
                        )
                    continue
                (layout / "charts" / path).parent.mkdir(parents=True, exist_ok=True)
                pulled.rename(layout / "charts" / path)
            return self.add_directory(version, layout, f"repository {repository}")


def _pull(helm: Path, repository: str, chart: str, version: str, into: Path) -> Path | None:
    """The chart, unpacked under `into`, or None if the repository does not have it."""
    target = into / "pulled" / chart
    command = [str(helm), "pull", chart, "--repo", repository, "--version", version]
    try:
        done = subprocess.run(
            [*command, "--untar", "--untardir", str(target)],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as error:
        raise CatalogueError(f"cannot run helm ({helm}): {error}; give --helm or $HELM") from error
    if done.returncode != 0:
        if "not found" in done.stderr or "no chart version" in done.stderr:
            return None
        raise CatalogueError(f"helm pull {chart} from {repository}: {done.stderr.strip()}")
    return target / chart


def _complete(directory: Path) -> bool:
    return all((directory / "charts" / CHARTS[n] / "Chart.yaml").is_file() for n in REQUIRED)
