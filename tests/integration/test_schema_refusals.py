"""The CRD schemas refuse at `kubectl apply` what would fail mid-rollout (issue 14).

Each case of the fixed corpus that the schema can express is sent to a real API
server (create, dry-run: nothing is stored, so no operator in the session sees it)
and must be refused with a 422 naming the field; the reference samples stay accepted.
"""

from __future__ import annotations

from typing import Any

import pytest
from lightkube import ApiError, Client

from tests.operator_harness import IstioResource, RemoteIstioResource, apply_crds
from tests.unit.fuzz_corpus import BAD_CASES, BadCase, bad_body, istio_body, remote_body

pytestmark = pytest.mark.cluster

SCHEMA_CASES = [case for case in BAD_CASES if case.schema_field is not None]


@pytest.fixture(scope="module")
def api(primary: Client) -> Client:
    apply_crds(primary)
    return primary


def dry_run_create(client: Client, kind: str, body: dict[str, Any]) -> None:
    body = {**body, "metadata": {"name": "schema-check", "namespace": "default"}}
    resource = IstioResource if kind == "Istio" else RemoteIstioResource
    client.create(resource.from_dict(body), dry_run=True)


@pytest.mark.parametrize("kind", ["Istio", "RemoteIstio"])
def test_the_samples_are_accepted(api: Client, kind: str) -> None:
    dry_run_create(api, kind, istio_body() if kind == "Istio" else remote_body())


@pytest.mark.parametrize("case", SCHEMA_CASES, ids=[case.name for case in SCHEMA_CASES])
def test_the_api_server_refuses_naming_the_field(api: Client, case: BadCase) -> None:
    with pytest.raises(ApiError) as info:
        dry_run_create(api, case.kind, bad_body(case))

    assert info.value.status.code == 422
    assert f"{case.schema_field}: " in (info.value.status.message or "")
