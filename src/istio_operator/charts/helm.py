"""`helm template`: the one place a chart becomes objects (no cluster, no release)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HELM_ENV = "HELM"


class HelmError(RuntimeError):
    """helm is missing, or refused to render a chart with the values given."""


def helm_binary() -> Path:
    """$HELM, else `helm` on the PATH (the CLI points $HELM at the one the binaries build
    makes when it exists)."""
    if found := os.environ.get(HELM_ENV):
        return Path(found)
    if on_path := shutil.which("helm"):
        return Path(on_path)
    raise HelmError("helm not found: set $HELM, or put helm on the PATH (`make k8s-binaries`)")


@functools.lru_cache(maxsize=64)
def template(chart: Path, release: str, namespace: str, values_json: str, helm: Path) -> str:
    """The YAML `helm template` renders; the same inputs give the same text, so a pass that
    renders what the previous one did runs no helm at all."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="values-") as values:
        values.write(values_json)
        values.flush()
        command = [str(helm), "template", release, str(chart), "-n", namespace, "-f", values.name]
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False)
        except OSError as error:
            raise HelmError(f"cannot run helm ({helm}): {error}") from error
    if done.returncode != 0:
        raise HelmError(f"helm template {chart.name}: {done.stderr.strip()}")
    return done.stdout
