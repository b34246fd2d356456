"""The istiod-era chart catalogue: Istio's own Helm charts, one directory per version."""

from istio_operator.charts.catalogue import (
    CHARTS,
    Catalogue,
    CatalogueError,
    ChartVersion,
    default_catalogue_dir,
)

__all__ = ["CHARTS", "Catalogue", "CatalogueError", "ChartVersion", "default_catalogue_dir"]
