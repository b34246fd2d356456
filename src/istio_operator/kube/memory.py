"""The process's C heap: fewer heaps, and free pages given back to the system.

glibc keeps what the process freed in its heaps: without a trim the resident set stays at
the peak of the busiest moment (every remote rolling out at once, a hundred connections'
TLS buffers) for the life of the process. Elsewhere than on glibc these are no-ops.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ctypes

# mallopt's parameter for the number of heaps (M_ARENA_MAX): each thread that allocates
# would otherwise get its own (up to 8 per core), each keeping what it freed.
_M_ARENA_MAX = -8
ARENAS = 2


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, if glibc; looked for at the first use (the search runs `ldconfig`),
    not by every command that imports this layer."""
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if libc is None or not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None
    return libc


def on_glibc() -> bool:
    return _libc() is not None


def limit_arenas() -> None:
    """At most `ARENAS` heaps for the process's threads (kopf runs sync handlers in a pool)."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, ARENAS)


def release_free_memory() -> None:
    """Gives the heaps' free pages back to the system (a walk of the heaps: not after
    every small free)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
