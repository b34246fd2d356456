"""A synchronous client of one cluster, for code that runs outside an event loop: the
leader election's threads and the demo's walkthrough.

Objects go in and come out as plain dicts. Errors are this package's own (see
`kube.client`): a refusal raises ApiRefusedError (ConflictError, ...), a missing object
is None for `get`, and an API server that does not answer raises ClusterUnreachableError.
Nothing is retried here: each caller has its own rhythm (the elector's retry period,
the demo's polling).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx2 as httpx
from lightkube import Client

from istio_operator.api.keys import ObjectKey
from istio_operator.kube.client import (
    NotFoundError,
    config_from_file,
    refusal_of,
    unreachable,
)
from istio_operator.kube.resources import resource_class, to_resource

T = TypeVar("T")


class BlockingClient:
    """One cluster; `name` and `server` only make messages say which."""

    def __init__(self, client: Client, name: str = "cluster", server: str = "") -> None:
        self.client, self.name, self.server = client, name, server

    @classmethod
    def from_kubeconfig(
        cls,
        path: str | None = None,
        *,
        name: str = "cluster",
        field_manager: str | None = None,
        timeout: float | None = None,
    ) -> BlockingClient:
        """From a kubeconfig file (else KUBECONFIG, else in-cluster); requests time out
        after `timeout` seconds (default: the client library's)."""
        config = config_from_file(path)
        client = Client(
            config,
            field_manager=field_manager,
            timeout=None if timeout is None else httpx.Timeout(timeout),
        )
        current = config.get()
        return cls(client, name, (current.cluster.server if current is not None else "") or "")

    @property
    def _api(self) -> Any:
        # The calls below pick namespaced or cluster-scoped overloads at run time.
        return self.client

    def _call(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except httpx.HTTPStatusError as error:  # lightkube's ApiError is one
            raise refusal_of(error) from error
        except (httpx.RequestError, OSError) as error:
            raise unreachable(self.name, self.server, error) from error

    def get(self, key: ObjectKey) -> dict[str, Any] | None:
        cls = resource_class(key.api_version, key.kind)
        scope = {"namespace": key.namespace} if key.namespace else {}
        try:
            found = self._call(lambda: self._api.get(cls, key.name, **scope))
        except NotFoundError:
            return None
        return dict(found.to_dict())

    def list(self, api_version: str, kind: str, namespace: str) -> list[dict[str, Any]]:
        """Every object of a kind in one namespace."""
        cls = resource_class(api_version, kind)
        return self._call(
            lambda: [dict(o.to_dict()) for o in self._api.list(cls, namespace=namespace)]
        )

    def apply(
        self, manifest: Mapping[str, Any], *, force: bool = False, field_manager: str | None = None
    ) -> dict[str, Any]:
        """Server-side apply, with the client's field manager unless another is given."""
        resource = to_resource(manifest)
        applied = self._call(
            lambda: self._api.apply(resource, field_manager=field_manager, force=force)
        )
        return dict(applied.to_dict())

    def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Creates the object; one that exists already raises ConflictError."""
        resource = to_resource(manifest)
        namespace = (manifest.get("metadata") or {}).get("namespace")
        created = self._call(lambda: self._api.create(resource, namespace=namespace))
        return dict(created.to_dict())

    def replace(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Replaces the object; with a `resourceVersion` that is no longer the live one,
        it raises ConflictError."""
        resource = to_resource(manifest)
        replaced = self._call(lambda: self._api.replace(resource))
        return dict(replaced.to_dict())

    def close(self) -> None:
        self.client.close()
