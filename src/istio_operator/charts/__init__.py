"""The istiod-era chart catalogue: Istio's own Helm charts, one directory per version."""

from istio_operator.charts.catalogue import (
    CHARTS,
    Catalogue,
    CatalogueError,
    ChartVersion,
    default_catalogue_dir,
)
from istio_operator.charts.helm import HelmError, helm_binary, template

__all__ = [
    "CHARTS",
    "Catalogue",
    "CatalogueError",
    "ChartVersion",
    "HelmError",
    "default_catalogue_dir",
    "helm_binary",
    "template",
]
