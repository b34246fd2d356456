"""Bad input against a running operator and a healthy 1.3.0 plane (issue 14).

Every case of the fixed corpus that targets the `Istio` resource is server-side applied
as the whole body: either the API server refuses it at once (naming the field) or the
operator reports ReconcileFailed naming the field. Either way no Deployment or DaemonSet
of the cluster changes (their resourceVersions prove it), and the good spec applied back
leaves the plane Available without a single workload write. Then: a CA Secret that does
not exist (MissingReference, until it is created), changes that pass the parser and the
CRD schema but that the API server refuses (Refused), and no traceback in the log.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lightkube import ALL_NS, ApiError, Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Event, Secret

from istio_operator.api.parse import load_istio
from istio_operator.cli.demo import remote_istio_body
from istio_operator.localcluster import Workspace
from istio_operator.render import render_primary
from tests.operator_harness import (
    IstioResource,
    Plane,
    apply_istio,
    apply_remote_istio,
    generation_of,
    istio_body,
    istio_status,
    meta,
    name_of,
    operator_plane,
    pod_spec,
    ready,
    reason,
    wait_for,
    workloads,
)
from tests.unit.fuzz_corpus import BAD_CASES, BadCase, set_path

pytestmark = pytest.mark.cluster

NAMESPACE = "istio-system"
VERSION = "1.3.0"
# Sent as raw JSON by kubectl: no Python JSON encoder nests 5000 levels deep.
RAW_CASES = {"deep-list"}
ISTIO_CASES = [c for c in BAD_CASES if c.kind == "Istio" and c.name not in RAW_CASES]
# RemoteIstio cases the CRD schema refuses: no remote cluster is needed to see them refused.
REMOTE_CASES = [c for c in BAD_CASES if c.kind == "RemoteIstio" and c.schema_field is not None]
SETTLE_S = 60.0


@pytest.fixture(scope="module")
def setup(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    directory = tmp_path_factory.mktemp("bad-input")
    with operator_plane(workspace, directory, "bad-input") as plane:
        plane.operator.start()
        apply_good_spec(plane.primary)
        # The Deployment controller's last status writes of the install land after
        # Available: the baseline of every case is a plane at rest.
        wait_at_rest(plane.primary)
        yield plane


def good_body() -> dict[str, Any]:
    return istio_body(VERSION)


def generation(client: Client) -> int:
    return generation_of(client.get(IstioResource, "istio", namespace=NAMESPACE))


def settled(client: Client, at: int) -> dict[str, Any] | None:
    """The status once the operator has judged generation `at` (not still rolling out)."""
    status = istio_status(client)
    if status.get("observedGeneration") == at and status.get("Status") != "Reconciling":
        return status
    return None


def apply_good_spec(client: Client) -> None:
    apply_istio(client, good_body())
    at = generation(client)

    def available() -> bool:
        status = settled(client, at)
        return bool(
            status
            and status["Status"] == "Available"
            and status.get("version") == VERSION
            and ready(status)
        )

    wait_for(f"Available at generation {at}", available, timeout=SETTLE_S)


def workload_versions(client: Client) -> dict[str, str]:
    """The resourceVersion of every Deployment and DaemonSet of the cluster."""
    return {
        f"{type(obj).__name__} {meta(obj).namespace}/{name_of(obj)}": str(meta(obj).resourceVersion)
        for obj in workloads(client, ALL_NS)
    }


def wait_at_rest(client: Client) -> None:
    """Until two reads in a row (a poll apart) find the same resourceVersions."""
    last: list[dict[str, str]] = [{}]

    def same() -> bool:
        now = workload_versions(client)
        unchanged, last[0] = bool(now) and now == last[0], now
        return unchanged

    wait_for("workloads at rest", same, timeout=SETTLE_S, every=1.0)


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def operator_refusal(client: Client, at: int) -> dict[str, Any]:
    status: dict[str, Any] = wait_for(
        f"generation {at} judged", lambda: settled(client, at), timeout=SETTLE_S
    )
    assert status["Status"] == "ReconcileFailed", status
    return status


def restore_and_check(setup: Plane, before: dict[str, str]) -> None:
    """The good spec back: the plane Available again and still no workload written."""
    apply_good_spec(setup.primary)
    setup.operator.assert_running()
    assert changed(before, workload_versions(setup.primary)) == []


# -- the fixed corpus -------------------------------------------------------------------------


@pytest.mark.parametrize("case", ISTIO_CASES, ids=[c.name for c in ISTIO_CASES])
def test_a_bad_istio_spec_changes_nothing(setup: Plane, case: BadCase) -> None:
    client = setup.primary
    before = workload_versions(client)
    body = good_body()
    set_path(body["spec"], case.path, case.value)
    at = generation(client)
    try:
        apply_istio(client, body)
    except ApiError as error:
        message = error.status.message or ""
        assert case.schema_field is not None, f"refused by the API server: {message[:300]}"
        # A value of the wrong type fails server-side apply's typed patch: a 500 that
        # names the field as `.spec...` (the API server's way, not the operator's).
        typed_patch = error.status.code == 500 and "failed to create typed patch" in message
        assert error.status.code in (400, 422) or typed_patch, message[:300]
        assert f"{case.schema_field}: " in message or f".{case.schema_field}: " in message, message[
            :300
        ]
        assert generation(client) == at
    else:
        assert case.schema_field is None, f"the API server accepted {case.name}"
        status = operator_refusal(client, generation(client))
        assert reason(status) == "InvalidSpec", status
        assert case.field in status["ErrorMessage"], status["ErrorMessage"]
    assert changed(before, workload_versions(client)) == []
    restore_and_check(setup, before)


@pytest.mark.parametrize("case", REMOTE_CASES, ids=[c.name for c in REMOTE_CASES])
def test_a_bad_remote_istio_is_refused_at_once(setup: Plane, case: BadCase) -> None:
    body = remote_istio_body("bad-remote", NAMESPACE)
    set_path(body["spec"], case.path, case.value)
    with pytest.raises(ApiError) as info:
        apply_remote_istio(setup.primary, body)
    message = info.value.status.message or ""
    assert info.value.status.code == 422, message[:300]
    assert f"{case.schema_field}: " in message, message[:300]


# -- references the API server cannot check ---------------------------------------------------


def test_a_missing_ca_secret_is_refused_until_it_exists(setup: Plane) -> None:
    client = setup.primary
    before = workload_versions(client)
    body = good_body()
    set_path(body["spec"], "citadel.caSecretName", "bad-input-ca")
    apply_istio(client, body)
    at = generation(client)
    status = operator_refusal(client, at)
    assert reason(status) == "MissingReference", status
    assert status["ErrorMessage"].startswith(
        f"spec.citadel.caSecretName: Secret {NAMESPACE}/bad-input-ca not found"
    ), status["ErrorMessage"]
    assert changed(before, workload_versions(client)) == []

    pem = {k: base64.b64encode(b"stand-in\n").decode() for k in ("ca-cert.pem", "ca-key.pem")}
    client.apply(Secret(metadata=ObjectMeta(name="bad-input-ca", namespace=NAMESPACE), data=pem))
    try:

        def mounted() -> bool:
            status = istio_status(client)
            if status.get("observedGeneration") != at or status.get("Status") != "Available":
                return False
            citadel = client.get(Deployment, "istio-citadel", namespace=NAMESPACE)
            volumes = pod_spec(citadel).volumes or []
            return any(v.secret and v.secret.secretName == "bad-input-ca" for v in volumes)

        wait_for("citadel rolled out with the CA Secret", mounted, timeout=SETTLE_S)
        apply_good_spec(client)
    finally:
        client.delete(Secret, "bad-input-ca", namespace=NAMESPACE)
    wait_at_rest(client)


# -- passes the parser and the schema, refused by the API server ------------------------------


@dataclass(frozen=True)
class ServerCase:
    name: str
    edit: dict[str, Any]
    refusal: str  # what the Refused message must contain


def _ingress_ports(*ports: dict[str, Any], mesh_expansion: bool = False) -> dict[str, Any]:
    body = good_body()["spec"]
    edit = {"gateways": {"ingress": {"ports": [*body["gateways"]["ingress"]["ports"], *ports]}}}
    return {**edit, "meshExpansion": True} if mesh_expansion else edit


SERVER_CASES = [
    # meshExpansion adds its own ports to the ingress gateway's Service, under these names.
    ServerCase(
        "port-name-taken-by-mesh-expansion",
        _ingress_ports({"port": 9999, "name": "tcp-pilot-grpc-tls"}, mesh_expansion=True),
        'Duplicate value: "tcp-pilot-grpc-tls"',
    ),
    # The dry-run answers 500 here; it is still its verdict on the Service.
    ServerCase(
        "node-port-taken-by-mesh-expansion",
        _ingress_ports({"port": 9999, "name": "tcp-extra", "nodePort": 31470}, mesh_expansion=True),
        "duplicate nodePort",
    ),
    ServerCase(
        "target-port-not-a-port-name",
        _ingress_ports({"port": 9999, "name": "tcp-extra", "targetPort": "Bad_Name"}),
        'targetPort: Invalid value: "Bad_Name"',
    ),
]


def merged(base: dict[str, Any], edit: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in edit.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in SERVER_CASES])
def test_what_only_the_api_server_refuses_changes_nothing(setup: Plane, case: ServerCase) -> None:
    client = setup.primary
    body = good_body()
    body["spec"] = merged(body["spec"], case.edit)
    # The parser and the renderer accept it (else the case belongs in the fixed corpus).
    render_primary(load_istio(copy.deepcopy(body)).resource)
    before = workload_versions(client)
    apply_istio(client, body)  # the CRD schema accepts it
    status = operator_refusal(client, generation(client))
    message = status["ErrorMessage"]
    assert reason(status) == "Refused", status
    assert message.startswith(
        "the API server refuses the change, nothing was applied: "
        f"Service {NAMESPACE}/istio-ingressgateway: "
    ), message
    assert case.refusal in message, message
    assert changed(before, workload_versions(client)) == []
    events = wait_for(
        "a Warning Event",
        lambda: [
            e
            for e in client.list(Event, namespace=NAMESPACE)
            if e.type == "Warning" and case.refusal in (e.message or "")
        ],
        timeout=SETTLE_S,
    )
    assert events
    restore_and_check(setup, before)


@pytest.mark.parametrize(("version", "meant"), [("1.3", "1.3.0"), ("1.4.0", "1.3.8")])
def test_an_unsupported_version_suggests_a_supported_one(
    setup: Plane, version: str, meant: str
) -> None:
    client = setup.primary
    before = workload_versions(client)
    body = good_body()
    body["spec"]["version"] = version
    apply_istio(client, body)
    status = operator_refusal(client, generation(client))
    assert reason(status) == "UnsupportedVersion", status
    assert f"got {version!r}; did you mean {meant}?" in status["ErrorMessage"]
    assert changed(before, workload_versions(client)) == []
    restore_and_check(setup, before)


# -- the log ----------------------------------------------------------------------------------


def test_no_bad_input_logs_a_traceback(setup: Plane) -> None:
    setup.operator.assert_running()
    log = setup.operator.log.read_text(errors="replace")
    assert "Traceback" not in log, log[log.index("Traceback") - 500 :][:3000]


def test_a_spec_nested_too_deep_for_json_decoding_is_refused(setup: Plane, tmp_path: Path) -> None:
    """Last: before the fix, this case ends the operator."""
    (case,) = [c for c in BAD_CASES if c.name in RAW_CASES]
    client = setup.primary
    before = workload_versions(client)
    # The case's value is [{..., "x": [[[... "x" ...]]]}]: written out by hand.
    (item,) = case.value
    depth, leaf = 0, item["x"]
    while isinstance(leaf, list):
        depth, leaf = depth + 1, leaf[0]
    body = good_body()
    set_path(body["spec"], case.path, [{**item, "x": "@@deep@@"}])
    deep = "[" * depth + json.dumps(leaf) + "]" * depth
    raw = tmp_path / "deep.json"
    raw.write_text(json.dumps(body).replace(json.dumps("@@deep@@"), deep))
    try:
        setup.workspace.kubectl(
            setup.primary_cluster,
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            "istio-operator-tests",
            "-f",
            str(raw),
        )

        # Read through kubectl: this test's client cannot decode the resource either.
        def field(path: str) -> str:
            return setup.workspace.kubectl(
                setup.primary_cluster,
                "get",
                "istio",
                "istio",
                "-n",
                NAMESPACE,
                "-o",
                f"jsonpath={path}",
            )

        at = field("{.metadata.generation}")
        process = setup.operator.process
        assert process is not None

        def judged() -> bool:
            if process.poll() is not None:
                return True
            return field("{.status.observedGeneration}/{.status.Status}") == f"{at}/ReconcileFailed"

        wait_for(f"generation {at} judged", judged, timeout=SETTLE_S)
        setup.operator.assert_running()
        assert case.field in field("{.status.ErrorMessage}")
        assert changed(before, workload_versions(client)) == []
        assert "Traceback" not in setup.operator.log.read_text(errors="replace")
    finally:
        apply_istio(client, good_body())
