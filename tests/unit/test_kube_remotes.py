"""Kubeconfig Secrets of remote clusters: clear errors that never leak their contents."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
import yaml

from istio_operator.kube.remotes import KubeconfigSecretError, RemoteClients, kubeconfig_from_secret

KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "r", "cluster": {"server": "https://192.0.2.10:6443"}}],
    "users": [{"name": "r", "user": {"token": "s3cr3t-token"}}],
    "contexts": [{"name": "r", "context": {"cluster": "r", "user": "r"}}],
    "current-context": "r",
}


def secret(data: dict[str, str] | None) -> dict[str, object]:
    return {"metadata": {"name": "remote", "namespace": "istio-system"}, "data": data}


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_the_first_key_holds_the_kubeconfig() -> None:
    config = kubeconfig_from_secret(secret({"remote": encoded(yaml.safe_dump(KUBECONFIG))})).get()
    assert config is not None
    assert config.cluster.server == "https://192.0.2.10:6443"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, "holds no kubeconfig"),
        ({"remote": "%%%not-base64"}, "not a base64-encoded YAML kubeconfig"),
        ({"remote": encoded("token: s3cr3t-token\n")}, "not a kubeconfig"),
    ],
)
def test_unusable_secrets_get_a_clear_message(data: dict[str, str] | None, expected: str) -> None:
    with pytest.raises(KubeconfigSecretError) as error:
        kubeconfig_from_secret(secret(data))
    assert expected in str(error.value)
    assert "s3cr3t" not in str(error.value)
    assert "remote" in str(error.value)


async def test_a_new_kubeconfig_gets_a_new_client_and_the_old_one_outlives_its_requests() -> None:
    clients = RemoteClients()
    data = {"remote": encoded(yaml.safe_dump(KUBECONFIG))}
    first = await clients.for_secret(
        "remote", {**secret(data), "metadata": {"uid": "u", "resourceVersion": "1"}}
    )
    # Labelled (for pilot): the same kubeconfig, the same client, its copies kept.
    labelled = {"uid": "u", "resourceVersion": "2", "labels": {"istio/multiCluster": "true"}}
    again = await clients.for_secret("remote", {**secret(data), "metadata": labelled})
    assert again is first
    renewed_config = {**KUBECONFIG, "users": [{"name": "r", "user": {"token": "renewed"}}]}
    renewed_data = {"remote": encoded(yaml.safe_dump(renewed_config))}
    renewed = await clients.for_secret(
        "remote", {**secret(renewed_data), "metadata": {"uid": "u", "resourceVersion": "3"}}
    )
    assert renewed is not first
    # A request in flight on the old client (the watch, a reconcile) is not cut off.
    assert not first.client._client._client.is_closed
    assert clients.known("remote") is renewed
    await clients.close()
    await first.close()


async def test_a_remote_worker_waits_out_an_unreachable_primary() -> None:
    from istio_operator.controller.exclusive import Exclusive
    from istio_operator.controller.triggers import Triggers
    from istio_operator.controller.workers import (
        RETRY_AFTER_ERROR_S,
        RemoteWorker,
        RunConfig,
        Shared,
    )
    from istio_operator.kube.client import ClusterUnreachableError

    class AwayPrimary:
        name = "primary cluster"

        async def get(self, key: object) -> None:
            raise ClusterUnreachableError("cluster primary cluster is unreachable")

    primary: Any = AwayPrimary()  # only `get` is called before the primary answers
    shared = Shared(primary, RemoteClients(), Exclusive(), Triggers(), Triggers(), RunConfig())
    body = {"metadata": {"name": "remote", "namespace": "istio-system", "generation": 1}}
    worker = RemoteWorker(shared, ("istio-system", "remote"), body, logging.getLogger("test"))
    assert await worker.run_once("istio") == RETRY_AFTER_ERROR_S
