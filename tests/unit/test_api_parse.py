"""Reading Istio and RemoteIstio bodies: pruning, warnings and error paths."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from istio_operator.api.errors import SpecError
from istio_operator.api.parse import Misspelling, explained, load_istio, load_remote_istio
from istio_operator.plan import resolve_primary

SAMPLES = Path(__file__).parent.parent / "fixtures" / "samples"


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((SAMPLES / name).read_text())
    return data


ISTIO = sample("istio_v1beta1_istio.yaml")
REMOTE = sample("istio_v1beta1_remoteistio.yaml")


def minimal(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "istio.banzaicloud.io/v1beta1",
        "kind": "Istio",
        "metadata": {"name": "mesh", "namespace": "istio-system"},
        "spec": {"version": "1.3.0", "mtls": True, **spec},
    }


def test_istio_sample_loads_unchanged_except_the_misplaced_locality_lb() -> None:
    loaded = load_istio(ISTIO)

    assert loaded.warnings == ['unknown field "spec.tracing.localityLB" ignored']
    expected = copy.deepcopy(ISTIO["spec"])
    del expected["tracing"]["localityLB"]
    assert loaded.resource.spec.model_dump(by_alias=True, exclude_none=True) == expected
    assert loaded.resource.metadata.name == "istio-sample"
    assert loaded.resource.spec.gateways is not None
    assert loaded.resource.spec.gateways.ingress is not None
    assert loaded.resource.spec.gateways.ingress.serviceType == "LoadBalancer"
    assert loaded.resource.spec.tracing is not None
    assert loaded.resource.spec.tracing.lightstep is not None
    assert loaded.resource.spec.tracing.lightstep.secure is True


def test_remote_sample_loads_unchanged_without_warnings() -> None:
    loaded = load_remote_istio(REMOTE)

    assert loaded.warnings == []
    spec = loaded.resource.spec
    assert spec.model_dump(by_alias=True, exclude_none=True) == REMOTE["spec"]
    assert [s.name for s in spec.enabledServices] == [
        "istio-pilot",
        "istio-policy",
        "istio-statsd",
        "istio-telemetry",
        "zipkin",
    ]
    assert spec.enabledServices[0].labelSelector == "istio=pilot"


def test_loading_does_not_modify_the_body() -> None:
    body = copy.deepcopy(ISTIO)
    load_istio(body)
    assert body == ISTIO


def test_unknown_fields_are_dropped_with_their_full_path() -> None:
    body = minimal(
        bogus=1,
        pilot={"replicaCount": 2, "colour": "red"},
        gateways={"ingress": {"ports": [{"port": 80}, {"port": 443, "extra": True}]}},
        localityLB={"distribute": [{"from": "a/*", "to": {"b/*": 100}, "weight": 3}]},
    )
    body["unexpected"] = {}

    loaded = load_istio(body)

    assert sorted(loaded.warnings) == sorted(
        [
            'unknown field "spec.bogus" ignored',
            'unknown field "spec.pilot.colour" ignored',
            'unknown field "spec.gateways.ingress.ports[1].extra" ignored',
            'unknown field "spec.localityLB.distribute[0].weight" ignored',
            'unknown field "unexpected" ignored',
        ]
    )
    spec = loaded.resource.spec
    assert spec.pilot is not None
    assert spec.pilot.replicaCount == 2
    assert spec.localityLB is not None
    assert spec.localityLB.distribute is not None
    assert spec.localityLB.distribute[0].from_ == "a/*"
    assert spec.localityLB.distribute[0].to == {"b/*": 100}


def test_pass_through_kubernetes_objects_keep_every_field() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [], "x": [1]}
        }
    }
    tolerations = [{"key": "dedicated", "operator": "Exists", "whatever": "kept"}]
    resources = {"requests": {"cpu": "1", "nvidia.com/gpu": "1"}, "claims": [{"name": "c"}]}
    body = minimal(pilot={"affinity": affinity, "tolerations": tolerations, "resources": resources})

    loaded = load_istio(body)

    assert loaded.warnings == []
    pilot = loaded.resource.spec.pilot
    assert pilot is not None
    assert pilot.affinity == affinity
    assert pilot.tolerations == tolerations
    assert pilot.resources == resources


def test_status_and_unread_metadata_are_ignored_silently() -> None:
    body = minimal()
    body["status"] = {"Status": "Available", "GatewayAddress": ["1.2.3.4"]}
    body["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    body["metadata"]["generation"] = 4

    loaded = load_istio(body)

    assert loaded.warnings == []
    assert loaded.resource.metadata.generation == 4


@pytest.mark.parametrize(
    ("spec", "path", "fragment"),
    [
        ({"pilot": {"replicaCount": "2"}}, "spec.pilot.replicaCount", "integer"),
        ({"pilot": {"replicaCount": -1}}, "spec.pilot.replicaCount", "greater than"),
        ({"mtls": "true"}, "spec.mtls", "boolean"),
        ({"pilot": 3}, "spec.pilot", "object"),
        ({"gateways": {"ingress": {"serviceType": "Ingress"}}}, None, "LoadBalancer"),
        ({"outboundTrafficPolicy": {"mode": "DENY"}}, "spec.outboundTrafficPolicy.mode", "DENY"),
        ({"tracing": {"tracer": "jaeger"}}, "spec.tracing.tracer", "jaeger"),
        ({"imagePullPolicy": "Sometimes"}, "spec.imagePullPolicy", "IfNotPresent"),
        ({"proxy": {"dnsRefreshRate": "5m"}}, "spec.proxy.dnsRefreshRate", "pattern"),
        ({"proxy": {"logLevel": "verbose"}}, "spec.proxy.logLevel", "verbose"),
        ({"proxy": {"accessLogEncoding": "XML"}}, "spec.proxy.accessLogEncoding", "XML"),
        (
            {"gateways": {"egress": {"ports": [{"port": 80}, {"port": 70000}]}}},
            "spec.gateways.egress.ports[1].port",
            "less than",
        ),
        (
            {"gateways": {"ingress": {"ports": [{"port": 80, "targetPort": [80]}]}}},
            "spec.gateways.ingress.ports[0].targetPort",
            "",
        ),
        (
            {"gateways": {"ingress": {"serviceAnnotations": {"a": 1}}}},
            "spec.gateways.ingress.serviceAnnotations.a",
            "string",
        ),
        (
            {"sidecarInjector": {"neverInjectSelector": ["app=x"]}},
            "spec.sidecarInjector.neverInjectSelector[0]",
            "",
        ),
        ({"pilot": {"traceSampling": 101.0}}, "spec.pilot.traceSampling", "less than"),
        ({"version": ""}, "spec.version", "must not be empty"),
    ],
)
def test_invalid_fields_raise_spec_error_with_their_path(
    spec: dict[str, Any], path: str | None, fragment: str
) -> None:
    with pytest.raises(SpecError) as info:
        load_istio(minimal(**spec))

    expected_path = path or "spec.gateways.ingress.serviceType"
    assert info.value.path == expected_path
    assert fragment in info.value.message
    assert str(info.value) == f"{expected_path}: {info.value.message}"
    assert "\n" not in str(info.value)


def test_missing_required_fields_are_named() -> None:
    body = minimal()
    del body["spec"]["mtls"]
    # Optional in the schema (the istiod family does not read it), required by the classic one.
    with pytest.raises(SpecError, match=r"^spec\.mtls: Field required$"):
        resolve_primary(load_istio(body).resource)

    remote = copy.deepcopy(REMOTE)
    del remote["spec"]["enabledServices"][1]["name"]
    with pytest.raises(SpecError) as info:
        load_remote_istio(remote)
    assert info.value.path == "spec.enabledServices[1].name"

    del remote["spec"]
    with pytest.raises(SpecError) as info:
        load_remote_istio(remote)
    assert info.value.path == "spec"


def test_wrong_kind_or_api_version_is_refused() -> None:
    with pytest.raises(SpecError) as info:
        load_remote_istio(ISTIO)
    assert info.value.path == "kind"

    body = minimal()
    body["apiVersion"] = "istio.banzaicloud.io/v1alpha1"
    with pytest.raises(SpecError) as info:
        load_istio(body)
    assert info.value.path == "apiVersion"


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
FIELD_NAMES = st.sampled_from(
    ["version", "mtls", "pilot", "gateways", "proxy", "tracing", "mixer", "sidecarInjector"]
)
SUB_FIELDS = st.sampled_from(
    ["enabled", "image", "replicaCount", "ingress", "ports", "tracer", "resources", "init"]
)
SPEC_LIKE = st.dictionaries(
    FIELD_NAMES | st.text(max_size=6),
    JSON | st.dictionaries(SUB_FIELDS, JSON | st.dictionaries(SUB_FIELDS, JSON, max_size=3)),
    max_size=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=SPEC_LIKE | JSON)
def test_any_json_spec_loads_or_raises_spec_error_with_a_path(spec: Any) -> None:
    for load, kind in ((load_istio, "Istio"), (load_remote_istio, "RemoteIstio")):
        body = {
            "apiVersion": "istio.banzaicloud.io/v1beta1",
            "kind": kind,
            "metadata": {"name": "x"},
        }
        body["spec"] = spec
        try:
            loaded = load(body)
        except SpecError as err:
            assert err.path.startswith("spec")
            assert err.message
        else:
            assert all(w.startswith('unknown field "spec') for w in loaded.warnings)


def test_a_misspelled_field_is_warned_about_with_the_field_it_likely_meant() -> None:
    loaded = load_istio(minimal(pilot={"imgae": "x", "Enabled": True}, gatways={}))
    assert sorted(loaded.warnings) == [
        'unknown field "spec.gatways" ignored; did you mean gateways?',
        'unknown field "spec.pilot.Enabled" ignored; did you mean enabled?',
        'unknown field "spec.pilot.imgae" ignored; did you mean image?',
    ]
    assert {(m.path, m.meant) for m in loaded.misspelled} >= {
        ("spec.pilot.imgae", "spec.pilot.image")
    }


def test_a_field_already_set_is_not_suggested_for_a_misspelling() -> None:
    loaded = load_istio(minimal(mtsl=True))
    assert loaded.warnings == ['unknown field "spec.mtsl" ignored']
    assert loaded.misspelled == ()


def test_an_error_about_the_field_a_misspelling_meant_names_the_misspelling() -> None:
    body = minimal()
    body["metdata"] = body.pop("metadata")
    with pytest.raises(SpecError) as info:
        load_istio(body)
    assert str(info.value) == (
        "metdata: unknown field; did you mean metadata? (metadata: Field required)"
    )
    typo = Misspelling("spec.mtsl", "spec.mtls")
    required = SpecError("spec.mtls", "Field required")
    assert explained(required, [typo]).path == "spec.mtsl"
    other = SpecError("spec.version", "Field required")
    assert explained(other, [typo]) is other


def test_a_version_written_with_a_v_suggests_the_plain_one() -> None:
    with pytest.raises(SpecError) as info:
        load_istio(minimal(version="v1.3.0"))
    assert info.value.path == "spec.version"
    assert info.value.message.endswith(", got 'v1.3.0'; did you mean 1.3.0?")
    with pytest.raises(SpecError) as info:
        load_istio(minimal(version="latest"))
    assert "did you mean" not in info.value.message
