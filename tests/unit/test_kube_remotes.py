"""Kubeconfig Secrets of remote clusters: clear errors that never leak their contents."""

from __future__ import annotations

import base64

import pytest
import yaml

from istio_operator.kube.remotes import KubeconfigSecretError, kubeconfig_from_secret

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
    config = kubeconfig_from_secret(secret({"remote": encoded(yaml.safe_dump(KUBECONFIG))}))
    assert config.get().cluster.server == "https://192.0.2.10:6443"


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
