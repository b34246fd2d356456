"""One remote cluster of an istiod-family mesh (primary-remote: one istiod, on the primary).

The remote gets Istio's CRDs and the `remote` profile of the primary's version and
revision: injection webhooks, the reader identity, and, per revision, an `istiod-<rev>`
Service whose endpoint is the primary's east-west gateway (which routes each revision's
name to that revision's istiod: see `render.istiod.istiod_routes`). The primary gets the
remote's secret: a kubeconfig of the remote's reader ServiceAccount, labelled for
istiod's secret controller (`istio/multiCluster`), never logged or shown. An older
revision stays on the remote while a namespace or pod of the remote uses it, as on the
primary.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import yaml

from istio_operator.api.istio import Istio
from istio_operator.api.keys import ObjectKey
from istio_operator.api.remoteistio import RemoteIstio
from istio_operator.charts import ChartVersion
from istio_operator.kube.client import Cluster
from istio_operator.plan.istiod import IstiodPlan, resolve_istiod, resolve_istiod_remote
from istio_operator.reconcile.clock import now
from istio_operator.reconcile.engine import Ownership, RolloutListener, reconcile_cluster
from istio_operator.reconcile.istiod import revision_pass
from istio_operator.reconcile.migration import MigrationSettings, migrate_step
from istio_operator.reconcile.status import Observation, State
from istio_operator.render.istiod import EAST_WEST_GATEWAY, READER_TOKEN_SECRET
from istio_operator.render.objects import DesiredObject
from istio_operator.render.phases import Phase

MULTI_CLUSTER_LABEL = "istio/multiCluster"
CLUSTER_ANNOTATION = "networking.istio.io/cluster"


def remote_secret_name(cluster_name: str) -> str:
    return f"istio-remote-secret-{cluster_name}"


async def east_west_address(primary: Cluster, namespace: str) -> str:
    """The primary's east-west gateway address, once its load balancer has one."""
    service = await primary.get(ObjectKey("v1", "Service", namespace, EAST_WEST_GATEWAY))
    ingress = (((service or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress")
    return next((str(i.get("ip") or i.get("hostname")) for i in ingress or [] if i), "")


async def reconcile_istiod_remote(
    primary: Cluster,
    cluster: Cluster,
    istio: Istio,
    remote: RemoteIstio,
    charts: ChartVersion,
    istio_body: Mapping[str, Any],
    body: Mapping[str, Any],
    ownership: Ownership,
    phase_timeout: float,
    on_rollout: RolloutListener | None = None,
) -> Observation:
    """The remote's pass (`ownership`: its objects' labels, on the remote and on the
    primary, where only its remote secret carries them)."""
    generation = int((body.get("metadata") or {}).get("generation") or 0)
    namespace = istio.metadata.namespace or ""
    address = await east_west_address(primary, namespace)
    if not address:
        return _pending(
            generation,
            "EastWestGatewayPending",
            "waiting for the primary east-west gateway's load-balancer address",
        )
    plan = resolve_istiod_remote(istio, remote, charts, address)
    pass_ = await revision_pass(
        cluster,
        body,
        plan,
        charts,
        ownership.selector,
        lambda _found, _kept: replace(
            plan, held_tags_at=primary_tags_at(istio_body, plan.revision)
        ),
        phase_timeout,
        on_rollout,
        revision_kind="Service",
    )
    if pass_.seen.state != State.AVAILABLE:
        return pass_.seen
    secret = await reader_kubeconfig(cluster, namespace, plan.cluster_name)
    if secret is None:
        return _pending(
            generation,
            "ReaderTokenPending",
            f"waiting for the token of the remote's reader ServiceAccount ({READER_TOKEN_SECRET})",
        )
    manifest = remote_secret(namespace, plan.cluster_name, secret, ownership.labels)
    # On the primary a remote owns its secret alone: one kind to list, not every managed one.
    on_primary = replace(ownership, kinds=(("v1", "Secret"),))
    report = await reconcile_cluster(
        primary, [DesiredObject(Phase.BASE, manifest)], on_primary, phase_timeout
    )
    if report.refused:
        return replace(
            pass_.seen, state=State.FAILED, reason="Refused", message="; ".join(report.refused)
        )
    seen = replace(pass_.seen, remote_secret=remote_secret_name(plan.cluster_name))
    return await _migrated_after_the_primary(cluster, istio, charts, istio_body, body, plan, seen)


async def _migrated_after_the_primary(
    cluster: Cluster,
    istio: Istio,
    charts: ChartVersion,
    istio_body: Mapping[str, Any],
    body: Mapping[str, Any],
    plan: IstiodPlan,
    seen: Observation,
) -> Observation:
    """The workload migration, on a remote once the primary's is done (cluster by cluster,
    the primary first), with the remote's progress in its own status."""
    wanted = resolve_istiod(istio, charts).migration
    primary_done = (istio_body.get("status") or {}).get("migration") or {}
    if wanted is None or plan.tags_held:
        return seen
    if primary_done.get("revision") != plan.revision or primary_done.get("state") != "Done":
        waiting = {"state": "Waiting", "revision": plan.revision, "migrated": 0, "remaining": 0}
        return replace(seen, migration={**waiting, "message": "after the primary's migration"})
    older = [r["name"] for r in seen.revisions or () if not r.get("active")]
    previous = (body.get("status") or {}).get("migration") or {}
    settings = MigrationSettings(wanted.batch_size, wanted.delay_s, wanted.readiness_timeout_s)
    progress = await migrate_step(
        cluster,
        plan.revision,
        ["" if name == "default" else name for name in older],
        plan.namespace,
        settings,
        previous,
        now(),
    )
    recheck = progress.recheck_after
    if seen.recheck_after is not None:
        recheck = seen.recheck_after if recheck is None else min(recheck, seen.recheck_after)
    return replace(seen, migration=progress.as_status(), recheck_after=recheck)


def primary_tags_at(istio_body: Mapping[str, Any], revision: str) -> str | None:
    """Where the primary's `default` tag points: a remote's tags move with the primary's,
    which move once the new revision is on every remote."""
    tags = (istio_body.get("status") or {}).get("tags") or {}
    target = tags.get("default")
    return None if target is None or target == revision else str(target)


def _pending(generation: int, reason: str, message: str) -> Observation:
    return Observation(
        generation,
        State.RECONCILING,
        reason,
        message=message,
        phase="base",
        waiting_for=(message.removeprefix("waiting for "),),
        ready=False,
    )


async def reader_kubeconfig(cluster: Cluster, namespace: str, cluster_name: str) -> str | None:
    """A kubeconfig of the remote's reader ServiceAccount (its token Secret, filled by the
    remote's controller-manager), at the address the operator reaches the remote by."""
    token_secret = await cluster.get(ObjectKey("v1", "Secret", namespace, READER_TOKEN_SECRET))
    data = (token_secret or {}).get("data") or {}
    if not data.get("token") or not data.get("ca.crt"):
        return None
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"server": cluster.server, "certificate-authority-data": data["ca.crt"]},
            }
        ],
        "users": [
            {"name": cluster_name, "user": {"token": base64.b64decode(data["token"]).decode()}}
        ],
        "contexts": [
            {"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}
        ],
        "current-context": cluster_name,
    }
    return yaml.safe_dump(config, sort_keys=True)


def remote_secret(
    namespace: str, cluster_name: str, kubeconfig: str, owned: Mapping[str, str]
) -> dict[str, Any]:
    """The remote secret as `istioctl create-remote-secret` makes it: one key, the
    cluster's name, holding its kubeconfig; labelled as ours (`owned`) as well."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": remote_secret_name(cluster_name),
            "namespace": namespace,
            "labels": {**owned, MULTI_CLUSTER_LABEL: "true"},
            "annotations": {CLUSTER_ANNOTATION: cluster_name},
        },
        "data": {cluster_name: base64.b64encode(kubeconfig.encode()).decode()},
    }
