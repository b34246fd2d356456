"""YAML output that stays readable: multi-line strings become literal blocks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from istio_operator.render.objects import DesiredObject

# libyaml's emitter when PyYAML was built with it (several times faster), else Python's.
_SafeDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


class _BlockDumper(_SafeDumper):  # type: ignore[valid-type,misc]
    """A safe dumper writing multi-line strings (templates, embedded files) as `|` blocks.

    The manifests are plain dicts, lists, strings and numbers, a few thousand nodes each:
    these are represented here without the generic representer's lookups per node, to the
    same nodes (an object met twice is one node, written as an alias), so the same output.
    """

    def represent_data(self, data: Any) -> yaml.Node:
        kind = type(data)
        if kind is str:
            return yaml.ScalarNode(_STR, data, style="|" if "\n" in data else None)
        if kind is int:
            return yaml.ScalarNode(_INT, str(data))
        plain = self.default_flow_style is False and not self.sort_keys
        if plain and (kind is dict or kind is list):
            return self._collection(data)
        return super().represent_data(data)  # type: ignore[no-any-return]

    def _collection(self, data: dict[Any, Any] | list[Any]) -> yaml.Node:
        known: yaml.Node | None = self.represented_objects.get(id(data))
        if known is not None:
            return known
        self.object_keeper.append(data)
        represent = self.represent_data
        if isinstance(data, dict):
            pairs: list[tuple[yaml.Node, yaml.Node]] = []
            mapping = self.represented_objects[id(data)] = yaml.MappingNode(
                _MAP, pairs, flow_style=False
            )
            pairs.extend((represent(key), represent(value)) for key, value in data.items())
            return mapping
        items: list[yaml.Node] = []
        sequence = self.represented_objects[id(data)] = yaml.SequenceNode(
            _SEQ, items, flow_style=False
        )
        items.extend(map(represent, data))
        return sequence


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
