"""Timing helpers shared by the benchmarks: paired rounds and robust summaries (stdlib only)."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call (CPU ops are synchronous, so no device sync is needed)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def paired_rounds(a: Callable[[], float], b: Callable[[], float], rounds: int) -> tuple[list[float], list[float]]:
    """Alternate a and b (ABBA...) so that drift in machine load hits both alike.

    Each callable returns its own measured seconds. Returns the per-round seconds of each.
    """
    ta, tb = [], []
    for r in range(rounds):
        if r % 2 == 0:
            ta.append(a())
            tb.append(b())
        else:
            tb.append(b())
            ta.append(a())
    return ta, tb


def summary(values: list[float]) -> dict:
    """Median (the reported figure), min, max and n of per-round values."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}
