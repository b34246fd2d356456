"""Building blocks shared by the `Istio` and `RemoteIstio` models.

Attribute names are the JSON field names of the `istio.banzaicloud.io/v1beta1`
API (camelCase), so `model_dump(exclude_none=True)` gives back the JSON shape.
Every optional field is `None` when the resource leaves it unset; defaults are
applied explicitly by `istio_operator.api.defaults`.

Kubernetes-typed fields (resources, affinity, tolerations, label selectors...)
are plain dicts and lists: they are passed through to the rendered manifests
unchanged and validated by the API server of the cluster they land on.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Kubernetes objects passed through verbatim (corev1.ResourceRequirements,
# corev1.Affinity, corev1.Toleration, metav1.LabelSelector...).
KubeObject = dict[str, Any]
KubeObjectList = list[KubeObject]
StringMap = dict[str, str]

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


class ServicePort(ApiModel):
    """A Service port (the fields of `corev1.ServicePort` the operator uses)."""

    name: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] | None = None
    port: PortNumber
    targetPort: IntOrString | None = Field(
        default=None, json_schema_extra={"x-kubernetes-int-or-string": True}
    )
    nodePort: Annotated[int, Field(ge=0, le=65535)] | None = None
