"""Bad and odd `Istio`/`RemoteIstio` specs: a fixed corpus and generators for fuzzing.

`BAD_CASES` are the specs that the API server's schema used to accept and that then
failed mid-rollout (issue 14), each with the field the parser must name and, where the
CRD schema refuses it too, the field the API server names. The unit tests, the fuzz
test and the integration test against a real API server all read them; add a case
here when a new way to break a rollout is found.

The generators (`edits`, `remote_edits`) change the reference samples at field paths
taken from the models, with values that are random, of the wrong type, deeply nested,
huge or exotic. Every generated spec must either render or be refused with a
`SpecError` naming a `spec.` field.
"""

from __future__ import annotations

import copy
import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from hypothesis import strategies as st
from pydantic import BaseModel

from istio_operator.api.istio import IstioSpec
from istio_operator.api.remoteistio import RemoteIstioSpec

from .render_support import SAMPLE_REMOTE, sample_body


def nested_dicts(depth: int, leaf: Any = "x") -> Any:
    """`{"a": {"a": ... leaf}}`, `depth` levels deep (built without recursion)."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def nested_lists(depth: int, leaf: Any = "x") -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


@dataclass(frozen=True)
class BadCase:
    """A spec edit that must be refused before any cluster is involved."""

    name: str
    kind: Literal["Istio", "RemoteIstio"]
    path: str  # dotted spec path of the edit; a `[0]` segment indexes a list
    value: Any
    field: str  # the path the parser's SpecError names
    schema_field: str | None  # the path the API server's refusal names; None if it accepts


BAD_CASES: tuple[BadCase, ...] = (
    BadCase("empty-image", "Istio", "pilot.image", "", "spec.pilot.image", "spec.pilot.image"),
    BadCase(
        "blank-image",
        "Istio",
        "proxy.image",
        " docker.io/istio/proxyv2:1.3.0",
        "spec.proxy.image",
        "spec.proxy.image",
    ),
    BadCase(
        "empty-sds-image",
        "Istio",
        "gateways.ingress.sds.image",
        "",
        "spec.gateways.ingress.sds.image",
        "spec.gateways.ingress.sds.image",
    ),
    BadCase(
        "bad-quantity",
        "Istio",
        "pilot.resources",
        {"limits": {"cpu": "lots"}},
        "spec.pilot.resources.limits.cpu",
        "spec.pilot.resources.limits.cpu",
    ),
    BadCase(
        "negative-quantity",
        "Istio",
        "gateways.egress.resources",
        {"requests": {"memory": "-1Gi"}},
        "spec.gateways.egress.resources.requests.memory",
        "spec.gateways.egress.resources.requests.memory",
    ),
    BadCase(
        "quantity-wrong-type",
        "Istio",
        "defaultResources",
        {"requests": {"cpu": [1]}},
        "spec.defaultResources.requests.cpu",
        "spec.defaultResources.requests.cpu",
    ),
    BadCase(
        "affinity-string",
        "Istio",
        "pilot.affinity",
        {"nodeAffinity": "anywhere"},
        "spec.pilot.affinity.nodeAffinity",
        "spec.pilot.affinity.nodeAffinity",
    ),
    BadCase(
        "affinity-bad-operator",
        "Istio",
        "galley.affinity",
        {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Is"}]}]
                }
            }
        },
        "spec.galley.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        ".nodeSelectorTerms[0].matchExpressions[0].operator",
        None,
    ),
    BadCase(
        "toleration-operator",
        "Istio",
        "pilot.tolerations",
        [{"key": "dedicated", "operator": "Maybe"}],
        "spec.pilot.tolerations[0].operator",
        "spec.pilot.tolerations[0].operator",
    ),
    BadCase(
        "node-selector-value",
        "Istio",
        "citadel.nodeSelector",
        {"disk": "fast ssd"},
        "spec.citadel.nodeSelector.disk",
        "spec.citadel.nodeSelector.disk",
    ),
    BadCase(
        # A dry-run allocates no node port, so only the parser and the schema can judge it.
        "node-port-out-of-range",
        "Istio",
        "gateways.ingress.ports",
        [{"port": 9999, "name": "tcp-extra", "nodePort": 80}],
        "spec.gateways.ingress.ports[0].nodePort",
        "spec.gateways.ingress.ports[0].nodePort",
    ),
    BadCase(
        "duplicate-port-name",
        "Istio",
        "gateways.ingress.ports",
        [{"port": 80, "name": "http2"}, {"port": 8080, "name": "http2"}],
        "spec.gateways.ingress.ports[1].name",
        "spec.gateways.ingress.ports",
    ),
    BadCase(
        "duplicate-port-number",
        "Istio",
        "gateways.egress.ports",
        [{"port": 80, "name": "http2"}, {"port": 80, "name": "http"}],
        "spec.gateways.egress.ports[1].port",
        "spec.gateways.egress.ports",
    ),
    BadCase(
        "port-name-not-dns-label",
        "Istio",
        "gateways.ingress.ports",
        [{"port": 80, "name": "HTTP_2"}],
        "spec.gateways.ingress.ports[0].name",
        "spec.gateways.ingress.ports[0].name",
    ),
    BadCase(
        "annotation-key",
        "Istio",
        "gateways.ingress.serviceAnnotations",
        {"bad key!": "x"},
        'spec.gateways.ingress.serviceAnnotations["bad key!"]',
        "spec.gateways.ingress.serviceAnnotations",
    ),
    BadCase(
        "label-value-too-long",
        "Istio",
        "gateways.ingress.serviceLabels",
        {"tier": "x" * 64},
        "spec.gateways.ingress.serviceLabels.tier",
        "spec.gateways.ingress.serviceLabels.tier",
    ),
    BadCase(
        "label-key",
        "Istio",
        "gateways.egress.serviceLabels",
        {"-tier": "edge"},
        'spec.gateways.egress.serviceLabels["-tier"]',
        "spec.gateways.egress.serviceLabels",
    ),
    BadCase(
        "injector-selector-label",
        "Istio",
        "sidecarInjector.neverInjectSelector",
        [{"matchLabels": {"app": "no way"}}],
        "spec.sidecarInjector.neverInjectSelector[0].matchLabels.app",
        "spec.sidecarInjector.neverInjectSelector[0].matchLabels.app",
    ),
    BadCase(
        "huge-version",
        "Istio",
        "version",
        "1.3." + "9" * 100_000,
        "spec.version",
        "spec.version",
    ),
    BadCase("version-shape", "Istio", "version", "1.3.x", "spec.version", "spec.version"),
    BadCase(
        "deep-affinity",
        "Istio",
        "pilot.affinity",
        {"nodeAffinity": nested_dicts(300)},
        "spec.pilot.affinity",
        None,
    ),
    BadCase(
        "deep-injector-selector",
        "Istio",
        "sidecarInjector.alwaysInjectSelector",
        [{"matchLabels": {}, "x": nested_dicts(300)}],
        "spec.sidecarInjector.alwaysInjectSelector",
        None,
    ),
    BadCase(
        "deep-list",
        "Istio",
        "gateways.ingress.tolerations",
        [{"key": "a", "x": nested_lists(5000)}],
        "spec.gateways.ingress.tolerations",
        None,
    ),
    BadCase(
        "oversized-resources",
        "Istio",
        "mixer.resources",
        {"limits": {"cpu": "1"}, "note": "x" * 70_000},
        "spec.mixer.resources",
        None,
    ),
    BadCase(
        "pod-ip",
        "RemoteIstio",
        "enabledServices[0].podIPs",
        ["10.0.0.1", "not-an-ip"],
        "spec.enabledServices[0].podIPs[1]",
        "spec.enabledServices[0].podIPs[1]",
    ),
    BadCase(
        "label-selector-garbage",
        "RemoteIstio",
        "enabledServices[0].labelSelector",
        "istio=pilot,,!!!",
        "spec.enabledServices[0].labelSelector",
        "spec.enabledServices[0].labelSelector",
    ),
    BadCase(
        "label-selector-bad-value",
        "RemoteIstio",
        "enabledServices[1].labelSelector",
        "istio-mixer-type=policy and more",
        "spec.enabledServices[1].labelSelector",
        "spec.enabledServices[1].labelSelector",
    ),
    BadCase(
        "mirrored-duplicate-port",
        "RemoteIstio",
        "enabledServices[0].ports",
        [{"port": 15010, "name": "grpc"}, {"port": 15011, "name": "grpc"}],
        "spec.enabledServices[0].ports[1].name",
        None,
    ),
    BadCase(
        "remote-resources",
        "RemoteIstio",
        "defaultResources",
        {"requests": {"cpu": "ten"}},
        "spec.defaultResources.requests.cpu",
        "spec.defaultResources.requests.cpu",
    ),
)


def set_path(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path (`a.b[0].c`) in `spec`, creating objects on the way."""
    node: Any = spec
    parts = path.replace("[", ".[").split(".")
    for part, following in zip(parts, [*parts[1:], None], strict=True):
        key: Any = int(part[1:-1]) if part.startswith("[") else part
        if following is None:
            node[key] = value
        elif isinstance(key, int):
            node = node[key]
        else:
            if not isinstance(node.get(key), dict | list):
                node[key] = [] if following.startswith("[") else {}
            node = node[key]


def istio_body(version: str = "1.3.0") -> dict[str, Any]:
    return sample_body(version)


def remote_body() -> dict[str, Any]:
    return copy.deepcopy(SAMPLE_REMOTE)


def bad_body(case: BadCase) -> dict[str, Any]:
    """The reference sample of the case's kind with the case's edit."""
    body = istio_body() if case.kind == "Istio" else remote_body()
    # The value itself is not copied: deep ones would exhaust `copy.deepcopy`'s recursion.
    set_path(body["spec"], case.path, case.value)
    return body


# -- generators --------------------------------------------------------------------------------


def _strip(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return _strip(members[0])
    return annotation


def field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every field path of a model (list items as `[0]`), read from the model itself,
    so that the fuzzer reaches new fields without being told."""
    paths = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{info.alias or name}"
        paths.append(path)
        annotation = _strip(info.annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths += field_paths(annotation, f"{path}.")
        elif get_origin(annotation) is list:
            item = _strip(get_args(annotation)[0])
            if isinstance(item, type) and issubclass(item, BaseModel):
                paths += field_paths(item, f"{path}[0].")
    return paths


ISTIO_PATHS = tuple(field_paths(IstioSpec))
# The sample's first service exists, so `[0]` paths land in it.
REMOTE_PATHS = tuple(field_paths(RemoteIstioSpec))

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**18, max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8),
    st.sampled_from(
        ["", " ", "1.3.0", "1.4.0", "1.2.5", "100m", "1Gi", "-1", "TCP", "a=b", "10.0.0.1", "\x00"]
    ),
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)
huge_strings = st.integers(min_value=64, max_value=200_000).flatmap(
    lambda n: st.sampled_from(["x" * n, "9" * n, "1.3." + "9" * n, "a=" + "b" * n])
)
# At most 400 levels: hypothesis prints a failing example recursively (the fixed corpus
# has deeper ones).
deep_values = st.tuples(st.integers(min_value=20, max_value=400), st.booleans()).map(
    lambda spec: nested_dicts(spec[0]) if spec[1] else nested_lists(spec[0])
)
many_items = st.integers(min_value=100, max_value=3000).map(
    lambda n: [{"key": f"k{i}", "operator": "Exists"} for i in range(n)]
)
adversarial = st.one_of(json_values, huge_strings, deep_values, many_items, scalars)


def edits(paths: tuple[str, ...]) -> st.SearchStrategy[list[tuple[str, Any]]]:
    """Up to 5 (path, value) edits of a spec: known fields and unknown ones."""
    path = st.one_of(st.sampled_from(paths), st.text(min_size=1, max_size=8))
    return st.lists(st.tuples(path, adversarial), max_size=5)


def edited(body: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    """`body` with each edit applied where it can be (an edit through a non-object
    value, or at an index that does not exist, replaces nothing)."""
    result = copy.deepcopy(body)
    for path, value in changes:
        try:
            set_path(result["spec"], path, value)
        except (IndexError, KeyError, TypeError, AttributeError, ValueError):
            continue
    return result
