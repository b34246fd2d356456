"""What a pass takes as the present: the wall clock, or a moment held still.

A plan simulates several passes in a row; a grace period or a migration's delay must not
run out between them only because the simulation took a while, so a plan holds the clock at
the moment it started.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_held: ContextVar[dt.datetime | None] = ContextVar("held_clock", default=None)


def now() -> dt.datetime:
    return _held.get() or dt.datetime.now(dt.UTC)


@contextmanager
def held(moment: dt.datetime | None = None) -> Iterator[dt.datetime]:
    """Within, `now()` is `moment` (the present when it is entered, by default), in this
    task and in the tasks it starts."""
    moment = moment or dt.datetime.now(dt.UTC)
    token = _held.set(moment)
    try:
        yield moment
    finally:
        _held.reset(token)
