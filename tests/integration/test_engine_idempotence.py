"""No write without a change, for every rendered fixture: right after a reconcile of a
cluster completes, a second pass finds nothing to change.

Each render (the samples and the everything-on specs, primary and remote, both release
families) is reconciled to completion on a real local cluster, then once more: that pass
must apply and prune nothing, send no write (the engine's own count), and the API server's
audit log must show no write request in its window. Renders run one after another on one
cluster; between them, everything the previous one owned is deleted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from lightkube import Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from istio_operator.api.labels import MANAGED_BY, MANAGED_BY_VALUE, OWNER_NAME, OWNER_NAMESPACE
from istio_operator.api.labels import REMOTE as REMOTE_LABEL
from istio_operator.kube.client import Cluster, config_from_file
from istio_operator.localcluster import LocalCluster, Workspace
from istio_operator.reconcile.engine import (
    ClusterReport,
    Ownership,
    delete_owned,
    reconcile_cluster,
)
from istio_operator.render import DesiredObject
from tests.integration.test_render_accepted import RENDERS
from tests.operator_harness import SYSTEM_USER_AGENTS, client_for, wait_for

pytestmark = pytest.mark.cluster

CLUSTER = "engine-idempotence"
PHASE_TIMEOUT_S = 90.0
CLEANUP_TIMEOUT_S = 60.0
ENGINE_LOG = "istio_operator.reconcile.engine"


@dataclass
class Passes:
    first: ClusterReport
    second: ClusterReport
    writes_before: int  # the engine's write count after the first pass
    writes_after: int  # and after the second
    second_started: datetime
    second_ended: datetime
    second_log: list[str]  # what the engine logged during the second pass


@pytest.fixture(scope="module")
def local(workspace: Workspace) -> Iterator[LocalCluster]:
    created = workspace.create(CLUSTER, nodes=1)
    try:
        yield created
    finally:
        workspace.delete(CLUSTER)


@pytest.fixture(scope="module")
def client(local: LocalCluster) -> Client:
    return client_for(local)


def ownership_of(objects: Sequence[DesiredObject]) -> Ownership:
    """The selector the controller uses for this render's owner: the owning Istio's labels,
    and for a remote's objects the RemoteIstio's as well."""
    owners = {
        tuple(obj.labels.get(k) for k in (OWNER_NAME, OWNER_NAMESPACE, REMOTE_LABEL))
        for obj in objects
        if OWNER_NAME in obj.labels
    }
    assert len(owners) == 1, f"one owner per render expected, got {owners}"
    name, namespace, remote = owners.pop()
    selector = f"{MANAGED_BY}={MANAGED_BY_VALUE},{OWNER_NAME}={name},{OWNER_NAMESPACE}={namespace}"
    return Ownership(selector + (f",{REMOTE_LABEL}={remote}" if remote else ""))


def create_foreign_namespaces(client: Client, objects: Sequence[DesiredObject]) -> None:
    """The namespaces the objects live in and the render does not create (the Istio
    resource's own namespace exists before the operator reconciles it)."""
    rendered = {obj.name for obj in objects if obj.kind == "Namespace"}
    for name in sorted({obj.namespace for obj in objects if obj.namespace} - rendered):
        client.apply(Namespace(metadata=ObjectMeta(name=name)))


async def reconcile_twice(
    local: LocalCluster, objects: Sequence[DesiredObject], caplog: pytest.LogCaptureFixture
) -> Passes:
    cluster = Cluster.from_config(CLUSTER, config_from_file(str(local.kubeconfig)))
    ownership = ownership_of(objects)
    try:
        first = await reconcile_cluster(cluster, objects, ownership, PHASE_TIMEOUT_S)
        assert first.done, f"first pass stuck in {first.waiting_phase}: {first.awaiting}"
        writes_before = cluster.writes.total
        caplog.clear()
        started = datetime.now(UTC)
        second = await reconcile_cluster(cluster, objects, ownership, PHASE_TIMEOUT_S)
        ended = datetime.now(UTC)
        logged = [r.getMessage() for r in caplog.records if r.name == ENGINE_LOG]
        return Passes(first, second, writes_before, cluster.writes.total, started, ended, logged)
    finally:
        try:
            await remove_owned(cluster, ownership)
        finally:
            await cluster.close()


async def remove_owned(cluster: Cluster, ownership: Ownership) -> None:
    """Deletes what the render's owner holds and waits until it is gone, so that the next
    render starts from a cluster without it."""
    removed = await delete_owned(cluster, ownership)
    deadline = time.monotonic() + CLEANUP_TIMEOUT_S
    while True:
        left = [key for key in removed if await cluster.get(key) is not None]
        if not left:
            return
        assert time.monotonic() < deadline, f"still there after deletion: {left}"
        await asyncio.sleep(0.25)


def audited_writes(
    client: Client, local: LocalCluster, since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """Write requests received in [since, until], the cluster's own components excepted.

    A dry-run marker request sent afterwards must show in the log first, so that every
    earlier request's event has been written."""
    marker = f"audit-marker-{uuid.uuid4().hex[:12]}"
    client.apply(
        Namespace(metadata=ObjectMeta(name=marker)), dry_run=True, field_manager="audit-marker"
    )
    wait_for("the marker in the audit log", lambda: marker in local.audit_log.read_text())
    events = []
    for line in local.audit_log.read_text().splitlines():
        event = json.loads(line)
        received = datetime.fromisoformat(event["requestReceivedTimestamp"])
        if (
            event.get("stage") == "ResponseComplete"
            and since <= received <= until
            and not event.get("userAgent", "").startswith(SYSTEM_USER_AGENTS)
            and event["user"]["username"] != "system:apiserver"
        ):
            events.append(event)
    return events


@pytest.mark.parametrize("label", list(RENDERS))
def test_a_second_pass_right_after_a_reconcile_changes_nothing(
    local: LocalCluster, client: Client, label: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ENGINE_LOG)
    objects = RENDERS[label]()
    create_foreign_namespaces(client, objects)

    passes = asyncio.run(reconcile_twice(local, objects, caplog))

    assert passes.first.applied, "the first pass should have created the objects"
    why = "\n".join(passes.second_log)
    assert passes.second.done, f"{passes.second.waiting_phase}: {passes.second.awaiting}"
    assert passes.second.applied == [], f"{label}: the second pass applied\n{why}"
    assert passes.second.pruned == [], f"{label}: the second pass pruned\n{why}"
    assert passes.writes_after == passes.writes_before, why
    writes = audited_writes(client, local, passes.second_started, passes.second_ended)
    assert writes == [], [f"{w['verb']} {w['requestURI']} ({w['userAgent']})" for w in writes]
