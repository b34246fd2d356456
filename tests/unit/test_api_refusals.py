"""What is refused from the resource alone, before any cluster is involved (issue 14).

Each case of `fuzz_corpus.BAD_CASES` used to be accepted by the parser and to fail
mid-rollout, or to crash `render`; now the parser names the field. Valid input keeps
being read as before.
"""

from __future__ import annotations

from typing import Any

import pytest

from istio_operator.api.errors import SpecError
from istio_operator.api.kubetypes import (
    MAX_FREE_FORM_DEPTH,
    label_selector_problem,
    parse_label_selector,
    qualified_name_problem,
)
from istio_operator.api.parse import load_istio, load_remote_istio
from istio_operator.render import render_primary, render_remote, yaml_stream

from .fuzz_corpus import BAD_CASES, BadCase, bad_body, istio_body, nested_dicts, remote_body
from .render_support import FACTS, istio, remote, with_spec


def load(case: BadCase, body: dict[str, Any]) -> None:
    (load_istio if case.kind == "Istio" else load_remote_istio)(body)


@pytest.mark.parametrize("case", BAD_CASES, ids=[case.name for case in BAD_CASES])
def test_bad_spec_is_refused_naming_the_field(case: BadCase) -> None:
    with pytest.raises(SpecError) as info:
        load(case, bad_body(case))

    assert info.value.path == case.field
    assert info.value.message
    assert "\n" not in str(info.value)
    assert len(str(info.value)) < 400, "the message must stay one short line"


def test_messages_say_what_is_wrong() -> None:
    def message(path: str, value: Any) -> str:
        with pytest.raises(SpecError) as info:
            load_istio(with_spec(istio_body(), path, value))
        return str(info.value)

    assert message("pilot.image", "") == "spec.pilot.image: must not be empty"
    assert "quantity like 100m or 1Gi" in message("pilot.resources", {"limits": {"cpu": "x"}})
    assert "at most 64 characters" in message("version", "1." + "9" * 100_000)
    assert "nested deeper than 32 levels" in message("pilot.affinity", nested_dicts(40))
    assert "duplicate value 'http2' (the same as ports[0])" in message(
        "gateways.ingress.ports", [{"port": 1, "name": "http2"}, {"port": 2, "name": "http2"}]
    )
    assert "must be no more than 63 bytes" in message(
        "gateways.ingress.serviceLabels", {"a": "é" * 32}
    )


@pytest.mark.parametrize(
    "resources",
    [
        {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": 2, "memory": "1G"}},
        {"requests": {"cpu": "0.5", "memory": "1e3", "nvidia.com/gpu": "1"}},
        {"requests": {"cpu": ".5"}, "claims": [{"name": "c"}]},
    ],
)
def test_valid_quantities_are_accepted(resources: dict[str, Any]) -> None:
    spec = load_istio(with_spec(istio_body(), "pilot.resources", resources)).resource.spec
    assert spec.pilot is not None
    assert spec.pilot.resources == resources


def test_same_port_number_with_another_protocol_is_accepted() -> None:
    ports = [{"port": 53, "name": "dns", "protocol": "UDP"}, {"port": 53, "name": "dns-tcp"}]
    load_istio(with_spec(istio_body(), "gateways.ingress.ports", ports))


@pytest.mark.parametrize(
    ("text", "selector"),
    [
        ("istio=pilot", {"istio": "pilot"}),
        ("statsd-prom-bridge", {"app": "statsd-prom-bridge"}),
        ("app=jaeger, tier=web", {"app": "jaeger", "tier": "web"}),
        ("example.com/role=edge", {"example.com/role": "edge"}),
        ("", {}),
    ],
)
def test_label_selector_syntax(text: str, selector: dict[str, str]) -> None:
    assert label_selector_problem(text) is None
    assert parse_label_selector(text) == selector


@pytest.mark.parametrize(
    "text", ["a=", "a=b,,c=d", "a!=b", "a in (x)", "=b", "a=b c", "x" * 64, "a/b/c=d", "a==b"]
)
def test_label_selector_garbage_is_refused(text: str) -> None:
    assert label_selector_problem(text)


def test_the_selector_reads_pairs_and_a_bare_name_as_app() -> None:
    """The remote reconcile selects the primary's pods with it, so its reading is pinned."""
    assert parse_label_selector("istio=pilot") == {"istio": "pilot"}
    assert parse_label_selector(" a=b , c=d ") == {"a": "b", "c": "d"}
    assert parse_label_selector("statsd-prom-bridge") == {"app": "statsd-prom-bridge"}
    assert parse_label_selector("") == {}


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("app", True),
        ("app.kubernetes.io/name", True),
        ("example.com/a_b.c-d", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("/app", False),
        ("Example.com/app", False),
        ("app-", False),
        ("a/b/c", False),
        ("", False),
    ],
)
def test_qualified_names_follow_the_kubernetes_rule(name: str, ok: bool) -> None:
    assert (qualified_name_problem(name) is None) is ok


def test_annotation_keys_are_checked_lowercased_as_the_api_server_does() -> None:
    annotations = {"Example.COM/Key": "v", "service.beta.kubernetes.io/aws-x": "any value ♥"}
    body = with_spec(istio_body(), "gateways.ingress.serviceAnnotations", annotations)
    load_istio(body)


def test_free_form_values_at_the_depth_bound_render() -> None:
    # affinity (1) > nodeAffinity (2) > the rest: exactly MAX_FREE_FORM_DEPTH levels.
    affinity = {"nodeAffinity": nested_dicts(MAX_FREE_FORM_DEPTH - 2)}
    resource = istio(with_spec(istio_body(), "pilot.affinity", affinity))
    assert yaml_stream(render_primary(resource))

    deeper = {"nodeAffinity": nested_dicts(MAX_FREE_FORM_DEPTH - 1)}
    with pytest.raises(SpecError, match=r"^spec\.pilot\.affinity: nested deeper than 32"):
        istio(with_spec(istio_body(), "pilot.affinity", deeper))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        # The injector's ConfigMap serialises these selectors to YAML inside render.
        ("sidecarInjector.neverInjectSelector", [{"matchLabels": {}, "x": nested_dicts(400)}]),
        # Every free-form field is serialised again when the render is printed.
        ("pilot.resources", {"limits": {}, "x": nested_dicts(400)}),
    ],
)
def test_the_two_recursion_crashes_are_refusals(path: str, value: Any) -> None:
    with pytest.raises(SpecError) as info:
        istio(with_spec(istio_body(), path, value))
    assert info.value.path == f"spec.{path}"


def test_remote_pod_ips_are_checked_whatever_the_network() -> None:
    body = remote_body()
    body["spec"]["enabledServices"][0]["podIPs"] = ["10.0.0.1", "fd00::1"]
    resource = remote(body)
    assert render_remote(istio(istio_body()), resource, FACTS)
