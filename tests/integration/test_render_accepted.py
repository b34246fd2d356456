"""Every object the renderer produces, as a real API server sees it.

For each render, Istio's CRDs are applied for real (and must become Established) and
the namespaces the objects live in are created; every other object goes through
server-side apply in dry-run, so validation, defaulting and the CRDs' schemas all run
but nothing is stored. The cluster is this module's own, so no other test sees the CRDs.

Objects are sent as rendered, with strict field validation: lightkube's models would
silently drop a field they do not know, and so would hide a misspelt or misplaced one.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from istio_operator.kube.client import Cluster
from istio_operator.kube.resources import register_crds, to_resource
from istio_operator.localcluster import Workspace
from istio_operator.render import (
    DesiredObject,
    Phase,
    PortFact,
    PrimaryFacts,
    RemoteNetwork,
    render_primary,
    render_remote,
)
from tests.operator_harness import client_for, wait_established
from tests.unit.render_support import (
    FACTS,
    SAMPLE_REMOTE,
    istio,
    remote,
    remote_objects,
    sample_body,
    with_spec,
)

pytestmark = pytest.mark.cluster

FIELD_MANAGER = "render-check"
CLUSTER = "render-check"


def all_on_body(version: str) -> dict[str, Any]:
    """The reference sample with every optional component and feature switched on."""
    body = sample_body(version)
    for path, value in {
        "mtls": True,
        "controlPlaneSecurityEnabled": True,
        "meshExpansion": True,
        "multiMesh": True,
        "sds.enabled": True,
        "policy.enabled": True,
        "telemetry.enabled": True,
        "mixer.stdioAdapterEnabled": True,
        "nodeAgent.enabled": True,
        "istioCoreDNS.enabled": True,
        "mixerlessTelemetry.enabled": True,
        "sidecarInjector.initCNIConfiguration.enabled": True,
        "gateways.k8singress.enabled": True,
        "gateways.ingress.sds.enabled": True,
        "gateways.egress.sds.enabled": True,
        "localityLB": {
            "enabled": True,
            "distribute": [{"from": "us-central1/*", "to": {"us-central1/*": 80, "eu/*": 20}}],
        },
        "proxy.envoyStatsD": {"enabled": True, "host": "statsd.example", "port": 9125},
        "proxy.envoyMetricsService": {"enabled": True, "host": "metrics.example", "port": 15000},
        "proxy.envoyAccessLogService": {
            "enabled": True,
            "host": "als.example",
            "port": 15001,
            "tcpKeepalive": {"probes": 3, "time": "10s", "interval": "10s"},
        },
    }.items():
        body = with_spec(body, path, value)
    return body


def all_on(version: str) -> list[DesiredObject]:
    return render_primary(
        istio(all_on_body(version)),
        [RemoteNetwork("remoteistio-sample", ("198.51.100.20",))],
        primary_gateway_addresses=("203.0.113.10",),
    )


def remote_all_on(version: str, *gateway_addresses: str) -> list[DesiredObject]:
    """The remote of the all-on spec (meshExpansion: its mirrors point at the primary's
    gateway); a mirrored service with its own unnamed port and pod IP."""
    body = copy.deepcopy(SAMPLE_REMOTE)
    body["spec"]["enabledServices"].append(
        {"name": "zipkin-own", "ports": [{"port": 9411}], "podIPs": ["10.1.0.9"]}
    )
    facts = PrimaryFacts(
        ca_secret_data=FACTS.ca_secret_data,
        ingress_gateway_addresses=gateway_addresses,
        service_ports={"istio-pilot": (PortFact("grpc-xds", 15010), PortFact("https-xds", 15011))},
    )
    return render_remote(istio(all_on_body(version)), remote(body), facts)


RENDERS: dict[str, Callable[[], list[DesiredObject]]] = {
    "sample-1.2": lambda: render_primary(istio(sample_body("1.2.5"))),
    "sample-1.3": lambda: render_primary(istio(sample_body("1.3.0"))),
    "all-on-1.2": lambda: all_on("1.2.5"),
    "all-on-1.3": lambda: all_on("1.3.0"),
    "remote-1.2": lambda: remote_objects(sample_body("1.2.5")),
    "remote-1.3": lambda: remote_objects(sample_body("1.3.0")),
    # A cloud load balancer may be known by a hostname, next to IPs or alone.
    "remote-all-on-1.2": lambda: remote_all_on("1.2.5", "203.0.113.10", "gw.example.com"),
    "remote-all-on-1.3": lambda: remote_all_on("1.3.0", "a1b2.elb.example.com"),
}


@pytest.fixture(scope="module")
def cluster(workspace: Workspace) -> Iterator[Client]:
    created = workspace.create(CLUSTER, nodes=1)
    try:
        yield client_for(created)
    finally:
        workspace.delete(CLUSTER)


def apply_crds_for_real(client: Client, objects: list[DesiredObject]) -> None:
    crds = [obj.manifest for obj in objects if obj.phase is Phase.CRDS]
    if not crds:
        return
    register_crds(crds)
    for manifest in crds:
        client.apply(to_resource(manifest), field_manager=FIELD_MANAGER, force=True)
    wait_established(client, [crd["metadata"]["name"] for crd in crds])


def create_namespaces(client: Client, objects: list[DesiredObject]) -> None:
    for name in sorted({obj.namespace for obj in objects if obj.namespace}):
        client.apply(Namespace(metadata=ObjectMeta(name=name)), field_manager=FIELD_MANAGER)


def dry_run_rejections(kubeconfig: Path, objects: list[DesiredObject]) -> list[str]:
    """What the operator's own gate (`Cluster.judge`: a strict server-side dry-run of the
    manifest exactly as rendered) says of every object."""

    async def judge() -> list[str]:
        cluster = Cluster.from_config("test", KubeConfig.from_file(str(kubeconfig)))
        try:
            verdicts = [
                (obj, (await cluster.judge(obj.manifest)).refusal)
                for obj in objects
                if obj.phase is not Phase.CRDS and obj.kind != "Namespace"
            ]
        finally:
            await cluster.close()
        return [f"{obj.kind}/{obj.name}: {why}" for obj, why in verdicts if why is not None]

    return asyncio.run(judge())


@pytest.mark.parametrize("label", list(RENDERS))
def test_the_api_server_accepts_every_rendered_object(
    cluster: Client, workspace: Workspace, label: str
) -> None:
    objects = RENDERS[label]()
    apply_crds_for_real(cluster, objects)
    create_namespaces(cluster, objects)

    rejections = dry_run_rejections(workspace.get(CLUSTER).kubeconfig, objects)

    assert not rejections, f"{label}: {len(rejections)} rejected\n" + "\n".join(rejections)
