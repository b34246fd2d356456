"""Running the operator as a real process against local clusters, and watching what it does."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import yaml
from lightkube import ALL_NS, ApiError, Client
from lightkube.codecs import load_all_yaml
from lightkube.core.resource import NamespacedResource
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.core_v1 import Container, PodSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import DaemonSet, Deployment
from lightkube.resources.core_v1 import Namespace, Pod

from istio_operator.api.labels import MANAGED_BY, MANAGED_BY_VALUE, REMOTE
from istio_operator.localcluster import LocalCluster
from istio_operator.reconcile.kinds import MANAGED_KINDS, register_managed_kinds

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "tests" / "fixtures" / "samples"
IstioResource = create_namespaced_resource("istio.banzaicloud.io", "v1beta1", "Istio", "istios")
RemoteIstioResource = create_namespaced_resource(
    "istio.banzaicloud.io", "v1beta1", "RemoteIstio", "remoteistios"
)
SYSTEM_USER_AGENTS = ("kube-", "kwok")


def wait_for(
    what: str, check: Callable[[], Any], timeout: float = 90.0, every: float = 0.25
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def istio_body(
    version: str, name: str = "istio", namespace: str = "istio-system", **overrides: Any
) -> dict[str, Any]:
    """The reference sample at `version`, its image fields removed (images follow the version)."""
    body = yaml.safe_load((SAMPLES / "istio_v1beta1_istio.yaml").read_text())
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
    wait_established(client, [crd.metadata.name for crd in crds])


def wait_established(client: Client, names: list[str]) -> None:
    def established(name: str) -> bool:
        crd = client.get(CustomResourceDefinition, name)
        conditions = (crd.status.conditions if crd.status else None) or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_for(f"CRDs {names} Established", lambda: all(established(n) for n in names))


def apply_istio(client: Client, body: dict[str, Any]) -> None:
    client.apply(IstioResource.from_dict(copy.deepcopy(body)), force=True)


def istio_status(
    client: Client, name: str = "istio", namespace: str = "istio-system"
) -> dict[str, Any]:
    try:
        return dict(client.get(IstioResource, name, namespace=namespace).get("status") or {})
    except ApiError:
        return {}


def workload_images(client: Client, namespace: str = "istio-system") -> dict[str, set[str]]:
    images: dict[str, set[str]] = {}
    for kind in (Deployment, DaemonSet):
        for obj in client.list(kind, namespace=namespace):
            images[obj.metadata.name] = {c.image for c in obj.spec.template.spec.containers}
    return images


def all_images(client: Client, namespace: str = "istio-system") -> set[str]:
    return {image for images in workload_images(client, namespace).values() for image in images}


@dataclass
class OperatorProcess:
    """`istio-operator run` in a subprocess, logging to a file."""

    kubeconfig: Path
    log: Path
    args: tuple[str, ...] = ("--resync-period", "10", "--phase-timeout", "20")
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        with self.log.open("ab") as out:
            out.write(f"\n===== start {self.starts} =====\n".encode())
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "istio_operator.cli.main",
                    "run",
                    "--metrics-port",
                    "0",
                    "--health-port",
                    "0",
                    *self.args,
                ],
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
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class RolloutRecorder:
    """Polls workloads and records when each first shows a given image tag."""

    client: Client
    tag: str
    namespace: str = "istio-system"
    order: list[tuple[float, str, str]] = field(default_factory=list)  # (time, name, phase)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RolloutRecorder:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)

    def _run(self) -> None:
        seen: set[str] = set()
        while not self._stop.is_set():
            for kind in (Deployment, DaemonSet):
                for obj in self.client.list(kind, namespace=self.namespace):
                    name = obj.metadata.name
                    images = [c.image for c in obj.spec.template.spec.containers]
                    if name not in seen and any(i.endswith(":" + self.tag) for i in images):
                        seen.add(name)
                        phase = (obj.metadata.labels or {}).get("istio.banzaicloud.io/phase", "")
                        self.order.append((time.monotonic(), name, phase))
            time.sleep(0.1)


def write_requests(
    cluster: LocalCluster, since: float, *, leases: bool = False
) -> list[dict[str, Any]]:
    """Write requests the API server served after `since` (epoch seconds), except those of
    the cluster's own components (controller-manager, scheduler, kwok) and, unless `leases`,
    Lease renewals (leader election renews its Lease: that is no reconcile write)."""
    events = []
    for line in cluster.audit_log.read_text().splitlines():
        event = json.loads(line)
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


def iter_lines(path: Path) -> Iterator[str]:
    yield from path.read_text().splitlines()


def owned_objects(client: Client, remote: str | None = None) -> list[str]:
    """Every object on the cluster carrying the operator's labels (for `remote`, if given)."""
    register_managed_kinds()
    labels = {MANAGED_BY: MANAGED_BY_VALUE} | ({REMOTE: remote} if remote else {})
    found = []
    for api_version, kind in MANAGED_KINDS:
        resource = resource_registry.load(api_version, kind)
        scope = {"namespace": ALL_NS} if issubclass(resource, NamespacedResource) else {}
        try:
            items = list(client.list(resource, labels=labels, **scope))
        except (ApiError, httpx.HTTPStatusError) as error:
            code = error.status.code if isinstance(error, ApiError) else error.response.status_code
            if code == 404:
                continue  # the kind is not served on this cluster (a remote has no Istio CRDs)
            raise
        found += [f"{kind} {item.metadata.namespace or ''}/{item.metadata.name}" for item in items]
    return found


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
