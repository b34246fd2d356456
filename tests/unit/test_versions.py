"""The version gate, the family declarations, and the images a version resolves to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from istio_operator.api.istio import Istio
from istio_operator.api.parse import load_istio, load_remote_istio
from istio_operator.charts.catalogue import CATALOGUE_ENV
from istio_operator.plan import resolve_primary, resolve_remote
from istio_operator.versions import (
    FAMILIES,
    ISTIO_1_2,
    ISTIO_1_3,
    UnsupportedVersionError,
    family_for,
    unsupported_example,
)
from istio_operator.versions import UNSUPPORTED_VERSION_MESSAGE as MESSAGE
from istio_operator.versions.families import suggest_version
from istio_operator.versions.istiod import Selected, select_family

from .render_support import SAMPLE_REMOTE, sample_body


def bare(version: str = "1.3.0", **fields: Any) -> Istio:
    return Istio.model_validate(
        {
            "apiVersion": "istio.banzaicloud.io/v1beta1",
            "kind": "Istio",
            "metadata": {"name": "mesh", "namespace": "istio-system"},
            "spec": {"version": version, "mtls": True, **fields},
        }
    )


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
    ("version", "suggestion"),
    [
        ("1.1.0", "1.2.8"),
        ("1.4.0", "1.3.8"),
        ("garbage", None),
        ("", None),
        ("1.3", "1.3.0"),
        ("1.30.0", "1.3.8"),
        ("2.3.0", "1.3.8"),
        ("1.3.x", "1.3.0"),
        (" 1.3.0", "1.3.0"),
        ("v1.3.0", "1.3.0"),
    ],
)
def test_unsupported_versions_are_refused_with_the_reference_message(
    version: str, suggestion: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CATALOGUE_ENV, str(tmp_path))  # an empty chart catalogue
    with pytest.raises(UnsupportedVersionError) as info:
        family_for(version)
    hint = f"; did you mean {suggestion}?" if suggestion else ""
    assert str(info.value) == (
        f"{MESSAGE}: got {version!r}{hint} (supported: 1.2.x from 1.2.0, 1.3.x from 1.3.0)"
    )
    assert info.value.version == version
    assert isinstance(info.value, ValueError)


def test_the_nearest_catalogue_version_is_suggested() -> None:
    known = ["1.2.0", "1.3.0", "1.3.8", "1.31.0", "1.31.1"]
    assert suggest_version("1.31.2", known) == "1.31.1"
    assert suggest_version("1.31.0-rc.0x", known) == "1.31.0"
    assert suggest_version("V1.31.1", known) == "1.31.1"
    assert suggest_version("1.32.0", known) == "1.31.1"
    assert suggest_version("latest", known) is None


def test_the_istiod_familys_versions_are_the_chart_catalogues(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for chart in ("base", "istio-control/istio-discovery"):
        (tmp_path / "1.30.3" / "charts" / chart).mkdir(parents=True)
        (tmp_path / "1.30.3" / "charts" / chart / "Chart.yaml").write_text("name: x\n")
    monkeypatch.setenv(CATALOGUE_ENV, str(tmp_path))
    assert select_family("1.3.0") == Selected("classic")
    chosen = select_family("1.30.3")
    assert chosen.renderer == "istiod" and chosen.charts is not None
    assert chosen.charts.root == tmp_path / "1.30.3"
    with pytest.raises(UnsupportedVersionError) as info:
        select_family("1.30.4")
    assert str(info.value).endswith(
        "did you mean 1.30.3? "
        "(supported: 1.2.x from 1.2.0, 1.3.x from 1.3.0; istiod family: 1.30.3)"
    )


def test_families_differ_where_the_reference_says() -> None:
    assert [f.name for f in FAMILIES] == ["1.2", "1.3"]
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
        assert family.components[:3] == ("crds", "common", "citadel")
        assert family.accepts(family.reference_version)


def test_the_unsupported_example_is_refused_by_every_family() -> None:
    example = unsupported_example()
    assert example == "1.4.0"
    assert not any(family.accepts(example) for family in FAMILIES)


def test_unset_images_follow_the_version() -> None:
    plan, _ = resolve_primary(bare("1.2.5"))
    assert plan.pilot.image == "docker.io/istio/pilot:1.2.5"
    assert plan.citadel.image == "docker.io/istio/citadel:1.2.5"
    assert plan.galley.image == "docker.io/istio/galley:1.2.5"
    assert plan.mixer.image == "docker.io/istio/mixer:1.2.5"
    assert plan.sidecarInjector.image == "docker.io/istio/sidecar_injector:1.2.5"
    assert plan.sidecarInjector.initCNIConfiguration.image == "docker.io/istio/install-cni:1.2.5"
    assert plan.nodeAgent.image == "docker.io/istio/node-agent-k8s:1.2.5"
    assert plan.proxy.image == "docker.io/istio/proxyv2:1.2.5"
    assert plan.proxyInit.image == "docker.io/istio/proxy_init:1.2.5"
    assert plan.gateways.ingress.sds.image == "docker.io/istio/node-agent-k8s:1.2.5"
    assert plan.istioCoreDNS.image == "coredns/coredns:1.1.2"
    assert plan.istioCoreDNS.pluginImage == "docker.io/istio/coredns-plugin:0.2-istio-1.1"


def test_named_images_are_kept_and_policy_telemetry_take_the_mixer_image() -> None:
    plan, _ = resolve_primary(
        bare(
            pilot={"image": "registry.local/pilot:patched"},
            mixer={"image": "registry.local/mixer:1.3.0"},
            telemetry={"image": "registry.local/telemetry:1"},
        )
    )
    assert plan.pilot.image == "registry.local/pilot:patched"
    assert plan.policy.image == "registry.local/mixer:1.3.0"
    assert plan.telemetry.image == "registry.local/telemetry:1"
    assert plan.galley.image == "docker.io/istio/galley:1.3.0"


def test_an_unsupported_version_is_refused_before_anything_else() -> None:
    with pytest.raises(UnsupportedVersionError):
        resolve_primary(bare("1.4.0", pilot={"minReplicas": 5, "maxReplicas": 1}))


def test_walkthrough_upgrade_changes_every_default_image() -> None:
    images = {}
    for version in ("1.2.5", "1.3.0"):
        plan, _ = resolve_primary(load_istio(sample_body(version)).resource)
        images[version] = {
            plan.pilot.image,
            plan.citadel.image,
            plan.galley.image,
            plan.mixer.image,
            plan.sidecarInjector.image,
            plan.proxy.image,
        }
    assert images["1.3.0"] == {
        f"docker.io/istio/{name}:1.3.0"
        for name in ("citadel", "galley", "mixer", "pilot", "proxyv2", "sidecar_injector")
    }
    assert all(image.endswith(":1.2.5") for image in images["1.2.5"])


REMOTE = load_remote_istio(SAMPLE_REMOTE)


def test_a_remote_runs_the_primarys_images() -> None:
    plan, family = resolve_remote(bare("1.3.0"), REMOTE.resource)
    assert family is ISTIO_1_3
    assert plan.citadel.image == "docker.io/istio/citadel:1.3.0"
    assert plan.sidecarInjector.image == "docker.io/istio/sidecar_injector:1.3.0"
    assert plan.proxy.image == "docker.io/istio/proxyv2:1.3.0"
    assert list(plan.autoInjectionNamespaces) == ["default"]


def test_remote_of_an_unsupported_primary_is_refused() -> None:
    with pytest.raises(UnsupportedVersionError):
        resolve_remote(bare("1.4.0"), REMOTE.resource)
