"""Giving memory a pass freed back to the system.

A pass holds renders, listings and diffs for a while, then frees them; glibc keeps what
it freed in its heaps, so without this the resident set stays at the peak of the busiest
moment (all remotes rolling out at once) for the life of the process. Elsewhere than on
glibc these are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable

# mallopt's parameter for the number of heaps (M_ARENA_MAX): each thread that allocates
# would otherwise get its own (up to 8 per core), each keeping what it freed.
_M_ARENA_MAX = -8
ARENAS = 2
# A trim walks the heaps: after a pass, at most this often.
TRIM_INTERVAL_S = 5.0


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if libc is None or not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None
    return libc


_LIBC = _libc()


def limit_arenas() -> None:
    """At most `ARENAS` heaps for the process's threads (kopf runs sync handlers in a pool)."""
    if _LIBC is not None:
        _LIBC.mallopt(_M_ARENA_MAX, ARENAS)


class Trimmer:
    """Returns freed heap memory to the system, at most once per `interval`."""

    def __init__(
        self, interval: float = TRIM_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval, self.clock = interval, clock
        self._last = float("-inf")
        self.trims = 0

    def after_pass(self) -> None:
        now = self.clock()
        if now - self._last < self.interval:
            return
        self._last = now
        self.trims += 1
        if _LIBC is not None:
            _LIBC.malloc_trim(0)
