"""Default images, and the effective specs the renderer works from.

Unlike the reference, whose default images are hard-coded to one patch
release, an image the resource leaves unset follows `spec.version`:
`docker.io/istio/<name>:<spec.version>`. An image the resource names is used
verbatim. Istio CoreDNS images are not Istio releases and keep their fixed
defaults. `proxy.coreDumpImage` has no default.
"""

from __future__ import annotations

from typing import Any, Final

from istio_operator.api.defaults import (
    apply_defaults,
    apply_remote_defaults,
    get_path,
    set_default,
)
from istio_operator.api.istio import IstioSpec
from istio_operator.api.remoteistio import RemoteIstioSpec
from istio_operator.versions.families import Family, family_for

HUB: Final = "docker.io/istio"

# Image field path -> image name under HUB, tagged with spec.version.
VERSIONED_IMAGES: Final[tuple[tuple[str, str], ...]] = (
    ("pilot.image", "pilot"),
    ("citadel.image", "citadel"),
    ("galley.image", "galley"),
    ("mixer.image", "mixer"),
    ("sidecarInjector.image", "sidecar_injector"),
    ("sidecarInjector.initCNIConfiguration.image", "install-cni"),
    ("nodeAgent.image", "node-agent-k8s"),
    ("gateways.ingress.sds.image", "node-agent-k8s"),
    ("gateways.egress.sds.image", "node-agent-k8s"),
    ("proxy.image", "proxyv2"),
    ("proxyInit.image", "proxy_init"),
)

# Image field path -> fixed image (not part of an Istio release).
FIXED_IMAGES: Final[tuple[tuple[str, str], ...]] = (
    ("istioCoreDNS.image", "coredns/coredns:1.1.2"),
    ("istioCoreDNS.pluginImage", f"{HUB}/coredns-plugin:0.2-istio-1.1"),
)

# Components whose image, when unset, is the (resolved) mixer image.
MIXER_IMAGE_INHERITORS: Final = ("policy.image", "telemetry.image")

# The remote's CA secret when the RemoteIstio names none (the primary's CA is copied there).
REMOTE_CA_SECRET: Final = "cacerts"


def image(name: str, version: str) -> str:
    """The image of an Istio component at a version: `docker.io/istio/pilot:1.3.0`."""
    return f"{HUB}/{name}:{version}"


def resolve_images(spec: IstioSpec) -> IstioSpec:
    """A copy of `spec` with every unset image filled (see the module docstring)."""
    data = spec.model_dump(by_alias=True, exclude_none=True)
    for path, name in VERSIONED_IMAGES:
        set_default(data, path, image(name, spec.version))
    for path, fixed in FIXED_IMAGES:
        set_default(data, path, fixed)
    mixer_image = get_path(data, "mixer.image")
    for path in MIXER_IMAGE_INHERITORS:
        set_default(data, path, mixer_image)
    return IstioSpec.model_validate(data)


def effective_spec(spec: IstioSpec, namespace: str | None = None) -> tuple[IstioSpec, Family]:
    """The spec to render and its family: version gate, defaults, then images.

    Raises `UnsupportedVersionError` before anything else when the version is
    not supported. `namespace` is the `Istio` resource's namespace (see
    `apply_defaults`). Idempotent.
    """
    family = family_for(spec.version)
    return resolve_images(apply_defaults(spec, namespace)), family


def effective_remote_spec(
    primary: IstioSpec, remote: RemoteIstioSpec, namespace: str | None = None
) -> RemoteIstioSpec:
    """The `RemoteIstio` spec in effect, every setting filled from the primary.

    `primary` may be the resource's spec or its effective spec. The result's
    `citadel`, `sidecarInjector`, `proxy` and `proxyInit` are the primary's
    effective settings (images included) with the remote's overrides:
    - `autoInjectionNamespaces`: the remote's when non-empty, else the primary's;
    - `defaultResources`, `proxy.resources`, `proxy.privileged`: the remote's when set;
    - placement (`nodeSelector`, `affinity`, `tolerations` of citadel and the
      injector, `initCNIConfiguration.affinity`): always the remote's, since
      the primary's nodes mean nothing on another cluster;
    - `sidecarInjector.replicaCount`: the remote's (default 1);
    - `citadel.caSecretName`: the remote's, else `cacerts` (the primary's CA,
      copied to the remote);
    - `includeIPRanges`/`excludeIPRanges`: the primary's, whatever the remote says;
    - `clusterName`: the remote's, else `""`.
    Raises `UnsupportedVersionError` if the primary's version is unsupported.
    """
    effective, _ = effective_spec(primary, namespace)
    base = effective.model_dump(by_alias=True, exclude_none=True)
    own = apply_remote_defaults(remote).model_dump(by_alias=True, exclude_none=True)

    citadel = base["citadel"]
    injector = base["sidecarInjector"]
    proxy = base["proxy"]
    own_citadel = own.get("citadel", {})
    own_injector = own.get("sidecarInjector", {})
    own_proxy = own.get("proxy", {})
    for section, overrides in ((citadel, own_citadel), (injector, own_injector)):
        for key in ("nodeSelector", "affinity", "tolerations"):
            _replace(section, key, overrides.get(key))
    _replace(
        injector["initCNIConfiguration"],
        "affinity",
        own_injector.get("initCNIConfiguration", {}).get("affinity"),
    )
    injector["replicaCount"] = own_injector["replicaCount"]
    citadel["caSecretName"] = own_citadel.get("caSecretName") or REMOTE_CA_SECRET
    for key in ("privileged", "resources"):
        if own_proxy.get(key) is not None:
            proxy[key] = own_proxy[key]

    merged: dict[str, Any] = {
        "includeIPRanges": base["includeIPRanges"],
        "excludeIPRanges": base["excludeIPRanges"],
        "enabledServices": own["enabledServices"],
        "autoInjectionNamespaces": own.get("autoInjectionNamespaces")
        or base.get("autoInjectionNamespaces"),
        "defaultResources": own.get("defaultResources") or base["defaultResources"],
        "citadel": citadel,
        "sidecarInjector": injector,
        "proxy": proxy,
        "proxyInit": base["proxyInit"],
        "clusterName": own.get("clusterName", ""),
    }
    return RemoteIstioSpec.model_validate({k: v for k, v in merged.items() if v is not None})


def remote_istio_spec(
    primary: IstioSpec, remote: RemoteIstioSpec, namespace: str | None = None
) -> IstioSpec:
    """The Istio spec a remote cluster's components are rendered from.

    It is the primary's effective spec with the remote's effective overrides
    (`effective_remote_spec`); with `meshExpansion` the remote's ingress
    gateway is always enabled, as remote sidecars reach the control plane
    through gateways.
    """
    effective, _ = effective_spec(primary, namespace)
    merged = effective_remote_spec(effective, remote, namespace)
    data = effective.model_dump(by_alias=True, exclude_none=True)
    overrides = merged.model_dump(
        by_alias=True,
        exclude_none=True,
        include={
            "autoInjectionNamespaces",
            "defaultResources",
            "citadel",
            "sidecarInjector",
            "proxy",
            "clusterName",
        },
    )
    data.update(overrides)
    if data["meshExpansion"]:
        data["gateways"]["ingress"]["enabled"] = True
    return IstioSpec.model_validate(data)


def _replace(section: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        section.pop(key, None)
    else:
        section[key] = value
