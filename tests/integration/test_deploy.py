"""The install manifests as a real API server sees them: `helm lint`, then the chart's
and deploy/base's objects through server-side dry-run apply."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client
from lightkube.codecs import load_all_yaml
from lightkube.core.resource import NamespacedResource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from istio_operator.localcluster.binaries import find_binaries
from tests.operator_harness import meta, name_of

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).parent.parent.parent
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "charts" / "istio-operator"
HELM_NAMESPACE = "istio-operator-chart"


def tool(name: str) -> Path:
    """helm and kubectl live next to the local clusters' kube-apiserver."""
    explicit = os.environ.get(f"TEST_ASSET_{name.upper()}")
    path = Path(explicit) if explicit else find_binaries()["kube-apiserver"].parent / name
    if not path.is_file():
        pytest.skip(f"{path} is missing: run `make k8s-binaries`")
    return path


def run(*args: str | Path) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def helm_template_command(*values: str) -> list[str]:
    flags = [f for value in values for f in ("--set", value)]
    return [
        str(tool("helm")),
        "template",
        "operator",
        str(CHART),
        "--namespace",
        HELM_NAMESPACE,
        "--include-crds",
        *flags,
    ]


def helm_template(*values: str) -> str:
    return run(*helm_template_command(*values))


def kustomize(directory: Path) -> str:
    return run(tool("kubectl"), "kustomize", directory)


def dry_run_apply(client: Client, stream: str) -> list[str]:
    """CRDs and namespaces for real (the rest refers to them), everything else dry-run."""
    objects = load_all_yaml(stream)
    first = [o for o in objects if o.kind in ("CustomResourceDefinition", "Namespace")]
    applied = []
    for obj in first + [o for o in objects if o not in first]:
        real = obj in first
        namespace = HELM_NAMESPACE if isinstance(obj, NamespacedResource) else None
        namespace = meta(obj).namespace or namespace
        # lightkube's overloads leave out `namespace`, which its apply() takes and documents.
        client.apply(obj, namespace=namespace, dry_run=not real, force=True)  # type: ignore[call-overload]
        applied.append(f"{obj.kind}/{name_of(obj)}")
    return applied


def cluster_role_rules(stream: str) -> list[dict[str, Any]]:
    (role,) = [d for d in yaml.safe_load_all(stream) if d and d["kind"] == "ClusterRole"]
    return list(role["rules"])


def test_helm_lint_passes() -> None:
    run(tool("helm"), "lint", "--strict", CHART)


def test_chart_is_accepted_by_the_api_server(primary: Client) -> None:
    primary.apply(Namespace(metadata=ObjectMeta(name=HELM_NAMESPACE)))
    applied = dry_run_apply(primary, helm_template())
    assert "Deployment/operator-istio-operator" in applied
    assert "ClusterRole/operator-istio-operator" in applied


def test_base_is_accepted_by_the_api_server(primary: Client) -> None:
    applied = dry_run_apply(primary, kustomize(DEPLOY / "base"))
    assert "Deployment/istio-operator" in applied
    assert "Namespace/istio-operator" in applied


def test_remote_identity_is_accepted_by_the_api_server(primary: Client) -> None:
    applied = dry_run_apply(primary, kustomize(DEPLOY / "remote"))
    assert "ClusterRole/istio-operator-remote" in applied


def test_chart_and_base_grant_the_same_rules() -> None:
    assert cluster_role_rules(helm_template()) == cluster_role_rules(kustomize(DEPLOY / "base"))


def test_chart_values_shape_the_command_line() -> None:
    stream = helm_template(
        "watchNamespaces={istio-system,mesh}",
        "leaderElection.enabled=false",
        "metrics.port=0",
        "logFormat=text",
        "image.tag=1.2.3",
        "replicas=1",
        "phaseTimeout=30",
        "remoteConcurrency=8",
        "verbose=true",
    )
    objects = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(stream) if d}
    deployment = objects["Deployment", "operator-istio-operator"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "istio-operator:1.2.3"
    assert container["args"] == [
        "--log-format=text",
        "--resync-period=300",
        "--phase-timeout=30",
        "--remote-concurrency=8",
        "--metrics-port=0",
        "--health-port=8081",
        "--no-leader-election",
        "--namespace=istio-system",
        "--namespace=mesh",
        "--verbose",
    ]
    # A new pod without election is refused while the old one holds the Lease.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    kinds = {kind for kind, _ in objects}
    assert not kinds & {"Service", "PodDisruptionBudget"}
    # Without election the operator still holds the Lease, so it needs the Role for it.
    assert ("Role", "operator-istio-operator-leader-election") in objects


def test_chart_refuses_replicas_without_leader_election() -> None:
    done = subprocess.run(
        helm_template_command("leaderElection.enabled=false", "replicas=2"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0, done.stdout
    assert "replicas=2 needs leaderElection.enabled=true" in done.stderr, done.stderr


def test_chart_rolls_an_elected_deployment_by_rolling_update() -> None:
    stream = helm_template("replicas=1")
    (deployment,) = [d for d in yaml.safe_load_all(stream) if d and d["kind"] == "Deployment"]
    assert "strategy" not in deployment["spec"]  # the standby takes over: no downtime
