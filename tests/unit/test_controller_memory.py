"""Freed memory given back to the system: at most once per interval, after passes."""

from __future__ import annotations

from istio_operator.controller.memory import Trimmer
from istio_operator.kube.memory import limit_arenas, on_glibc


def test_a_trim_follows_a_pass_at_most_once_per_interval() -> None:
    now = [100.0]
    trimmer = Trimmer(interval=5.0, clock=lambda: now[0])
    trimmer.after_pass()
    trimmer.after_pass()
    assert trimmer.trims == 1, "a burst of passes trims once"
    now[0] += 4.9
    trimmer.after_pass()
    assert trimmer.trims == 1
    now[0] += 0.2
    trimmer.after_pass()
    assert trimmer.trims == 2


def test_glibc_is_found_here() -> None:
    # The operator's image and this machine run glibc: without it the trim is a no-op.
    assert on_glibc()
    limit_arenas()
