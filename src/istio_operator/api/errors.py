"""Errors raised while reading a custom resource."""

from __future__ import annotations


class SpecError(ValueError):
    """A resource that does not match its schema.

    `path` names the offending field, dotted from the resource root with list
    indices in brackets (`spec.gateways.ingress.ports[0].port`); `message` says
    what is wrong with it. `str(err)` is the single line `"<path>: <message>"`.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message

    def __reduce__(self) -> tuple[type[SpecError], tuple[str, str]]:
        return (type(self), (self.path, self.message))
