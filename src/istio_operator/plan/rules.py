"""The derived defaults a plan field may declare (see `plan.model.derived`).

A rule computes the value of a field the resource leaves unset from what is
already known: the family and version, the control plane's namespace, the
resolved `defaultResources`, the resolved mixer settings, or a sibling field
resolved before it. Each rule also says, for the configuration reference, how
its default reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from istio_operator.versions.families import Family


@dataclass(frozen=True)
class Scope:
    """What rules may read while one plan is resolved."""

    family: Family
    version: str
    # The namespace of the Istio resource (its control plane's, on the primary).
    namespace: str
    # The `defaultResources` in effect, and the user's own (None when unset).
    default_resources: Mapping[str, Any]
    user_default_resources: Mapping[str, Any] | None
    proxy_resources: Mapping[str, Any]
    # The resolved mixer section, once resolved (policy and telemetry inherit from it).
    mixer: Any = None
    # The resolved proxy section, once resolved (gateways fall back to its resources).
    proxy: Any = None


# (scope, the section's fields resolved so far, the field's name, the rule's arguments)
Compute = Callable[[Scope, Mapping[str, Any], str, tuple[str, ...]], Any]


@dataclass(frozen=True)
class Rule:
    name: str
    compute: Compute
    # The note before the default in the configuration reference, given the field's path
    # and the rule's arguments ("" when the value says it all).
    describe: Callable[[str, tuple[str, ...]], str]


def _image(scope: Scope, _: Mapping[str, Any], __: str, args: tuple[str, ...]) -> str:
    return scope.family.image(args[0], scope.version)


def _fixed(_: Scope, __: Mapping[str, Any], ___: str, args: tuple[str, ...]) -> str:
    return args[0]


def _default_resources(scope: Scope, _: Mapping[str, Any], __: str, args: tuple[str, ...]) -> Any:
    if args == ("proxy",):
        user = scope.user_default_resources
        return scope.proxy_resources if user is None else user
    return scope.default_resources


def _from_mixer(scope: Scope, _: Mapping[str, Any], name: str, __: tuple[str, ...]) -> Any:
    return getattr(scope.mixer, name)


def _from_proxy(scope: Scope, _: Mapping[str, Any], name: str, __: tuple[str, ...]) -> Any:
    return getattr(scope.proxy, name)


def _same_as(_: Scope, siblings: Mapping[str, Any], __: str, args: tuple[str, ...]) -> Any:
    return siblings[args[0]]


def _target_port(_: Scope, siblings: Mapping[str, Any], __: str, ___: tuple[str, ...]) -> Any:
    return siblings["port"]


def _zipkin(scope: Scope, _: Mapping[str, Any], __: str, ___: tuple[str, ...]) -> str:
    return f"zipkin.{scope.namespace}:9411"


def _namespace_list(scope: Scope, _: Mapping[str, Any], __: str, ___: tuple[str, ...]) -> Any:
    return [scope.namespace]


VERSIONED_IMAGE = Rule("image", _image, lambda _, __: "")
FIXED_IMAGE = Rule("fixed image", _fixed, lambda _, __: "")
DEFAULT_RESOURCES = Rule(
    "default resources",
    _default_resources,
    lambda _, args: (
        "`defaultResources` when the resource sets it, else" if args else "`defaultResources`"
    ),
)
FROM_MIXER = Rule(
    "from mixer", _from_mixer, lambda path, _: f"as `mixer.{path.rsplit('.', 1)[-1]}`"
)
FROM_PROXY = Rule(
    "from proxy", _from_proxy, lambda path, _: f"as `proxy.{path.rsplit('.', 1)[-1]}`"
)
SAME_AS = Rule("same as", _same_as, lambda path, args: f"as `{path.rsplit('.', 1)[0]}.{args[0]}`")
TARGET_PORT = Rule("target port", _target_port, lambda _, __: "as `port`")
ZIPKIN_ADDRESS = Rule("zipkin", _zipkin, lambda _, __: "")
CLUSTER_NAMESPACE_LIST = Rule("namespace", _namespace_list, lambda _, __: "")
