"""Ablation and convergence effects: an arm's seeds against the baseline's seeds.

Pure functions used by compare.py. Conventions (claims.yaml):
- error effects are arm minus baseline, in percentage points: the error the baseline's design
  choice saves (positive = the choice lowers error, the sign of the paper's `*_reduction`);
- convergence: training iterations until the training top-1 error first falls to a target,
  per seed (MLPerf's "reference convergence points" style, epoch resolution), compared with
  stats.convergence_test; the claimed value is iterations(slower group) / iterations(faster).
The two groups are independent seed samples (Welch, PAPER.md 5); with paired seeds a paired
test would be stronger, but the baseline and arm seeds need not coincide.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from harness.analysis import stats

# stats.verdict speaks of errors ("better" = lower). For an effect size the same outcomes read
# "the effect is smaller / larger than the paper's, beyond the margin".
_EFFECT_WORDS = {"better": "smaller", "worse": "larger"}


def group(values: Sequence[float]) -> dict:
    arr = np.asarray(values, float)
    return {"mean": float(arr.mean()), "sd": float(arr.std(ddof=1)) if arr.size > 1 else None,
            "n": int(arr.size), "values": [float(v) for v in arr]}


def error_effect(baseline: Sequence[float], arm: Sequence[float], conf: float, n_boot: int,
                 rng_seed: int = 0) -> dict:
    """arm minus baseline: Welch t interval and p, percentile bootstrap interval, Mann-Whitney p."""
    w = stats.welch_difference(arm, baseline, conf)
    boot_lo, boot_hi = stats.bootstrap_difference_interval(arm, baseline, n_boot, conf, rng_seed)
    mw = stats.mann_whitney(arm, baseline)
    return {"baseline": group(baseline), "arm": group(arm), "diff": w["diff"], "lo": w["lo"], "hi": w["hi"],
            "se": w["se"], "df": w["df"], "p_value": w["p"], "boot_lo": boot_lo, "boot_hi": boot_hi,
            "mann_whitney_p": mw["p"]}


def effect_verdict(effect: dict, paper_value: float, margin_pp: float, alpha: float) -> dict:
    """Verdict of a measured effect against the paper's: reproduced / smaller / larger / inconclusive.

    The Welch interval of arm minus baseline against the paper's reduction, with the same
    margin and TOST as the headline claims (stats.verdict); the paper's own sampling noise is
    not included (it prints no per-group sizes for its ablations).
    """
    tost = stats.tost_from_estimate(effect["diff"] - paper_value, effect["se"], effect["df"], margin_pp)
    word = stats.verdict(effect["diff"], effect["lo"], effect["hi"], paper_value, margin_pp, tost["p"], alpha)
    return {"tost_p": tost["p"], "verdict": _EFFECT_WORDS.get(word, word)}


def iterations_to_target(train_error: Sequence[float], target: float, steps_per_epoch: int) -> int | None:
    """Iterations until the per-epoch training error first is <= target (None: never reached).

    train_error[i] is the error over epoch i+1; epoch resolution, as MLPerf counts epochs.
    """
    for i, err in enumerate(train_error):
        if float(err) <= target:
            return (i + 1) * steps_per_epoch
    return None


def _centre_rows(x: np.ndarray) -> np.ndarray:
    """Row-wise olympic mean (drop best and worst) with >= 3 columns, plain mean otherwise."""
    return np.sort(x, axis=1)[:, 1:-1].mean(1) if x.shape[1] >= 3 else x.mean(1)


def ratio_interval(slow: Sequence[float], fast: Sequence[float], n_boot: int, conf: float,
                   rng_seed: int = 0) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of centre(slow) / centre(fast), resampling each group's seeds.

    centre: the olympic mean with >= 3 seeds, else the mean (as stats.convergence_test).
    """
    xs, xf = np.asarray(slow, float), np.asarray(fast, float)
    if xs.size < 2 or xf.size < 2:
        return None, None
    rng = np.random.default_rng(rng_seed)
    ms = _centre_rows(xs[rng.integers(0, xs.size, (n_boot, xs.size))])
    mf = _centre_rows(xf[rng.integers(0, xf.size, (n_boot, xf.size))])
    tail = 100.0 * (1.0 - conf) / 2.0
    lo, hi = np.percentile(ms / mf, [tail, 100.0 - tail])
    return float(lo), float(hi)


def convergence_effect(baseline_curves: Mapping[int, Sequence[float]], arm_curves: Mapping[int, Sequence[float]],
                       target: float, steps_baseline: int, steps_arm: int, faster: str, alpha: float,
                       conf: float, n_boot: int, rng_seed: int = 0) -> dict:
    """Iterations to `target` % training error per seed; is the `faster` group faster, by how much?

    faster: "baseline" or "arm", the group expected to converge faster (the claim's; for an
    arm with no convergence claim, "baseline"). Seeds that never reach the target are
    listed and left out (MLPerf counts such a run as failed); with none left in a group
    there is no test.
    """
    it_b = {s: iterations_to_target(c, target, steps_baseline) for s, c in baseline_curves.items()}
    it_a = {s: iterations_to_target(c, target, steps_arm) for s, c in arm_curves.items()}
    out = {"target_train_error": target, "faster_expected": faster,
           "baseline_iterations": it_b, "arm_iterations": it_a,
           "steps_per_epoch": {"baseline": steps_baseline, "arm": steps_arm},
           "not_reached": {"baseline": sorted(s for s, v in it_b.items() if v is None),
                           "arm": sorted(s for s, v in it_a.items() if v is None)}}
    reached_b = [v for v in it_b.values() if v is not None]
    reached_a = [v for v in it_a.values() if v is not None]
    missing = [name for name, r in (("baseline", reached_b), ("arm", reached_a)) if not r]
    if missing:
        epochs = max((len(c) for c in list(baseline_curves.values()) + list(arm_curves.values())), default=0)
        return {**out, "tested": False,
                "reason": f"no seed of the {' and '.join(missing)} group reached {target:g}% training "
                          f"error within {epochs} epochs"}
    fast, slow = (reached_b, reached_a) if faster == "baseline" else (reached_a, reached_b)
    test = stats.convergence_test(fast, slow, alpha)
    lo, hi = ratio_interval(slow, fast, n_boot, conf, rng_seed)
    ratio = test["reference_mean"] / test["ours_mean"] if test["ours_mean"] else None
    return {**out, "tested": True, "faster_mean_iterations": test["ours_mean"],
            "slower_mean_iterations": test["reference_mean"], "ratio": ratio, "ratio_lo": lo, "ratio_hi": hi,
            "t": test["t"], "p_faster": test["p_faster"], "faster_significant": test["faster"],
            "agrees_with_paper_direction": None if ratio is None else ratio > 1.0,
            "method_note": "ratio = olympic (>= 3 seeds) or plain mean iterations of the slower group / the "
                           "faster group; one-sided Welch t on iterations (MLPerf style); percentile "
                           "bootstrap interval of the same ratio"}


def convergence_verdict(conv: dict, paper_value: float, alpha: float) -> str:
    """reproduced: the claimed-faster group is significantly faster and the claimed ratio lies in
    the ratio interval; smaller / larger: the interval lies below / above the claimed ratio."""
    lo, hi = conv.get("ratio_lo"), conv.get("ratio_hi")
    if lo is None or hi is None:
        return "inconclusive"
    if hi < paper_value:
        return "smaller"
    if lo > paper_value:
        return "larger"
    p = conv.get("p_faster")
    return "reproduced" if p is not None and p < alpha else "inconclusive"
