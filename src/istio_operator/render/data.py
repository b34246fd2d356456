"""Package data files under `render/templates/`."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml


@functools.cache
def text(name: str) -> str:
    """The text of a template file."""
    return resources.files("istio_operator.render").joinpath("templates", name).read_text("utf-8")


def load_yaml(name: str) -> Any:
    """A YAML template file, parsed afresh (callers may modify the result)."""
    return yaml.safe_load(text(name))
