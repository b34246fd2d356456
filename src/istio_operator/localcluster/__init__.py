"""Real local Kubernetes control planes (kwokctl + binaries built from Go modules)."""

from istio_operator.localcluster.binaries import Binaries, BinariesMissingError, find_binaries
from istio_operator.localcluster.cluster import LocalCluster, LocalClusterError, Workspace
from istio_operator.localcluster.config import Ports

__all__ = [
    "Binaries",
    "BinariesMissingError",
    "LocalCluster",
    "LocalClusterError",
    "Ports",
    "Workspace",
    "find_binaries",
]
