"""Pinned Istio images of another release than `spec.version` are warned about."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from istio_operator.api.istio import Istio
from istio_operator.cli.main import main
from istio_operator.plan.resolve import image_warnings


def istio(version: str = "1.3.0", **spec: Any) -> Istio:
    return Istio.model_validate(
        {
            "apiVersion": "istio.banzaicloud.io/v1beta1",
            "kind": "Istio",
            "metadata": {"name": "mesh", "namespace": "istio-system"},
            "spec": {"version": version, "mtls": True, **spec},
        }
    )


def test_images_that_follow_the_version_are_not_warned_about() -> None:
    assert image_warnings(istio()) == []
    assert image_warnings(istio(pilot={"image": "docker.io/istio/pilot:1.3.0"})) == []
    assert image_warnings(istio(pilot={"image": "registry.local:5000/pilot:v1.3.0"})) == []
    assert image_warnings(istio(pilot={"image": "docker.io/istio/pilot:1.3.0-distroless"})) == []


def test_a_pinned_istio_image_of_another_release_is_warned_about() -> None:
    found = image_warnings(
        istio(
            pilot={"image": "docker.io/istio/pilot:1.2.5"},
            proxy={"image": "docker.io/istio/proxyv2:1.2.5", "coreDumpImage": "busybox:1"},
            sidecarInjector={"initCNIConfiguration": {"image": "mirror/install-cni:1.2.5"}},
        )
    )
    assert sorted(found) == [
        "spec.pilot.image: docker.io/istio/pilot:1.2.5 is tagged 1.2.5, not spec.version 1.3.0",
        "spec.proxy.image: docker.io/istio/proxyv2:1.2.5 is tagged 1.2.5, not spec.version 1.3.0",
        "spec.sidecarInjector.initCNIConfiguration.image: mirror/install-cni:1.2.5 is tagged "
        "1.2.5, not spec.version 1.3.0",
    ]


@pytest.mark.parametrize(
    "image",
    [
        "registry.local/pilot:patched",  # a custom build: no version to compare
        "docker.io/istio/pilot@sha256:" + "0" * 64,  # a digest
        "docker.io/istio/pilot",  # no tag
        "docker.io/library/nginx:1.2.5",  # not one of Istio's images
    ],
)
def test_images_that_cannot_be_judged_are_not_warned_about(image: str) -> None:
    assert image_warnings(istio(pilot={"image": image})) == []


def test_render_prints_the_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = istio(pilot={"image": "docker.io/istio/pilot:1.2.5"}).model_dump(
        by_alias=True, exclude_none=True
    )
    path = tmp_path / "istio.yaml"
    path.write_text(yaml.safe_dump(body))
    assert main(["render", "-f", str(path)]) == 0
    assert (
        "warning: spec.pilot.image: docker.io/istio/pilot:1.2.5 is tagged 1.2.5, not "
        "spec.version 1.3.0" in capsys.readouterr().err.splitlines()
    )
