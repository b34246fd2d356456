"""Building blocks shared by the `Istio` and `RemoteIstio` models.

Attribute names are the JSON field names of the `istio.banzaicloud.io/v1beta1`
API (camelCase), so `model_dump(exclude_none=True)` gives back the JSON shape.
Every optional field is `None` when the resource leaves it unset; defaults are
applied explicitly by `istio_operator.api.defaults`.

Kubernetes-typed fields (resources, affinity, tolerations, label selectors...)
are plain dicts and lists, passed through to the rendered manifests unchanged;
their shape, depth and size are checked when the resource is read (see
`istio_operator.api.kubetypes`).
"""

# Annotations are evaluated as the classes are made (no `from __future__ import annotations`):
# pydantic would otherwise parse each string annotation again, at every command's start.
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from istio_operator.api.kubetypes import (
    DNS_LABEL_PATTERN,
    Affinity,
    AnnotationMap,
    FreeForm,
    LabelMap,
    LabelSelector,
    ResourceRequirements,
    Toleration,
)

# Kubernetes objects passed through verbatim, bounded in depth and size, and checked
# against the Kubernetes type where one is named.
KubeObject = Annotated[dict[str, Any], FreeForm()]
KubeObjectList = Annotated[list[dict[str, Any]], FreeForm()]
Resources = Annotated[dict[str, Any], FreeForm(ResourceRequirements)]
# In the CRD, only the first level of an affinity: the full schema, inlined at every
# affinity field, would make the CRD ten times larger. The parser checks all of it.
_AFFINITY_CRD_SCHEMA = {
    "type": "object",
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": {
        name: {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        for name in ("nodeAffinity", "podAffinity", "podAntiAffinity")
    },
}
AffinityObject = Annotated[dict[str, Any], FreeForm(Affinity), WithJsonSchema(_AFFINITY_CRD_SCHEMA)]
Tolerations = Annotated[list[dict[str, Any]], FreeForm(list[Toleration])]
LabelSelectors = Annotated[list[dict[str, Any]], FreeForm(list[LabelSelector])]
StringMap = dict[str, str]
Labels = LabelMap
Annotations = AnnotationMap

# Replica counts and similar small non-negative integers.
Count = Annotated[int, Field(ge=0, le=2**31 - 1)]
PortNumber = Annotated[int, Field(ge=1, le=65535)]
# A Kubernetes IntOrString: a port number or a port name.
IntOrString = int | str


class ApiModel(BaseModel):
    """Base of every API model.

    Strict types mirror what the API server accepts for the CRD schema: a
    string is never coerced to a number or a boolean. Unknown fields are
    removed (with a warning) by `istio_operator.api.parse` before validation,
    so `extra="forbid"` only catches programming errors.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        populate_by_name=True,
        validate_default=False,
    )


class ObjectMeta(BaseModel):
    """The part of `metadata` the operator reads. Other metadata keys are ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)

    name: str
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resourceVersion: str | None = None
    creationTimestamp: str | None = None
    deletionTimestamp: str | None = None
    labels: StringMap | None = None
    annotations: StringMap | None = None
    finalizers: list[str] | None = None


NODE_PORT_MIN, NODE_PORT_MAX = 30000, 32767
_NODE_PORT_RULE = {
    "rule": f"self == 0 || (self >= {NODE_PORT_MIN} && self <= {NODE_PORT_MAX})",
    "message": f"must be 0 (allocated) or in {NODE_PORT_MIN}-{NODE_PORT_MAX}",
}


def _node_port_in_range(port: int) -> int:
    if port != 0 and not NODE_PORT_MIN <= port <= NODE_PORT_MAX:
        raise PydanticCustomError("node_port_range", _NODE_PORT_RULE["message"])
    return port


class ServicePort(ApiModel):
    """A Service port (the fields of `corev1.ServicePort` the operator uses)."""

    # The API server wants a DNS label (lowercase, at most 63 characters).
    name: Annotated[str, Field(max_length=63, pattern=DNS_LABEL_PATTERN)] | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] | None = None
    port: PortNumber
    targetPort: IntOrString | None = Field(
        default=None, json_schema_extra={"x-kubernetes-int-or-string": True}
    )
    # A server-side dry-run allocates no node port, so it cannot judge the range: refused
    # here instead (0 asks for one; the range is Kubernetes' default --service-node-port-range).
    nodePort: (
        Annotated[
            int,
            Field(
                ge=0,
                le=NODE_PORT_MAX,
                json_schema_extra={"x-kubernetes-validations": [_NODE_PORT_RULE]},
            ),
            AfterValidator(_node_port_in_range),
        ]
        | None
    ) = None


# The most ports one Service may list here (bounds the CEL rules' cost).
MAX_PORTS = 128


def _duplicate(index: int, field: str, value: str, first: int) -> PydanticCustomError:
    # `item_loc` extends the error's location to the port at fault (see `parse.spec_error`).
    return PydanticCustomError(
        "duplicate_port",
        "duplicate value {value} (the same as ports[{first}])",
        {"value": value, "first": first, "item_loc": (index, field)},
    )


def _unique_ports(ports: list[ServicePort]) -> list[ServicePort]:
    """Port names and numbers must be unique within a Service, as the API server wants."""
    seen_names: dict[str, int] = {}
    seen_numbers: dict[tuple[int, str], int] = {}
    for index, port in enumerate(ports):
        if port.name is not None:
            if port.name in seen_names:
                raise _duplicate(index, "name", f"{port.name!r}", seen_names[port.name])
            seen_names[port.name] = index
        number = (port.port, port.protocol or "TCP")
        if number in seen_numbers:
            raise _duplicate(index, "port", f"{port.port}/{number[1]}", seen_numbers[number])
        seen_numbers[number] = index
    return ports


# The CRD's rules for the same, at the gateways (within a list of services they would
# cost more than the API server allows).
_UNIQUE_PORT_RULES = [
    {
        "rule": "self.all(p, !has(p.name) || self.exists_one(q, has(q.name) && q.name == p.name))",
        "message": "port names must be unique",
    },
    {
        "rule": "self.all(p, self.exists_one(q, q.port == p.port && "
        "(has(q.protocol) ? q.protocol : 'TCP') == "
        "(has(p.protocol) ? p.protocol : 'TCP')))",
        "message": "port numbers must be unique per protocol",
    },
]

# A Service's ports: unique names and unique number/protocol pairs.
ServicePorts = Annotated[
    list[ServicePort],
    Field(max_length=MAX_PORTS, json_schema_extra={"x-kubernetes-validations": _UNIQUE_PORT_RULES}),
    AfterValidator(_unique_ports),
]
# The same, checked by the parser only.
MirroredPorts = Annotated[list[ServicePort], AfterValidator(_unique_ports)]
