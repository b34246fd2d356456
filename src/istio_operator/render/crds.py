"""Istio's own CustomResourceDefinitions (the same 23 in the 1.2 and 1.3 families).

They carry no owner labels: deleting the Istio resource must never delete
them, or every VirtualService and DestinationRule in the cluster would go too.
"""

from __future__ import annotations

from dataclasses import dataclass

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


_NETWORKING = ("networking.istio.io", "v1alpha3")
_AUTHENTICATION = ("authentication.istio.io", "v1alpha1")
_CONFIG = ("config.istio.io", "v1alpha2")
_RBAC = ("rbac.istio.io", "v1alpha1")

ISTIO_CRDS: tuple[CRD, ...] = (
    CRD(*_NETWORKING, "VirtualService", "virtualservices", short_names=("vs",)),
    CRD(*_NETWORKING, "DestinationRule", "destinationrules", short_names=("dr",)),
    CRD(*_NETWORKING, "ServiceEntry", "serviceentries", short_names=("se",)),
    CRD(*_NETWORKING, "Gateway", "gateways", short_names=("gw",)),
    CRD(*_NETWORKING, "EnvoyFilter", "envoyfilters"),
    CRD(*_NETWORKING, "Sidecar", "sidecars"),
    CRD(*_AUTHENTICATION, "Policy", "policies"),
    CRD(*_AUTHENTICATION, "MeshPolicy", "meshpolicies", namespaced=False),
    CRD(*_CONFIG, "HTTPAPISpecBinding", "httpapispecbindings"),
    CRD(*_CONFIG, "HTTPAPISpec", "httpapispecs"),
    CRD(*_CONFIG, "QuotaSpecBinding", "quotaspecbindings"),
    CRD(*_CONFIG, "QuotaSpec", "quotaspecs"),
    # Mixer's kinds are lower case, as Istio declares them.
    CRD(*_CONFIG, "rule", "rules"),
    CRD(*_CONFIG, "attributemanifest", "attributemanifests"),
    CRD(*_CONFIG, "adapter", "adapters"),
    CRD(*_CONFIG, "instance", "instances"),
    CRD(*_CONFIG, "template", "templates"),
    CRD(*_CONFIG, "handler", "handlers"),
    CRD(*_RBAC, "ClusterRbacConfig", "clusterrbacconfigs", namespaced=False),
    CRD(*_RBAC, "RbacConfig", "rbacconfigs"),
    CRD(*_RBAC, "ServiceRole", "serviceroles"),
    CRD(*_RBAC, "ServiceRoleBinding", "servicerolebindings"),
    CRD(*_RBAC, "AuthorizationPolicy", "authorizationpolicies"),
)


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
