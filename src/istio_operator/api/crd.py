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

from istio_operator.api.istio import FIELD_DOCS, SUFFIX_DOCS, IstioSpec
from istio_operator.api.labels import GROUP
from istio_operator.api.remoteistio import REMOTE_FIELD_DOCS, RemoteIstioSpec

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
        # An empty `properties` the API server drops: kept, a re-apply would fight it.
        if key in _DROPPED_KEYS or (key == "properties" and not value):
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


def _field(type_: str, description: str, **more: Any) -> dict[str, Any]:
    return {"type": type_, "description": description, **more}


def _open_object(description: str) -> dict[str, Any]:
    """An object whose keys the operator chooses at run time (kept as written)."""
    return _field("object", description, **{"x-kubernetes-preserve-unknown-fields": True})


_CONDITION: Final[dict[str, Any]] = {
    "type": "object",
    "description": "One condition (Reconciled, Ready), Kubernetes-style.",
    "required": ["type", "status"],
    "properties": {
        "type": _field("string", "Reconciled or Ready."),
        "status": _field("string", "True, False or Unknown.", enum=["True", "False", "Unknown"]),
        "reason": _field("string", "Why, in one CamelCase word."),
        "message": _field("string", "Why, in words."),
        "lastTransitionTime": _field("string", "When the status last changed.", format="date-time"),
        "observedGeneration": _field(
            "integer", "The generation this condition was computed for.", format="int64"
        ),
    },
}

# Fields of Kubernetes' own types that the operator's tables do not describe (they are
# Kubernetes' to explain), by the last segments of their path.
KUBERNETES_DOCS: Final[dict[str, str]] = {
    "limits": "Maximum compute resources (`cpu`, `memory`, ...) of the container.",
    "requests": "Compute resources (`cpu`, `memory`, ...) reserved for the container.",
    "nodeAffinity": "Kubernetes `NodeAffinity`: the nodes the pods may run on.",
    "podAffinity": "Kubernetes `PodAffinity`: the pods these pods run next to.",
    "podAntiAffinity": "Kubernetes `PodAntiAffinity`: the pods these pods run apart from.",
    "tolerations[].key": "The taint key the toleration applies to; empty means all.",
    "tolerations[].operator": "`Exists` or `Equal` (the default).",
    "tolerations[].value": "The taint value the toleration matches (with `Equal`).",
    "tolerations[].effect": "The taint effect matched; empty means all.",
    "tolerations[].tolerationSeconds": "How long a `NoExecute` taint is tolerated.",
    "matchLabels": "Labels a pod must carry, all of them.",
    "matchExpressions": "Label requirements a pod must meet, all of them.",
    "matchExpressions[].key": "The label key.",
    "matchExpressions[].operator": "`In`, `NotIn`, `Exists` or `DoesNotExist`.",
    "matchExpressions[].values": "The label values (with `In` and `NotIn`).",
}


def describe(path: str, remote: bool = False) -> str | None:
    """What a spec field (its path below `spec`, `[]` for a list's items) does, from the
    models' tables: a RemoteIstio's own first, then by full path, then by the most
    specific suffix. None if no table says."""
    if remote and path in REMOTE_FIELD_DOCS:
        return REMOTE_FIELD_DOCS[path]
    if path in FIELD_DOCS:
        return FIELD_DOCS[path]
    segments = path.split(".")
    for start in range(len(segments)):
        suffix = ".".join(segments[start:])
        if suffix in SUFFIX_DOCS:
            return SUFFIX_DOCS[suffix]
    return None


def _kubernetes_doc(path: str) -> str | None:
    segments = path.split(".")
    return next(
        (
            KUBERNETES_DOCS[suffix]
            for suffix in (".".join(segments[i:]) for i in range(len(segments)))
            if suffix in KUBERNETES_DOCS
        ),
        None,
    )


def described(schema: dict[str, Any], remote: bool = False, prefix: str = "") -> dict[str, Any]:
    """The schema with every property described, for `kubectl explain`: the tables' text,
    else the model's docstring, else Kubernetes' own meaning of the field."""
    out = dict(schema)
    if "properties" in schema:
        props = {}
        for name, node in schema["properties"].items():
            path = f"{prefix}{name}"
            sub = described(node, remote, f"{path}.")
            text = describe(path, remote) or sub.get("description") or _kubernetes_doc(path)
            if text:
                sub["description"] = " ".join(text.split())
            props[name] = sub
        out["properties"] = props
    if isinstance(schema.get("items"), dict):
        out["items"] = described(schema["items"], remote, f"{prefix.removesuffix('.')}[].")
    return out


STATUS_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "description": "Observed state, written by the operator.",
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": {
        "Status": _field(
            "string", "Created, Reconciling, Available, ReconcileFailed or Unmanaged."
        ),
        "ErrorMessage": _field("string", "Why the last reconcile failed; empty otherwise."),
        "GatewayAddress": _field(
            "array",
            "Addresses of the ingress gateway's load balancer (as the reference writes them).",
            items={"type": "string"},
        ),
        "gateways": _field("string", "The gateway addresses, comma-separated."),
        "observedGeneration": _field(
            "integer", "The generation of the spec last reconciled.", format="int64"
        ),
        "version": _field("string", "The Istio version in effect (the last completed rollout)."),
        "phase": _field("string", "The rollout phase in progress."),
        "waitingFor": _field(
            "array", "What the current phase waits for.", items={"type": "string"}
        ),
        "components": _open_object("The state of each control-plane component."),
        "remotes": _field(
            "object",
            "The state of each remote cluster, by RemoteIstio name.",
            additionalProperties={"type": "string"},
        ),
        "remotesReady": _field("string", "Remote clusters available, out of all: ready/total."),
        "revisions": _field(
            "array",
            "istiod family: every control-plane revision on the cluster.",
            items=_open_object("One revision: name, version, readiness, what uses it."),
        ),
        "tags": _field(
            "object",
            "istiod family: the revision each revision tag points at.",
            additionalProperties={"type": "string"},
        ),
        "migration": _open_object("istiod family: a migration between revisions in progress."),
        "remoteSecret": _field(
            "string", "A remote of the istiod family: its secret's name on the primary."
        ),
        "istioObservedGeneration": _field(
            "integer",
            "A remote: the generation of the Istio resource it was reconciled against.",
            format="int64",
        ),
        "clusterID": _field("string", "A remote: its cluster's identity."),
        "conditions": {
            "type": "array",
            "description": "Reconciled (the spec is in effect) and Ready (the mesh is available).",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
            "items": _CONDITION,
        },
    },
}

_VERSION_COLUMN: Final = {"name": "Version", "type": "string", "jsonPath": ".status.version"}
_STATUS_COLUMN: Final = {"name": "Status", "type": "string", "jsonPath": ".status.Status"}
_AGE_COLUMN: Final = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

# `kubectl get` columns, per kind: an Istio speaks for the whole mesh, a RemoteIstio for
# its own cluster.
PRINTER_COLUMNS: Final[dict[str, list[dict[str, Any]]]] = {
    "Istio": [
        _VERSION_COLUMN,
        _STATUS_COLUMN,
        # The whole mesh: the primary and every remote at the spec.
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {"name": "Remotes", "type": "string", "jsonPath": ".status.remotesReady"},
        {"name": "Gateways", "type": "string", "jsonPath": ".status.gateways"},
        {"name": "Error", "type": "string", "jsonPath": ".status.ErrorMessage", "priority": 1},
        _AGE_COLUMN,
    ],
    "RemoteIstio": [_VERSION_COLUMN, _STATUS_COLUMN, _AGE_COLUMN],
}

# Short names for `kubectl get`, clear of Istio's own (`iop` is IstioOperator's).
SHORT_NAMES: Final[dict[str, list[str]]] = {
    "Istio": ["istiocp"],
    "RemoteIstio": ["ristio"],
}


def _crd(kind: str, plural: str, spec_model: type[BaseModel], description: str) -> dict[str, Any]:
    spec_schema = described(structural_schema(spec_model), remote=kind == "RemoteIstio")
    root = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": _field("string", "The versioned schema of this object."),
            "kind": _field("string", "The kind of this object."),
            # The API server refuses anything but a type here (metadata is its own).
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
                "shortNames": list(SHORT_NAMES[kind]),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": copy.deepcopy(PRINTER_COLUMNS[kind]),
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
