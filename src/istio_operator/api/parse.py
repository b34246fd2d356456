"""Reading `Istio` and `RemoteIstio` resources from their JSON bodies.

A body is read the way an API server with a structural schema stores it:
fields the schema does not know are dropped (here, with a warning naming
each one), everything else must match the schema. `status` is never part of
the desired state and is dropped silently, as are metadata keys the operator
does not read. Fields inside pass-through Kubernetes objects (resources,
affinity, tolerations...) are never unknown.

Any other mismatch raises `SpecError` naming the first failing field. An unknown
field close to a known one that is not set (`spec.mtsl` beside no `spec.mtls`) is
kept as a `Misspelling`: an error about the field it meant (`spec.mtls: Field
required`), here or later (`explained`), names the misspelling first.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from istio_operator.api.errors import SpecError
from istio_operator.api.istio import Istio, IstioSpec
from istio_operator.api.labels import API_VERSION
from istio_operator.api.remoteistio import RemoteIstio, RemoteIstioSpec

R = TypeVar("R", bound=BaseModel)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
# Top-level keys that are read elsewhere or not at all, never warned about.
_SILENT_TOP_LEVEL = frozenset({"status"})
_TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec", *_SILENT_TOP_LEVEL)


@dataclass(frozen=True)
class Misspelling:
    """An unknown field (`spec.mtsl`) and the known one it likely meant (`spec.mtls`)."""

    path: str
    meant: str

    def error(self, cause: SpecError) -> SpecError:
        meant = self.meant.rpartition(".")[2]
        return SpecError(self.path, f"unknown field; did you mean {meant}? ({cause})")


@dataclass(frozen=True)
class Loaded(Generic[R]):
    """A validated resource and the warnings produced while reading it."""

    resource: R
    warnings: list[str]
    misspelled: tuple[Misspelling, ...] = ()


def explained(error: SpecError, misspelled: Sequence[Misspelling]) -> SpecError:
    """`error`, or the misspelling of the field it is about when there is one: the typo,
    not the field it left unset, is what to fix."""
    for typo in misspelled:
        if error.path == typo.meant or error.path.startswith(f"{typo.meant}."):
            return typo.error(error)
    return error


@dataclass
class _Unknowns:
    """The unknown fields met while pruning: a warning for each, and those that look
    like a misspelling of a known field, as the error to report first."""

    warnings: list[str] = field(default_factory=list)
    misspelled: list[Misspelling] = field(default_factory=list)

    def add(self, parent: str, key: object, known: Sequence[str]) -> None:
        path = join_path(parent, key)
        near = closest_field(str(key), known)
        if near is None:
            self.warnings.append(_unknown(path))
            return
        self.warnings.append(f"{_unknown(path)}; did you mean {near}?")
        self.misspelled.append(Misspelling(path, join_path(parent, near)))


def closest_field(key: str, known: Sequence[str]) -> str | None:
    """The known field `key` most likely misspells (ignoring case), if one is close."""
    by_lower = {name.lower(): name for name in known}
    if key.lower() in by_lower:
        return by_lower[key.lower()]
    import difflib  # only for a misspelt key

    near = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.7)
    return by_lower[near[0]] if near else None


def load_istio(body: Mapping[str, Any]) -> Loaded[Istio]:
    """Read an `Istio` resource body (as returned by the API server or a YAML file)."""
    return _load(body, Istio, IstioSpec, "Istio")


def load_remote_istio(body: Mapping[str, Any]) -> Loaded[RemoteIstio]:
    """Read a `RemoteIstio` resource body."""
    return _load(body, RemoteIstio, RemoteIstioSpec, "RemoteIstio")


def join_path(parent: str, key: object) -> str:
    """The path of `key` under `parent`: `a.b`, `a[0]`, or `a["odd key"]`."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    text = str(key)
    if not _IDENTIFIER.match(text):
        return f'{parent}["{text}"]'
    return f"{parent}.{text}" if parent else text


def _load(
    body: Mapping[str, Any], model: type[R], spec_model: type[BaseModel], kind: str
) -> Loaded[R]:
    if not isinstance(body, Mapping):
        raise SpecError("<root>", f"a {kind} resource must be an object")
    unknowns = _Unknowns()
    data: dict[str, Any] = {}
    for key, value in body.items():
        if key in ("apiVersion", "kind", "metadata"):
            data[key] = value
        elif key == "spec":
            data[key] = prune(value, spec_model, "spec", unknowns)
        elif key not in _SILENT_TOP_LEVEL:
            unknowns.add("", key, _unset(_TOP_LEVEL, body))
    if data.get("apiVersion") not in (None, API_VERSION):
        raise SpecError("apiVersion", f"must be {API_VERSION}, not {data['apiVersion']!r}")
    if data.get("kind") not in (None, kind):
        raise SpecError("kind", f"must be {kind}, not {data['kind']!r}")
    try:
        resource = model.model_validate(data)
    except ValidationError as exc:
        raise explained(spec_error(exc, model), unknowns.misspelled) from None
    return Loaded(resource, unknowns.warnings, tuple(unknowns.misspelled))


def _unset(known: Sequence[str], given: Mapping[str, Any]) -> list[str]:
    """The known fields not given: a misspelling is of one of those."""
    return [name for name in known if name not in given]


def _unknown(path: str) -> str:
    return f'unknown field "{path}" ignored'


def _strip(annotation: Any) -> Any:
    """Remove `Annotated[...]` and `| None` from a type, keeping other unions."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _field_types(model: type[BaseModel]) -> dict[str, Any]:
    """The fields of a model by JSON name (alias), with their types."""
    return {(info.alias or name): info.annotation for name, info in model.model_fields.items()}


def prune(value: Any, annotation: Any, path: str, unknowns: _Unknowns) -> Any:
    """A copy of `value` without the object keys that `annotation` does not declare.

    Each dropped key is reported in `unknowns`. Values of the wrong shape are
    returned unchanged, for validation to reject.
    """
    annotation = _strip(annotation)
    if _is_model(annotation):
        if not isinstance(value, Mapping):
            return value
        fields = _field_types(annotation)
        kept: dict[str, Any] = {}
        for key, item in value.items():
            if key in fields:
                kept[key] = prune(item, fields[key], join_path(path, key), unknowns)
            else:
                unknowns.add(path, key, _unset(list(fields), value))
        return kept
    origin = get_origin(annotation)
    if origin is list and isinstance(value, list):
        (item_type,) = get_args(annotation)
        return [
            prune(item, item_type, join_path(path, i), unknowns) for i, item in enumerate(value)
        ]
    if origin is dict and isinstance(value, Mapping):
        _, item_type = get_args(annotation)
        return {k: prune(v, item_type, join_path(path, k), unknowns) for k, v in value.items()}
    return value


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _without_key_markers(loc: tuple[int | str, ...]) -> list[int | str]:
    """The location without the `[key]` pydantic appends to a dict key that failed."""
    return [
        part
        for index, part in enumerate(loc)
        if not (part == "[key]" and index and isinstance(loc[index - 1], str))
    ]


def loc_path(loc: tuple[int | str, ...], model: type[BaseModel]) -> str:
    """Turn a pydantic error location into a field path, dropping union tags."""
    path = ""
    annotation: Any = model
    rest = _without_key_markers(loc)
    while rest:
        annotation = _strip(annotation)
        if _is_union(annotation):
            # pydantic names the union member it tried; that is not a field.
            rest.pop(0)
            annotation = Any
            continue
        part = rest.pop(0)
        path = join_path(path, part)
        if _is_model(annotation):
            annotation = _field_types(annotation).get(str(part), Any)
        elif get_origin(annotation) in (list, dict):
            annotation = get_args(annotation)[-1]
        else:
            annotation = Any
    return path or "<root>"


def spec_error(exc: ValidationError, model: type[BaseModel]) -> SpecError:
    """The `SpecError` for the first error of a failed validation of `model`."""
    first = exc.errors(include_url=False)[0]
    # A check of a whole list may name the item at fault (see `common._unique_ports`).
    loc = (*first["loc"], *first.get("ctx", {}).get("item_loc", ()))
    path = loc_path(loc, model)
    return SpecError(path, _message(first) + _version_hint(path, first))


def _version_hint(path: str, error: ErrorDetails) -> str:
    """`; did you mean 1.3.0?` for a version written `v1.3.0` or with spaces: the version
    gate (`istio_operator.versions`) judges versions, this only reads their shape."""
    given, pattern = error.get("input"), error.get("ctx", {}).get("pattern")
    if error["type"] != "string_pattern_mismatch" or not path.lower().endswith("version"):
        return ""
    if not isinstance(given, str) or not isinstance(pattern, str):
        return ""
    plain = given.strip().removeprefix("v").removeprefix("V")
    return f"; did you mean {plain}?" if re.fullmatch(pattern, plain) else ""


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    context = error.get("ctx", {})
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "Input should be an object"
    if kind == "string_too_short" and context.get("min_length") == 1:
        return "must not be empty"
    message = str(error["msg"])
    if kind in ("literal_error", "string_pattern_mismatch") and "input" in error:
        message = f"{message}, got {_shown(error['input'])}"
    return message


def _shown(value: Any, limit: int = 60) -> str:
    """`repr(value)`, cut when long: a message stays one short line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
