"""Istio's own CustomResourceDefinitions (the same 23 in the 1.2 and 1.3 families).

They carry no owner labels: deleting the Istio resource must never delete
them, or every VirtualService and DestinationRule in the cluster would go too.
"""

from __future__ import annotations

from dataclasses import dataclass

from istio_operator.render import data
from istio_operator.render.builders import Manifest, metadata
from istio_operator.render.context import Context
from istio_operator.render.objects import DesiredObject
from istio_operator.render.phases import Phase


@dataclass(frozen=True)
class CRD:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.plural}.{self.group}"


def _declared() -> tuple[CRD, ...]:
    """The CRDs of `templates/crds.yaml`: per group, `Kind plural [cluster] [short:name...]`."""
    crds = []
    for group in data.load_yaml("crds.yaml"):
        for line in group["kinds"]:
            kind, plural, *flags = line.split()
            crds.append(
                CRD(
                    group["group"],
                    group["version"],
                    kind,
                    plural,
                    namespaced="cluster" not in flags,
                    short_names=tuple(f.removeprefix("short:") for f in flags if f != "cluster"),
                )
            )
    return tuple(crds)


ISTIO_CRDS: tuple[CRD, ...] = _declared()


def crd_manifest(crd: CRD) -> Manifest:
    group_category = crd.group.split(".")[0] + "-istio-io"
    names: Manifest = {
        "kind": crd.kind,
        "listKind": f"{crd.kind}List",
        "plural": crd.plural,
        "singular": crd.kind.lower(),
        "categories": ["istio-io", group_category],
    }
    if crd.short_names:
        names["shortNames"] = list(crd.short_names)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata(crd.name, labels={"app": "istio", "istio": crd.group.split(".")[0]}),
        "spec": {
            "group": crd.group,
            "names": names,
            "scope": "Namespaced" if crd.namespaced else "Cluster",
            "versions": [
                {
                    "name": crd.version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def render(ctx: Context) -> list[DesiredObject]:
    return ctx.unowned(Phase.CRDS, (crd_manifest(crd) for crd in ISTIO_CRDS))
