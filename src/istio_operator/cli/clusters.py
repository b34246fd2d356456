"""Clients for the commands that read a mesh: the primary and its remotes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from istio_operator.api.crd import generate_crds
from istio_operator.api.keys import ObjectKey
from istio_operator.kube.client import ApiRefusedError, Cluster, KubeconfigError, config_from_file
from istio_operator.kube.remotes import RemoteClients
from istio_operator.kube.resources import register_crds


def add_mesh_arguments(parser: argparse.ArgumentParser) -> None:
    """The options naming a mesh: the primary's kubeconfig and the resources' namespace."""
    parser.add_argument(
        "--kubeconfig", default=None, help="the primary cluster (default: KUBECONFIG)"
    )
    parser.add_argument(
        "-n",
        "--namespace",
        default="istio-system",
        help="namespace of the Istio and RemoteIstio resources (default istio-system)",
    )


@asynccontextmanager
async def mesh_clients(kubeconfig: str | None) -> AsyncIterator[tuple[Cluster, RemoteClients]]:
    """The primary's client (the operator's own kinds known) and a registry for remotes,
    both closed afterwards; KubeconfigError when the primary's kubeconfig cannot be read."""
    try:
        config = config_from_file(kubeconfig)
    except (KubeconfigError, OSError) as error:
        raise KubeconfigError(f"kubeconfig: {error}") from None
    register_crds(generate_crds())
    primary = Cluster.from_config("primary", config)
    clients = RemoteClients()
    try:
        yield primary, clients
    finally:
        await clients.close()
        await primary.close()


def report(error: Exception) -> int:
    print(f"error: {error}", file=sys.stderr)
    return 1


def crd_keys() -> list[ObjectKey]:
    """The operator's own CRDs (Istio, RemoteIstio), as objects to look for."""
    return [
        ObjectKey(
            "apiextensions.k8s.io/v1", "CustomResourceDefinition", "", crd["metadata"]["name"]
        )
        for crd in generate_crds()
    ]


def crds_missing_message(server: str, missing: Sequence[str]) -> str:
    """What to do when the operator's CRDs are absent: one line naming the cluster."""
    return (
        f"the Istio CRDs are not installed on {server or 'the cluster'} "
        f"({', '.join(missing)}): run `istio-operator crds | kubectl apply --server-side -f -`"
    )


async def missing_crds(cluster: Cluster) -> list[str]:
    """The operator's CRDs the cluster lacks. One that cannot be read (a reader without
    the right to get CRDs) is not reported missing: only an answer of absence is."""
    missing: list[str] = []
    for key in crd_keys():
        try:
            if await cluster.get(key) is None:
                missing.append(key.name)
        except ApiRefusedError:
            continue
    return missing
