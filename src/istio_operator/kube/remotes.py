"""Clients for remote clusters, built from the kubeconfig Secrets of `RemoteIstio`s.

The Secret has the RemoteIstio's name and namespace; its first data value (by key
order: one key is expected, named after the RemoteIstio) is the kubeconfig.
Clients live in a registry keyed by the Secret's uid and resourceVersion: a
changed Secret gets a new client, a gone one has its client closed. Kubeconfig
contents never appear in errors.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import yaml
from lightkube import KubeConfig
from lightkube.core.exceptions import ConfigError

from istio_operator.kube.cache import Listener
from istio_operator.kube.client import Cluster


class KubeconfigSecretError(ValueError):
    """The Secret holds no usable kubeconfig; the message says why, never what it holds."""


def kubeconfig_from_secret(secret: Mapping[str, Any]) -> KubeConfig:
    name = (secret.get("metadata") or {}).get("name", "?")
    data = secret.get("data") or {}
    if not data:
        raise KubeconfigSecretError(f"Secret {name} holds no kubeconfig (it has no data)")
    key = sorted(data)[0]
    try:
        text = base64.b64decode(data[key], validate=True).decode()
        document = yaml.safe_load(text)
    except (binascii.Error, UnicodeDecodeError, yaml.YAMLError):
        raise KubeconfigSecretError(
            f"Secret {name}, key {key}: not a base64-encoded YAML kubeconfig"
        ) from None
    if not isinstance(document, dict) or not document.get("clusters"):
        raise KubeconfigSecretError(f"Secret {name}, key {key}: not a kubeconfig (no clusters)")
    try:
        return KubeConfig.from_dict(document)
    except (ConfigError, KeyError, TypeError, ValueError) as error:
        raise KubeconfigSecretError(
            f"Secret {name}, key {key}: invalid kubeconfig ({type(error).__name__})"
        ) from None


REPLACED_CLIENT_GRACE_S = 60.0
_closing: set[asyncio.Task[None]] = set()  # strong references until each close is done


def _close_later(cluster: Cluster) -> None:
    task = asyncio.ensure_future(cluster.close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


class RemoteClients:
    """One client per remote cluster, rebuilt when its kubeconfig (or its Secret) changes."""

    def __init__(
        self, *, cached: bool = False, listener: Callable[[str], Listener] | None = None
    ) -> None:
        self._clients: dict[str, tuple[tuple[str, str], Cluster]] = {}
        # Clients read through watch-fed copies (`Cluster.cached`), whose events go to
        # `listener(remote)`.
        self._cached, self._listener = cached, listener

    async def for_secret(self, remote: str, secret: Mapping[str, Any]) -> Cluster:
        # What the client is made of: the Secret (its uid) and its kubeconfig. Not its
        # resourceVersion: labelling the Secret for pilot (after a remote's first rollout)
        # changes that, and a new client would read and watch the whole remote again.
        meta = secret.get("metadata") or {}
        data = repr(sorted((secret.get("data") or {}).items())).encode()
        version = (str(meta.get("uid")), hashlib.sha256(data).hexdigest())
        known = self._clients.get(remote)
        if known is not None and known[0] == version:
            return known[1]
        cluster = Cluster.from_config(remote, kubeconfig_from_secret(secret))
        if self._cached:
            cluster.cached(self._listener(remote) if self._listener else None)
        replaced = self._clients.pop(remote, None)
        self._clients[remote] = (version, cluster)
        if replaced is not None:
            # The remote's worker or watch may have a request in flight on the old client
            # (the Secret changed under it, e.g. a renewed token): close it once those ended.
            loop = asyncio.get_running_loop()
            loop.call_later(REPLACED_CLIENT_GRACE_S, _close_later, replaced[1])
        return cluster

    def clients(self) -> list[Cluster]:
        return [cluster for _, cluster in self._clients.values()]

    def known(self, remote: str) -> Cluster | None:
        """The client last built for the remote, if it is still open."""
        known = self._clients.get(remote)
        return None if known is None else known[1]

    async def forget(self, remote: str) -> None:
        known = self._clients.pop(remote, None)
        if known is not None:
            await known[1].close()

    async def close(self) -> None:
        for remote in list(self._clients):
            await self.forget(remote)
