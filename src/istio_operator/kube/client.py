"""Cluster access: one async client per cluster, server-side apply, owned-object queries."""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx
from lightkube import ALL_NS, ApiError, AsyncClient, KubeConfig
from lightkube.config.client_adapter import verify_cluster
from lightkube.core.exceptions import ConfigError
from lightkube.operators import exists
from lightkube.types import CascadeType, PatchType

from istio_operator.api.keys import ObjectKey, key_of
from istio_operator.api.labels import FIELD_MANAGER, MANAGED_BY, MANAGED_BY_VALUE
from istio_operator.kube.cache import Listener, WatchCache
from istio_operator.kube.protocol import Verdict
from istio_operator.kube.resources import (
    is_namespaced,
    resource_class,
    to_resource,
)
from istio_operator.kube.transport import IdleClosingTransport, repair_http2

# How long a request may wait for its answer. Timed here, not by the HTTP library: on a
# connection shared over HTTP/2, the library's read timeout of one request would close the
# connection, with every watch on it (see `Cluster.call`).
REQUEST_TIMEOUT_S = 15.0
# Requests of one client in flight at once: each is a stream of the cluster's connection
# (a watch holds one for as long as it runs), of which an API server lets a connection
# hold 100 at once; with the watches' bound (`cache.MAX_WATCHES`) they fit in one. Without
# HTTP/2 (a server or proxy that refuses it) each needs a connection of its own: a pass
# asking a hundred things at once would make a hundred TLS handshakes.
REQUESTS_AT_ONCE = 16
# How long an idle connection is reused (see `cluster_transport`).
KEEPALIVE_S = 60.0
TRANSIENT_CODES = frozenset({429, 500, 502, 503, 504})
TRANSIENT_RETRIES = 5
# What an API server answers to an object it will not take: bad request (strict field
# validation), forbidden (RBAC, admission), invalid (schema).
REFUSAL_CODES = frozenset({400, 403, 422})


def cluster_transport(config: KubeConfig) -> IdleClosingTransport | None:
    """The transport of a client of the kubeconfig's current context, whose idle
    connections are reused for `KEEPALIVE_S`. The HTTP library's default gives up one idle
    for 5 s: a pass that waited longer for workloads (a rollout's phases, remotes following
    the primary) would make a TLS handshake per request in flight, on every cluster at once.
    Not longer: a load balancer in front of an API server may drop an idle connection
    without a word (after 4 minutes on some clouds), and a request sent on it would wait
    for its timeout. At rest, when no request comes, they are closed a little after that
    (see `IdleClosingTransport`). None, for the library's own transport, through a proxy
    from the environment."""
    single = config.get()
    if single is None or single.user is None or _proxied():
        return None
    trust = verify_cluster(single.cluster, single.user, single.abs_file)
    limits = httpx.Limits(max_keepalive_connections=REQUESTS_AT_ONCE, keepalive_expiry=KEEPALIVE_S)
    return IdleClosingTransport(verify=trust, limits=limits, http2=repair_http2())


def _proxied() -> bool:
    proxies = urllib.request.getproxies()
    return "https" in proxies or "all" in proxies


# -- what goes wrong, in the operator's own terms ------------------------------------------------
# Nothing outside this package sees the client library's exceptions: every call of a
# client here raises these instead.


class ClusterUnreachableError(ConnectionError):
    """The cluster's API server did not answer (down, wrong address, timed out)."""


class ClusterTrustError(ClusterUnreachableError):
    """The API server answered with a certificate the kubeconfig does not trust: a
    configuration error (a wrong CA), not an outage."""


class KubeconfigError(ValueError):
    """A kubeconfig (or the in-cluster configuration) that cannot be used."""


class ApiRefusedError(Exception):
    """The API server answered a request with an error status (after the retries of the
    transient ones): its HTTP status code, the Status' reason and its message. `str()` is
    the message."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    @property
    def summary(self) -> str:
        """`API error <code>: <message>`, as the commands print a refusal."""
        return f"API error {self.code}: {self.message}"


class NotFoundError(ApiRefusedError):
    """404: the object (or its kind, or its namespace) does not exist."""


class ConflictError(ApiRefusedError):
    """409: the object already exists, or it changed since it was read."""


def refusal_of(error: httpx.HTTPStatusError) -> ApiRefusedError:
    """The error status of an answer: an API Status, or a plain-text one (an API group
    that is not served yet answers 404 without a Status)."""
    code = _status_code(error)
    if isinstance(error, ApiError):
        reason, message = str(error.status.reason or ""), str(error.status.message or "")
    else:
        reason, message = error.response.reason_phrase, error.response.text[:500]
    kind = {404: NotFoundError, 409: ConflictError}.get(code, ApiRefusedError)
    return kind(code, reason, message or reason or f"HTTP {code}")


def unreachable(name: str, server: str, error: BaseException) -> ClusterUnreachableError:
    """Why the cluster `name` (its API server at `server`, if known) did not answer."""
    at = f" at {server}" if server else ""
    if _caused_by(error, ssl.SSLCertVerificationError):
        return ClusterTrustError(
            f"cluster {name}: the API server{at} presents a certificate that the "
            f"kubeconfig's certificate authority does not trust ({error})"
        )
    detail = str(error) or type(error).__name__
    return ClusterUnreachableError(f"cluster {name} is unreachable{at}: {detail}")


def config_from_file(path: str | None = None, context: str | None = None) -> KubeConfig:
    """KUBECONFIG (or the given file), else the in-cluster service account; `context`
    instead of the current one. A file that cannot be read raises OSError."""
    try:
        config = KubeConfig.from_file(path) if path else KubeConfig.from_env()
    except ConfigError as error:
        raise KubeconfigError(str(error)) from None
    if context:
        config.current_context = context
    return config


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
    server: str = ""  # the API server's URL, for messages
    _identity: str = ""  # see `identity`; read once per client
    requests: int = 0  # every request sent (watches excepted), retries included
    # Watch-fed copies of what this client reads (`cached`): none, every read is a request.
    cache: WatchCache | None = None
    transport: IdleClosingTransport | None = None  # the client's, if not the library's
    # Requests in flight at once (see `REQUESTS_AT_ONCE`).
    _slots: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(REQUESTS_AT_ONCE), init=False, repr=False
    )

    def cached(self, listener: Listener | None = None) -> Cluster:
        """This client, its reads answered from watch-fed copies from now on (`listener`
        is told of every event the watches deliver)."""
        self.cache = WatchCache(self, listener, f"{MANAGED_BY}={MANAGED_BY_VALUE}")
        return self

    async def identity(self) -> str:
        """The cluster's identity whatever its address: the uid of its kube-system
        namespace ("" while it cannot be read). Stable for a cluster's life, so read once."""
        if not self._identity:
            found = await self.get(ObjectKey("v1", "Namespace", "", "kube-system"))
            self._identity = str(((found or {}).get("metadata") or {}).get("uid") or "")
        return self._identity

    @classmethod
    def from_config(
        cls, name: str, config: KubeConfig, field_manager: str = FIELD_MANAGER
    ) -> Cluster:
        """A client of the kubeconfig's current context, applying as `field_manager`."""
        transport = cluster_transport(config)
        client = AsyncClient(
            config,
            field_manager=field_manager,
            timeout=httpx.Timeout(REQUEST_TIMEOUT_S, read=None),
            transport=transport,
        )
        current = config.get()
        server = current.cluster.server if current is not None else ""
        return cls(name=name, client=client, server=server or "", transport=transport)

    @property
    def idle_connections(self) -> int:
        """Open connections to the cluster carrying no request (watches carry theirs)."""
        return 0 if self.transport is None else self.transport.idle_connections()

    @property
    def _api(self) -> Any:
        # The calls below pick namespaced or cluster-scoped overloads at run time.
        return self.client

    async def close(self) -> None:
        if self.cache is not None:
            await self.cache.close()
        await self.client.close()

    async def get(self, key: ObjectKey) -> dict[str, Any] | None:
        if self.cache is not None:
            known, found = await self.cache.fetch(key)
            if known:
                return found
        cls = resource_class(key.api_version, key.kind)
        scope = {"namespace": key.namespace} if key.namespace else {}
        obj = await self.call(lambda: self._api.get(cls, key.name, **scope), missing=None)
        return None if obj is None else dict(obj.to_dict())

    async def apply(self, manifest: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply, forced: drift in our fields is repaired, others' fields stay."""
        resource = to_resource(manifest)
        result = await self.call(lambda: self.client.apply(resource, force=True, dry_run=dry_run))
        if dry_run:
            return dict(result.to_dict())
        self.writes.applies += 1
        return self._wrote(result, manifest["apiVersion"], manifest["kind"])

    async def apply_as(self, field_manager: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply, forced, of a partial manifest (the fields one actor sets,
        sent as given: it need not be a whole object) under that actor's own field
        manager, so that the operator's fields and everybody else's stay as they are."""
        meta = manifest["metadata"]
        cls = resource_class(manifest["apiVersion"], manifest["kind"])
        result = await self.call(
            lambda: self.client.patch(
                cls,
                meta["name"],
                dict(manifest),
                namespace=meta.get("namespace"),
                patch_type=PatchType.APPLY,
                field_manager=field_manager,
                force=True,
            )
        )
        self.writes.applies += 1
        return self._wrote(result, manifest["apiVersion"], manifest["kind"])

    async def take_over(
        self, manifest: Mapping[str, Any], live: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Makes an object that another writer created exactly `manifest`, and ours alone.

        A replace (PUT) drops whatever the other writer set and we do not (its labels,
        annotations, ownerReferences, fields); the server re-defaults the rest and keeps
        what it allocated (a Service's cluster IP and node ports). Our server-side apply
        follows, then only our apply's entry is kept in managedFields (status writers'
        too): a field we later stop setting is then removed, as on an object we created.
        """
        replacement = json.loads(json.dumps(dict(manifest)))
        replacement["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        await self.call(lambda: self.client.replace(to_resource(replacement)))
        applied = await self.apply(manifest)
        meta = applied["metadata"]
        kept = [
            entry
            for entry in meta.get("managedFields") or []
            if entry.get("subresource")
            or (entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply")
        ]
        result = await self.merge_patch(key_of(applied), {"metadata": {"managedFields": kept}})
        self.writes.applies += 1  # the replace
        return result

    async def merge_patch(self, key: ObjectKey, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch (a None value removes its key), whoever owns the fields."""
        cls = resource_class(key.api_version, key.kind)
        result = await self.call(
            lambda: self.client.patch(
                cls,
                key.name,
                dict(patch),
                namespace=key.namespace or None,
                patch_type=PatchType.MERGE,
            )
        )
        self.writes.applies += 1
        return self._wrote(result, key.api_version, key.kind)

    def _wrote(self, result: Any, api_version: str, kind: str) -> dict[str, Any]:
        """The API server's answer to a write, as a dict the copies see at once."""
        obj = _with_type(dict(result.to_dict()), api_version, kind)
        if self.cache is not None:
            self.cache.wrote(obj)
        return obj

    async def judge(self, manifest: Mapping[str, Any]) -> Verdict:
        """A server-side dry-run of the manifest's apply, exactly as given (unknown and
        duplicate fields refused). An object that cannot be judged yet (its namespace or
        kind does not exist yet) is accepted: its real apply, later in the rollout, is
        judged then. The answer tells an object that exists from a new one: a dry-run
        create has no resourceVersion (nothing was stored)."""
        meta = manifest["metadata"]

        def request() -> Awaitable[Any]:
            return self.client._client.request(  # lightkube's apply cannot ask for Strict
                "patch",
                res=resource_class(manifest["apiVersion"], manifest["kind"]),
                name=meta["name"],
                namespace=meta.get("namespace"),
                obj=dict(manifest),
                headers={"Content-Type": PatchType.APPLY.value},
                params={
                    "fieldManager": FIELD_MANAGER,
                    "force": "true",
                    "dryRun": "All",
                    "fieldValidation": "Strict",
                },
            )

        try:
            answer = await self.call(request, missing=None)
        except ApiRefusedError as error:
            # A 500 that outlasts the retries is the server's verdict on this object (a
            # duplicate node port is refused so), not an outage.
            if error.code in REFUSAL_CODES | {500}:
                return Verdict(error.message, exists=None)
            raise
        stored = answer is not None and bool(getattr(answer.metadata, "resourceVersion", None))
        return Verdict(None, exists=stored)

    async def list_labelled(
        self, api_version: str, kind: str, selector: str
    ) -> list[dict[str, Any]]:
        """Every object of a kind carrying the labels, in all namespaces; none if the kind
        is not served (yet). A kind this client has no type for raises UnknownKindError:
        skipping it silently would hide owned objects from pruning and deletion. A part
        without `=` asks only that the label exists."""
        resource_class(api_version, kind)  # UnknownKindError, cached or not
        if self.cache is not None:
            return await self.cache.read(api_version, kind, selector)
        return (await self.list_versioned(api_version, kind, selector))[0]

    async def list_all(
        self,
        api_version: str,
        kind: str,
        *,
        once: bool = False,
        namespace: str | None = None,
        shared: bool = False,
    ) -> list[dict[str, Any]]:
        resource_class(api_version, kind)
        if self.cache is not None and not once:
            return await self.cache.read(api_version, kind, None, namespace, shared=shared)
        return (await self.list_versioned(api_version, kind, None, None, namespace))[0]

    async def list_versioned(
        self,
        api_version: str,
        kind: str,
        selector: str | None,
        named: ObjectKey | None = None,
        namespace: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """The objects (carrying the labels of `selector`, if given; only the one `named`,
        if given; in `namespace` alone, if given) and the list's resourceVersion ("" for a
        kind not served: there is nothing to watch yet)."""
        cls = resource_class(api_version, kind)
        scope = _scope(api_version, kind, named, namespace)
        labels = _labels(selector)

        async def listing() -> tuple[list[Any], str]:
            found = self._api.list(cls, labels=labels, **scope)
            items = [o async for o in found]
            return items, str(found.resourceVersion)

        items, version = await self.call(listing, missing=([], ""))
        return [_with_type(dict(o.to_dict()), api_version, kind) for o in items], version

    async def watch_from(
        self,
        api_version: str,
        kind: str,
        selector: str | None,
        resource_version: str,
        named: ObjectKey | None = None,
        namespace: str | None = None,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The changes after `resource_version`, as (type, object); raises when the watch
        ends (a 410 Gone included: the caller lists afresh)."""
        cls = resource_class(api_version, kind)
        scope = _scope(api_version, kind, named, namespace)
        watch = self._api.watch(
            cls, labels=_labels(selector), resource_version=resource_version, **scope
        )
        async for event, model in watch:
            obj = _with_type(dict(model.to_dict()), api_version, kind)
            # Not held while this waits for the next event: a parsed model of a Deployment
            # or a Pod is tens of KiB, and each watch would keep its last one.
            del model
            yield event, obj

    async def patch_status(self, key: ObjectKey, status: Mapping[str, Any]) -> None:
        """Merge-patches the status subresource of a custom resource (a None value removes
        its key: see `merge_patch`)."""
        cls = resource_class(key.api_version, key.kind)
        result = await self.call(
            lambda: self.client.patch(
                cls.Status,
                key.name,
                {"status": dict(status)},
                namespace=key.namespace or None,
                patch_type=PatchType.MERGE,
            ),
            missing=None,  # the resource went meanwhile: its status went with it
        )
        self.writes.applies += 1
        if result is not None:
            self._wrote(result, key.api_version, key.kind)

    def change_mark(self) -> object | None:
        return None if self.cache is None else self.cache.mark()

    async def changed(self, within: float, since: object | None = None) -> None:
        if self.cache is None:
            await asyncio.sleep(within)
        else:
            await self.cache.changed(within, since)

    async def delete(self, key: ObjectKey, *, orphan: bool = False) -> None:
        """Deletes the object (one already gone is no error); `orphan` leaves what it
        owns (a Deployment's ReplicaSets and their pods) running."""
        cls = resource_class(key.api_version, key.kind)
        scope: dict[str, Any] = {"namespace": key.namespace} if key.namespace else {}
        if orphan:
            scope["cascade"] = CascadeType.ORPHAN
        await self.call(lambda: self._api.delete(cls, key.name, **scope), missing=None)
        self.writes.deletes += 1
        if self.cache is not None:
            self.cache.deleted(key)

    async def call(self, call: Callable[[], Awaitable[Any]], **on_404: Any) -> Any:
        """One API call: transient refusals (429, 5xx: an API server starting, a CRD's
        storage initialising) are retried; a missing object gives `missing` if allowed;
        any other refusal raises ApiRefusedError (NotFoundError, ConflictError); a server
        that does not answer (within `REQUEST_TIMEOUT_S`) raises ClusterUnreachableError.
        A call timed out is cancelled, which resets its stream alone."""
        for attempt in range(TRANSIENT_RETRIES + 1):
            self.requests += 1
            try:
                async with self._slots, asyncio.timeout(REQUEST_TIMEOUT_S):
                    return await call()
            except httpx.HTTPStatusError as error:  # lightkube's ApiError is one
                code = _status_code(error)
                if code == 404 and "missing" in on_404:
                    return on_404["missing"]
                if code not in TRANSIENT_CODES or attempt == TRANSIENT_RETRIES:
                    raise refusal_of(error) from error
                await asyncio.sleep(min(0.25 * 2**attempt, 2.0))
            except TimeoutError as error:
                late = TimeoutError(f"no answer within {REQUEST_TIMEOUT_S:g} s")
                raise self._unreachable(late) from error
            except (httpx.TransportError, OSError) as error:
                raise self._unreachable(error) from error
        raise AssertionError("unreachable")

    def _unreachable(self, error: BaseException) -> ClusterUnreachableError:
        return unreachable(self.name, self.server, error)


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = error
    for _ in range(10):  # exception chains are short; a cycle must not hang us
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _status_code(error: httpx.HTTPStatusError) -> int:
    """The HTTP status, from an API Status or from a plain-text answer."""
    if isinstance(error, ApiError):
        return int(error.status.code or 0)
    return error.response.status_code


def _scope(
    api_version: str, kind: str, named: ObjectKey | None, namespace: str | None = None
) -> dict[str, Any]:
    """Where a list or watch looks: every namespace, one namespace, or at the one object
    `named`."""
    if named is not None:
        where = {"namespace": named.namespace} if named.namespace else {}
        return {**where, "fields": {"metadata.name": named.name}}
    if not is_namespaced(api_version, kind):
        return {}
    return {"namespace": namespace or ALL_NS}


def _labels(selector: str | None) -> dict[str, Any] | None:
    """lightkube's label filter of a selector `k=v,k2` (a part without `=`: the label
    exists)."""
    if selector is None:
        return None
    labels: dict[str, Any] = {}
    for part in selector.split(","):
        key, sep, value = part.partition("=")
        labels[key] = value if sep else exists()
    return labels


def _with_type(obj: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    obj.setdefault("apiVersion", api_version)
    obj.setdefault("kind", kind)
    return obj
