"""`istio-operator render`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from istio_operator.cli.main import main
from istio_operator.versions import unsupported_example

from .render_support import SAMPLES, sample_body


def write(tmp_path: Path, body: dict[str, object]) -> Path:
    path = tmp_path / "istio.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


def error_lines(err: str) -> list[str]:
    """stderr without the unknown-field warnings."""
    return [line for line in err.splitlines() if not line.startswith("warning:")]


def test_renders_the_primary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "-f", str(write(tmp_path, sample_body()))]) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    assert {"Deployment", "CustomResourceDefinition", "ConfigMap"} <= {d["kind"] for d in documents}


def test_renders_a_remote(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "render",
        "-f",
        str(SAMPLES / "istio_v1beta1_istio.yaml"),
        "-f",
        str(SAMPLES / "istio_v1beta1_remoteistio.yaml"),
        "--remote",
        "remoteistio-sample",
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    documents = list(yaml.safe_load_all(captured.out))
    deployments = {d["metadata"]["name"] for d in documents if d["kind"] == "Deployment"}
    assert "istio-pilot" not in deployments
    assert "istio-citadel" in deployments
    # The sample's mis-indented localityLB is an unknown field.
    assert "warning:" in captured.err


def test_spec_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = sample_body()
    body["spec"]["mtls"] = "yes"
    assert main(["render", "-f", str(write(tmp_path, body))]) == 1
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1
    assert "spec.mtls" in errors[0]


def test_unsupported_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "-f", str(write(tmp_path, sample_body(unsupported_example())))]) == 1
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1
    assert "intended Istio version is unsupported by this version of the operator" in errors[0]


def test_unknown_remote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, sample_body())
    assert main(["render", "-f", str(path), "--remote", "nope"]) == 1
    assert "nope" in capsys.readouterr().err


def test_a_misspelled_required_field_is_named_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = sample_body()
    body["spec"]["mtsl"] = body["spec"].pop("mtls")
    assert main(["render", "-f", str(write(tmp_path, body))]) == 1
    assert error_lines(capsys.readouterr().err) == [
        "error: spec.mtsl: unknown field; did you mean mtls? (spec.mtls: Field required)"
    ]
