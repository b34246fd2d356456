"""Kubernetes value types that the API server checks on the objects we render.

A value that the API server would refuse in a Deployment or a Service is
refused here, when the resource is read, so that a bad spec never gets as far
as a half-applied rollout. Each type carries both the check (a pydantic
validator, with the API server's wording) and the CRD schema that says the
same where a schema can (`pattern`, `maxLength`, `x-kubernetes-int-or-string`,
CEL rules), so that `kubectl apply` refuses it at once.

Free-form Kubernetes objects (resources, affinity, tolerations, label
selectors) keep every key they are given and are passed through unchanged:
`FreeForm` checks their shape against a model of the Kubernetes type and
bounds their nesting depth and size (`MAX_FREE_FORM_DEPTH`,
`MAX_FREE_FORM_SIZE`), because serialising an unbounded value recurses.
"""

# Annotations are evaluated as the classes are made (no `from __future__ import annotations`):
# pydantic would otherwise parse each string annotation again, at every command's start.
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PlainValidator,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError, core_schema

# -- bounds of free-form values ----------------------------------------------------------------

# Real Kubernetes objects nest fewer than 10 levels (affinity is the deepest, at 7).
MAX_FREE_FORM_DEPTH: Final = 32
# Scalars, keys and string characters in one free-form value (about its JSON size in bytes).
MAX_FREE_FORM_SIZE: Final = 64 * 1024


def _bounds_problem(value: Any) -> str | None:
    """Why `value` is too deep or too large, walking it without recursion."""
    size = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_FREE_FORM_DEPTH:
            return f"nested deeper than {MAX_FREE_FORM_DEPTH} levels"
        if isinstance(node, Mapping):
            size += sum(len(str(key)) + 1 for key in node)
            stack.extend((item, depth + 1) for item in node.values())
        elif isinstance(node, list):
            size += len(node) + 1
            stack.extend((item, depth + 1) for item in node)
        else:
            size += len(node) if isinstance(node, str) else 1
        if size > MAX_FREE_FORM_SIZE:
            return f"larger than {MAX_FREE_FORM_SIZE} bytes"
    return None


@dataclass(frozen=True)
class FreeForm:
    """Marks a pass-through Kubernetes value: bounded, and shaped as `shape` if given.

    The value is returned as given (every key kept, nothing coerced); `shape`
    only checks it. The CRD schema is `shape`'s (whose unknown keys are
    preserved) or, without one, that of the annotated type.
    """

    shape: Any = None

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        plain = handler(source)
        checked = plain if self.shape is None else handler.generate_schema(self.shape)

        def bounded_and_unchanged(value: Any, check: Callable[[Any], Any]) -> Any:
            problem = _bounds_problem(value)
            if problem:
                raise PydanticCustomError("free_form_bounds", problem)
            check(value)
            return value

        # The check's outcome is dropped: the plain type's schema gives the value (and
        # its serialisation), exactly as without the check.
        return core_schema.chain_schema(
            [core_schema.no_info_wrap_validator_function(bounded_and_unchanged, checked), plain]
        )


# -- names, labels, annotations -----------------------------------------------------------------

_NAME_PART: Final = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_DNS_SUBDOMAIN: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_DNS_LABEL: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL_VALUE: Final = rf"({_NAME_PART})?"
# A qualified name in one expression, for the CRD schema (lengths are checked apart).
QUALIFIED_NAME_PATTERN: Final = rf"^({_DNS_SUBDOMAIN}/)?{_NAME_PART}$"
LABEL_VALUE_PATTERN: Final = rf"^{_LABEL_VALUE}$"
DNS_LABEL_PATTERN: Final = rf"^{_DNS_LABEL}$"
# The longest qualified name: a 253-byte prefix, "/" and a 63-byte name.
QUALIFIED_NAME_MAX: Final = 253 + 1 + 63


def _fail(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _require_str(value: Any) -> str:
    if not isinstance(value, str):
        raise _fail("string_type", "Input should be a valid string")
    return value


def qualified_name_problem(name: str) -> str | None:
    """The Kubernetes rule for label and annotation keys (`IsQualifiedName`)."""
    prefix, slash, rest = name.rpartition("/")
    if slash and not prefix:
        return "prefix part must be non-empty"
    if prefix:
        if len(prefix) > 253:
            return "prefix part must be no more than 253 characters"
        if not re.fullmatch(_DNS_SUBDOMAIN, prefix):
            return (
                "prefix part must be a lowercase RFC 1123 subdomain "
                "(alphanumeric characters, '-' or '.')"
            )
    if not rest:
        return "name part must be non-empty"
    if len(rest) > 63:
        return "name part must be no more than 63 characters"
    if "/" in prefix or not re.fullmatch(_NAME_PART, rest):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return None


def label_value_problem(value: str) -> str | None:
    """The Kubernetes rule for label values (`IsValidLabelValue`)."""
    if len(value.encode()) > 63:
        return "must be no more than 63 bytes"
    if not re.fullmatch(_LABEL_VALUE, value):
        return (
            "must be empty or consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return None


def _label_key(value: Any) -> str:
    text = _require_str(value)
    problem = qualified_name_problem(text)
    if problem:
        raise _fail("label_key", f"invalid label key {_shown(text)}: {problem}")
    return text


def _annotation_key(value: Any) -> str:
    text = _require_str(value)
    # The API server checks annotation keys lowercased.
    problem = qualified_name_problem(text.lower())
    if problem:
        raise _fail("annotation_key", f"invalid annotation key {_shown(text)}: {problem}")
    return text


def _label_value(value: Any) -> str:
    text = _require_str(value)
    problem = label_value_problem(text)
    if problem:
        raise _fail("label_value", f"invalid label value {_shown(text)}: {problem}")
    return text


def _shown(value: str, limit: int = 40) -> str:
    """A value for a message: quoted, and cut when long."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


# The most labels or annotations in one map (bounds the cost of the CRD's key rule).
MAX_MAP_ENTRIES: Final = 64


def _keys_rule(pattern: str, what: str, lower: bool = False) -> dict[str, Any]:
    key = "k.lowerAscii()" if lower else "k"
    return {
        "rule": f"self.all(k, size(k) <= {QUALIFIED_NAME_MAX} && {key}.matches(r'{pattern}'))",
        "message": f"{what} keys must be qualified names ([prefix/]name)",
    }


LabelKey = Annotated[str, PlainValidator(_label_key), WithJsonSchema({"type": "string"})]
AnnotationKey = Annotated[str, PlainValidator(_annotation_key), WithJsonSchema({"type": "string"})]
LabelValue = Annotated[
    str,
    PlainValidator(_label_value),
    WithJsonSchema({"type": "string", "maxLength": 63, "pattern": LABEL_VALUE_PATTERN}),
]


def _label_map_schema(key_rule: bool) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "maxProperties": MAX_MAP_ENTRIES,
        "additionalProperties": {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE_PATTERN},
    }
    if key_rule:
        schema["x-kubernetes-validations"] = [_keys_rule(QUALIFIED_NAME_PATTERN, "label")]
    return schema


# Labels (and node selectors): qualified-name keys, label values.
LabelMap = Annotated[dict[LabelKey, LabelValue], WithJsonSchema(_label_map_schema(True))]
# The same inside lists of selectors, where the CRD's key rule would cost too much.
NestedLabelMap = Annotated[dict[LabelKey, LabelValue], WithJsonSchema(_label_map_schema(False))]
# Annotations: qualified-name keys (checked lowercased), any string value.
AnnotationMap = Annotated[
    dict[AnnotationKey, str],
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": MAX_MAP_ENTRIES,
            "additionalProperties": {"type": "string"},
            "x-kubernetes-validations": [
                _keys_rule(QUALIFIED_NAME_PATTERN, "annotation", lower=True)
            ],
        }
    ),
]

# -- images, versions, quantities, addresses ---------------------------------------------------

# What a container's `image` may be: not empty, no whitespace (the API server refuses an
# empty image and one with leading or trailing whitespace), bounded.
IMAGE_MAX: Final = 1024
Image = Annotated[str, Field(min_length=1, max_length=IMAGE_MAX, pattern=r"^\S+$")]

# `1.3.0`, `1.3.1-rc.1`; short numbers, so that reading one never fails.
VERSION_PATTERN: Final = r"^[0-9]{1,9}(\.[0-9]{1,9}){0,3}(-[0-9A-Za-z][0-9A-Za-z.-]{0,40})?$"
VERSION_MAX: Final = 64
Version = Annotated[str, Field(min_length=1, max_length=VERSION_MAX, pattern=VERSION_PATTERN)]

# A non-negative `resource.Quantity`: `100m`, `1Gi`, `0.5`, `1e3`, or an integer.
QUANTITY_PATTERN: Final = (
    r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
QUANTITY_MAX: Final = 64


def _quantity(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _fail(
            "quantity_type", "must be a quantity (a string like 100m or 1Gi, or an integer)"
        )
    if isinstance(value, int):
        if not 0 <= value <= 2**63 - 1:
            raise _fail("quantity", "must be a non-negative 64-bit integer")
        return value
    if len(value) > QUANTITY_MAX or not re.fullmatch(QUANTITY_PATTERN, value):
        raise _fail(
            "quantity", f"must be a non-negative quantity like 100m or 1Gi, not {_shown(value)}"
        )
    return value


Quantity = Annotated[
    int | str,
    PlainValidator(_quantity),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "pattern": QUANTITY_PATTERN,
            "maxLength": QUANTITY_MAX,
        }
    ),
]


def _ip_address(value: Any) -> str:
    text = _require_str(value)
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise _fail("ip_address", f"must be an IP address, not {_shown(text)}") from None
    return text


IPAddress = Annotated[
    str,
    PlainValidator(_ip_address),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 45,
            "x-kubernetes-validations": [
                {"rule": "isIP(self)", "message": "must be an IP address"}
            ],
        }
    ),
]

# -- label selectors in the RemoteIstio's short form -------------------------------------------


def parse_label_selector(text: str) -> dict[str, str]:
    """`a=b,c=d` as a dict; a bare key (`statsd-prom-bridge`) means `app=<key>`.

    Spaces around the parts are allowed. The text must have passed
    `label_selector_problem`.
    """
    selector = {}
    for part in text.split(","):
        key, equals, value = part.strip().partition("=")
        if key:
            selector[key if equals else "app"] = value if equals else key
    return selector


def label_selector_problem(text: str) -> str | None:
    """Why `text` is not `k=v[,k=v...]` or a bare `name` (meaning `app=name`)."""
    if not text.strip():
        return None
    parts = [part.strip() for part in text.split(",")]
    if len(parts) == 1 and "=" not in parts[0]:
        bare = label_value_problem(parts[0])
        return f"a bare name means app=<name>, and the name {bare}" if bare else None
    for part in parts:
        key, equals, value = part.partition("=")
        if not equals:
            return f"{_shown(part)} is not key=value (only k=v[,k=v] or a bare name)"
        key_problem = qualified_name_problem(key)
        if key_problem:
            return f"invalid label key {_shown(key)}: {key_problem}"
        value_problem = label_value_problem(value) if value else "must not be empty"
        if value_problem:
            return f"invalid label value {_shown(value)} for {key}: {value_problem}"
    return None


def _label_selector(value: Any) -> str:
    text = _require_str(value)
    problem = label_selector_problem(text)
    if problem:
        raise _fail("label_selector", problem)
    return text


_SELECTOR_PART: Final = rf"({_DNS_SUBDOMAIN}/)?{_NAME_PART}={_NAME_PART}"
LABEL_SELECTOR_PATTERN: Final = (
    rf"^\s*(({_NAME_PART})|({_SELECTOR_PART}(\s*,\s*{_SELECTOR_PART})*))?\s*$"
)
LABEL_SELECTOR_MAX: Final = 4096
LabelSelectorText = Annotated[
    str,
    PlainValidator(_label_selector),
    WithJsonSchema(
        {"type": "string", "maxLength": LABEL_SELECTOR_MAX, "pattern": LABEL_SELECTOR_PATTERN}
    ),
]

# -- the shapes of pass-through Kubernetes objects ---------------------------------------------


class KubeShape(BaseModel):
    """A Kubernetes type, as far as it is checked: other keys are kept, unchecked."""

    model_config = ConfigDict(extra="allow", strict=True)


class ResourceRequirements(KubeShape):
    """`corev1.ResourceRequirements`."""

    limits: dict[LabelKey, Quantity] | None = None
    requests: dict[LabelKey, Quantity] | None = None


SelectorOperator = Literal["In", "NotIn", "Exists", "DoesNotExist"]


class LabelSelectorRequirement(KubeShape):
    key: LabelKey
    operator: SelectorOperator
    values: list[str] | None = None


class LabelSelector(KubeShape):
    """`metav1.LabelSelector`."""

    matchLabels: NestedLabelMap | None = None
    matchExpressions: list[LabelSelectorRequirement] | None = None


class NodeSelectorRequirement(KubeShape):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    values: list[str] | None = None


class NodeSelectorTerm(KubeShape):
    matchExpressions: list[NodeSelectorRequirement] | None = None
    matchFields: list[NodeSelectorRequirement] | None = None


class NodeSelector(KubeShape):
    nodeSelectorTerms: list[NodeSelectorTerm]


Weight = Annotated[int, Field(ge=1, le=100)]


class PreferredSchedulingTerm(KubeShape):
    weight: Weight
    preference: NodeSelectorTerm


class NodeAffinity(KubeShape):
    requiredDuringSchedulingIgnoredDuringExecution: NodeSelector | None = None
    preferredDuringSchedulingIgnoredDuringExecution: list[PreferredSchedulingTerm] | None = None


class PodAffinityTerm(KubeShape):
    labelSelector: LabelSelector | None = None
    namespaceSelector: LabelSelector | None = None
    namespaces: list[str] | None = None
    topologyKey: Annotated[str, Field(min_length=1)]


class WeightedPodAffinityTerm(KubeShape):
    weight: Weight
    podAffinityTerm: PodAffinityTerm


class PodAffinity(KubeShape):
    requiredDuringSchedulingIgnoredDuringExecution: list[PodAffinityTerm] | None = None
    preferredDuringSchedulingIgnoredDuringExecution: list[WeightedPodAffinityTerm] | None = None


class Affinity(KubeShape):
    """`corev1.Affinity`."""

    nodeAffinity: NodeAffinity | None = None
    podAffinity: PodAffinity | None = None
    podAntiAffinity: PodAffinity | None = None


class Toleration(KubeShape):
    """`corev1.Toleration` (an empty operator means Equal, an empty effect every effect)."""

    key: str | None = None
    operator: Literal["", "Equal", "Exists"] | None = None
    value: str | None = None
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: int | None = None
