"""Start, list, stop and delete named local Kubernetes clusters.

Each cluster is etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
a kwok controller faking a few nodes, run by kwokctl's binary runtime from the
binaries built out of Go modules. Everything binds 127.0.0.1, each cluster has
its own kubeconfig file, and ``~/.kube/config`` is never touched.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from istio_operator.localcluster.binaries import Binaries, find_binaries
from istio_operator.localcluster.config import (
    AUDIT_POLICY,
    Ports,
    kwokctl_configuration,
    load_balancer_stage,
)

COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok-controller",
)
DEFAULT_NODES = 3
_NODE_READY_JSONPATH = (
    'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}'
)
START_TIMEOUT_S = 180.0


class LocalClusterError(RuntimeError):
    """A local cluster failed to start or to answer; the message points at its logs."""


@dataclass(frozen=True)
class LocalCluster:
    """One running (or stopped) local cluster."""

    name: str
    directory: Path
    ports: Ports
    address_prefix: str

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig.yaml"

    @property
    def logs(self) -> Path:
        return self.directory / "logs"

    @property
    def audit_log(self) -> Path:
        """Every write request the API server served (JSON lines, Metadata level)."""
        return self.logs / "audit.log"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.kube_apiserver}"

    def standalone_kubeconfig(self) -> str:
        """The admin kubeconfig with its certificates inline, usable from anywhere
        (e.g. in the kubeconfig Secret of a RemoteIstio)."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        for entry, keys in (
            ("clusters", ("certificate-authority",)),
            ("users", ("client-certificate", "client-key")),
        ):
            for item in config.get(entry) or []:
                section = item.get("cluster") or item.get("user") or {}
                for key in keys:
                    if key in section:
                        data = Path(section.pop(key)).read_bytes()
                        section[f"{key}-data"] = base64.b64encode(data).decode()
        return str(yaml.safe_dump(config, sort_keys=False))

    def pid_of(self, component: str) -> int | None:
        try:
            return int((self.directory / "pids" / f"{component}.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def running_components(self) -> list[str]:
        return [c for c in COMPONENTS if _alive(self.pid_of(c))]


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_ports(count: int) -> list[int]:
    """Ports the kernel hands out now; held together so that they are distinct."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(closing(socket.socket())) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


class Workspace:
    """A directory of local clusters (kwokctl's ``KWOK_WORKDIR``)."""

    def __init__(self, root: Path, binaries: Binaries | None = None) -> None:
        self.root = root.resolve()
        self._binaries = binaries

    @property
    def binaries(self) -> Binaries:
        if self._binaries is None:
            self._binaries = find_binaries()
        return self._binaries

    # -- queries ---------------------------------------------------------------------------

    def _meta_file(self, name: str) -> Path:
        return self.root / "meta" / f"{name}.json"

    def get(self, name: str) -> LocalCluster:
        try:
            meta = json.loads(self._meta_file(name).read_text())
        except FileNotFoundError:
            raise LocalClusterError(f"no local cluster named {name!r} in {self.root}") from None
        return LocalCluster(
            name=name,
            directory=self.root / "clusters" / name,
            ports=Ports(**meta["ports"]),
            address_prefix=meta["address_prefix"],
        )

    def list(self) -> list[LocalCluster]:
        meta_dir = self.root / "meta"
        if not meta_dir.is_dir():
            return []
        return [self.get(p.stem) for p in sorted(meta_dir.glob("*.json"))]

    # -- lifecycle -------------------------------------------------------------------------

    def create(
        self, name: str, nodes: int = DEFAULT_NODES, *, admission_webhooks: bool = True
    ) -> LocalCluster:
        """Creates and starts a cluster, then waits until its API and nodes are ready.

        Without `admission_webhooks`, the API server calls no admission webhook: for
        webhooks whose server would run in a pod (istiod's injector), since no process
        runs in a fake node's pod to answer them. The webhook objects are kept as written.
        """
        if self._meta_file(name).exists():
            raise LocalClusterError(f"local cluster {name!r} already exists in {self.root}")
        cluster = LocalCluster(
            name=name,
            directory=self.root / "clusters" / name,
            ports=Ports(*_free_ports(6)),
            address_prefix=self._next_address_prefix(),
        )
        config = self.root / "config" / f"{name}.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(self._configuration_yaml(cluster, admission_webhooks))
        self._meta_file(name).parent.mkdir(parents=True, exist_ok=True)
        self._meta_file(name).write_text(
            json.dumps({"ports": asdict(cluster.ports), "address_prefix": cluster.address_prefix})
        )
        self._kwokctl(
            "--config",
            str(config),
            "--name",
            name,
            "create",
            "cluster",
            "--kubeconfig",
            "",
            "--timeout",
            f"{int(START_TIMEOUT_S)}s",
        )
        self.wait_ready(cluster)
        self._kwokctl("--name", name, "scale", "node", "--replicas", str(nodes))
        self._wait_nodes_ready(cluster, nodes)
        self._wait_default_service_account(cluster)
        return cluster

    def delete(self, name: str) -> None:
        """Stops every process of the cluster and removes its files."""
        if (self.root / "clusters" / name).exists():
            self._kwokctl(
                "--name", name, "delete", "cluster", "--kubeconfig", self._no_kubeconfig()
            )
        self._meta_file(name).unlink(missing_ok=True)
        (self.root / "config" / f"{name}.yaml").unlink(missing_ok=True)

    def delete_all(self) -> None:
        for cluster in self.list():
            self.delete(cluster.name)
        shutil.rmtree(self.root, ignore_errors=True)

    def stop(self, name: str) -> None:
        """Kills every component (an outage); data, ports and credentials are kept."""
        self._kwokctl("--name", name, "stop", "cluster")

    def start(self, name: str) -> LocalCluster:
        """Restarts whatever component of a stopped cluster is not running."""
        cluster = self.get(name)
        self._kwokctl("--name", name, "start", "cluster", "--timeout", f"{int(START_TIMEOUT_S)}s")
        self.wait_ready(cluster)
        return cluster

    # -- readiness -------------------------------------------------------------------------

    def kubectl(self, cluster: LocalCluster, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            [str(self.binaries["kubectl"]), "--kubeconfig", str(cluster.kubeconfig), *args],
            capture_output=True,
            text=True,
            check=False,
            env=self._environment(),
        )
        if check and result.returncode != 0:
            raise LocalClusterError(
                f"kubectl {' '.join(args)} failed on {cluster.name}: {result.stderr.strip()}"
            )
        return result.stdout

    def wait_ready(self, cluster: LocalCluster, timeout: float = START_TIMEOUT_S) -> None:
        """Waits for /readyz; kwokctl's own exit code does not mean ready."""
        self._poll(
            cluster,
            timeout,
            "the API server to be ready",
            lambda: self.kubectl(cluster, "get", "--raw", "/readyz", check=False).strip() == "ok",
        )

    def _wait_nodes_ready(self, cluster: LocalCluster, nodes: int) -> None:
        def ready() -> bool:
            out = self.kubectl(
                cluster,
                "get",
                "nodes",
                "-o",
                _NODE_READY_JSONPATH,
                check=False,
            )
            return out.split().count("True") >= nodes

        self._poll(cluster, START_TIMEOUT_S, f"{nodes} nodes to be Ready", ready)

    def _wait_default_service_account(self, cluster: LocalCluster) -> None:
        self._poll(
            cluster,
            START_TIMEOUT_S,
            "the default ServiceAccount (controller-manager up)",
            lambda: bool(
                self.kubectl(
                    cluster, "get", "serviceaccount", "default", "-o", "name", check=False
                ).strip()
            ),
        )

    def _poll(
        self, cluster: LocalCluster, timeout: float, what: str, done: Callable[[], bool]
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return
            time.sleep(0.25)
        raise LocalClusterError(
            f"local cluster {cluster.name!r}: timed out after {timeout:.0f} s waiting for {what}; "
            f"component logs are in {cluster.logs}"
        )

    # -- internals -------------------------------------------------------------------------

    def _next_address_prefix(self) -> str:
        # Not loopback: Kubernetes refuses loopback IPs in Endpoints, and a remote cluster's
        # Endpoints carry the primary gateway's address. The shared address space
        # 100.64.0.0/10 is routed nowhere here; nothing ever connects to these addresses.
        used = {cluster.address_prefix for cluster in self.list()}
        return next(p for p in (f"100.{i}" for i in range(64, 128)) if p not in used)

    def _configuration_yaml(self, cluster: LocalCluster, admission_webhooks: bool = True) -> str:
        stages = self.binaries.stages_file.read_text()
        policy = self.root / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        documents = [
            kwokctl_configuration(self.binaries, cluster.ports, str(policy), admission_webhooks),
            load_balancer_stage(cluster.address_prefix),
        ]
        # kwokctl keeps its default stages only when no Stage is given: give them all.
        return yaml.safe_dump_all(documents, sort_keys=False) + "---\n" + stages

    def _no_kubeconfig(self) -> str:
        # kwokctl deletes its context from this file; an absent file stays absent.
        return str(self.root / "no-kubeconfig.yaml")

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KWOK_")}
        env["KWOK_WORKDIR"] = str(self.root)
        env["KWOK_RUNTIME"] = "binary"
        # kwokctl runs the first kubectl on PATH: make it ours.
        env["PATH"] = f"{self.binaries.directory_of_kubectl}{os.pathsep}{env.get('PATH', '')}"
        return env

    def _kwokctl(self, *args: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [str(self.binaries["kwokctl"]), *args],
            capture_output=True,
            text=True,
            check=False,
            env=self._environment(),
        )
        if result.returncode != 0:
            raise LocalClusterError(
                f"kwokctl {' '.join(args)} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
