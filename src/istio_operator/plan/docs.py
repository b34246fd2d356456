"""The configuration reference of `Istio.spec` and `RemoteIstio.spec`, as Markdown.

Generated from the models: the field tree, types and enums come from the
structural schema the CRDs are made of (`api.crd.structural_schema`), the
object descriptions from the models' docstrings, and every default from the
declarations of the resolved plan (`plan.model`): a plain default is shown as
its value, a derived one with its rule's note and its value in a plan resolved
from an empty spec, the version shown as `<version>`.

What the models' types cannot say (what a field does) is in the models'
modules, keyed by field path (`api.istio.FIELD_DOCS`, `SUFFIX_DOCS`,
`api.remoteistio.REMOTE_FIELD_DOCS`, read through `api.crd.describe`): the
same text the CRDs carry, so that `kubectl explain` says what this reference
says. The unit tests check that every
field has a description and every entry names a field. The committed
`docs/configuration.md` is this module's output (`make docs`).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from istio_operator.api.crd import describe, structural_schema
from istio_operator.api.istio import IstioSpec
from istio_operator.api.kubetypes import (
    DNS_LABEL_PATTERN,
    LABEL_SELECTOR_PATTERN,
    LABEL_VALUE_PATTERN,
    MAX_FREE_FORM_DEPTH,
    MAX_FREE_FORM_SIZE,
    VERSION_PATTERN,
)
from istio_operator.api.remoteistio import RemoteIstioSpec
from istio_operator.plan import model
from istio_operator.plan.resolve import build, item_section_type, section_type
from istio_operator.plan.rules import Rule, Scope
from istio_operator.versions import families

# Placeholders the defaults are computed with, shown as they are in the reference.
VERSION_PLACEHOLDER: Final = "<version>"
NAMESPACE_PLACEHOLDER: Final = "<namespace>"

# Paths of a RemoteIstio spec that the operator reads. Every other field
# (below citadel, sidecarInjector, proxy, proxyInit) is the primary's.
REMOTE_USED: Final[frozenset[str]] = frozenset(
    {
        "enabledServices",
        "autoInjectionNamespaces",
        "defaultResources",
        "clusterName",
        "citadel.caSecretName",
        "citadel.nodeSelector",
        "citadel.affinity",
        "citadel.tolerations",
        "sidecarInjector.replicaCount",
        "sidecarInjector.nodeSelector",
        "sidecarInjector.affinity",
        "sidecarInjector.tolerations",
        "sidecarInjector.initCNIConfiguration.affinity",
        "proxy.privileged",
        "proxy.resources",
    }
)

# Defaults of the RemoteIstio fields, where it has one.
REMOTE_DEFAULT_NOTES: Final[dict[str, str]] = {
    "sidecarInjector.replicaCount": "`1`",
    "autoInjectionNamespaces": "the primary's",
    "defaultResources": "the primary's",
    "citadel.caSecretName": "the primary's CA, copied",
    "proxy.privileged": "the primary's",
    "proxy.resources": "the primary's",
}


@dataclass(frozen=True)
class Field:
    """One field of a spec: its path, schema node and whether it is required."""

    path: str
    schema: dict[str, Any]
    required: bool

    @property
    def is_object(self) -> bool:
        return _has_own_fields(self.schema)

    @property
    def is_object_list(self) -> bool:
        return _has_own_fields(self.schema.get("items", {}))


def _has_own_fields(node: dict[str, Any]) -> bool:
    """An object of the API itself; a Kubernetes object (its keys kept) is one value."""
    return "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields")


# Patterns of the Kubernetes rules that `VALIDATION_NOTES` states once for all fields;
# the expressions themselves are in the CRDs.
KUBERNETES_PATTERNS: Final = frozenset(
    {
        VERSION_PATTERN,
        r"^\S+$",
        LABEL_VALUE_PATTERN,
        DNS_LABEL_PATTERN,
        LABEL_SELECTOR_PATTERN,
    }
)


def fields(schema: dict[str, Any], prefix: str = "") -> Iterator[Field]:
    """Every field below a schema node, depth first, in the models' order."""
    required = set(schema.get("required", []))
    for name, node in schema.get("properties", {}).items():
        field = Field(f"{prefix}{name}", node, name in required)
        yield field
        if field.is_object:
            yield from fields(node, f"{field.path}.")
        elif field.is_object_list:
            yield from fields(node["items"], f"{field.path}[].")


def type_of(node: dict[str, Any]) -> str:
    """A field's type in words: `string`, `integer ≥ 0`, `one of ...`, `map of strings`."""
    if node.get("x-kubernetes-int-or-string"):
        return "integer or string"
    if "enum" in node:
        return "one of " + ", ".join(_code(str(v)) for v in node["enum"])
    kind = str(node.get("type", ""))
    if kind in ("integer", "number"):
        return kind + _range(node)
    if kind == "string" and node.get("pattern", "") not in KUBERNETES_PATTERNS | {""}:
        return f"string matching {_code(node['pattern'])}"
    if kind == "object":
        if node.get("x-kubernetes-preserve-unknown-fields"):
            return "Kubernetes object"
        if "properties" in node:
            return "object"
        additional = node.get("additionalProperties")
        if isinstance(additional, dict):
            return f"map of string to {type_of(additional)}"
        return "object"
    if kind == "array":
        items = node["items"]
        if _has_own_fields(items):
            return "list of objects"
        return f"list of ({type_of(items)})"
    return kind


def _range(node: dict[str, Any]) -> str:
    low, high = node.get("minimum"), node.get("maximum")
    if low is None:
        return ""
    if high is None or high >= 2**31 - 1:
        return f" ≥ {low}"
    return f" {low} to {high}"


def _code(text: str) -> str:
    return f"`{text}`" if "`" not in text else f"`` {text} ``"


def _value(value: Any) -> str:
    return _code(json.dumps(value, separators=(", ", ": ")))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def istio_defaults() -> dict[str, Any]:
    """The plan an empty `Istio` resource gets, as JSON-shaped data."""
    empty = IstioSpec.model_construct(version=VERSION_PLACEHOLDER, mtls=False)
    scope = Scope(
        family=families.FAMILIES[-1],
        version=VERSION_PLACEHOLDER,
        namespace=NAMESPACE_PLACEHOLDER,
        default_resources=model.BASE_RESOURCES,
        user_default_resources=None,
        proxy_resources=model.PROXY_RESOURCES,
    )
    scope = dataclasses.replace(
        scope, mixer=build(model.Mixer, None, scope), proxy=build(model.Proxy, None, scope)
    )
    return dict(dataclasses.asdict(build(model.MeshPlan, empty, scope)))


def declared(path: str) -> dataclasses.Field[Any] | None:
    """The plan field of a spec path (`a.b`, `a.list[].c`), or None if the plan has none."""
    cls: Any = model.MeshPlan
    *parents, leaf = path.replace("[]", "").split(".")
    for name in parents:
        hint = _field_hint(cls, name)
        cls = section_type(hint) or item_section_type(hint)
        if cls is None:
            return None
    return {f.name: f for f in dataclasses.fields(cls)}.get(leaf)


def _field_hint(cls: Any, name: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    return typing.get_type_hints(cls, vars(model)).get(name) if name in names else None


def _get(data: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _istio_default(field: Field, defaults: dict[str, Any]) -> str:
    if field.required:
        return "**required**"
    spec_field = declared(field.path)
    if field.is_object:
        return ""
    if spec_field is None:
        return "unset"
    if "[]" in field.path:
        value = None if spec_field.default is dataclasses.MISSING else spec_field.default
    else:
        value = _get(defaults, field.path)
    rule: Rule | None = spec_field.metadata.get("rule")
    note = rule.describe(field.path, spec_field.metadata["args"]) if rule else ""
    if _off(value):
        return note or "unset"
    return f"{note}: {_value(value)}" if note else _value(value)


def _off(value: Any) -> bool:
    """A default that is no value: nothing set, the feature off or left to Istio."""
    if isinstance(value, bool):
        return False
    return value is None or value == 0 or (not isinstance(value, int | float) and not value)


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _sections(
    schema: dict[str, Any],
    root: str,
    row: Callable[[Field], tuple[str, ...]],
    header: tuple[str, ...],
) -> list[str]:
    """One heading and table per object, the root first."""
    groups: dict[str, list[Field]] = {"": []}
    descriptions: dict[str, str] = {"": ""}
    for field in fields(schema):
        parent = field.path.rsplit(".", 1)[0] if "." in field.path else ""
        groups.setdefault(parent, []).append(field)
        if field.is_object or field.is_object_list:
            key = field.path if field.is_object else f"{field.path}[]"
            groups.setdefault(key, [])
            node = field.schema if field.is_object else field.schema["items"]
            descriptions[key] = node.get("description", "")
    lines: list[str] = []
    for key, members in groups.items():
        if not members:
            continue
        title = f"{root}.{key}" if key else root
        lines += ["", f"### `{title}`", ""]
        if descriptions[key]:
            lines += [" ".join(descriptions[key].split()), ""]
        lines += _table([row(f) for f in members], header)
    return lines


def _name(field: Field) -> str:
    return f"`{field.path.rsplit('.', 1)[-1]}`"


def istio_reference() -> list[str]:
    """The `Istio.spec` part of the reference."""
    defaults = istio_defaults()

    def row(field: Field) -> tuple[str, ...]:
        return (
            _name(field),
            type_of(field.schema),
            _istio_default(field, defaults),
            describe(field.path) or "",
        )

    return _sections(
        structural_schema(IstioSpec), "spec", row, ("field", "type", "default", "description")
    )


def _remote_visible(schema: dict[str, Any]) -> dict[str, Any]:
    """The RemoteIstio schema without the subtrees of which nothing is used."""

    def keep(node: dict[str, Any], prefix: str) -> dict[str, Any]:
        if "properties" not in node:
            return node
        props = {}
        for name, sub in node["properties"].items():
            path = f"{prefix}{name}"
            used_below = any(u.startswith(f"{path}.") for u in REMOTE_USED)
            if "properties" in sub and not used_below and prefix:
                props[name] = {k: v for k, v in sub.items() if k != "properties"}
                props[name]["type"] = "object"
            else:
                props[name] = keep(sub, f"{path}.") if "properties" in sub else sub
        return {**node, "properties": props}

    return keep(schema, "")


def remote_used(path: str) -> bool:
    """Whether a RemoteIstio field (or an item field of a used list) is read."""
    return any(
        path == u or path.startswith(f"{u}.") or path.startswith(f"{u}[]") for u in REMOTE_USED
    )


def remote_reference() -> list[str]:
    """The `RemoteIstio.spec` part of the reference."""

    def row(field: Field) -> tuple[str, ...]:
        default = "**required**" if field.required else REMOTE_DEFAULT_NOTES.get(field.path, "")
        used = remote_used(field.path) or any(u.startswith(f"{field.path}.") for u in REMOTE_USED)
        description = describe(field.path, remote=True) or ""
        if not used:
            description = "Ignored: the primary's value is used."
            if field.is_object:
                description += " The object has the same fields as in `Istio`."
        return (_name(field), type_of(field.schema), default, "yes" if used else "no", description)

    return _sections(
        _remote_visible(structural_schema(RemoteIstioSpec)),
        "spec",
        row,
        ("field", "type", "default", "used", "description"),
    )


VALIDATION_NOTES: Final = (
    "Values the API server would refuse in the objects the operator creates are refused "
    "when the resource is read, with the field's path: empty or blank images, resource "
    "quantities that are not quantities, affinities, tolerations and label selectors "
    "that are not of their Kubernetes type, label keys and values and annotation keys "
    "that break the Kubernetes rules, duplicate port names or numbers in a Service, pod "
    "IPs that are not IP addresses, a `labelSelector` other than `key=value[,key=value]` "
    "or a bare name. Most of these the CRD's schema says too, so that "
    "`kubectl apply` refuses them at once. Kubernetes objects taken as they are "
    f"(resources, affinity, tolerations, selectors) may nest at most {MAX_FREE_FORM_DEPTH} "
    f"levels deep and hold at most {MAX_FREE_FORM_SIZE // 1024} KiB (keys, strings and "
    "scalars); `version` is at most 64 characters.",
)


def configuration_reference() -> str:
    """The whole configuration reference, `docs/configuration.md`, as Markdown."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `make docs` (`istio-operator docs`) from the models in "
        "src/istio_operator/api; do not edit. -->",
        "",
        "Every field of the `spec` of the `Istio` and `RemoteIstio` resources "
        "(`istio.banzaicloud.io/v1beta1`). Field names are the JSON names. A default is "
        "what the operator uses when the resource leaves the field unset; defaults are "
        "applied in memory on every reconcile and never written back to the resource. "
        f"`{VERSION_PLACEHOLDER}` stands for `spec.version` and `{NAMESPACE_PLACEHOLDER}` "
        "for the resource's namespace. *unset* means no default: the feature is off or "
        "the value is left to Istio.",
        "",
        f"Supported versions: the classic family's {families.classic_ranges()}, and the "
        "istiod family's: every version of the chart catalogue (`istio-operator charts "
        "list`; see docs/istiod-family.md). One schema serves both families. The fields "
        "whose description starts with *istiod family* (`profile`, `values`, "
        "`updateStrategy`) are that family's; with it, only `version`, "
        "`autoInjectionNamespaces` and `gateways.{ingress,egress}.enabled` of the others "
        "are read, and any other field set is refused by name. The istiod family's fields "
        "set with a classic version are refused too. Among the classic family's fields, "
        "those marked *1.2 line* or *1.3 line* are accepted for either version and ignored "
        "by the other.",
        "",
        *VALIDATION_NOTES,
        "",
        "## Istio",
        "",
        "An `Istio` resource describes the control plane on the primary cluster. "
        "`spec.version` is required, and `spec.mtls` with a classic version.",
        *istio_reference(),
        "",
        "## RemoteIstio",
        "",
        "A `RemoteIstio` resource, in the namespace of its `Istio` resource on the primary "
        "cluster, joins one remote cluster to the mesh. It has no version and no images: "
        "the remote runs the primary's. Its fields override a few of the primary's "
        "settings; the column *used* says which are read. `spec.enabledServices` is "
        "required.",
        *remote_reference(),
        "",
    ]
    return "\n".join(lines)
