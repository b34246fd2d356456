"""CustomResourceDefinitions of `Istio` and `RemoteIstio`, generated from the models.

The spec schemas are the models' JSON schemas rewritten into Kubernetes
structural schemas: references inlined, `X | None` as `X` with
`nullable: true`, `int | str` as `x-kubernetes-int-or-string`, free-form
Kubernetes objects as `x-kubernetes-preserve-unknown-fields` objects, and no
`title`, `default` or `additionalProperties: false` (the API server prunes
unknown fields itself). The committed files under `deploy/crds/` are this
module's output (`make crds`).
"""

from __future__ import annotations

import copy
from typing import Any, Final

import yaml
from pydantic import BaseModel

from istio_operator.api.istio import IstioSpec
from istio_operator.api.labels import GROUP
from istio_operator.api.remoteistio import RemoteIstioSpec

VERSION: Final = "v1beta1"

# Keys of pydantic's output that a structural schema does not need or allow.
_DROPPED_KEYS: Final = frozenset({"title", "default", "$defs"})


class SchemaError(ValueError):
    """A model whose JSON schema has no structural equivalent."""


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a model's JSON (aliased) form."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return _rewrite(schema, schema.get("$defs", {}))


def _rewrite(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _rewrite({**defs[name], **extra}, defs)
    if "anyOf" in node:
        return _rewrite_union(node, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            out[key] = {name: _rewrite(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = _rewrite(value, defs)
        elif key == "additionalProperties":
            if value is False:
                continue
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            else:
                out[key] = _rewrite(value, defs)
        else:
            out[key] = value
    if "type" not in out and not out.get("x-kubernetes-int-or-string"):
        raise SchemaError(f"schema node without a type: {node}")
    return out


def _rewrite_union(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    members = [m for m in node["anyOf"] if m.get("type") != "null"]
    nullable = len(members) < len(node["anyOf"])
    extra = {k: v for k, v in node.items() if k not in _DROPPED_KEYS and k != "anyOf"}
    types = sorted(m.get("type", "") for m in members)
    if node.get("x-kubernetes-int-or-string") or types == ["integer", "string"]:
        out: dict[str, Any] = {**extra, "x-kubernetes-int-or-string": True}
    elif len(members) == 1:
        out = {**_rewrite(members[0], defs), **extra}
    else:
        raise SchemaError(f"union with no structural equivalent: {node['anyOf']}")
    if nullable:
        out["nullable"] = True
    return out


STATUS_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "description": "Observed state, written by the operator.",
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": {
        "Status": {
            "type": "string",
            "description": "Created, Reconciling, Available, ReconcileFailed or Unmanaged.",
        },
        "ErrorMessage": {"type": "string"},
        "GatewayAddress": {"type": "array", "items": {"type": "string"}},
        "observedGeneration": {"type": "integer", "format": "int64"},
        "version": {"type": "string"},
        "phase": {"type": "string"},
        "conditions": {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
            "items": {
                "type": "object",
                "required": ["type", "status"],
                "properties": {
                    "type": {"type": "string"},
                    "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                    "reason": {"type": "string"},
                    "message": {"type": "string"},
                    "lastTransitionTime": {"type": "string", "format": "date-time"},
                    "observedGeneration": {"type": "integer", "format": "int64"},
                },
            },
        },
    },
}

PRINTER_COLUMNS: Final[list[dict[str, Any]]] = [
    {"name": "Status", "type": "string", "jsonPath": ".status.Status"},
    # The whole mesh: the primary and, for an Istio, every remote at the spec.
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {"name": "Error", "type": "string", "jsonPath": ".status.ErrorMessage"},
    {"name": "Gateways", "type": "string", "jsonPath": ".status.GatewayAddress"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _crd(kind: str, plural: str, spec_model: type[BaseModel], description: str) -> dict[str, Any]:
    spec_schema = structural_schema(spec_model)
    root = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": copy.deepcopy(STATUS_SCHEMA),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": copy.deepcopy(PRINTER_COLUMNS),
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def generate_crds() -> list[dict[str, Any]]:
    """The CRDs of `istios.istio.banzaicloud.io` and `remoteistios.istio.banzaicloud.io`."""
    return [
        _crd("Istio", "istios", IstioSpec, "An Istio control plane on the primary cluster."),
        _crd(
            "RemoteIstio",
            "remoteistios",
            RemoteIstioSpec,
            "A remote cluster joined to the mesh of an Istio control plane.",
        ),
    ]


def crd_filename(crd: dict[str, Any]) -> str:
    """The file a CRD is written to: `<group>_<plural>.yaml`."""
    spec = crd["spec"]
    return f"{spec['group']}_{spec['names']['plural']}.yaml"


class _PlainDumper(yaml.SafeDumper):
    """A YAML dumper that writes repeated values out instead of using anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(crd: dict[str, Any]) -> str:
    """A CRD as a YAML document, keys in the generated order."""
    return yaml.dump(crd, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False, width=100)
