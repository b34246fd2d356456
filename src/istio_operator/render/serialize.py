"""YAML output that stays readable: multi-line strings become literal blocks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from istio_operator.render.objects import DesiredObject

# libyaml's emitter when PyYAML was built with it (several times faster), else Python's.
_SafeDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _BlockDumper(_SafeDumper):  # type: ignore[valid-type,misc]
    """A safe dumper writing multi-line strings (templates, embedded files) as `|` blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def dump(document: Any, sort_keys: bool = False) -> str:
    return yaml.dump(document, Dumper=_BlockDumper, default_flow_style=False, sort_keys=sort_keys)


def yaml_stream(objects: Iterable[DesiredObject]) -> str:
    """The objects' manifests as one YAML stream."""
    return yaml.dump_all(
        (obj.manifest for obj in objects),
        Dumper=_BlockDumper,
        default_flow_style=False,
        sort_keys=False,
    )
