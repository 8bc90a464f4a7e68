"""Timing helper shared by the benchmark scripts (no lplabel import: scripts that time another
revision put it on the path themselves)."""

from __future__ import annotations

import time


def best(fn, repeat: int) -> float:
    """The fastest of ``repeat`` calls of ``fn()``, in seconds: the least disturbed by other work
    on a shared machine."""
    t = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t
