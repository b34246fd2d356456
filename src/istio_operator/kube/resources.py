"""lightkube resource classes for any apiVersion/kind the operator renders.

Built-in kinds come from lightkube's models; Istio's own kinds are registered as
generic resources from the CustomResourceDefinitions the operator renders, so no
plural or scope is ever guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lightkube.core.exceptions import LoadResourceError
from lightkube.core.resource import NamespacedResource
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import create_global_resource, create_namespaced_resource

AnyResource = Any  # lightkube's resource classes share no useful static type


class UnknownKindError(LookupError):
    """A kind with no built-in model and no registered CustomResourceDefinition."""


def register_crds(crds: Iterable[Mapping[str, Any]]) -> None:
    """Registers a generic resource for every served version of each CRD."""
    for crd in crds:
        spec = crd["spec"]
        names = spec["names"]
        create = (
            create_namespaced_resource
            if spec.get("scope") == "Namespaced"
            else create_global_resource
        )
        for version in spec["versions"]:
            if resource_registry.get(f"{spec['group']}/{version['name']}", names["kind"]):
                continue
            create(spec["group"], version["name"], names["kind"], names["plural"])


def resource_class(api_version: str, kind: str) -> AnyResource:
    try:
        return resource_registry.load(api_version, kind)
    except (LoadResourceError, ModuleNotFoundError, AttributeError) as error:
        raise UnknownKindError(f"no resource type known for {api_version} {kind}") from error


def api_resource(api_version: str, kind: str) -> tuple[str, str]:
    """(apiGroup, plural) of a kind: what RBAC rules name it by."""
    info = resource_class(api_version, kind)._api_info
    return str(info.resource.group), str(info.plural)


def to_resource(manifest: Mapping[str, Any]) -> AnyResource:
    return resource_class(manifest["apiVersion"], manifest["kind"]).from_dict(dict(manifest))


def is_namespaced(api_version: str, kind: str) -> bool:
    return issubclass(resource_class(api_version, kind), NamespacedResource)
