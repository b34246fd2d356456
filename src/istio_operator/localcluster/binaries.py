"""Where the Kubernetes binaries of the local clusters are found.

Resolution order, following envtest's convention:
1. ``TEST_ASSET_<NAME>`` for one binary (``TEST_ASSET_KUBE_APISERVER``, ...);
2. ``KUBEBUILDER_ASSETS``, a directory of ready binaries;
3. the cache that ``make k8s-binaries`` fills (``ISTIO_OPERATOR_K8S_BIN_DIR`` overrides it).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

KUBE_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"

BINARY_NAMES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "kwokctl",
)
# kwok's node and pod stages, extracted from its module by the build.
DEFAULT_STAGES_FILE = "kwok-default-stages.yaml"


class BinariesMissingError(RuntimeError):
    """Raised when a binary the local clusters need cannot be found."""


def default_cache_dir() -> Path:
    override = os.environ.get("ISTIO_OPERATOR_K8S_BIN_DIR")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    tag = f"kube-{KUBE_VERSION}_etcd-{ETCD_VERSION}_kwok-{KWOK_VERSION}"
    return cache / "istio-operator" / "k8s-bin" / tag


def _asset_variable(name: str) -> str:
    return "TEST_ASSET_" + re.sub(r"[^A-Z0-9]+", "_", name.upper())


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of every binary a local cluster runs."""

    paths: dict[str, Path]
    stages_file: Path

    def __getitem__(self, name: str) -> Path:
        return self.paths[name]

    @property
    def directory_of_kubectl(self) -> Path:
        return self.paths["kubectl"].parent


def _locate(name: str, directories: list[Path]) -> Path | None:
    explicit = os.environ.get(_asset_variable(name))
    if explicit:
        return Path(explicit)
    for directory in directories:
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def find_binaries() -> Binaries:
    """Finds every binary, or says exactly which are missing and how to get them."""
    directories = []
    if os.environ.get("KUBEBUILDER_ASSETS"):
        directories.append(Path(os.environ["KUBEBUILDER_ASSETS"]))
    directories.append(default_cache_dir())
    found = {name: _locate(name, directories) for name in BINARY_NAMES}
    missing = sorted(name for name, path in found.items() if path is None)
    stages = next(
        (d / DEFAULT_STAGES_FILE for d in directories if (d / DEFAULT_STAGES_FILE).is_file()),
        None,
    )
    if stages is None:
        missing.append(DEFAULT_STAGES_FILE)
    if missing or stages is None:
        searched = ", ".join(str(d) for d in directories)
        raise BinariesMissingError(
            f"missing {', '.join(missing)} (searched {searched}); "
            "run `make k8s-binaries` to build them from Go modules"
        )
    return Binaries(
        paths={name: path.resolve() for name, path in found.items() if path is not None},
        stages_file=stages.resolve(),
    )
