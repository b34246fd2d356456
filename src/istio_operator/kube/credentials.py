"""Credentials for a cluster: service-account tokens from the TokenRequest API, and
kubeconfigs that use them. Token values never appear in a repr, a log or an error."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from lightkube import KubeConfig
from lightkube.core.exceptions import ConfigError
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ServiceAccount

from istio_operator.kube.client import Cluster


class CredentialsError(ValueError):
    """A kubeconfig this module cannot take a server and CA from."""


@dataclass(frozen=True)
class Endpoint:
    """Where a cluster's API server is and how to trust it."""

    server: str
    ca_data: str | None = None  # base64 PEM, as in a kubeconfig
    insecure: bool = False


@dataclass(frozen=True)
class Token:
    """A bound service-account token; its repr never shows it."""

    value: str
    expires: str  # RFC 3339, as granted: the API server may shorten the request

    def __repr__(self) -> str:
        return f"Token(expires={self.expires!r})"


def cluster_with_manager(name: str, config: KubeConfig, field_manager: str) -> Cluster:
    """A Cluster whose server-side applies use their own field manager, so that they
    never take fields from (or give up fields of) the operator's."""
    return Cluster.from_config(name, config, field_manager)


def endpoint_of(config: KubeConfig, context: str | None = None) -> Endpoint:
    """The server and CA of a kubeconfig's (current) context; a CA file is read inline."""
    try:
        single = config.get(context)
    except ConfigError as error:
        raise CredentialsError(f"kubeconfig: {error}") from None
    if single is None:
        raise CredentialsError("kubeconfig: no current context")
    cluster = single.cluster
    ca_data = cluster.certificate_auth_data
    if ca_data is None and cluster.certificate_auth:
        path = Path(single.abs_file(cluster.certificate_auth))
        try:
            ca_data = base64.b64encode(path.read_bytes()).decode()
        except OSError as error:
            raise CredentialsError(f"kubeconfig: CA file {path}: {error.strerror}") from None
    return Endpoint(server=cluster.server, ca_data=ca_data, insecure=bool(cluster.insecure))


async def request_token(
    cluster: Cluster, namespace: str, service_account: str, expiration_seconds: int
) -> Token:
    """A token of the ServiceAccount for the API server's own audience."""
    request = ServiceAccount.Token(
        metadata=ObjectMeta(name=service_account, namespace=namespace),
        spec=TokenRequestSpec(audiences=[], expirationSeconds=expiration_seconds),
    )
    answer: Any = await cluster.call(
        lambda: cluster.client.create(request, service_account, namespace=namespace)
    )
    expires = answer.status.expirationTimestamp
    return Token(
        value=str(answer.status.token),
        expires=expires.strftime("%Y-%m-%dT%H:%M:%SZ") if expires else "",
    )


def token_kubeconfig(name: str, endpoint: Endpoint, user: str, token: Token) -> str:
    """A kubeconfig with one context `name`: the endpoint, the token as the user."""
    cluster: dict[str, Any] = {"server": endpoint.server}
    if endpoint.ca_data:
        cluster["certificate-authority-data"] = endpoint.ca_data
    if endpoint.insecure:
        cluster["insecure-skip-tls-verify"] = True
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token.value}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
    }
    return str(yaml.safe_dump(config, sort_keys=False))
