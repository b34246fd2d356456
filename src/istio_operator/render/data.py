"""Package data files under `render/templates/`."""

from __future__ import annotations

import copy
import functools
from importlib import resources
from typing import Any

import yaml

# libyaml's parser when the platform has it: the data files are large.
SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def text(name: str) -> str:
    """The text of a template file."""
    return resources.files("istio_operator.render").joinpath("templates", name).read_text("utf-8")


@functools.cache
def _parsed(name: str) -> Any:
    return yaml.load(text(name), Loader=SafeLoader)


def load_yaml(name: str) -> Any:
    """A YAML template file, parsed once; each caller gets its own copy to modify."""
    return copy.deepcopy(_parsed(name))
