"""Ablation and convergence measurements: an arm's seeds against the baseline's seeds.

Pure functions used by compare.py. Conventions (claims.yaml, docs/statistics.md):
- error effects are arm minus baseline, in percentage points: the error the baseline's design
  choice saves (positive = the choice lowers the error, the sign of the paper's `*_reduction`);
- arms that share the baseline's seeds are paired by seed (same data order and augmentation
  draws), otherwise the groups are independent (Welch);
- convergence: training steps until the training top-1 error falls to a target, read at step
  resolution from the train stage's window series (the loop's reads every 20 steps), smoothed
  over a few windows and interpolated linearly where it crosses the target. A seed that never
  gets there is censored at the steps it ran, never dropped. Ratios are arm / baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from harness.analysis import stats

# Windows averaged (image-weighted) before looking for the crossing: 5 windows of 20 steps are
# 100 steps, enough images that one noisy window does not cross by chance, few enough that
# the crossing stays at step resolution (docs/statistics.md, "convergence").
SMOOTH_WINDOWS = 5


@dataclass(frozen=True)
class Series:
    """Training top-1 error per window of steps: window i ends at global step `step[i]`, holds
    `images[i]` images of which `wrong[i]` were misclassified (augmented batches, dropout on).
    resolution: typical steps per window; smooth: windows averaged before the crossing."""

    step: np.ndarray
    images: np.ndarray
    wrong: np.ndarray
    resolution: float
    smooth: int = SMOOTH_WINDOWS

    @classmethod
    def from_windows(cls, step: Sequence[float], images: Sequence[float], wrong: Sequence[float]) -> "Series":
        s = np.asarray(step, float)
        if s.size == 0:
            raise ValueError("a step series needs at least one window")
        if np.any(np.diff(s) <= 0):
            raise ValueError("window steps must increase")
        res = float(np.median(np.diff(np.r_[0.0, s])))
        return cls(s, np.asarray(images, float), np.asarray(wrong, float), res)

    @classmethod
    def from_epochs(cls, train_error: Sequence[float], steps_per_epoch: int) -> "Series":
        """Epoch resolution (no step file): one window per epoch, no smoothing."""
        err = np.asarray(train_error, float)
        steps = steps_per_epoch * np.arange(1, err.size + 1, dtype=float)
        return cls(steps, np.ones_like(err), err / 100.0, float(steps_per_epoch), smooth=1)

    @property
    def steps_run(self) -> float:
        return float(self.step[-1])


def crossing(series: Series, target: float) -> tuple[float, bool]:
    """(steps to `target` % training error, censored): linear interpolation of the smoothed
    error between the last point above the target and the first at or below it. Each smoothed
    point is the image-weighted error of the last `smooth` windows, placed at the middle of the
    steps they span. Never reached: (steps run, True), a lower bound of the true value."""
    ends = series.step
    starts = np.r_[0.0, ends[:-1]]
    cw, ci = np.cumsum(series.wrong), np.cumsum(series.images)
    prev = None
    for j in range(ends.size):
        a = max(0, j - series.smooth + 1)
        images = ci[j] - (ci[a - 1] if a else 0.0)
        err = 100.0 * (cw[j] - (cw[a - 1] if a else 0.0)) / max(images, 1e-12)
        x = (starts[a] + ends[j]) / 2.0
        if err <= target:
            if prev is None:
                return float(x), False
            (x0, e0) = prev
            return float(x0 + (e0 - target) / (e0 - err) * (x - x0)), False
        prev = (x, err)
    return series.steps_run, True


def group(values: Sequence[float]) -> dict:
    arr = np.asarray(values, float)
    return {"mean": float(arr.mean()), "sd": float(arr.std(ddof=1)) if arr.size > 1 else None,
            "n": int(arr.size), "values": [float(v) for v in arr]}


def pairing(baseline_seeds: Sequence[int], arm_seeds: Sequence[int]) -> list[int] | None:
    """The seeds to pair on: the arm's seeds when every one of them is a baseline seed and there
    are at least 2 of them (the baseline's other seeds are then left out); else None (Welch)."""
    arm, base = list(arm_seeds), set(baseline_seeds)
    if len(arm) >= 2 and len(set(arm)) == len(arm) and set(arm) <= base:
        return sorted(arm)
    return None


def error_effect(baseline: Mapping[int, float], arm: Mapping[int, float], conf: float, n_boot: int,
                 rng_seed: int = 0) -> dict:
    """arm minus baseline (per seed dicts): paired t when the seeds pair (pairing), else Welch;
    a percentile bootstrap interval and Mann-Whitney p as checks that assume no normality."""
    seeds = pairing(list(baseline), list(arm))
    if seeds is not None:
        b, a = [baseline[s] for s in seeds], [arm[s] for s in seeds]
        est = stats.paired_effect(b, a)
    else:
        b, a = list(baseline.values()), list(arm.values())
        est = stats.welch_effect(b, a)
    lo, hi = stats.interval(est, conf)
    p = stats.two_sided_p(est)
    boot_lo, boot_hi = stats.bootstrap_difference_interval(list(arm.values()), list(baseline.values()), n_boot, conf,
                                                           rng_seed)
    mw = stats.mann_whitney(list(arm.values()), list(baseline.values()))
    return {"baseline": group(list(baseline.values())), "arm": group(list(arm.values())),
            "paired": seeds is not None, "paired_seeds": seeds, "diff": est.value, "lo": lo, "hi": hi,
            "se": est.se, "df": None if math.isinf(est.df) else est.df, "p_value": p, "method": est.method,
            "boot_lo": boot_lo, "boot_hi": boot_hi, "mann_whitney_p": mw["p"]}


def iterations(series: Mapping[int, Series], target: float) -> dict[int, tuple[float, bool]]:
    """Per seed: (steps to target, censored)."""
    return {s: crossing(x, target) for s, x in series.items()}


def convergence_effect(baseline: Mapping[int, Series], arm: Mapping[int, Series], target: float,
                       conf: float) -> dict:
    """Steps to `target` % training error per seed, and the ratio arm / baseline.

    Geometric-mean ratio with a t interval on the log scale (paired by seed when the seeds
    pair), the logging resolution as a variance floor (stats.log_ratio). Censored seeds enter
    at the steps they ran and are listed; the ratio is then only a bound (`bound`).
    """
    it_b, it_a = iterations(baseline, target), iterations(arm, target)
    out = {"target_train_error": target, "baseline_iterations": {s: v for s, (v, _) in it_b.items()},
           "arm_iterations": {s: v for s, (v, _) in it_a.items()},
           "not_reached": {"baseline": sorted(s for s, (_, c) in it_b.items() if c),
                           "arm": sorted(s for s, (_, c) in it_a.items() if c)},
           "resolution_steps": max([x.resolution for x in list(baseline.values()) + list(arm.values())] or [0.0])}
    if not it_b or not it_a:
        return {**out, "tested": False, "reason": "no training curves for one of the groups"}
    seeds = pairing(list(it_b), list(it_a))
    b = [it_b[s][0] for s in seeds] if seeds else [v for v, _ in it_b.values()]
    a = [it_a[s][0] for s in seeds] if seeds else [v for v, _ in it_a.values()]
    est = stats.log_ratio(b, a, seeds is not None, out["resolution_steps"])
    lo, hi = stats.interval(est, conf)
    cb, ca = bool(out["not_reached"]["baseline"]), bool(out["not_reached"]["arm"])
    return {**out, "tested": True, "paired": seeds is not None, "ratio": math.exp(est.value),
            "ratio_lo": None if lo is None else math.exp(lo), "ratio_hi": None if hi is None else math.exp(hi),
            "bound": "both" if cb and ca else "upper" if cb else "lower" if ca else None, "method": est.method}
