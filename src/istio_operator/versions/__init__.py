"""versions layer: the supported Istio release families, declared as data, and the version gate."""

from istio_operator.versions.families import (
    FAMILIES,
    HUB,
    ISTIO_1_2,
    ISTIO_1_3,
    UNSUPPORTED_VERSION_MESSAGE,
    Family,
    UnsupportedVersionError,
    family_for,
    parse_version,
    supported_ranges,
    unsupported_example,
)

__all__ = [
    "FAMILIES",
    "HUB",
    "ISTIO_1_2",
    "ISTIO_1_3",
    "UNSUPPORTED_VERSION_MESSAGE",
    "Family",
    "UnsupportedVersionError",
    "family_for",
    "parse_version",
    "supported_ranges",
    "unsupported_example",
]
