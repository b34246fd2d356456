"""The install manifests: the kustomize bases resolve, the chart's CRDs are current, and
nothing the operator deploys for itself looks like something it would prune."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from istio_operator.api.labels import MANAGED_BY, MANAGED_BY_VALUE

ROOT = Path(__file__).parent.parent.parent
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "charts" / "istio-operator"


def kustomize_objects(directory: Path) -> list[dict[str, Any]]:
    """Every object a kustomization lists, following directory resources (no patches)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    objects: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        assert path.exists(), f"{directory}/kustomization.yaml lists missing {entry}"
        if path.is_dir():
            objects += kustomize_objects(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_crds_kustomization_lists_every_crd_file() -> None:
    kustomization = yaml.safe_load((DEPLOY / "crds" / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in (DEPLOY / "crds").glob("*.yaml") if p.name != "kustomization.yaml"
    )


def test_base_holds_the_operator_and_its_crds() -> None:
    objects = kustomize_objects(DEPLOY / "base")
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        [
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Service",
        ]
    )
    names = {o["metadata"]["name"] for o in by_kind(objects, "CustomResourceDefinition")}
    assert names == {"istios.istio.banzaicloud.io", "remoteistios.istio.banzaicloud.io"}


def test_bindings_name_the_service_account() -> None:
    objects = kustomize_objects(DEPLOY / "base")
    (account,) = by_kind(objects, "ServiceAccount")
    (namespace,) = by_kind(objects, "Namespace")
    for binding in by_kind(objects, "ClusterRoleBinding") + by_kind(objects, "RoleBinding"):
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": account["metadata"]["name"],
                "namespace": namespace["metadata"]["name"],
            }
        ]
    (deployment,) = by_kind(objects, "Deployment")
    assert (
        deployment["spec"]["template"]["spec"]["serviceAccountName"]
        == (account["metadata"]["name"])
    )


def test_deployment_runs_locked_down_with_probes_and_downward_api() -> None:
    (deployment,) = by_kind(kustomize_objects(DEPLOY / "base"), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["image"] == "istio-operator:0.1.0"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {"requests", "limits"} <= container["resources"].keys()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}) for e in container["env"]}
    assert env["POD_NAMESPACE"] == {"fieldPath": "metadata.namespace"}
    assert env["POD_NAME"] == {"fieldPath": "metadata.name"}
    assert deployment["spec"]["replicas"] > 1
    assert "--leader-election" in container["args"]


def test_metrics_service_selects_the_operator_pods() -> None:
    objects = kustomize_objects(DEPLOY / "base")
    (service,) = by_kind(objects, "Service")
    (deployment,) = by_kind(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["name"] == "metrics"
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


@pytest.mark.parametrize("base", ["base", "remote"])
def test_nothing_carries_the_label_the_operator_prunes_by(base: str) -> None:
    for obj in kustomize_objects(DEPLOY / base):
        labels = obj["metadata"].get("labels") or {}
        assert labels.get(MANAGED_BY) != MANAGED_BY_VALUE, obj["metadata"]["name"]
    kustomization = (DEPLOY / base / "kustomization.yaml").read_text()
    assert f"{MANAGED_BY}: {MANAGED_BY_VALUE}" not in kustomization


def test_chart_labels_never_claim_operator_ownership() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert f"{MANAGED_BY}: {{{{ .Release.Service }}}}" in helpers


def test_chart_crds_are_copies_of_deploy_crds() -> None:
    ours = {p.name: p.read_text() for p in (DEPLOY / "crds").glob("*.yaml")}
    ours.pop("kustomization.yaml")
    chart = {p.name: p.read_text() for p in (CHART / "crds").glob("*.yaml")}
    assert chart == ours, "chart CRDs are stale: cp deploy/crds/istio.banzaicloud.io_*.yaml " + (
        "deploy/charts/istio-operator/crds/"
    )


def test_chart_app_version_matches_the_base_image() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    kustomization = yaml.safe_load((DEPLOY / "base" / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert image["newTag"] == chart["appVersion"]
