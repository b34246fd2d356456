"""The istiod family's objects: Istio's own charts through `helm template`, then ours.

Each chart a plan enables is templated with the values the plan gives it (no cluster is
asked, no Helm release is written: nothing can get stuck in a release state), and each
object it renders is marked as ours (the ownership, phase and revision labels) and put
in its rollout phase: CRDs, the base chart, istiod of the revision, then what moves to
that revision once its istiod is available (revision tags, the default validator), then
gateways, then CNI and ztunnel. The engine applies them as it applies the classic
families' objects.

Two fields are istiod's to manage, not ours: the webhooks' `caBundle` (istiod injects
its CA) and the validating webhooks' `failurePolicy` (istiod sets `Fail` once it
serves); they are left out so that no apply takes them back and no idle pass sees them
as drift. Without them the API server defaults `failurePolicy` to `Fail`, as istiod
would set it.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from istio_operator.api.labels import (
    MANAGED_BY,
    MANAGED_BY_VALUE,
    PHASE,
    REMOTE,
    REVISION,
    REVISION_VERSION,
    ownership_labels,
)
from istio_operator.charts import ChartVersion, template
from istio_operator.plan.istiod import IstiodPlan
from istio_operator.render.objects import DesiredObject
from istio_operator.render.phases import Phase

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Keys of `spec.values` that are other charts' values (the rest is the istiod chart's and
# the base chart's, as the Sail operator passes them).
CHART_VALUES = {
    "cni": "cni",
    "ztunnel": "ztunnel",
    "ingressGateway": "gateway",
    "egressGateway": "gateway",
}
EAST_WEST_GATEWAY = "istio-eastwestgateway"
EAST_WEST_LABEL = "eastwestgateway"
# The network of every cluster of a multi-cluster mesh that names none.
DEFAULT_NETWORK = "network1"
READER_SERVICE_ACCOUNT = "istio-reader-service-account"
READER_TOKEN_SECRET = "istio-reader-service-account-token"
# Cluster-scoped kinds the charts render (everything else lands in the release namespace).
CLUSTER_SCOPED = frozenset(
    {
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "Namespace",
    }
)
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
# Names (prefixes) of what only serves once its revision's istiod is available.
_TAG_PREFIXES = ("istio-revision-tag-", "istiod-revision-tag-", "istiod-default-validator")


@dataclass(frozen=True)
class Release:
    """One chart templated under one release name, and the phase its objects roll in."""

    chart: str
    name: str
    phase: Phase
    values: Mapping[str, Any]


# Renders by their inputs: a pass that renders what the previous one did parses no YAML
# (the base chart's CRDs alone are about 1 MB of it). Callers do not mutate the objects.
_RENDERED: dict[str, tuple[DesiredObject, ...]] = {}
_RENDERED_MAX = 16
_RENDERED_LOCK = threading.Lock()


def render_istiod(plan: IstiodPlan, charts: ChartVersion, helm: Path) -> list[DesiredObject]:
    """Every object of `plan`'s control plane, ordered by phase. Raises `HelmError`."""
    key = json.dumps([dataclasses.asdict(plan), str(charts.root), str(helm)], sort_keys=True)
    with _RENDERED_LOCK:
        found = _RENDERED.get(key)
    if found is None:
        objects = [
            marked(plan, release, manifest)
            for release in releases(plan)
            for manifest in _templated(charts.chart(release.chart), release, plan.namespace, helm)
        ]
        objects += [marked(plan, own, manifest) for own, manifest in operator_objects(plan)]
        found = tuple(sorted(objects, key=lambda obj: obj.phase))
        with _RENDERED_LOCK:  # renders run in threads (the reconcile's, RBAC's derivation)
            if len(_RENDERED) >= _RENDERED_MAX:
                _RENDERED.pop(next(iter(_RENDERED)), None)
            _RENDERED[key] = found
    return list(found)


def releases(plan: IstiodPlan) -> list[Release]:
    """The charts `plan` installs, in rollout order, each with its values."""
    found = [
        Release("base", "base", Phase.BASE, _base_values(plan)),
        Release("istiod", "istiod", Phase.ISTIOD, _istiod_values(plan)),
    ]
    components = plan.components
    if components.ingress_gateway:
        found.append(_gateway(plan, "istio-ingressgateway", "ingressGateway", "LoadBalancer"))
    if components.egress_gateway:
        found.append(_gateway(plan, "istio-egressgateway", "egressGateway", "ClusterIP"))
    if components.cni:
        found.append(Release("cni", "istio-cni", Phase.ADDONS, _component_values(plan, "cni")))
    if components.ztunnel:
        found.append(
            Release("ztunnel", "ztunnel", Phase.ADDONS, _component_values(plan, "ztunnel"))
        )
    if plan.remotes:
        found.append(_east_west_gateway(plan))
    return found


def multi_cluster(plan: IstiodPlan) -> bool:
    return bool(plan.remotes or plan.remote)


def network_of(plan: IstiodPlan) -> str:
    return plan.network or DEFAULT_NETWORK


def merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` deep-merged onto `base` (maps merge, anything else is replaced)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def _user(plan: IstiodPlan) -> dict[str, Any]:
    """`spec.values` without the keys that are other charts' values."""
    return {k: v for k, v in plan.values.items() if k not in CHART_VALUES}


def _images(plan: IstiodPlan) -> dict[str, Any]:
    """The operator's `global` values: images at the version, and, in a multi-cluster mesh
    only (a single cluster keeps Istio's defaults), the cluster's name, network, mesh ID and,
    on a remote, where the primary's istiod is reached."""
    values: dict[str, Any] = {
        "hub": plan.hub,
        "tag": plan.version,
        "istioNamespace": plan.namespace,
    }
    if multi_cluster(plan):
        values["multiCluster"] = {"clusterName": plan.cluster_name}
        values["network"] = network_of(plan)
        values["meshID"] = plan.mesh_id
    if plan.remote_pilot_address:
        values["remotePilotAddress"] = plan.remote_pilot_address
    return {"global": values}


def _east_west_gateway(plan: IstiodPlan) -> Release:
    """The primary's gateway for its remotes: istiod's ports (15012 xDS, 15017 webhooks)
    and the cross-network port 15443, as Istio's gateway chart makes a network gateway."""
    values = {
        "networkGateway": network_of(plan),
        "labels": {"istio": EAST_WEST_LABEL},
        "service": {"type": "LoadBalancer"},
        **_images(plan),
        "revision": plan.revision,
    }
    return Release("gateway", EAST_WEST_GATEWAY, Phase.GATEWAYS, values)


def _profile(plan: IstiodPlan) -> dict[str, Any]:
    return {"profile": plan.chart_profile} if plan.chart_profile else {}


def _base_values(plan: IstiodPlan) -> dict[str, Any]:
    # In place, istiod's own validator serves; by revision, the default validator follows
    # the `default` tag.
    default_revision = plan.tag_revision if plan.revision_based else ""
    user = {k: v for k, v in _user(plan).items() if k in ("global", "base")}
    return merged(
        merged(_profile(plan), user), {**_images(plan), "defaultRevision": default_revision}
    )


def _istiod_values(plan: IstiodPlan) -> dict[str, Any]:
    operator = {
        **_images(plan),
        "revision": plan.revision,
        "revisionTags": list(plan.revision_tags),
    }
    return merged(merged(_profile(plan), _user(plan)), operator)


def _component_values(plan: IstiodPlan, key: str) -> dict[str, Any]:
    """A CNI or ztunnel chart's values: the shared `global`, `spec.values.<key>`, ours."""
    user = {"global": plan.values.get("global") or {}, **(plan.values.get(key) or {})}
    operator = {
        **_images(plan),
        "hub": plan.hub,
        "tag": plan.version,
        "revision": plan.revision,
    }
    return merged(merged(_profile(plan), user), operator)


def _gateway(plan: IstiodPlan, name: str, key: str, service_type: str) -> Release:
    user = {"global": plan.values.get("global") or {}, **(plan.values.get(key) or {})}
    defaults = {"service": {"type": service_type}}
    # The gateway follows the active revision: its pods are injected by that revision.
    operator = {**_images(plan), "revision": plan.revision}
    values = merged(merged(merged(defaults, _profile(plan)), user), operator)
    return Release("gateway", name, Phase.GATEWAYS, values)


def _templated(
    chart: Path, release: Release, namespace: str, helm: Path
) -> Iterator[dict[str, Any]]:
    values = json.dumps(release.values, sort_keys=True)
    text = template(chart, release.name, namespace, values, helm)
    for document in yaml.load_all(text, Loader=_LOADER):
        if isinstance(document, dict) and document.get("kind"):
            yield document


def operator_objects(plan: IstiodPlan) -> list[tuple[Release, dict[str, Any]]]:
    """What the operator adds to Istio's charts in a multi-cluster mesh: on the primary, the
    routes of its east-west gateway to istiod, one per revision; on a remote, a token of its
    reader ServiceAccount, for the primary's istiod to read the remote's endpoints."""
    if plan.remote:
        return [(Release("base", "base", Phase.BASE, {}), reader_token(plan.namespace))]
    if not plan.remotes:
        return []
    gateways = Release("gateway", EAST_WEST_GATEWAY, Phase.GATEWAYS, {})
    found = [
        (gateways, istiod_gateway(plan.namespace)),
        (gateways, istiod_routes(plan.namespace, plan.exposed_revisions, plan.revision)),
    ]
    if plan.cross_network:
        found.append((gateways, cross_network_gateway(plan.namespace)))
    return found


def cross_network_gateway(namespace: str) -> dict[str, Any]:
    """The mesh's services on the east-west gateway's port 15443, for the workloads of
    other networks (mTLS passed through, routed by SNI), as Istio's multi-network setup."""
    servers = [tls_server("tls", 15443, "AUTO_PASSTHROUGH", ["*.local"])]
    return east_west_gateway_object("cross-network-gateway", namespace, servers)


def reader_token(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {
            "name": READER_TOKEN_SECRET,
            "namespace": namespace,
            "annotations": {"kubernetes.io/service-account.name": READER_SERVICE_ACCOUNT},
        },
    }


ISTIOD_PORTS = (("tls-istiod", 15012, 15012), ("tls-istiodwebhook", 15017, 443))


def east_west_gateway_object(
    name: str, namespace: str, servers: list[dict[str, Any]]
) -> dict[str, Any]:
    """An Istio Gateway on the east-west gateway's pods."""
    return {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"istio": EAST_WEST_LABEL}, "servers": servers},
    }


def tls_server(name: str, number: int, mode: str, hosts: list[str]) -> dict[str, Any]:
    return {
        "port": {"name": name, "number": number, "protocol": "TLS"},
        "tls": {"mode": mode},
        "hosts": hosts,
    }


def istiod_gateway(namespace: str) -> dict[str, Any]:
    """istiod's ports on the east-west gateway, passed through: TLS ends at istiod."""
    servers = [tls_server(name, number, "PASSTHROUGH", ["*"]) for name, number, _ in ISTIOD_PORTS]
    return east_west_gateway_object("istiod-gateway", namespace, servers)


def istiod_service(revision: str) -> str:
    return f"istiod-{revision}" if revision else "istiod"


def istiod_routes(namespace: str, revisions: Sequence[str], active: str) -> dict[str, Any]:
    """One route per revision, chosen by the name the client asks for (its TLS SNI): a
    remote's webhook and proxies call `istiod-<revision>` (the remote's Service of that
    revision points here), so each reaches its own revision's istiod. Istio's own sample
    routes every call to the default `istiod`, which is why a canary cannot reach remotes
    upstream. `istiod` itself goes to the active revision."""
    names = [(istiod_service(r), r) for r in revisions]
    if active and "" not in revisions:
        names.append(("istiod", active))
    routes = []
    for asked, revision in names:
        target = f"{istiod_service(revision)}.{namespace}.svc.cluster.local"
        for _, number, service_port in ISTIOD_PORTS:
            routes.append(
                {
                    "match": [{"port": number, "sniHosts": [f"{asked}.{namespace}.svc"]}],
                    "route": [{"destination": {"host": target, "port": {"number": service_port}}}],
                }
            )
    return {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "VirtualService",
        "metadata": {"name": "istiod-routes", "namespace": namespace},
        "spec": {"hosts": ["*"], "gateways": ["istiod-gateway"], "tls": routes},
    }


def as_stored(value: Any) -> Any:
    """The value as the API server stores it, where the charts write what it drops: a
    `null` (an empty `env:`) is no field, nor is an environment variable's empty
    `value`. Compared with the live object, the rendered one then shows no drift."""
    if isinstance(value, dict):
        kept = {k: as_stored(v) for k, v in value.items() if v is not None}
        if "name" in kept and kept.get("value") == "" and set(kept) <= {"name", "value"}:
            del kept["value"]
        return kept
    if isinstance(value, list):
        return [as_stored(item) for item in value]
    return value


def marked(plan: IstiodPlan, release: Release, manifest: dict[str, Any]) -> DesiredObject:
    """A chart's object as ours: namespaced, labelled, in its phase, webhooks trimmed."""
    manifest = as_stored(manifest)
    kind = str(manifest["kind"])
    metadata = manifest.setdefault("metadata", {})
    if kind not in CLUSTER_SCOPED:
        metadata.setdefault("namespace", plan.namespace)
    phase = _phase(release, kind, str(metadata.get("name", "")))
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != MANAGED_BY}
    if kind == "CustomResourceDefinition":
        # Istio's CRDs outlive the resource (users' configuration lives in them).
        labels[MANAGED_BY] = MANAGED_BY_VALUE
    else:
        labels.update(ownership_labels(plan.owner, plan.namespace))
        if plan.remote:
            labels[REMOTE] = plan.remote
        labels[REVISION] = plan.revision
        labels[REVISION_VERSION] = plan.version
    labels[PHASE] = phase.label
    metadata["labels"] = labels
    if kind in WEBHOOK_KINDS:
        _trim_webhooks(manifest, validating=kind.startswith("Validating"))
    return DesiredObject(phase, manifest)


def _phase(release: Release, kind: str, name: str) -> Phase:
    if kind == "CustomResourceDefinition":
        return Phase.CRDS
    if name.startswith(_TAG_PREFIXES):
        return Phase.REVISION_TAGS
    return release.phase


def _trim_webhooks(manifest: dict[str, Any], *, validating: bool) -> None:
    for webhook in manifest.get("webhooks") or ():
        (webhook.get("clientConfig") or {}).pop("caBundle", None)
        if validating:
            webhook.pop("failurePolicy", None)
