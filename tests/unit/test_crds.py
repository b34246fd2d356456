"""Generated CRDs: structural schemas, metadata, the committed files, the CLI."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml

from istio_operator.api.crd import crd_filename, generate_crds, to_yaml
from istio_operator.cli import crds as crds_command
from istio_operator.cli.main import COMMANDS

ROOT = Path(__file__).parent.parent.parent
CRD_DIR = ROOT / "deploy" / "crds"
SAMPLES = Path(__file__).parent.parent / "fixtures" / "samples"
FORBIDDEN = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "default", "const"}


def structural_problems(node: Any, path: str = "") -> list[str]:
    """What keeps a schema from being structural, as `path: problem` lines."""
    if not isinstance(node, dict):
        return [f"{path}: not an object"]
    problems = [f"{path}: has {key}" for key in FORBIDDEN & node.keys()]
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    if "type" not in node and not (preserve or int_or_string):
        problems.append(f"{path}: no type")
    if node.get("type") == "null":
        problems.append(f"{path}: null type")
    additional = node.get("additionalProperties")
    if additional is False:
        problems.append(f"{path}: additionalProperties false")
    if additional is not None and "properties" in node:
        problems.append(f"{path}: both properties and additionalProperties")
    if node.get("type") == "array" and "items" not in node:
        problems.append(f"{path}: array without items")
    for name, sub in node.get("properties", {}).items():
        problems += structural_problems(sub, f"{path}.{name}")
    if isinstance(additional, dict):
        problems += structural_problems(additional, f"{path}{{*}}")
    if "items" in node:
        problems += structural_problems(node["items"], f"{path}[*]")
    return problems


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


CRDS = {crd["spec"]["names"]["kind"]: crd for crd in generate_crds()}


def test_both_kinds_are_generated_with_the_reference_names() -> None:
    assert sorted(CRDS) == ["Istio", "RemoteIstio"]
    assert CRDS["Istio"]["metadata"]["name"] == "istios.istio.banzaicloud.io"
    assert CRDS["RemoteIstio"]["metadata"]["name"] == "remoteistios.istio.banzaicloud.io"
    for crd in CRDS.values():
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["spec"]["scope"] == "Namespaced"
        (version,) = crd["spec"]["versions"]
        assert version["name"] == "v1beta1"
        assert version["served"] and version["storage"]
        assert version["subresources"] == {"status": {}}

    assert CRDS["Istio"]["spec"]["names"]["shortNames"] == ["istiocp"]
    assert CRDS["RemoteIstio"]["spec"]["names"]["shortNames"] == ["ristio"]


def columns_of(kind: str) -> dict[str, str]:
    (version,) = CRDS[kind]["spec"]["versions"]
    return {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}


def test_printer_columns_per_kind() -> None:
    assert columns_of("Istio") == {
        "Version": ".status.version",
        "Status": ".status.Status",
        "Ready": '.status.conditions[?(@.type=="Ready")].status',
        "Remotes": ".status.remotesReady",
        "Gateways": ".status.gateways",
        "Error": ".status.ErrorMessage",
        "Age": ".metadata.creationTimestamp",
    }
    assert columns_of("RemoteIstio") == {
        "Version": ".status.version",
        "Status": ".status.Status",
        "Age": ".metadata.creationTimestamp",
    }


def test_every_column_reads_a_declared_status_field() -> None:
    for kind in CRDS:
        status = schema_of(CRDS[kind])["properties"]["status"]["properties"]
        for path in columns_of(kind).values():
            if path.startswith(".status."):
                assert path.removeprefix(".status.").split("[")[0] in status


# The API server refuses a description of `metadata` (it describes it itself).
UNDESCRIBED = frozenset({"Istio.metadata", "RemoteIstio.metadata"})


def undescribed(node: dict[str, Any], path: str) -> list[str]:
    """Every property below a schema node that has no description, by path."""
    missing = []
    for name, sub in (node.get("properties") or {}).items():
        if not sub.get("description") and f"{path}.{name}" not in UNDESCRIBED:
            missing.append(f"{path}.{name}")
        missing += undescribed(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        missing += undescribed(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        missing += undescribed(node["additionalProperties"], f"{path}{{}}")
    return missing


@pytest.mark.parametrize("kind", ["Istio", "RemoteIstio"])
def test_kubectl_explain_has_a_description_of_every_field(kind: str) -> None:
    assert undescribed(schema_of(CRDS[kind]), kind) == []


def test_the_description_walker_finds_a_missing_description() -> None:
    node = {"properties": {"a": {"description": "x", "items": {"properties": {"b": {}}}}}}
    assert undescribed(node, "K") == ["K.a[].b"]


def test_no_value_the_api_server_would_drop() -> None:
    """An empty map or list in a CRD is dropped by the API server: a later apply of the
    same file would then differ from what is stored (a field-ownership fight)."""

    def empties(node: Any, path: str) -> list[str]:
        if isinstance(node, dict):
            found = [f"{path}.{k}" for k, v in node.items() if v in ({}, []) and k != "status"]
            return found + [e for k, v in node.items() for e in empties(v, f"{path}.{k}")]
        if isinstance(node, list):
            return [e for i, v in enumerate(node) for e in empties(v, f"{path}[{i}]")]
        return []

    for kind, crd in CRDS.items():
        assert empties(crd, kind) == []


@pytest.mark.parametrize("kind", ["Istio", "RemoteIstio"])
def test_schemas_are_structural(kind: str) -> None:
    assert structural_problems(schema_of(CRDS[kind])) == []


def test_the_checker_finds_non_structural_nodes() -> None:
    bad = {
        "type": "object",
        "properties": {
            "a": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "b": {"type": "object", "additionalProperties": False, "properties": {}},
            "c": {"type": "array"},
        },
    }
    assert structural_problems(bad) == [
        ".a: has anyOf",
        ".a: no type",
        ".b: additionalProperties false",
        ".b: both properties and additionalProperties",
        ".c: array without items",
    ]


def test_spec_schema_details() -> None:
    spec = schema_of(CRDS["Istio"])["properties"]["spec"]
    props = spec["properties"]
    assert sorted(spec["required"]) == ["version"]
    assert props["pilot"]["properties"]["replicaCount"]["type"] == "integer"
    assert props["pilot"]["nullable"] is True
    resources = props["pilot"]["properties"]["resources"]
    assert resources["x-kubernetes-preserve-unknown-fields"] is True
    assert resources["type"] == "object"
    quantity = resources["properties"]["limits"]["additionalProperties"]
    assert quantity["x-kubernetes-int-or-string"] is True
    assert quantity["pattern"].startswith("^(([0-9]+")
    tolerations = props["pilot"]["properties"]["tolerations"]
    assert tolerations["items"]["x-kubernetes-preserve-unknown-fields"] is True
    ingress = props["gateways"]["properties"]["ingress"]["properties"]
    assert ingress["serviceType"]["enum"] == ["ClusterIP", "NodePort", "LoadBalancer"]
    port = ingress["ports"]["items"]
    assert port["required"] == ["port"]
    assert port["properties"]["targetPort"]["x-kubernetes-int-or-string"] is True
    assert "type" not in port["properties"]["targetPort"]
    assert props["proxy"]["properties"]["dnsRefreshRate"]["pattern"] == "^[0-9]{1,5}s$"
    assert props["outboundTrafficPolicy"]["properties"]["mode"]["enum"] == [
        "ALLOW_ANY",
        "REGISTRY_ONLY",
    ]
    distribute = props["localityLB"]["properties"]["distribute"]["items"]["properties"]
    assert set(distribute) == {"from", "to"}
    assert distribute["to"]["additionalProperties"]["type"] == "integer"

    remote = schema_of(CRDS["RemoteIstio"])["properties"]["spec"]
    assert remote["required"] == ["enabledServices"]
    assert "version" not in remote["properties"]
    service = remote["properties"]["enabledServices"]["items"]
    assert service["required"] == ["name"]


def _schema_keys(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Paths of object keys in `value` that `schema` would prune."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(value, dict):
        if "properties" in schema:
            missing = [f"{path}.{k}" for k in value if k not in schema["properties"]]
            return missing + [
                p
                for k, v in value.items()
                if k in schema["properties"]
                for p in _schema_keys(v, schema["properties"][k], f"{path}.{k}")
            ]
        if isinstance(schema.get("additionalProperties"), dict):
            return [
                p
                for k, v in value.items()
                for p in _schema_keys(v, schema["additionalProperties"], f"{path}.{k}")
            ]
    if isinstance(value, list) and "items" in schema:
        return [p for i, v in enumerate(value) for p in _schema_keys(v, schema["items"], path)]
    return []


@pytest.mark.parametrize(
    ("kind", "sample", "pruned"),
    [
        ("Istio", "istio_v1beta1_istio.yaml", [".spec.tracing.localityLB"]),
        ("RemoteIstio", "istio_v1beta1_remoteistio.yaml", []),
    ],
)
def test_api_server_pruning_of_the_samples_matches_the_loader(
    kind: str, sample: str, pruned: list[str]
) -> None:
    body = yaml.safe_load((SAMPLES / sample).read_text())
    schema = schema_of(CRDS[kind])
    assert _schema_keys({"spec": body["spec"]}, schema, "") == pruned


def test_committed_crds_are_up_to_date() -> None:
    for crd in generate_crds():
        path = CRD_DIR / crd_filename(crd)
        assert path.is_file(), f"{path} is missing: run `make crds`"
        assert path.read_text() == to_yaml(crd), f"{path} is stale: run `make crds`"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    crds_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


def test_crds_is_a_registered_command() -> None:
    assert "crds" in COMMANDS


def test_cli_prints_a_yaml_stream(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crds"]) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    assert documents == generate_crds()


def test_cli_writes_one_file_per_crd(tmp_path: Path) -> None:
    out = tmp_path / "crds"
    assert main(["crds", "--output-dir", str(out)]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        "istio.banzaicloud.io_istios.yaml",
        "istio.banzaicloud.io_remoteistios.yaml",
    ]
    for crd in generate_crds():
        assert yaml.safe_load((out / crd_filename(crd)).read_text()) == crd
