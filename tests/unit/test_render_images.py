"""The images a rendered control plane runs: the Done-when of the render issue."""

from __future__ import annotations

import pytest

from .render_support import images, primary, remote_objects, sample_body


@pytest.mark.parametrize("version", ["1.2.5", "1.3.0"])
def test_primary_images_follow_the_version(version: str) -> None:
    expected = {
        f"docker.io/istio/{name}:{version}"
        for name in ("citadel", "galley", "mixer", "pilot", "proxyv2", "sidecar_injector")
    }
    assert images(primary(version)) == expected


@pytest.mark.parametrize("version", ["1.2.5", "1.3.0"])
def test_remote_images_follow_the_primary_version(version: str) -> None:
    expected = {
        f"docker.io/istio/{name}:{version}" for name in ("citadel", "proxyv2", "sidecar_injector")
    }
    assert images(remote_objects(sample_body(version))) == expected


def test_an_image_named_by_the_resource_is_used_verbatim() -> None:
    objects = primary("1.3.0", pilot__image="registry.example/pilot:patched")
    assert "registry.example/pilot:patched" in images(objects)
    assert "docker.io/istio/pilot:1.3.0" not in images(objects)
