"""Running the operator as a real process against local clusters, and watching what it does."""

from __future__ import annotations

import base64
import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

import httpx2 as httpx
import yaml
from lightkube import ALL_NS, ApiError, Client, KubeConfig
from lightkube.codecs import load_all_yaml
from lightkube.core.client import LabelSelector
from lightkube.core.dictmixin import DictMixin
from lightkube.core.resource import NamespacedResource
from lightkube.generic_resource import GenericNamespacedResource, create_namespaced_resource
from lightkube.models.core_v1 import Container, PodSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import DaemonSet, Deployment, StatefulSet
from lightkube.resources.core_v1 import Namespace, Pod, Secret

from istio_operator.api.labels import MANAGED_BY, MANAGED_BY_VALUE, REMOTE
from istio_operator.cli.demo import (
    PRIMARY_COMPONENTS,
    REMOTE_COMPONENTS,
    citadel_ca_stand_in,
    remote_istio_body,
)
from istio_operator.kube.blocking import BlockingClient
from istio_operator.kube.resources import is_namespaced, resource_class
from istio_operator.localcluster import LocalCluster, Workspace
from istio_operator.reconcile.kinds import MANAGED_KINDS, register_managed_kinds

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "tests" / "fixtures" / "samples"
NAMESPACE = "istio-system"
IstioResource = create_namespaced_resource("istio.banzaicloud.io", "v1beta1", "Istio", "istios")
RemoteIstioResource = create_namespaced_resource(
    "istio.banzaicloud.io", "v1beta1", "RemoteIstio", "remoteistios"
)
SYSTEM_USER_AGENTS = ("kube-", "kwok")
# The operator's command line, as `python -m`: the tests run it with this interpreter.
CLI = (sys.executable, "-m", "istio_operator.cli.main")
OPERATOR_ARGS = ("--resync-period", "10", "--phase-timeout", "20")
REMOTE_NAME = "remote"  # the RemoteIstio of a mesh of one primary and one remote

Workload = Deployment | DaemonSet | StatefulSet
Kind = TypeVar("Kind", bound=DictMixin)


def client_for(cluster: LocalCluster) -> Client:
    return Client(
        KubeConfig.from_file(str(cluster.kubeconfig)), field_manager="istio-operator-tests"
    )


def wait_for(
    what: str, check: Callable[[], Any], timeout: float = 90.0, every: float = 0.25
) -> Any:
    """The first truthy answer of `check` (whatever it is: the checks return a bool, or a
    status once it holds), polled every `every` seconds; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def cli(
    *args: str, timeout: float | None = 120, check: bool = False, kubeconfig: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`istio-operator ARGS...`, its output captured; KUBECONFIG set to `kubeconfig` if given."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)} if kubeconfig else None
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, check=check, env=env
    )


# -- lightkube's objects, typed ----------------------------------------------------------------
# lightkube declares every field of an object optional, even those the API server always
# returns (metadata, a workload's spec): these read them, failing if one is missing.


class HasMetadata(Protocol):
    @property
    def metadata(self) -> ObjectMeta | None: ...


def meta(obj: HasMetadata) -> ObjectMeta:
    assert obj.metadata is not None, obj
    return obj.metadata


def name_of(obj: HasMetadata) -> str:
    name = meta(obj).name
    assert name is not None, obj
    return name


def generation_of(obj: HasMetadata) -> int:
    generation = meta(obj).generation
    assert generation is not None, obj
    return generation


def labels_of(obj: HasMetadata) -> dict[str, str]:
    return dict(meta(obj).labels or {})


def pod_spec(workload: Workload) -> PodSpec:
    assert workload.spec is not None and workload.spec.template.spec is not None, workload
    return workload.spec.template.spec


def containers(workload: Workload) -> list[Container]:
    return pod_spec(workload).containers


def container_images(workload: Workload) -> set[str]:
    return {str(c.image) for c in containers(workload)}


def from_dict(kind: type[Kind], body: Mapping[str, Any]) -> Kind:
    """`kind.from_dict`, with the type lightkube's signature does not say."""
    obj = kind.from_dict(dict(body))
    assert isinstance(obj, kind)
    return obj


# -- the cluster's objects ---------------------------------------------------------------------


def exists(
    client: Client, kind: type[NamespacedResource], name: str, namespace: str = NAMESPACE
) -> bool:
    """Whether the object is there (a 404 says it is not)."""
    try:
        client.get(kind, name, namespace=namespace)
    except ApiError as error:
        if error.status.code == 404:
            return False
        raise
    return True


def create_namespaces(client: Client, *names: str) -> None:
    for name in names:
        client.apply(Namespace(metadata=ObjectMeta(name=name)))


def put_kubeconfig(client: Client, name: str, kubeconfig: str, namespace: str = NAMESPACE) -> None:
    """The Secret a RemoteIstio `name` reads its cluster's kubeconfig from (key `name`)."""
    data = {name: base64.b64encode(kubeconfig.encode()).decode()}
    client.apply(Secret(metadata=ObjectMeta(name=name, namespace=namespace), data=data))


def unreachable_kubeconfig(server: str = "https://127.0.0.1:1") -> str:
    """A kubeconfig of a cluster `gone` at `server` (by default, where nothing listens)."""
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: gone, cluster: {{server: '{server}'}}}}]\n"
        "users: [{name: gone, user: {token: none}}]\n"
        "contexts: [{name: gone, context: {cluster: gone, user: gone}}]\n"
        "current-context: gone\n"
    )


def workloads(client: Client, namespace: str = NAMESPACE) -> list[Deployment | DaemonSet]:
    """The Deployments and DaemonSets of the namespace (ALL_NS: of the cluster)."""
    return [
        *client.list(Deployment, namespace=namespace),
        *client.list(DaemonSet, namespace=namespace),
    ]


def resource_versions(client: Client, namespace: str = NAMESPACE) -> dict[str, str | None]:
    """The resourceVersion of each Deployment of the namespace, by name."""
    return {
        name_of(d): meta(d).resourceVersion for d in client.list(Deployment, namespace=namespace)
    }


def images(components: Sequence[str], version: str) -> set[str]:
    return {f"docker.io/istio/{c}:{version}" for c in components}


# -- Istio and RemoteIstio ---------------------------------------------------------------------


def istio_body(
    version: str, name: str = "istio", namespace: str = NAMESPACE, **overrides: Any
) -> dict[str, Any]:
    """The reference sample at `version`, its image fields removed (images follow the version)."""
    body: dict[str, Any] = yaml.safe_load((SAMPLES / "istio_v1beta1_istio.yaml").read_text())
    spec = body["spec"]
    spec["version"] = version
    for section in spec.values():
        if isinstance(section, dict):
            section.pop("image", None)
    spec.pop("tracing", None)  # the sample's misplaced field would only warn
    spec["autoInjectionNamespaces"] = ["injected"]
    for key, value in overrides.items():
        spec[key] = value
    body["metadata"] = {"name": name, "namespace": namespace}
    return body


def apply_crds(client: Client) -> None:
    files = sorted((REPO / "deploy/crds").glob("istio.banzaicloud.io_*.yaml"))
    crds = load_all_yaml("\n---\n".join(p.read_text() for p in files))
    for crd in crds:
        client.apply(crd, force=True)
    wait_established(client, [name_of(crd) for crd in crds])


def wait_established(client: Client, names: list[str]) -> None:
    def established(name: str) -> bool:
        crd = client.get(CustomResourceDefinition, name)
        conditions = (crd.status.conditions if crd.status else None) or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_for(f"CRDs {names} Established", lambda: all(established(n) for n in names))


def apply_istio(client: Client, body: dict[str, Any]) -> None:
    client.apply(IstioResource.from_dict(copy.deepcopy(body)), force=True)


def apply_remote_istio(client: Client, body: dict[str, Any]) -> None:
    client.apply(RemoteIstioResource.from_dict(copy.deepcopy(body)), force=True)


def apply_remote(client: Client, name: str, namespace: str = NAMESPACE) -> None:
    """The demo's RemoteIstio `name` (for the cluster of the kubeconfig Secret `name`)."""
    apply_remote_istio(client, remote_istio_body(name, namespace))


def remote_access(
    primary: LocalCluster, remote_kubeconfig: Path, name: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """`istio-operator remote-access` for the remote cluster of `remote_kubeconfig`: the
    kubeconfig Secret `name` on the primary."""
    remote = ["--remote-kubeconfig", str(remote_kubeconfig), "--name", name]
    return cli("remote-access", *remote, "--kubeconfig", str(primary.kubeconfig), *args)


def _status(
    client: Client, kind: type[GenericNamespacedResource], name: str, namespace: str
) -> dict[str, Any]:
    try:
        found = client.get(kind, name, namespace=namespace)
    except ApiError:
        return {}
    return dict(found.get("status") or {})


def istio_status(client: Client, name: str = "istio", namespace: str = NAMESPACE) -> dict[str, Any]:
    """The `Istio`'s status ({} while it has none or is not there)."""
    return _status(client, IstioResource, name, namespace)


def remote_status(client: Client, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    """The `RemoteIstio`'s status ({} while it has none or is not there)."""
    return _status(client, RemoteIstioResource, name, namespace)


def istio_available_at(client: Client, version: str) -> bool:
    """The `Istio` Available with `version` in effect."""
    status = istio_status(client)
    return status.get("Status") == "Available" and status.get("version") == version


def remote_mesh_at(primary: Client, remote: Client, name: str, version: str) -> bool:
    """The Istio and the RemoteIstio `name` Available at `version`, and the control plane's
    images at `version` on the primary and on the remote."""
    remote_state = remote_status(primary, name)
    return (
        istio_available_at(primary, version)
        and remote_state.get("Status") == "Available"
        and remote_state.get("version") == version
        and all_images(primary) == images(PRIMARY_COMPONENTS, version)
        and all_images(remote) == images(REMOTE_COMPONENTS, version)
    )


def ready(status: Mapping[str, Any]) -> bool:
    """The status's Ready condition is True (for an Istio: the primary and every remote at
    the spec)."""
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def reason(status: Mapping[str, Any]) -> str:
    """The reason of the status's Reconciled condition ("" without one)."""
    return next(
        (
            str(c.get("reason", ""))
            for c in status.get("conditions") or []
            if c.get("type") == "Reconciled"
        ),
        "",
    )


def workload_images(client: Client, namespace: str = NAMESPACE) -> dict[str, set[str]]:
    return {name_of(obj): container_images(obj) for obj in workloads(client, namespace)}


def all_images(client: Client, namespace: str = NAMESPACE) -> set[str]:
    return {image for images in workload_images(client, namespace).values() for image in images}


# -- the operator, as a process ----------------------------------------------------------------


@dataclass
class OperatorProcess:
    """`istio-operator run` in a subprocess, logging to a file."""

    kubeconfig: Path
    log: Path
    args: tuple[str, ...] = OPERATOR_ARGS
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    started_at: float = 0.0  # when it was last started (epoch seconds)

    def start(self) -> None:
        self.starts += 1
        self.started_at = time.time()
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        with self.log.open("ab") as out:
            out.write(f"\n===== start {self.starts} =====\n".encode())
            self.process = subprocess.Popen(
                [*CLI, "run", "--metrics-port", "0", "--health-port", "0", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def assert_running(self) -> None:
        assert self.process is not None and self.process.poll() is None, (
            f"the operator exited:\n{self.tail()}"
        )

    def kill(self) -> None:
        """SIGKILL: no cleanup, no finalizers; as a crashed pod."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 60) -> str:
        if not self.log.exists():  # never started
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def operator_process(
    kubeconfig: Path, log: Path, *, args: tuple[str, ...] = OPERATOR_ARGS, tail: int = 100
) -> Iterator[OperatorProcess]:
    """An operator (for the caller to start), stopped at the end, its log's last `tail`
    lines printed."""
    operator = OperatorProcess(kubeconfig, log, args)
    try:
        yield operator
    finally:
        operator.stop()
        print(operator.tail(tail))


@dataclass
class Plane:
    """Local clusters made for one test module: a primary, remotes (by the names the tests
    give them) and an operator for the primary."""

    workspace: Workspace
    directory: Path
    primary_cluster: LocalCluster
    primary: Client
    operator: OperatorProcess
    remote_clusters: dict[str, LocalCluster] = field(default_factory=dict)
    remotes: dict[str, Client] = field(default_factory=dict)

    @property
    def remote_cluster(self) -> LocalCluster:
        """The remote cluster, where there is one."""
        (cluster,) = self.remote_clusters.values()
        return cluster

    @property
    def remote(self) -> Client:
        """The remote's client, where there is one remote."""
        (client,) = self.remotes.values()
        return client

    def start_remote(self, name: str) -> Client:
        """Starts the remote `name` after an outage; a new client for it."""
        cluster = self.workspace.start(self.remote_clusters[name].name)
        self.remote_clusters[name] = cluster
        self.remotes[name] = client_for(cluster)
        return self.remotes[name]


@contextmanager
def operator_plane(
    workspace: Workspace,
    directory: Path,
    primary: str,
    remotes: Mapping[str, str] | None = None,
    *,
    install: Callable[[Client], None] = apply_crds,
    namespaces: Sequence[str] = (NAMESPACE, "injected"),
    remote_namespaces: Sequence[str] = ("injected",),
    citadel_ca: bool = False,
    operator_args: tuple[str, ...] = OPERATOR_ARGS,
    tail: int = 100,
    admission_webhooks: bool = True,
) -> Iterator[Plane]:
    """Creates the cluster `primary` and the `remotes` ({name in the tests: cluster name}),
    `install`s the CRDs on the primary, creates the `namespaces` there and the
    `remote_namespaces` on each remote; with `citadel_ca`, the stand-in for the CA Secret
    citadel makes on the primary (in istio-system), which remotes copy. The operator (for
    the primary, not started) is stopped at the end and its log's last `tail` lines
    printed; the clusters are deleted. Without `admission_webhooks`, the clusters call no
    admission webhook (for the istiod family: no istiod runs on fake nodes to answer)."""
    clusters = [workspace.create(primary, admission_webhooks=admission_webhooks)]
    try:
        remote_clusters = {}
        for key, name in (remotes or {}).items():
            remote_clusters[key] = workspace.create(name, admission_webhooks=admission_webhooks)
            clusters.append(remote_clusters[key])
        client = client_for(clusters[0])
        with operator_process(
            clusters[0].kubeconfig, directory / "operator.log", args=operator_args, tail=tail
        ) as operator:
            plane = Plane(
                workspace,
                directory,
                clusters[0],
                client,
                operator,
                remote_clusters,
                {key: client_for(cluster) for key, cluster in remote_clusters.items()},
            )
            install(client)
            create_namespaces(client, *namespaces)
            for remote in plane.remotes.values():
                create_namespaces(remote, *remote_namespaces)
            if citadel_ca:
                citadel_ca_stand_in(BlockingClient(client), NAMESPACE)
            yield plane
    finally:
        for cluster in clusters:
            workspace.delete(cluster.name)


@contextmanager
def primary_and_remote(workspace: Workspace, directory: Path, prefix: str) -> Iterator[Plane]:
    """The clusters `{prefix}-primary` and `{prefix}-remote` (that of the RemoteIstio
    REMOTE_NAME, its kubeconfig Secret on the primary), the CA stand-in, and the operator
    running."""
    remotes = {REMOTE_NAME: f"{prefix}-remote"}
    with operator_plane(
        workspace, directory, f"{prefix}-primary", remotes, citadel_ca=True, tail=150
    ) as mesh:
        put_kubeconfig(mesh.primary, REMOTE_NAME, mesh.remote_cluster.standalone_kubeconfig())
        mesh.operator.start()
        yield mesh


# -- what the clusters saw ---------------------------------------------------------------------


class Sampler:
    """Calls `sample` every `interval` seconds, in a thread, while in its `with` block."""

    interval = 0.1

    def sample(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(self.interval)


@dataclass
class RolloutRecorder(Sampler):
    """Polls workloads and records when each first shows a given image tag."""

    client: Client
    tag: str
    namespace: str = NAMESPACE
    order: list[tuple[float, str, str]] = field(default_factory=list)  # (time, name, phase)
    seen: set[str] = field(default_factory=set)

    def sample(self) -> None:
        for obj in workloads(self.client, self.namespace):
            name = name_of(obj)
            tagged = any(i.endswith(":" + self.tag) for i in container_images(obj))
            if name not in self.seen and tagged:
                self.seen.add(name)
                phase = labels_of(obj).get("istio.banzaicloud.io/phase", "")
                self.order.append((time.monotonic(), name, phase))


def write_requests(
    cluster: LocalCluster, since: float, *, leases: bool = False
) -> list[dict[str, Any]]:
    """Write requests the API server served after `since` (epoch seconds), except those of
    the cluster's own components (controller-manager, scheduler, kwok) and, unless `leases`,
    Lease renewals (leader election renews its Lease: that is no reconcile write)."""
    events = []
    for line in cluster.audit_log.read_text().splitlines():
        event: dict[str, Any] = json.loads(line)
        if event.get("stage") != "ResponseComplete":
            continue
        when = time.mktime(
            time.strptime(event["requestReceivedTimestamp"][:19], "%Y-%m-%dT%H:%M:%S")
        )
        when -= time.timezone
        agent = event.get("userAgent", "")
        if not leases and (event.get("objectRef") or {}).get("resource") == "leases":
            continue
        if (
            when >= since
            and not agent.startswith(SYSTEM_USER_AGENTS)
            and event["user"]["username"] != "system:apiserver"
        ):
            events.append(event)
    return events


def list_kind(
    client: Client, api_version: str, kind: str, labels: LabelSelector | None = None
) -> list[Any]:
    """Every object of the kind (of any namespace), `labels` matching. lightkube's classes
    of arbitrary kinds share no static type: the objects are lightkube models."""
    resource = resource_class(api_version, kind)
    if is_namespaced(api_version, kind):
        return list(client.list(resource, namespace=ALL_NS, labels=labels))
    return list(client.list(resource, labels=labels))


def owned_objects(client: Client, remote: str | None = None) -> list[str]:
    """Every object on the cluster carrying the operator's labels (for `remote`, if given)."""
    register_managed_kinds()
    labels: LabelSelector = {MANAGED_BY: MANAGED_BY_VALUE}
    if remote:
        labels[REMOTE] = remote
    found = []
    for api_version, kind in MANAGED_KINDS:
        try:
            items = list_kind(client, api_version, kind, labels)
        except (ApiError, httpx.HTTPStatusError) as error:
            code = error.status.code if isinstance(error, ApiError) else error.response.status_code
            if code == 404:
                continue  # the kind is not served on this cluster (a remote has no Istio CRDs)
            raise
        found += [
            f"{kind} {meta(item).namespace or ''}/{name_of(item)}"
            for item in items
            if not derived_by_kubernetes(item)
        ]
    return found


def derived_by_kubernetes(obj: Any) -> bool:
    """An EndpointSlice the endpointslice controller keeps for one of our Services (it
    copies the Service's labels): Kubernetes' state of that Service, gone with it, a moment
    after it (the controller removes it; we never write one)."""
    labels = meta(obj).labels or {}
    return labels.get("endpointslice.kubernetes.io/managed-by") == "endpointslice-controller.k8s.io"


def pods_can_be_created_in_an_injection_namespace(client: Client) -> bool:
    """With no injector webhook left behind, a pod in a labelled namespace is admitted."""
    client.apply(
        Namespace(metadata=ObjectMeta(name="labelled", labels={"istio-injection": "enabled"}))
    )
    name = f"probe-{int(time.monotonic() * 1000)}"
    pod = Pod(
        metadata=ObjectMeta(name=name, namespace="labelled"),
        spec=PodSpec(containers=[Container(name="app", image="example/app:1")]),
    )
    client.create(pod)
    client.delete(Pod, name, namespace="labelled")
    return True
