"""`istio-operator render`: print the objects the operator would apply, as a YAML stream.

Nothing is read from a cluster. For `--remote`, what the remote would get
from the primary cluster is stood in for (`placeholder_facts`): the
mirrored services take their ports from the primary's rendered Services and
have no pod IPs beyond the RemoteIstio's own `podIPs`; with meshExpansion their
endpoint is the documentation address 192.0.2.1 as the primary ingress
gateway; the `cacerts` Secret holds empty values instead of the primary's CA.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from istio_operator.api.errors import SpecError
from istio_operator.api.istio import Istio
from istio_operator.api.parse import Misspelling, explained, load_istio, load_remote_istio
from istio_operator.api.remoteistio import RemoteIstio
from istio_operator.plan.resolve import image_warnings
from istio_operator.render import (
    DesiredObject,
    PortFact,
    PrimaryFacts,
    render_primary,
    render_remote,
    yaml_stream,
)
from istio_operator.versions import UnsupportedVersionError
from istio_operator.versions.istiod import select_family

if TYPE_CHECKING:
    from istio_operator.charts import ChartVersion

PLACEHOLDER_GATEWAY_ADDRESS = "192.0.2.1"
PLACEHOLDER_CA_KEYS = ("ca-cert.pem", "ca-key.pem")


class InputError(Exception):
    """Input the command cannot use, reported as one line."""


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "render",
        help="print the objects an Istio (or RemoteIstio) resource renders to",
        description="Print, as a YAML stream, every object the operator would apply for an "
        "Istio resource on the primary cluster or, with --remote, on one remote cluster. "
        "Values only a cluster knows (the primary's CA, pod IPs, gateway addresses) are "
        "placeholders.",
    )
    parser.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=True,
        type=Path,
        metavar="FILE",
        help="a YAML file with the Istio resource and any RemoteIstio resources (repeatable)",
    )
    parser.add_argument(
        "--remote",
        metavar="NAME",
        help="render the remote cluster of the RemoteIstio named NAME instead of the primary",
    )
    parser.set_defaults(handler=run)


def _documents(paths: Sequence[Path]) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
            documents = list(yaml.safe_load_all(text))
        except OSError as error:
            raise InputError(f"{path}: {error.strerror or error}") from error
        except yaml.YAMLError as error:
            raise InputError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from error
        for document in documents:
            if document is None:
                continue
            if not isinstance(document, dict):
                raise InputError(f"{path}: every document must be a mapping")
            yield path, document


def _load(paths: Sequence[Path], misspelled: list[Misspelling]) -> tuple[Istio, list[RemoteIstio]]:
    """The resources in `paths`; their likely misspellings are added to `misspelled`."""
    istios: list[Istio] = []
    remotes: list[RemoteIstio] = []
    for path, document in _documents(paths):
        kind = document.get("kind")
        if kind == "Istio":
            loaded_istio = load_istio(document)
            _warn(path, loaded_istio.warnings)
            istios.append(loaded_istio.resource)
            misspelled += loaded_istio.misspelled
        elif kind == "RemoteIstio":
            loaded_remote = load_remote_istio(document)
            _warn(path, loaded_remote.warnings)
            remotes.append(loaded_remote.resource)
            misspelled += loaded_remote.misspelled
        else:
            raise InputError(f"{path}: kind {kind!r} is neither Istio nor RemoteIstio")
    if len(istios) != 1:
        raise InputError(f"exactly one Istio resource is needed, found {len(istios)}")
    return istios[0], remotes


def _warn(path: Path, warnings: Sequence[str]) -> None:
    for warning in warnings:
        print(f"warning: {path}: {warning}", file=sys.stderr)


def placeholder_facts(istio: Istio) -> PrimaryFacts:
    """Stand-ins for what would be read from the primary cluster (see the module docstring)."""
    ports: dict[str, list[PortFact]] = {}
    for obj in render_primary(istio):
        if obj.kind == "Service":
            ports[obj.name] = [
                PortFact(port.get("name"), port["port"], port.get("protocol", "TCP"))
                for port in obj.manifest["spec"]["ports"]
            ]
    return PrimaryFacts(
        ca_secret_data=dict.fromkeys(PLACEHOLDER_CA_KEYS, ""),
        ingress_gateway_addresses=(PLACEHOLDER_GATEWAY_ADDRESS,),
        service_ports=ports,
    )


def render_objects(paths: Sequence[Path], remote_name: str | None) -> list[DesiredObject]:
    misspelled: list[Misspelling] = []
    try:
        return _render(paths, remote_name, misspelled)
    except SpecError as error:
        raise explained(error, misspelled) from None


def _render(
    paths: Sequence[Path], remote_name: str | None, misspelled: list[Misspelling]
) -> list[DesiredObject]:
    istio, remotes = _load(paths, misspelled)
    for warning in image_warnings(istio):
        print(f"warning: {warning}", file=sys.stderr)
    family = select_family(istio.spec.version)
    if family.charts is not None:
        return _render_istiod(istio, remotes, remote_name, family.charts)
    if remote_name is None:
        return render_primary(istio)
    return render_remote(istio, _named(remotes, remote_name), placeholder_facts(istio))


def _named(remotes: Sequence[RemoteIstio], name: str) -> RemoteIstio:
    for remote in remotes:
        if remote.metadata.name == name:
            return remote
    raise InputError(f"no RemoteIstio named {name!r} in the given files")


def _render_istiod(
    istio: Istio, remotes: Sequence[RemoteIstio], remote_name: str | None, charts: ChartVersion
) -> list[DesiredObject]:
    """The primary with its remotes (the east-west gateway and its routes), or one remote:
    the `remote` profile pointed at a placeholder east-west address. The remote's secret on
    the primary holds a token only the remote cluster can give, so it is not rendered.
    Its modules are imported here: a classic render need not load them."""
    from istio_operator.charts import HelmError, helm_binary
    from istio_operator.plan.istiod import resolve_istiod, resolve_istiod_remote, with_remotes
    from istio_operator.render.istiod import render_istiod

    if remote_name is not None:
        remote = _named(remotes, remote_name)
        plan = resolve_istiod_remote(istio, remote, charts, PLACEHOLDER_GATEWAY_ADDRESS)
    else:
        plan = resolve_istiod(istio, charts)
        if remotes:
            networks = {r.metadata.name: r.spec.network or "" for r in remotes}
            plan = with_remotes(plan, networks, ())
    try:
        return render_istiod(plan, charts, helm_binary())
    except HelmError as error:
        raise InputError(str(error)) from error


def run(args: argparse.Namespace) -> int:
    try:
        objects = render_objects(args.files, args.remote)
    except (SpecError, UnsupportedVersionError, InputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml_stream(objects))
    return 0
