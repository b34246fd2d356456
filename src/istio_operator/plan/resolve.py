"""Build the plan of one cluster from its resources, once.

`resolve_primary` reads an `Istio` resource; `resolve_remote` reads it with
one of its `RemoteIstio` resources. Both walk the declarations of
`plan.model`: a field the resource sets is taken as it is, one it leaves unset
takes its declared default or its rule's value. What the family decides (the
cluster domain, the trust domain, which image enables core dumps, one mixer
switch for both Deployments) is settled here, so renderers never branch on it
for a value.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from istio_operator.api.errors import SpecError
from istio_operator.api.istio import Istio, IstioSpec
from istio_operator.api.remoteistio import RemoteIstio
from istio_operator.plan import model
from istio_operator.plan.rules import Rule, Scope
from istio_operator.versions.families import FAMILIES, Family, family_for, parse_version
from istio_operator.versions.istiod import ISTIOD

T = TypeVar("T")

DEFAULT_NAMESPACE = "istio-system"
LEGACY_CLUSTER_DOMAIN = "cluster.local"
# The remote's CA secret when its RemoteIstio names none (the primary's CA is copied there).
REMOTE_CA_SECRET = "cacerts"


@functools.cache
def _hints(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(model))


def section_type(hint: Any) -> type[Any] | None:
    return hint if dataclasses.is_dataclass(hint) and isinstance(hint, type) else None


def item_section_type(hint: Any) -> type[Any] | None:
    if typing.get_origin(hint) is Sequence:
        (item,) = typing.get_args(hint)
        return section_type(item)
    return None


def _plain(value: Any) -> Any:
    """A resource value as the plan holds it: sub-models become their JSON shape."""
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, exclude_none=True)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def build(cls: type[T], given: Any, scope: Scope) -> T:
    """The plan section `cls` from the resource's section `given` (a model, or None)."""
    values: dict[str, Any] = {}
    hints = _hints(typing.cast(type, cls))
    for spec_field in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = spec_field.name
        raw = getattr(given, name, None) if given is not None else None
        if spec_field.metadata.get("empty_is_unset") and not raw:
            raw = None
        hint = hints[name]
        section, item_section = section_type(hint), item_section_type(hint)
        if section is not None:
            values[name] = build(section, raw, scope)
        elif raw is not None and item_section is not None:
            values[name] = [build(item_section, item, scope) for item in raw]
        elif raw is not None:
            values[name] = _plain(raw)
        elif "rule" in spec_field.metadata:
            rule: Rule = spec_field.metadata["rule"]
            values[name] = rule.compute(scope, values, name, spec_field.metadata["args"])
        elif spec_field.default is not dataclasses.MISSING:
            values[name] = spec_field.default
        elif spec_field.default_factory is not dataclasses.MISSING:
            values[name] = spec_field.default_factory()
    return cls(**values)


def control_plane_namespace(istio: Istio) -> str:
    return istio.metadata.namespace or DEFAULT_NAMESPACE


def _scope(spec: IstioSpec, family: Family, namespace: str, defaults: Any = None) -> Scope:
    user = spec.defaultResources
    return Scope(
        family=family,
        version=spec.version,
        namespace=namespace,
        default_resources=defaults or (model.BASE_RESOURCES if user is None else user),
        user_default_resources=user,
        proxy_resources=model.PROXY_RESOURCES,
    )


def _resolve(
    spec: IstioSpec, family: Family, scope: Scope, proxy_resources: Any = None
) -> model.MeshPlan:
    """The plan of `spec`: sections in declaration order, mixer before policy and
    telemetry, the proxy before the gateways (`proxy_resources`: a remote's own)."""
    check_classic_fields(spec)
    mixer = build(model.Mixer, spec.mixer, scope)
    proxy = build(model.Proxy, spec.proxy, scope)
    if proxy_resources is not None:
        proxy = dataclasses.replace(proxy, resources=proxy_resources)
    scope = dataclasses.replace(scope, mixer=mixer, proxy=proxy)
    plan = build(model.MeshPlan, spec, scope)
    plan = dataclasses.replace(
        plan,
        defaultResources=scope.default_resources,
        tracing=_with_lightstep(plan.tracing, spec),
    )
    return _settle_family(plan, family)


def check_classic_fields(spec: IstioSpec) -> None:
    """`spec.mtls` is required by the classic families; the istiod family's own fields
    mean nothing to them and are refused rather than ignored."""
    if spec.mtls is None:
        raise SpecError("spec.mtls", "Field required")
    given = spec.model_dump(exclude_none=True)
    own = sorted(f"spec.{name}" for name in ISTIOD.own_fields if name in given)
    if own:
        raise SpecError(
            own[0],
            f"read only by the istiod family, not by Istio {spec.version}; remove "
            + ", ".join(own),
        )


def _with_lightstep(tracing: model.Tracing, spec: IstioSpec) -> model.Tracing:
    given = spec.tracing.lightstep if spec.tracing else None
    settings = given.model_dump(exclude_none=True) if given else {}
    return dataclasses.replace(
        tracing, lightstep=dataclasses.replace(tracing.lightstep, settings=settings)
    )


def _settle_family(plan: model.MeshPlan, family: Family) -> model.MeshPlan:
    """What the family decides of the values (see the module docstring)."""
    proxy = plan.proxy
    core_dump_image = plan.proxyInit.image
    if family.core_dump_image_from == "proxy" and proxy.coreDumpImage:
        core_dump_image = proxy.coreDumpImage
    cluster_domain = proxy.clusterDomain if family.cluster_domain else LEGACY_CLUSTER_DOMAIN
    trust_domain = (plan.trustDomain or LEGACY_CLUSTER_DOMAIN) if family.trust_domain else ""
    proxy = dataclasses.replace(proxy, coreDumpImage=core_dump_image, clusterDomain=cluster_domain)
    if not family.access_log_settings:
        proxy = dataclasses.replace(
            proxy, accessLogFile="/dev/stdout", accessLogFormat="", accessLogEncoding="TEXT"
        )
    if not family.envoy_services:
        proxy = dataclasses.replace(
            proxy,
            envoyStatsD=_off(proxy.envoyStatsD),
            envoyMetricsService=_off(proxy.envoyMetricsService),
            envoyAccessLogService=_off(proxy.envoyAccessLogService),
        )
    changes: dict[str, Any] = {"proxy": proxy, "trustDomain": trust_domain}
    if not family.policy_telemetry_split:
        # One switch for both Deployments; sidecars always call policy checks.
        changes["policy"] = _mixer_part(model.Policy, plan.mixer, checks=True)
        changes["telemetry"] = _mixer_part(model.Telemetry, plan.mixer)
    return dataclasses.replace(plan, **changes)


S = TypeVar("S", bound=model.EnvoyService)


def _off(service: S) -> S:
    return dataclasses.replace(service, enabled=False)


def _mixer_part(cls: type[T], mixer: model.Mixer, checks: bool = False) -> T:
    """Policy or telemetry run with mixer's settings, as one switch (the 1.2 family)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {f.name: getattr(mixer, f.name) for f in dataclasses.fields(mixer) if f.name in names}
    if "checksEnabled" in names:
        values["checksEnabled"] = checks
    return cls(**values)


def resolve_primary(istio: Istio) -> tuple[model.MeshPlan, Family]:
    """The plan of the primary cluster and its family.

    Raises `UnsupportedVersionError` before anything else, then `SpecError`.
    """
    family = family_for(istio.spec.version)
    namespace = control_plane_namespace(istio)
    plan = _resolve(istio.spec, family, _scope(istio.spec, family, namespace))
    check_replicas(plan, family)
    return plan, family


def resolve_remote(istio: Istio, remote: RemoteIstio) -> tuple[model.MeshPlan, Family]:
    """The plan of `remote`'s cluster: the primary's, with the remote's own settings.

    - `autoInjectionNamespaces`: the remote's when non-empty, else the primary's;
    - `defaultResources`, `proxy.resources`, `proxy.privileged`: the remote's when set;
    - placement (`nodeSelector`, `affinity`, `tolerations` of citadel and the
      injector, `initCNIConfiguration.affinity`): always the remote's, since
      the primary's nodes mean nothing on another cluster;
    - `sidecarInjector.replicaCount`: the remote's (default 1);
    - `citadel.caSecretName`: the remote's, else `cacerts` (the primary's CA,
      copied to the remote);
    - `includeIPRanges`/`excludeIPRanges`: the primary's, whatever the remote says;
    - `clusterName`: the remote's, else `""`;
    - with `meshExpansion`, the ingress gateway is always on: remote sidecars reach
      the control plane through gateways.
    """
    family = family_for(istio.spec.version)
    namespace = control_plane_namespace(istio)
    own = remote.spec
    primary_scope = _scope(istio.spec, family, namespace)
    scope = _scope(
        istio.spec, family, namespace, own.defaultResources or primary_scope.default_resources
    )
    own_proxy_resources = own.proxy.resources if own.proxy is not None else None
    plan = _resolve(istio.spec, family, scope, own_proxy_resources)
    own_citadel = build(model.Citadel, own.citadel, scope)
    own_injector = build(model.SidecarInjector, own.sidecarInjector, scope)
    citadel = dataclasses.replace(
        _placed(plan.citadel, own_citadel),
        caSecretName=own_citadel.caSecretName or REMOTE_CA_SECRET,
    )
    injector = dataclasses.replace(
        _placed(plan.sidecarInjector, own_injector),
        replicaCount=own_injector.replicaCount,
        initCNIConfiguration=dataclasses.replace(
            plan.sidecarInjector.initCNIConfiguration,
            affinity=own_injector.initCNIConfiguration.affinity,
        ),
    )
    proxy = plan.proxy
    if own.proxy is not None:
        proxy = dataclasses.replace(
            proxy,
            privileged=_given(own.proxy.privileged, proxy.privileged),
            resources=_given(own.proxy.resources, proxy.resources),
        )
    gateways = plan.gateways
    if plan.meshExpansion:
        gateways = dataclasses.replace(
            gateways, ingress=dataclasses.replace(gateways.ingress, enabled=True)
        )
    plan = dataclasses.replace(
        plan,
        autoInjectionNamespaces=own.autoInjectionNamespaces or plan.autoInjectionNamespaces,
        citadel=citadel,
        sidecarInjector=injector,
        proxy=proxy,
        gateways=gateways,
        clusterName=own.clusterName or "",
    )
    check_replicas(plan, family)
    return plan, family


def _given(value: T | None, otherwise: T) -> T:
    return otherwise if value is None else value


P = TypeVar("P", bound=model.Placement)


def _placed(section: P, own: model.Placement) -> P:
    return dataclasses.replace(
        section,
        nodeSelector=own.nodeSelector,
        affinity=own.affinity,
        tolerations=own.tolerations,
    )


def _scaled(plan: model.MeshPlan, family: Family) -> list[tuple[str, int, int]]:
    """(path, minReplicas, maxReplicas) of every autoscaled Deployment the plan runs."""
    result = []
    if plan.pilot.enabled:
        result.append(("spec.pilot", plan.pilot.minReplicas, plan.pilot.maxReplicas))
    if plan.gateways.enabled:
        for kind, gateway in (("ingress", plan.gateways.ingress), ("egress", plan.gateways.egress)):
            if gateway.enabled:
                result.append((f"spec.gateways.{kind}", gateway.minReplicas, gateway.maxReplicas))
    for kind, part in (("policy", plan.policy), ("telemetry", plan.telemetry)):
        if part.enabled:
            path = f"spec.{kind}" if family.policy_telemetry_split else "spec.mixer"
            result.append((path, part.minReplicas, part.maxReplicas))
    return result


def replica_bounds(minimum: int, maximum: int) -> tuple[int, int]:
    """An autoscaler's bounds: at least one replica; an unset (0) maximum is the minimum."""
    low = max(minimum, 1)
    return low, maximum or low


def check_replicas(plan: model.MeshPlan, family: Family) -> None:
    """Refuse an autoscaler whose maximum is below its minimum."""
    for path, minimum, maximum in _scaled(plan, family):
        low, high = replica_bounds(minimum, maximum)
        if high < low:
            raise SpecError(
                f"{path}.maxReplicas", f"must be at least minReplicas ({low}), not {high}"
            )


# The names of Istio's own images (`pilot`, `proxyv2`...): a pinned one of another release
# than `spec.version` is most likely left over from the last upgrade.
ISTIO_IMAGE_NAMES = frozenset(
    repository.rsplit("/", 1)[-1] for family in FAMILIES for repository in family.images.values()
)


def image_warnings(istio: Istio) -> list[str]:
    """A warning for each image field the resource pins to an Istio image whose tag is
    another release than `spec.version`: `spec.pilot.image: docker.io/istio/pilot:1.2.5
    is tagged 1.2.5, not spec.version 1.3.0`. Other images, tags that are no version (a
    custom build) and digests are not judged."""
    wanted = parse_version(istio.spec.version)
    if wanted is None:
        return []
    spec = istio.spec.model_dump(by_alias=True, exclude_none=True)
    return [
        f"{path}: {image} is tagged {tag}, not spec.version {istio.spec.version}"
        for path, image in _pinned_images(spec, "spec")
        if (tag := _istio_tag(image)) is not None and parse_version(tag) not in (None, wanted)
    ]


def _pinned_images(value: Any, path: str) -> list[tuple[str, str]]:
    """(path, image) of every `image` or `...Image` field set under `value`."""
    if isinstance(value, list):
        return [
            found for i, item in enumerate(value) for found in _pinned_images(item, f"{path}[{i}]")
        ]
    if not isinstance(value, dict):
        return []
    found: list[tuple[str, str]] = []
    for key, item in value.items():
        where = f"{path}.{key}"
        if isinstance(item, str) and (key == "image" or key.endswith("Image")):
            found.append((where, item))
        else:
            found += _pinned_images(item, where)
    return found


def _istio_tag(image: str) -> str | None:
    """The tag of one of Istio's images (`docker.io/istio/pilot:1.2.5` -> `1.2.5`), without
    a leading `v`; None for another image, a digest or no tag."""
    if "@" in image:
        return None
    name, _, tag = image.rpartition("/")[2].partition(":")
    if name not in ISTIO_IMAGE_NAMES or not tag:
        return None
    return tag.removeprefix("v")
