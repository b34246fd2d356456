"""Cluster access: one async client per cluster, server-side apply, owned-object queries."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx
from lightkube import ALL_NS, ApiError, AsyncClient, KubeConfig
from lightkube.types import PatchType

from istio_operator.api.labels import FIELD_MANAGER
from istio_operator.kube.objects import ObjectKey
from istio_operator.kube.resources import (
    UnknownKindError,
    is_namespaced,
    resource_class,
    to_resource,
)

REQUEST_TIMEOUT_S = 15.0


class ClusterUnreachableError(ConnectionError):
    """The cluster's API server did not answer (down, wrong address, timed out)."""


def config_from_file(path: str | None = None) -> KubeConfig:
    """KUBECONFIG (or the given file), else the in-cluster service account."""
    if path:
        return KubeConfig.from_file(path)
    return KubeConfig.from_env()


@dataclass
class WriteCounter:
    """Write requests this process sent; `no write without a change` is checked with it."""

    applies: int = 0
    deletes: int = 0

    @property
    def total(self) -> int:
        return self.applies + self.deletes


@dataclass
class Cluster:
    """One cluster as the reconcile engine sees it."""

    name: str
    client: AsyncClient
    writes: WriteCounter = field(default_factory=WriteCounter)

    @classmethod
    def from_config(cls, name: str, config: KubeConfig) -> Cluster:
        client = AsyncClient(
            config, field_manager=FIELD_MANAGER, timeout=httpx.Timeout(REQUEST_TIMEOUT_S)
        )
        return cls(name=name, client=client)

    async def close(self) -> None:
        await self.client.close()

    async def get(self, key: ObjectKey) -> dict[str, Any] | None:
        cls = resource_class(key.api_version, key.kind)
        try:
            async with _reachable(self.name):
                if key.namespace:
                    obj = await self.client.get(cls, key.name, namespace=key.namespace)
                else:
                    obj = await self.client.get(cls, key.name)
        except ApiError as error:
            if error.status.code == 404:
                return None
            raise
        return dict(obj.to_dict())

    async def apply(self, manifest: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply, forced: drift in our fields is repaired, others' fields stay."""
        resource = to_resource(manifest)
        async with _reachable(self.name):
            result = await self.client.apply(resource, force=True, dry_run=dry_run)
        if not dry_run:
            self.writes.applies += 1
        return dict(result.to_dict())

    async def list_labelled(
        self, api_version: str, kind: str, selector: str
    ) -> list[dict[str, Any]]:
        """Every object of a kind carrying the labels, in all namespaces; none if the kind
        is not served (yet)."""
        labels: dict[str, Any] = dict(part.split("=", 1) for part in selector.split(","))
        return await self._list(api_version, kind, labels)

    async def list_all(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        return await self._list(api_version, kind, None)

    async def _list(
        self, api_version: str, kind: str, labels: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        try:
            cls = resource_class(api_version, kind)
        except UnknownKindError:
            return []
        try:
            async with _reachable(self.name):
                if is_namespaced(api_version, kind):
                    listing = self.client.list(cls, namespace=ALL_NS, labels=labels)
                else:
                    listing = self.client.list(cls, labels=labels)
                items = [o async for o in listing]
        except ApiError as error:
            if error.status.code == 404:
                return []
            raise
        return [_with_type(dict(o.to_dict()), api_version, kind) for o in items]

    async def patch_status(self, key: ObjectKey, status: Mapping[str, Any]) -> None:
        """Replaces the status of a custom resource (merge patch on the status subresource)."""
        cls = resource_class(key.api_version, key.kind)
        async with _reachable(self.name):
            await self.client.patch(
                cls.Status, key.name, {"status": dict(status)},
                namespace=key.namespace or None, patch_type=PatchType.MERGE,
            )
        self.writes.applies += 1

    async def delete(self, key: ObjectKey) -> None:
        cls = resource_class(key.api_version, key.kind)
        try:
            async with _reachable(self.name):
                if key.namespace:
                    await self.client.delete(cls, key.name, namespace=key.namespace)
                else:
                    await self.client.delete(cls, key.name)
        except ApiError as error:
            if error.status.code != 404:
                raise
        self.writes.deletes += 1


def _with_type(obj: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    obj.setdefault("apiVersion", api_version)
    obj.setdefault("kind", kind)
    return obj


@contextlib.asynccontextmanager
async def _reachable(cluster: str) -> AsyncIterator[None]:
    try:
        yield
    except (httpx.TransportError, OSError) as error:
        raise ClusterUnreachableError(f"cluster {cluster} is unreachable: {error}") from error
