"""Shared inputs for the render tests: the reference samples, edited per test."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from istio_operator.api.istio import Istio
from istio_operator.api.keys import ObjectKey
from istio_operator.api.parse import load_istio, load_remote_istio
from istio_operator.api.remoteistio import RemoteIstio
from istio_operator.render import (
    DesiredObject,
    PortFact,
    PrimaryFacts,
    render_primary,
    render_remote,
    yaml_stream,
)

SAMPLES = Path(__file__).parent.parent / "fixtures" / "samples"
NAMESPACE = "istio-system"
IMAGE_FIELDS = (
    ("pilot", "image"),
    ("citadel", "image"),
    ("galley", "image"),
    ("mixer", "image"),
    ("sidecarInjector", "image"),
    ("nodeAgent", "image"),
    ("proxy", "image"),
    ("proxyInit", "image"),
)


def _read(name: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((SAMPLES / name).read_text(encoding="utf-8"))
    body["metadata"]["namespace"] = NAMESPACE
    return body


SAMPLE_ISTIO = _read("istio_v1beta1_istio.yaml")
SAMPLE_REMOTE = _read("istio_v1beta1_remoteistio.yaml")


def sample_body(version: str = "1.3.0", keep_images: bool = False) -> dict[str, Any]:
    """The reference Istio sample at `version`, its image fields removed."""
    body = copy.deepcopy(SAMPLE_ISTIO)
    body["spec"]["version"] = version
    if not keep_images:
        for section, key in IMAGE_FIELDS:
            body["spec"].get(section, {}).pop(key, None)
    return body


def istio(body: dict[str, Any]) -> Istio:
    return load_istio(body).resource


def remote(body: dict[str, Any] | None = None) -> RemoteIstio:
    return load_remote_istio(copy.deepcopy(body or SAMPLE_REMOTE)).resource


def with_spec(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `body` with the dotted spec path set to `value`."""
    result = copy.deepcopy(body)
    node = result["spec"]
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return result


def primary(version: str = "1.3.0", **changes: Any) -> list[DesiredObject]:
    body = sample_body(version)
    for path, value in changes.items():
        body = with_spec(body, path.replace("__", "."), value)
    return render_primary(istio(body))


FACTS = PrimaryFacts(
    ca_secret_data={"ca-cert.pem": "Q0EgY2VydA==", "ca-key.pem": "Q0Ega2V5"},
    ingress_gateway_addresses=("203.0.113.10",),
    service_pod_ips={"istio-pilot": ("10.1.0.5",), "istio-policy": ("10.1.0.6",)},
)


def remote_objects(body: dict[str, Any], facts: PrimaryFacts = FACTS) -> list[DesiredObject]:
    ports = {
        "istio-pilot": (PortFact("grpc-xds", 15010), PortFact("https-xds", 15011)),
        "istio-policy": (PortFact("grpc-mixer", 9091), PortFact("grpc-mixer-mtls", 15004)),
        "istio-telemetry": (PortFact("grpc-mixer", 9091), PortFact("grpc-mixer-mtls", 15004)),
    }
    facts = PrimaryFacts(
        ca_secret_data=facts.ca_secret_data,
        ingress_gateway_addresses=facts.ingress_gateway_addresses,
        service_ports={**ports, **facts.service_ports},
        service_pod_ips=facts.service_pod_ips,
    )
    return render_remote(istio(body), remote(), facts)


def keys(objects: list[DesiredObject]) -> set[ObjectKey]:
    return {obj.key for obj in objects}


def images(objects: list[DesiredObject]) -> set[str]:
    """Images of every container and init container of Deployments and DaemonSets."""
    found = set()
    for obj in objects:
        if obj.kind in ("Deployment", "DaemonSet"):
            pod = obj.manifest["spec"]["template"]["spec"]
            for container in pod["containers"] + pod.get("initContainers", []):
                found.add(container["image"])
    return found


def find(objects: list[DesiredObject], kind: str, name: str) -> DesiredObject:
    matches = [obj for obj in objects if obj.kind == kind and obj.name == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} matches"
    return matches[0]


def container(obj: DesiredObject, name: str) -> dict[str, Any]:
    for item in obj.manifest["spec"]["template"]["spec"]["containers"]:
        if item["name"] == name:
            return dict(item)
    raise AssertionError(f"no container {name} in {obj.kind}/{obj.name}")


def env(obj: DesiredObject, container_name: str) -> dict[str, Any]:
    return {
        e["name"]: e.get("value", e.get("valueFrom"))
        for e in container(obj, container_name).get("env", [])
    }


class YAMLSnapshotExtension(SingleFileSnapshotExtension):
    """One plain YAML file per snapshot, readable in review."""

    file_extension = "yaml"
    _write_mode = WriteMode.TEXT

    def serialize(self, data: Any, **_: Any) -> str:
        return yaml_stream(data)
