"""The remote's mirrors of the primary's services are objects the API server accepts,
whatever the primary's gateway addresses and the RemoteIstio's ports look like."""

from __future__ import annotations

import copy

import pytest

from istio_operator.api.errors import SpecError
from istio_operator.render import DesiredObject, PrimaryFacts, render_remote

from .render_support import FACTS, SAMPLE_REMOTE, find, istio, remote, sample_body


def mesh_expansion_remote(*gateway_addresses: str) -> list[DesiredObject]:
    body = sample_body()
    body["spec"]["meshExpansion"] = True
    facts = PrimaryFacts(
        ca_secret_data=FACTS.ca_secret_data,
        ingress_gateway_addresses=gateway_addresses,
        service_pod_ips=FACTS.service_pod_ips,
    )
    return render_remote(istio(body), remote(with_pilot_ports()), facts)


def with_pilot_ports(**service: object) -> dict[str, object]:
    body = copy.deepcopy(SAMPLE_REMOTE)
    body["spec"]["enabledServices"] = [
        {
            "name": "istio-pilot",
            "ports": [{"name": "grpc-xds", "port": 15010}, {"name": "https-xds", "port": 15011}],
            **service,
        }
    ]
    return body


def mirrors(objects: list[DesiredObject]) -> set[tuple[str, str]]:
    return {(o.kind, o.name) for o in objects if o.kind in ("Service", "Endpoints")} & {
        ("Service", "istio-pilot"),
        ("Endpoints", "istio-pilot"),
    }


def test_a_gateway_known_by_ip_is_the_endpoints_address() -> None:
    objects = mesh_expansion_remote("203.0.113.10")
    assert mirrors(objects) == {("Service", "istio-pilot"), ("Endpoints", "istio-pilot")}
    endpoints = find(objects, "Endpoints", "istio-pilot").manifest
    assert endpoints["subsets"][0]["addresses"] == [{"ip": "203.0.113.10"}]


def test_a_gateway_known_only_by_hostname_gives_an_external_name_service() -> None:
    objects = mesh_expansion_remote("a1b2.elb.example.com")
    assert mirrors(objects) == {("Service", "istio-pilot")}
    spec = find(objects, "Service", "istio-pilot").manifest["spec"]
    assert spec["type"] == "ExternalName"
    assert spec["externalName"] == "a1b2.elb.example.com"
    assert "clusterIP" not in spec


def test_hostnames_never_reach_endpoints_next_to_ips() -> None:
    objects = mesh_expansion_remote("gw.example.com", "203.0.113.10")
    assert find(objects, "Service", "istio-pilot").manifest["spec"]["clusterIP"] == "None"
    endpoints = find(objects, "Endpoints", "istio-pilot").manifest
    assert endpoints["subsets"][0]["addresses"] == [{"ip": "203.0.113.10"}]


def test_several_ports_of_a_mirrored_service_must_be_named() -> None:
    body = with_pilot_ports(ports=[{"name": "grpc-xds", "port": 15010}, {"port": 15011}])
    with pytest.raises(SpecError) as error:
        render_remote(istio(sample_body()), remote(body), FACTS)
    assert error.value.path == "spec.enabledServices[0].ports[1].name"


def test_one_unnamed_port_is_fine() -> None:
    body = with_pilot_ports(ports=[{"port": 15010}], podIPs=["10.2.0.1"])
    objects = render_remote(istio(sample_body()), remote(body), FACTS)
    endpoints = find(objects, "Endpoints", "istio-pilot").manifest
    assert endpoints["subsets"][0]["ports"] == [{"port": 15010, "protocol": "TCP"}]


def test_pod_ips_of_a_mirrored_service_must_be_ips() -> None:
    body = with_pilot_ports(podIPs=["10.2.0.1", "pilot.example.com"])
    with pytest.raises(SpecError) as error:
        render_remote(istio(sample_body()), remote(body), FACTS)
    assert error.value.path == "spec.enabledServices[0].podIPs[1]"
