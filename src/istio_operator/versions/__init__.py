"""versions layer: supported Istio release families, default images, the version gate."""

from istio_operator.versions.families import (
    FAMILIES,
    ISTIO_1_2,
    ISTIO_1_3,
    UNSUPPORTED_VERSION_MESSAGE,
    Family,
    UnsupportedVersionError,
    family_for,
    parse_version,
    supported_ranges,
)
from istio_operator.versions.images import (
    HUB,
    effective_remote_spec,
    effective_spec,
    image,
    remote_istio_spec,
    resolve_images,
)

__all__ = [
    "FAMILIES",
    "HUB",
    "ISTIO_1_2",
    "ISTIO_1_3",
    "UNSUPPORTED_VERSION_MESSAGE",
    "Family",
    "UnsupportedVersionError",
    "effective_remote_spec",
    "effective_spec",
    "family_for",
    "image",
    "parse_version",
    "remote_istio_spec",
    "resolve_images",
    "supported_ranges",
]
