"""Giving memory a pass freed back to the system.

A pass holds renders, listings and diffs for a while, then frees them; glibc keeps what
it freed in its heaps (see `kube.memory`), so after passes it is given back.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from istio_operator.kube.memory import release_free_memory

# A trim walks the heaps: after a pass, at most this often.
TRIM_INTERVAL_S = 5.0


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
        release_free_memory()
