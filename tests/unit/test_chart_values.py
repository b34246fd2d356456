"""The Helm chart: a value for every `istio-operator run` flag, passed as that flag, and a
values schema that refuses what cannot work before anything is installed."""

from __future__ import annotations

import argparse
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from istio_operator.cli import run as run_command
from istio_operator.localcluster.binaries import default_cache_dir

CHART = Path(__file__).parent.parent.parent / "deploy" / "charts" / "istio-operator"
HELM = Path(os.environ.get("HELM") or default_cache_dir() / "helm")
needs_helm = pytest.mark.skipif(not HELM.is_file(), reason=f"no helm at {HELM}")

# Each flag of `istio-operator run`, the value that sets it and a setting that shows it.
FLAG_VALUES: dict[str, tuple[str, str, str]] = {
    "--namespace": ("watchNamespaces", "watchNamespaces={a,b}", "--namespace=b"),
    "--kubeconfig": ("kubeconfigSecret", "kubeconfigSecret=kc", "--kubeconfig="),
    "--resync-period": ("resyncPeriod", "resyncPeriod=30", "--resync-period=30"),
    "--phase-timeout": ("phaseTimeout", "phaseTimeout=5", "--phase-timeout=5"),
    "--remote-concurrency": (
        "remoteConcurrency",
        "remoteConcurrency=8",
        "--remote-concurrency=8",
    ),
    "--log-format": ("logFormat", "logFormat=text", "--log-format=text"),
    "--metrics-port": ("metrics.port", "metrics.port=9090", "--metrics-port=9090"),
    "--health-port": ("health.port", "health.port=9091", "--health-port=9091"),
    "--leader-election": (
        "leaderElection.enabled",
        "leaderElection.enabled=false,replicas=1",
        "--no-leader-election",
    ),
    "--leader-election-namespace": (
        "leaderElection.namespace",
        "leaderElection.namespace=ops",
        "--leader-election-namespace=ops",
    ),
    "--verbose": ("verbose", "verbose=true", "--verbose"),
}


def run_flags() -> set[str]:
    parser = argparse.ArgumentParser()
    run_command.register(parser.add_subparsers())
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    flags: set[str] = set()
    for action in subparsers.choices["run"]._actions:
        flags.update(o for o in action.option_strings if o.startswith("--") and o != "--help")
    return {f for f in flags if not f.startswith("--no-")}


def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


def lookup(data: dict[str, Any], path: str) -> Iterator[Any]:
    node: Any = data
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return
        node = node[key]
    yield node


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, check=False, timeout=60
    )


def operator_args(*settings: str) -> list[str]:
    result = helm("template", "t", str(CHART), *(a for s in settings for a in ("--set", s)))
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "Deployment"]
    (deployment,) = docs
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args: list[str] = container["args"]
    return args


def test_every_run_flag_has_a_chart_value() -> None:
    assert sorted(run_flags() - set(FLAG_VALUES)) == []
    assert sorted(set(FLAG_VALUES) - run_flags()) == []
    missing = [v for v, _, _ in FLAG_VALUES.values() if not list(lookup(values(), v))]
    assert missing == []


@needs_helm
@pytest.mark.parametrize("flag", sorted(FLAG_VALUES))
def test_the_value_is_passed_as_its_flag(flag: str) -> None:
    _, setting, shown = FLAG_VALUES[flag]
    assert any(a.startswith(shown) for a in operator_args(setting)), flag


@needs_helm
def test_the_chart_lints_with_its_schema() -> None:
    assert (CHART / "values.schema.json").is_file()
    result = helm("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_helm
@pytest.mark.parametrize(
    "setting",
    [
        "logFormat=xml",
        "replicas=0",
        "metrics.port=70000",
        "health.port=0",
        "image.pullPolicy=Sometimes",
        "watchNamespaces={Bad_Name}",
        "resyncPeriod=0",
        "unknownValue=1",
        "leaderElection.enabled=maybe",
    ],
)
def test_a_bad_value_is_refused(setting: str) -> None:
    result = helm("template", "t", str(CHART), "--set", setting)
    assert result.returncode != 0, setting
    assert "values don't meet the specifications of the schema" in result.stderr or (
        "at '/" in result.stderr
    ), result.stderr
