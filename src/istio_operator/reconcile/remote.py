"""Reconciling one remote cluster of a mesh.

Each `RemoteIstio` is reconciled on its own (its own worker, status and backoff),
through the same `reconcile_cluster` as the primary, once the primary's control
plane is available at the `Istio` resource's generation. Whatever goes wrong on one
remote (unreachable, refused, a bad kubeconfig, a bug) becomes that remote's state:
it never stops the primary or another remote.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from istio_operator.api.errors import SpecError
from istio_operator.api.istio import Istio
from istio_operator.api.keys import ObjectKey, key_of
from istio_operator.api.kubetypes import parse_label_selector
from istio_operator.api.labels import (
    API_VERSION,
    MANAGED_BY,
    MANAGED_BY_VALUE,
    OWNER_NAMESPACE,
    REMOTE,
    owner_selector,
)
from istio_operator.api.parse import load_istio, load_remote_istio
from istio_operator.api.remoteistio import RemoteIstio
from istio_operator.kube.client import (
    ApiRefusedError,
    Cluster,
    ClusterTrustError,
    ClusterUnreachableError,
)
from istio_operator.kube.objects import pod_template_containers
from istio_operator.kube.remotes import KubeconfigSecretError, RemoteClients
from istio_operator.plan import MeshPlan, resolve_remote
from istio_operator.reconcile.engine import (
    ClusterReport,
    Ownership,
    RolloutListener,
    delete_owned,
    prefetch_owned,
    reconcile_cluster,
)
from istio_operator.reconcile.injection import injection_namespaces, reconcile_injection_labels
from istio_operator.reconcile.istiod_remote import reconcile_istiod_remote
from istio_operator.reconcile.status import Observation, State, observe
from istio_operator.render import PortFact, PrimaryFacts, RemoteNetwork, render_remote_plan
from istio_operator.render.phases import Phase
from istio_operator.versions import UnsupportedVersionError
from istio_operator.versions.istiod import renderer_of, select_family

log = logging.getLogger(__name__)
MULTI_CLUSTER_LABEL = "istio/multiCluster"
DEFAULT_CA_SECRET = "istio-ca-secret"
INGRESS_GATEWAY = "istio-ingressgateway"
# Set on a RemoteIstio to give up removing the operator's objects from a cluster that is
# gone for good: its deletion then completes without reaching that cluster.
ABANDON_CLEANUP = "istio.banzaicloud.io/abandon-cleanup"


@dataclass(frozen=True)
class RemoteOutcome:
    name: str
    observation: Observation


def remote_ownership(istio_name: str, namespace: str, remote: str) -> Ownership:
    return Ownership(f"{owner_selector(istio_name, namespace)},{REMOTE}={remote}")


def remote_cleanup_ownership(namespace: str, remote: str) -> Ownership:
    """Everything the operator created for a RemoteIstio, whichever Istio resource it was
    rendered for (that one may be gone already)."""
    return Ownership(
        f"{MANAGED_BY}={MANAGED_BY_VALUE},{OWNER_NAMESPACE}={namespace},{REMOTE}={remote}"
    )


def remote_networks(bodies: Sequence[Mapping[str, Any]]) -> list[RemoteNetwork]:
    """Each remote's network for the primary's meshNetworks, from its last known status."""
    networks = []
    for body in bodies:
        addresses = (body.get("status") or {}).get("GatewayAddress") or []
        if addresses and not (body.get("metadata") or {}).get("deletionTimestamp"):
            networks.append(RemoteNetwork(body["metadata"]["name"], tuple(addresses)))
    return sorted(networks, key=lambda n: n.name)


async def list_remotes(primary: Cluster, namespace: str) -> list[dict[str, Any]]:
    # Read whole and filtered here: a remote's pass reads every namespace's RemoteIstios
    # (`_claimed_elsewhere`), and both are then answered by one watch-fed copy.
    bodies = await primary.list_all(API_VERSION, "RemoteIstio")
    return [b for b in bodies if (b.get("metadata") or {}).get("namespace") == namespace]


def remote_ready(body: Mapping[str, Any], istio_generation: int, version: str) -> bool:
    """Whether a remote is available with what the Istio resource asks for now."""
    status = body.get("status") or {}
    meta = body.get("metadata") or {}
    return (
        status.get("Status") == State.AVAILABLE
        and status.get("observedGeneration") == meta.get("generation")
        and status.get("istioObservedGeneration") == istio_generation
        and status.get("version") == version
    )


# The last phase of a classic primary that its remotes depend on: citadel (the CA), pilot,
# policy and telemetry, behind the services the remotes mirror. The primary's sidecar
# injector, gateways and add-ons serve its own workloads only.
CLASSIC_REMOTES_FOLLOW = Phase.MIXER


def primary_settled(istio_body: Mapping[str, Any]) -> bool:
    """Whether the primary's control plane is available at the resource's generation."""
    status = istio_body.get("status") or {}
    generation = (istio_body.get("metadata") or {}).get("generation")
    return (
        status.get("Status") == State.AVAILABLE and status.get("observedGeneration") == generation
    )


def primary_followable(istio_body: Mapping[str, Any], follows: Phase | None) -> bool:
    """Whether remotes may roll out: remotes follow the primary, never lead it. With
    `follows`, once the primary's rollout at the resource's generation is past that phase
    (the earlier phases are available: the status names the phase in progress); without,
    once the whole primary is available."""
    if primary_settled(istio_body):
        return True
    status = istio_body.get("status") or {}
    generation = (istio_body.get("metadata") or {}).get("generation")
    if follows is None or status.get("observedGeneration") != generation:
        return False
    if status.get("Status") != State.RECONCILING or not status.get("phase"):
        return False
    try:
        return Phase.from_label(str(status["phase"])) > follows
    except ValueError:
        return False


def remotes_follow(version: str) -> Phase | None:
    """The primary phase a family's remotes wait for (None: the whole primary). The
    istiod family's remotes read the primary's revision tags, settled only at the end; so
    does a version no family knows. Decided without the chart catalogue (no disk read)."""
    return CLASSIC_REMOTES_FOLLOW if renderer_of(version) == "classic" else None


# Told, during a classic remote's rollout, its ingress gateway's addresses once its load
# balancer has them: the primary's meshNetworks need not wait for the end of the rollout.
GatewayListener = Callable[[tuple[str, ...]], Awaitable[None]]


@dataclass(frozen=True)
class RemoteSettings:
    phase_timeout: float = 60.0
    on_rollout: RolloutListener | None = None
    on_gateway: GatewayListener | None = None


async def reconcile_remote(
    primary: Cluster,
    clients: RemoteClients,
    istio_body: Mapping[str, Any] | None,
    body: Mapping[str, Any],
    settings: RemoteSettings,
) -> RemoteOutcome | None:
    """One reconcile of one remote; None while the primary is not yet where remotes can
    follow (its status then tells why, and the remote's status stays as it is)."""
    name = str(body["metadata"]["name"])
    generation = int(body["metadata"].get("generation") or 0)
    if istio_body is None:
        namespace = body["metadata"].get("namespace") or ""
        return RemoteOutcome(name, _no_istio(generation, namespace))
    if (istio_body.get("metadata") or {}).get("deletionTimestamp"):
        return None
    version = str((istio_body.get("spec") or {}).get("version") or "")
    if not primary_followable(istio_body, remotes_follow(version)):
        await _warm(primary, clients, body)
        return None
    try:
        seen = await _reconcile(primary, clients, istio_body, body, settings)
    except Exception as error:  # one remote's failure is its own state, never the mesh's
        seen = _failure_of(generation, name, error)
    return RemoteOutcome(name, seen)


async def _warm(primary: Cluster, clients: RemoteClients, body: Mapping[str, Any]) -> None:
    """While the remote waits for the primary: its client, and the copies of what its
    rollout reads there, made now, so that the rollout starts at once when it may.
    What goes wrong is left to the rollout's pass to report."""
    try:
        remote = load_remote_istio(body).resource
        cluster = await clients.for_secret(
            remote.metadata.name, await _kubeconfig_secret(primary, remote)
        )
        await prefetch_owned(
            cluster, remote_cleanup_ownership(remote.metadata.namespace or "", remote.metadata.name)
        )
    except Exception as error:  # the pass that follows reports it
        log.debug("remote %s not warmed: %s", body["metadata"]["name"], error)


def _no_istio(generation: int, namespace: str) -> Observation:
    return Observation(
        generation,
        State.FAILED,
        "NoIstio",
        f"no Istio resource in namespace {namespace}: a RemoteIstio joins the mesh of the "
        "Istio resource in its own namespace",
        ready=False,
    )


def _failure_of(generation: int, name: str, error: Exception) -> Observation:
    """The remote's state for what went wrong; a traceback only for what is our bug."""
    reason, message = _classify(error)
    if reason == "Error":
        log.exception("reconcile of remote %s failed", name)
    state = State.UNREACHABLE if reason == State.UNREACHABLE else State.FAILED
    return Observation(generation, state, reason, message, ready=False)


def _classify(error: Exception) -> tuple[str, str]:
    if isinstance(error, ClusterTrustError):
        return "UntrustedServer", str(error)
    if isinstance(error, ClusterUnreachableError):
        return State.UNREACHABLE, str(error)
    if isinstance(error, KubeconfigSecretError):
        return "InvalidKubeconfig", str(error)
    if isinstance(error, SpecError):
        return "InvalidSpec", f"invalid spec: {error}"
    if isinstance(error, UnsupportedVersionError):
        return "UnsupportedVersion", str(error)
    if isinstance(error, ApiRefusedError):
        reason = {401: "Unauthorized", 403: "Forbidden"}.get(error.code, "ApiError")
        return reason, f"the remote cluster refused a request ({error.code}): {error.message}"
    return "Error", f"{type(error).__name__}: {error}"


async def _reconcile(
    primary: Cluster,
    clients: RemoteClients,
    istio_body: Mapping[str, Any],
    body: Mapping[str, Any],
    settings: RemoteSettings,
) -> Observation:
    istio = load_istio(istio_body).resource
    remote = load_remote_istio(body).resource
    generation = int(body["metadata"].get("generation") or 0)
    istio_generation = int(istio_body["metadata"].get("generation") or 0)
    secret = await _kubeconfig_secret(primary, remote)
    cluster = await clients.for_secret(remote.metadata.name, secret)
    cluster_id = await cluster.identity()
    claim = await _claimed_elsewhere(primary, body, cluster_id)
    if claim:
        return Observation(
            generation, State.FAILED, "ClusterClaimed", claim, ready=False, cluster_id=cluster_id
        )
    charts = select_family(istio.spec.version).charts
    if charts is not None:
        seen = await reconcile_istiod_remote(
            primary,
            cluster,
            istio,
            remote,
            charts,
            istio_body,
            body,
            remote_ownership(
                istio.metadata.name, istio.metadata.namespace or "", remote.metadata.name
            ),
            settings.phase_timeout,
            settings.on_rollout,
        )
        return replace(seen, istio_generation=istio_generation, cluster_id=cluster_id)
    state = await read_primary(primary, istio)
    if istio.spec.meshExpansion and not state.facts.ingress_gateway_addresses:
        return Observation(
            generation,
            State.RECONCILING,
            "GatewayAddressPending",
            message="waiting for the primary ingress gateway's load-balancer address",
            phase="base",
            waiting_for=("primary ingress gateway address",),
            ready=False,
            cluster_id=cluster_id,
        )
    own_ca = remote.spec.citadel.caSecretName if remote.spec.citadel else None
    missing = await missing_secret(
        cluster, "spec.citadel.caSecretName", remote.metadata.namespace, own_ca
    )
    if missing:
        return Observation(generation, State.FAILED, "MissingReference", missing, ready=False)
    # Resolved once for the pass: the CA wait, the render and the injection labels read it.
    plan, family = resolve_remote(istio, remote)
    ca_wait = _waiting_for_ca(generation, istio, remote, plan, state)
    if ca_wait is not None:
        return replace(ca_wait, cluster_id=cluster_id)
    objects = render_remote_plan(plan, family, istio, remote, state.facts_for(remote))
    report = await reconcile_cluster(
        cluster,
        objects,
        remote_ownership(istio.metadata.name, istio.metadata.namespace or "", remote.metadata.name),
        settings.phase_timeout,
        _telling_gateway(settings, cluster, remote.metadata.namespace or "")
        if istio.spec.meshExpansion
        else settings.on_rollout,
    )
    if report.done:
        await _label_secret(primary, secret)
        wanted = injection_namespaces(plan)
        await reconcile_injection_labels(
            cluster, istio.metadata.name, istio.metadata.namespace or "", wanted
        )
    addresses = await ingress_addresses(cluster, remote.metadata.namespace or "")
    seen = observe(generation, report, istio.spec.version, addresses, _components(report))
    return replace(seen, istio_generation=istio_generation, cluster_id=cluster_id)


def _telling_gateway(
    settings: RemoteSettings, cluster: Cluster, namespace: str
) -> RolloutListener | None:
    """The rollout's listener, telling also the remote gateway's addresses as each phase
    starts: its Service goes out in the base phase, its load balancer's address comes
    while citadel and the sidecar injector roll out."""
    if settings.on_gateway is None:
        return settings.on_rollout
    on_rollout, on_gateway = settings.on_rollout, settings.on_gateway

    async def rolled_out(name: str, phase: Phase) -> None:
        if on_rollout is not None:
            await on_rollout(name, phase)
        addresses = await ingress_addresses(cluster, namespace)
        if addresses:
            await on_gateway(addresses)

    return rolled_out


async def missing_secret(
    cluster: Cluster, field: str, namespace: str | None, name: str | None
) -> str | None:
    """Why a Secret that a field names is not usable, if it is not."""
    if not name:
        return None
    if await cluster.get(ObjectKey("v1", "Secret", namespace or "", name)) is not None:
        return None
    where = f"{namespace}/{name}" if namespace else name
    return f"{field}: Secret {where} not found on cluster {cluster.name}; nothing was changed"


def _waiting_for_ca(
    generation: int, istio: Istio, remote: RemoteIstio, plan: MeshPlan, state: PrimaryState
) -> Observation | None:
    """A remote citadel must sign with the primary's root, or the clusters' workloads would
    not trust each other: without its own CA Secret, a remote waits for the primary's
    (citadel creates it when it first starts)."""
    own_ca = remote.spec.citadel.caSecretName if remote.spec.citadel else None
    if not plan.citadel.enabled or own_ca or state.facts.ca_secret_data is not None:
        return None
    secret = f"{istio.metadata.namespace}/{state.ca_secret_name}"
    return Observation(
        generation,
        State.RECONCILING,
        "CAPending",
        message=f"waiting for the primary's CA Secret {secret}, which its citadel creates",
        phase="base",
        waiting_for=(f"primary CA Secret {secret}",),
        ready=False,
    )


async def _claimed_elsewhere(
    primary: Cluster, body: Mapping[str, Any], cluster_id: str
) -> str | None:
    """Why this RemoteIstio may not manage its cluster, if it may not: the cluster is the
    primary itself, or an older RemoteIstio already manages it."""
    if not cluster_id:
        return None
    if cluster_id == await primary.identity():
        return "the kubeconfig Secret points at the primary cluster itself, not a remote"
    me = _age(body)
    for other in await primary.list_all(API_VERSION, "RemoteIstio"):
        if (other.get("status") or {}).get("clusterID") == cluster_id and _age(other) < me:
            meta = other["metadata"]
            return (
                f"this cluster is already joined to the mesh as RemoteIstio "
                f"{meta.get('namespace')}/{meta['name']}: one RemoteIstio per cluster"
            )
    return None


def _age(body: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = body.get("metadata") or {}
    return (str(meta.get("creationTimestamp")), str(meta.get("namespace")), str(meta["name"]))


def _components(report: ClusterReport) -> dict[str, dict[str, Any]]:
    """A remote's status shows its control plane as one component, once rolled out."""
    if not report.done:
        return {}
    workloads = report.live_workloads.values()
    images = sorted({c["image"] for w in workloads for c in pod_template_containers(w)})
    return {"remote": {"state": State.AVAILABLE, "images": images}}


async def _kubeconfig_secret(primary: Cluster, remote: RemoteIstio) -> dict[str, Any]:
    """The remote's kubeconfig Secret. Once labelled for pilot (after the remote's first
    rollout), read from the primary's one watch-fed copy of every labelled Secret, not
    from a watch of its own: a mesh of many remotes keeps one watch for them all."""
    namespace, name = remote.metadata.namespace or "", remote.metadata.name
    key = ObjectKey("v1", "Secret", namespace, name)
    for labelled in await primary.list_labelled("v1", "Secret", f"{MULTI_CLUSTER_LABEL}=true"):
        if key_of(labelled) == key:
            return labelled
    secret = await primary.get(key)
    if secret is None:
        raise KubeconfigSecretError(
            f"kubeconfig Secret {namespace}/{name} not found: create it with the remote "
            "cluster's kubeconfig under one key named after the RemoteIstio"
        )
    return secret


async def _label_secret(primary: Cluster, secret: Mapping[str, Any]) -> None:
    """Marks the Secret for Istio's pilot, whose secret controller watches this label."""
    meta = secret.get("metadata") or {}
    if (meta.get("labels") or {}).get(MULTI_CLUSTER_LABEL) == "true":
        return
    await primary.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "labels": {MULTI_CLUSTER_LABEL: "true"},
            },
        }
    )


async def unlabel_secret(primary: Cluster, namespace: str, name: str) -> None:
    secret = await primary.get(ObjectKey("v1", "Secret", namespace, name))
    if secret is not None and MULTI_CLUSTER_LABEL in (secret["metadata"].get("labels") or {}):
        # Applying the bare name gives up the label this field manager set.
        await primary.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": namespace},
            }
        )


async def remove_remote(
    primary: Cluster,
    clients: RemoteClients,
    istio_name: str | None,
    body: Mapping[str, Any],
) -> int:
    """Deletes everything the operator created on one remote cluster, found by label, and
    unlabels its kubeconfig Secret; idempotent. With the abandon annotation the remote
    cluster is not contacted. Returns how many objects were deleted there."""
    namespace, remote = str(body["metadata"].get("namespace") or ""), str(body["metadata"]["name"])
    removed = 0
    if not abandoned(body):
        cluster = await _client_for_cleanup(primary, clients, namespace, remote)
        deleted = await delete_owned(cluster, remote_cleanup_ownership(namespace, remote))
        if istio_name is not None:
            await reconcile_injection_labels(cluster, istio_name, namespace, [])
        removed = len(deleted)
    # The istiod family's remote secret, the one object of a remote kept on the primary.
    await delete_owned(primary, remote_cleanup_ownership(namespace, remote))
    await unlabel_secret(primary, namespace, remote)
    await clients.forget(remote)
    return removed


def abandoned(body: Mapping[str, Any]) -> bool:
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(ABANDON_CLEANUP, "")).lower() == "true"


async def _client_for_cleanup(
    primary: Cluster, clients: RemoteClients, namespace: str, remote: str
) -> Cluster:
    """The remote's client from its Secret, or the one already open if the Secret went
    first (deleted together with the RemoteIstio)."""
    secret = await primary.get(ObjectKey("v1", "Secret", namespace, remote))
    if secret is not None:
        return await clients.for_secret(remote, secret)
    known = clients.known(remote)
    if known is None:
        raise KubeconfigSecretError(
            f"kubeconfig Secret {namespace}/{remote} not found, so remote cluster {remote} "
            f"cannot be cleaned: restore the Secret, or set the annotation {ABANDON_CLEANUP}="
            '"true" on the RemoteIstio to leave that cluster as it is'
        )
    return known


# -- facts read from the primary ---------------------------------------------------------------


@dataclass(frozen=True)
class PrimaryState:
    """What remotes need from the primary, read once per reconcile (the Services and Pods
    as the primary's client holds them: read, never changed)."""

    facts: PrimaryFacts
    services: Mapping[str, Mapping[str, Any]]
    ready_pods: Sequence[Mapping[str, Any]]
    ca_secret_name: str = DEFAULT_CA_SECRET

    def facts_for(self, remote: RemoteIstio) -> PrimaryFacts:
        """The facts with the ready pod IPs behind each service this remote mirrors
        (flat network): pods matching its label selector, else the Service's selector."""
        pod_ips = {}
        for service in remote.spec.enabledServices:
            selector = parse_label_selector(service.labelSelector or "") or dict(
                ((self.services.get(service.name) or {}).get("spec") or {}).get("selector") or {}
            )
            if selector:
                pod_ips[service.name] = tuple(
                    sorted(p["status"]["podIP"] for p in self.ready_pods if _matches(p, selector))
                )
        return replace(self.facts, service_pod_ips=pod_ips)


async def read_primary(primary: Cluster, istio: Istio) -> PrimaryState:
    namespace = istio.metadata.namespace or ""
    ca_name = (istio.spec.citadel.caSecretName if istio.spec.citadel else None) or (
        DEFAULT_CA_SECRET
    )
    ca = await primary.get(ObjectKey("v1", "Secret", namespace, ca_name))
    services = {
        s["metadata"]["name"]: s
        for s in await primary.list_all("v1", "Service", namespace=namespace, shared=True)
    }
    facts = PrimaryFacts(
        ca_secret_data=dict(ca.get("data") or {}) if ca else None,
        ingress_gateway_addresses=await ingress_addresses(primary, namespace),
        service_ports={
            name: tuple(
                PortFact(p.get("name"), int(p["port"]), p.get("protocol") or "TCP")
                for p in (svc.get("spec") or {}).get("ports") or []
            )
            for name, svc in services.items()
        },
    )
    pods = await primary.list_all("v1", "Pod", namespace=namespace, shared=True)
    return PrimaryState(facts, services, [p for p in pods if _ready(p)], ca_name)


def _matches(pod: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def _ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return ready and bool(status.get("podIP"))


async def ingress_addresses(cluster: Cluster, namespace: str) -> tuple[str, ...]:
    service = await cluster.get(ObjectKey("v1", "Service", namespace, INGRESS_GATEWAY))
    ingress = (((service or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress")
    return tuple(i.get("ip") or i.get("hostname") for i in ingress or [] if i)
