"""The version gate, image resolution and effective specs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from istio_operator.api.istio import IstioSpec
from istio_operator.api.parse import load_istio, load_remote_istio
from istio_operator.versions import (
    FAMILIES,
    ISTIO_1_2,
    ISTIO_1_3,
    UnsupportedVersionError,
    effective_remote_spec,
    effective_spec,
    family_for,
    remote_istio_spec,
    resolve_images,
)

SAMPLES = Path(__file__).parent.parent / "fixtures" / "samples"
MESSAGE = "intended Istio version is unsupported by this version of the operator"


def bare(version: str = "1.3.0", **fields: Any) -> IstioSpec:
    return IstioSpec.model_validate({"version": version, "mtls": True, **fields})


@pytest.mark.parametrize(
    ("version", "family"),
    [
        ("1.2.0", ISTIO_1_2),
        ("1.2.5", ISTIO_1_2),
        ("1.2.10", ISTIO_1_2),
        ("1.3.0", ISTIO_1_3),
        ("1.3.8", ISTIO_1_3),
        ("1.3.1-rc.1", ISTIO_1_3),
    ],
)
def test_supported_versions(version: str, family: Any) -> None:
    assert family_for(version) is family


@pytest.mark.parametrize(
    "version",
    ["1.1.0", "1.4.0", "garbage", "", "1.3", "1.30.0", "2.3.0", "1.3.x", " 1.3.0", "v1.3.0"],
)
def test_unsupported_versions_are_refused_with_the_reference_message(version: str) -> None:
    with pytest.raises(UnsupportedVersionError) as info:
        family_for(version)
    assert str(info.value) == f"{MESSAGE} (supported: 1.2.x from 1.2.0, 1.3.x from 1.3.0)"
    assert info.value.version == version
    assert isinstance(info.value, ValueError)


def test_families_differ_where_the_reference_says() -> None:
    assert [f.name for f in FAMILIES] == ["1.2", "1.3"]
    assert "mixer" in ISTIO_1_2.components
    assert "policy" not in ISTIO_1_2.components
    assert ISTIO_1_3.components.index("policy") < ISTIO_1_3.components.index("telemetry")
    assert ISTIO_1_3.components[-1] == "mixerlesstelemetry"
    assert "mixerlesstelemetry" not in ISTIO_1_2.components
    assert not ISTIO_1_2.policy_telemetry_split and ISTIO_1_3.policy_telemetry_split
    assert not ISTIO_1_2.protocol_sniffing and ISTIO_1_3.protocol_sniffing
    assert (ISTIO_1_2.injector_template, ISTIO_1_3.injector_template) == ("1.2", "1.3")
    assert (ISTIO_1_2.core_dump_image_from, ISTIO_1_3.core_dump_image_from) == (
        "proxyInit",
        "proxy",
    )
    for family in FAMILIES:
        assert "pilot" not in family.remote_components
        assert family.components[:2] == ("common", "citadel")


def test_unset_images_follow_the_version() -> None:
    spec = resolve_images(bare("1.2.5"))
    assert spec.pilot is not None and spec.pilot.image == "docker.io/istio/pilot:1.2.5"
    assert spec.citadel is not None and spec.citadel.image == "docker.io/istio/citadel:1.2.5"
    assert spec.galley is not None and spec.galley.image == "docker.io/istio/galley:1.2.5"
    assert spec.mixer is not None and spec.mixer.image == "docker.io/istio/mixer:1.2.5"
    assert spec.sidecarInjector is not None
    assert spec.sidecarInjector.image == "docker.io/istio/sidecar_injector:1.2.5"
    assert spec.sidecarInjector.initCNIConfiguration is not None
    assert spec.sidecarInjector.initCNIConfiguration.image == "docker.io/istio/install-cni:1.2.5"
    assert spec.nodeAgent is not None
    assert spec.nodeAgent.image == "docker.io/istio/node-agent-k8s:1.2.5"
    assert spec.proxy is not None and spec.proxy.image == "docker.io/istio/proxyv2:1.2.5"
    assert spec.proxy.coreDumpImage is None
    assert spec.proxyInit is not None
    assert spec.proxyInit.image == "docker.io/istio/proxy_init:1.2.5"
    assert spec.gateways is not None and spec.gateways.ingress is not None
    assert spec.gateways.ingress.sds is not None
    assert spec.gateways.ingress.sds.image == "docker.io/istio/node-agent-k8s:1.2.5"
    assert spec.istioCoreDNS is not None
    assert spec.istioCoreDNS.image == "coredns/coredns:1.1.2"
    assert spec.istioCoreDNS.pluginImage == "docker.io/istio/coredns-plugin:0.2-istio-1.1"


def test_named_images_are_kept_and_policy_telemetry_take_the_mixer_image() -> None:
    spec = resolve_images(
        bare(
            pilot={"image": "registry.local/pilot:patched"},
            mixer={"image": "registry.local/mixer:1.3.0"},
            telemetry={"image": "registry.local/telemetry:1"},
        )
    )
    assert spec.pilot is not None and spec.pilot.image == "registry.local/pilot:patched"
    assert spec.policy is not None and spec.policy.image == "registry.local/mixer:1.3.0"
    assert spec.telemetry is not None and spec.telemetry.image == "registry.local/telemetry:1"
    assert spec.galley is not None and spec.galley.image == "docker.io/istio/galley:1.3.0"


def test_effective_spec_gates_defaults_and_resolves() -> None:
    spec, family = effective_spec(bare("1.3.0"), namespace="istio-system")
    assert family is ISTIO_1_3
    assert spec.pilot is not None and spec.pilot.replicaCount == 1
    assert spec.policy is not None and spec.policy.image == "docker.io/istio/mixer:1.3.0"
    again, _ = effective_spec(spec, namespace="istio-system")
    assert again == spec

    with pytest.raises(UnsupportedVersionError):
        effective_spec(bare("1.4.0"))


def test_walkthrough_upgrade_changes_every_default_image() -> None:
    body = yaml.safe_load((SAMPLES / "istio_v1beta1_istio.yaml").read_text())
    for section in ("pilot", "citadel", "galley", "mixer", "sidecarInjector", "nodeAgent"):
        del body["spec"][section]["image"]
    del body["spec"]["proxy"]["image"]
    del body["spec"]["proxyInit"]["image"]
    images = {}
    for version in ("1.2.5", "1.3.0"):
        body["spec"]["version"] = version
        spec, _ = effective_spec(load_istio(body).resource.spec)
        assert spec.pilot and spec.citadel and spec.galley and spec.mixer
        assert spec.sidecarInjector and spec.proxy
        images[version] = {
            spec.pilot.image,
            spec.citadel.image,
            spec.galley.image,
            spec.mixer.image,
            spec.sidecarInjector.image,
            spec.proxy.image,
        }
    assert images["1.3.0"] == {
        f"docker.io/istio/{name}:1.3.0"
        for name in ("citadel", "galley", "mixer", "pilot", "proxyv2", "sidecar_injector")
    }
    assert all(image.endswith(":1.2.5") for image in images["1.2.5"])


REMOTE = load_remote_istio(
    yaml.safe_load((SAMPLES / "istio_v1beta1_remoteistio.yaml").read_text())
).resource.spec


def test_effective_remote_spec_takes_the_primarys_images_and_settings() -> None:
    primary = bare(
        "1.3.0",
        includeIPRanges="10.0.0.0/8",
        autoInjectionNamespaces=["primary-ns"],
        citadel={"nodeSelector": {"pool": "primary"}},
        proxy={"privileged": True},
    )
    remote = effective_remote_spec(primary, REMOTE)

    assert remote.citadel is not None
    assert remote.citadel.image == "docker.io/istio/citadel:1.3.0"
    assert remote.citadel.caSecretName == "cacerts"
    assert remote.citadel.nodeSelector is None
    assert remote.sidecarInjector is not None
    assert remote.sidecarInjector.image == "docker.io/istio/sidecar_injector:1.3.0"
    assert remote.sidecarInjector.replicaCount == 1
    assert remote.proxy is not None
    assert remote.proxy.image == "docker.io/istio/proxyv2:1.3.0"
    assert remote.proxy.privileged is True
    assert remote.includeIPRanges == "10.0.0.0/8"
    assert remote.autoInjectionNamespaces == ["default"]
    assert remote.defaultResources == {"requests": {"cpu": "10m"}}
    assert remote.enabledServices == REMOTE.enabledServices


def test_remote_overrides() -> None:
    remote = REMOTE.model_copy(
        update={
            "autoInjectionNamespaces": [],
            "citadel": REMOTE.citadel.model_copy(  # type: ignore[union-attr]
                update={"caSecretName": "my-ca", "tolerations": [{"key": "k"}]}
            ),
            "clusterName": "east",
        }
    )
    primary = bare("1.2.5", autoInjectionNamespaces=["apps"])
    merged = effective_remote_spec(primary, remote)
    assert merged.autoInjectionNamespaces == ["apps"]
    assert merged.citadel is not None
    assert merged.citadel.caSecretName == "my-ca"
    assert merged.citadel.tolerations == [{"key": "k"}]
    assert merged.clusterName == "east"

    istio = remote_istio_spec(
        bare("1.2.5", meshExpansion=True, gateways={"ingress": {"enabled": False}}), remote
    )
    assert istio.version == "1.2.5"
    assert istio.clusterName == "east"
    assert istio.gateways is not None and istio.gateways.ingress is not None
    assert istio.gateways.ingress.enabled is True
    assert istio.citadel is not None and istio.citadel.caSecretName == "my-ca"


def test_remote_of_an_unsupported_primary_is_refused() -> None:
    with pytest.raises(UnsupportedVersionError):
        effective_remote_spec(bare("1.4.0"), REMOTE)
