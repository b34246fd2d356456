"""A release family is one declaration: a new one is picked up everywhere versions are read."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from istio_operator.api.parse import load_istio
from istio_operator.cli import docs as docs_command
from istio_operator.operations import rbac
from istio_operator.render import render_primary
from istio_operator.versions import ISTIO_1_3, UnsupportedVersionError, families

from .render_support import images, remote_objects, sample_body

NEXT = dataclasses.replace(ISTIO_1_3, name="1.4", minor=4, reference_version="1.4.3")


@pytest.fixture
def declared() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(families, "FAMILIES", (*families.FAMILIES, NEXT))
        yield


@pytest.mark.usefixtures("declared")
def test_the_gate_accepts_it_and_the_messages_name_it() -> None:
    assert families.family_for("1.4.1") is NEXT
    assert "1.4.x from 1.4.0" in families.supported_ranges()
    assert families.unsupported_example() == "1.5.0"
    with pytest.raises(UnsupportedVersionError, match=r"1\.4\.x from 1\.4\.0"):
        families.family_for("1.5.0")


@pytest.mark.usefixtures("declared")
def test_its_versions_render_with_its_images_on_every_cluster() -> None:
    body = sample_body("1.4.1")
    primary = images(render_primary(load_istio(body).resource))
    remote = images(remote_objects(body))
    assert "docker.io/istio/pilot:1.4.1" in primary
    assert "docker.io/istio/proxyv2:1.4.1" in remote
    assert not any(image.endswith((":1.3.0", ":1.3.8")) for image in primary | remote)


@pytest.mark.usefixtures("declared")
def test_the_docs_and_the_rbac_derivation_read_it() -> None:
    assert "1.4.x from 1.4.0" in docs_command.reference()
    versions = {body["spec"]["version"] for body in rbac.all_on_variants()}
    assert versions == {"1.2.8", "1.3.8", "1.4.3"}


def test_without_the_declaration_its_versions_are_refused() -> None:
    assert families.unsupported_example() == "1.4.0"
    with pytest.raises(UnsupportedVersionError):
        render_primary(load_istio(sample_body("1.4.1")).resource)
