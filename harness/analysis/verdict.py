"""Verdicts: what the numbers measured for a claim say about it, in one of four labels.

One code path for the compare stage and `harness verdict` (results trained anywhere): the
caller gathers the per-seed numbers into an Evidence, `assess` turns claim + evidence into a
row (estimate, intervals, the two p-values), and `finalize` applies the multiplicity
correction to all rows decided together and gives each its label and, when inconclusive, the
seeds that would settle it. The rules (docs/statistics.md):

- reproduced: the (1 - 2 alpha) interval of the quantity lies inside the claim's band (TOST);
- not reproduced: the (1 - alpha) interval lies entirely outside the band: the data exclude
  the claim at the declared level (not a failed equivalence test);
- inconclusive: neither, with the seeds needed (noncentral t at the upper 80% confidence limit
  of the spread); values with no spread give no p-value and are inconclusive;
- not tested: this run cannot measure the claim, with the reason.
The paper's numbers are one run each (per arm for a printed effect): their seed noise, estimated
from our seeds' spread, is part of every interval. Every p assumes n fixed in advance.
Holm's step-down runs separately over the "reproduced" and the "not reproduced" p-values of
the claims decided statistically in one report; raw and adjusted p are both kept.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

from harness.analysis import stats
from harness.analysis.claims import Claim, requirements

__all__ = ["LABELS", "Settings", "Evidence", "EvidenceError", "Assessment", "claim_base", "not_tested",
           "assess", "finalize", "counts", "quantity"]

LABELS = ("reproduced", "not reproduced", "inconclusive", "not tested")
N_MAX = 100  # the largest design `seeds needed` searches (more seeds than this is no plan)
# `seeds needed` plans at this one-sided upper confidence limit of the spread, not at the
# observed sd (plug-in planning from 2-5 seeds kept its promised power 0.18-1.0 of the
# time); "no number suffices" is said only when even the lower limit cannot reach the band.
PLAN_SIGMA_LEVEL = 0.8
# Every p-value here is for a number of seeds fixed before looking: testing again after each
# added seed until a verdict appears raised false "reproduced" from 0.05 to 0.08-0.12
# (benchmarks/verdict_sim.py, "sequential"). Shown with every statistical verdict.
FIXED_N = ("the verdict assumes the number of seeds was fixed before the results were seen; "
           "adding seeds until a verdict appears inflates its error rates")
NO_SPREAD = ("no spread: the values are identical (to their last digit, or at float level), which is no "
             "evidence of a small seed noise (one run given twice, or numbers rounded too coarsely); "
             "give more decimals or more seeds")
NO_SPREAD_PLAN = "the values show no spread (see the note): give more decimals or more seeds"


@dataclass(frozen=True)
class Settings:
    """Statistical settings, declared before looking at results (params `compare`).

    alpha: the decision level; power: what `seeds needed` aims for; multiplicity: holm | none;
    conf: level of the descriptive intervals (per run, across seeds); n_boot, rng_seed: the
    bootstrap; reference_margin_pp: equivalence margin against the reference runs.
    """

    conf: float = 0.95
    alpha: float = 0.05
    power: float = 0.8
    multiplicity: str = "holm"
    n_boot: int = 2000
    rng_seed: int = 0
    reference_margin_pp: float = 2.0

    def __post_init__(self) -> None:
        """Reject settings that make the statistics meaningless."""
        if not (0 < self.conf < 1 and 0 < self.alpha < 0.5 and 0 < self.power < 1):
            raise ValueError(f"conf and power must be in (0, 1), alpha in (0, 0.5): {self}")
        if self.multiplicity not in ("holm", "none"):
            raise ValueError(f"multiplicity must be 'holm' or 'none', got {self.multiplicity!r}")
        if self.reference_margin_pp <= 0 or self.n_boot < 1:
            raise ValueError(f"reference_margin_pp must be > 0 and n_boot >= 1: {self}")


class EvidenceError(ValueError):
    """The numbers given for a claim do not fit it; the message says what is wrong."""


@dataclass(frozen=True)
class Evidence:
    """What was measured for one claim.

    values: the paper's network, one number per seed (per disjoint k-model ensemble for
    ensemble claims); variant: the variant's numbers (the arm, or the centre crop for a
    ten-patch claim); n_images: test-set size of `values` (headline); same_test_set: our
    images are the paper's (the image-sampling term cancels); paired: values[i] and
    variant[i] come from the same seed; singles: per-seed single-model errors behind an
    ensemble claim's conservative bound; resolution: steps between logged points of a
    convergence measurement; censored / censored_variant: per value, never reached the
    target (the value is then the steps run, a lower bound); source: where it came from.
    """

    values: tuple[float, ...]
    variant: tuple[float, ...] | None = None
    n_images: int | None = None
    same_test_set: bool = True
    paired: bool = False
    singles: tuple[float, ...] | None = None
    resolution: float = 0.0
    censored: tuple[bool, ...] | None = None
    censored_variant: tuple[bool, ...] | None = None
    source: str = ""


@dataclass
class Assessment:
    """A row before multiplicity: the JSON fields and how to plan more seeds."""

    row: dict
    plan: Callable[[float, float], tuple[int | None, str]] | None = None  # (alpha, power) -> (n, note)


# --------------------------------------------------------------------------- rows


def quantity(claim: Claim) -> str:
    """The quantity the band constrains, in words."""
    metric = claim.metric.removesuffix("_reduction").replace("top1", "top-1").replace("top5", "top-5").replace("_", " ")
    if claim.kind == "headline":
        who = "single models" if (claim.n_models or 1) == 1 else f"{claim.n_models}-model ensembles"
        proto = {"ten_patch": ", 10-patch", "center": ", centre crop"}.get(claim.protocol, "")
        return f"mean {metric} of {who}{proto} (%)"
    if claim.kind == "ablation":
        what = {"test_error": metric, "train_error": "final training top-1 error",
                "overfit_gap": "validation minus training top-1 error",
                "protocol": f"{metric}, centre crop minus 10-patch"}[claim.measure]
        return f"{what}: variant minus the paper's net (pp)" if claim.measure != "protocol" else f"{what} (pp)"
    if claim.kind == "convergence":
        what = "training time" if claim.measure == "train_time" else "iterations to the training-error target"
        return f"{what}: variant / the paper's net"
    if claim.kind == "proportion":
        return "fraction of runs"
    return claim.metric.replace("_", " ")


def claim_base(claim: Claim) -> dict:
    """Fields every claim row carries, tested or not."""
    lo, hi = claim.band if claim.band else (None, None)
    return {"id": claim.id, "kind": claim.kind, "metric": claim.metric, "measure": claim.measure,
            "paper_value": claim.value, "unit": claim.unit, "qualifier": claim.qualifier,
            "dataset": claim.dataset, "split": claim.split, "protocol": claim.protocol,
            "protocol_inferred": claim.protocol_inferred, "n_models": claim.n_models,
            "paper_section": claim.paper_section, "quantity": quantity(claim),
            "band": None if claim.band is None else [lo, hi], "tolerance_reason": claim.tolerance_reason,
            "requires": requirements(claim), "note": claim.note, "tested": False}


def not_tested(claim: Claim, category: str, reason: str, **extra) -> Assessment:
    """A row this run cannot decide, with the category and the reason."""
    return Assessment({**claim_base(claim), "verdict": "not tested", "category": category, "reason": reason,
                       **extra})


# --------------------------------------------------------------------------- checking the evidence


def _finite(xs: Sequence[float], what: str) -> tuple[float, ...]:
    out = []
    for x in xs:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise EvidenceError(f"{what} must be finite numbers, got {x!r}")
        out.append(float(x))
    if not out:
        raise EvidenceError(f"no {what} given")
    return tuple(out)


def _check(claim: Claim, ev: Evidence) -> None:
    """Raise EvidenceError naming what does not fit the claim."""
    _finite(ev.values, "values")
    two_groups = claim.kind in ("ablation", "convergence")
    if two_groups and ev.variant is None:
        raise EvidenceError(f"claim {claim.id} compares the paper's net with a variant ({claim.contrast or claim.measure}): "
                            "give the variant's values too")
    if not two_groups and ev.variant is not None:
        raise EvidenceError(f"claim {claim.id} is a {claim.kind} claim: it takes no variant")
    if ev.variant is not None:
        _finite(ev.variant, "variant values")
    if ev.paired and (ev.variant is None or len(ev.variant) != len(ev.values)):
        raise EvidenceError(f"paired values need as many variant values as values, got {len(ev.values)} and "
                            f"{0 if ev.variant is None else len(ev.variant)}")
    groups = [ev.values] + ([ev.variant] if ev.variant is not None else [])
    if claim.kind == "headline" or (claim.kind == "ablation" and claim.measure in ("test_error", "protocol", "train_error")):
        if any(not 0 <= x <= 100 for g in groups for x in g):
            raise EvidenceError(f"claim {claim.id} takes errors in percent: values must lie in [0, 100]")
    if claim.kind == "convergence" and any(x <= 0 for g in groups for x in g):
        raise EvidenceError(f"claim {claim.id} takes iterations or times: values must be > 0")
    if claim.kind == "proportion" and any(x not in (0.0, 1.0) for x in ev.values):
        raise EvidenceError(f"claim {claim.id} takes one 1 (property holds) or 0 (does not) per run")
    if claim.kind == "size" and len(ev.values) != 1:
        raise EvidenceError(f"claim {claim.id} is decided by arithmetic: give exactly one value")
    if ev.n_images is not None and (not isinstance(ev.n_images, int) or ev.n_images < 1):
        raise EvidenceError(f"n_images must be a positive integer, got {ev.n_images!r}")
    if not ev.same_test_set and (ev.n_images is None or claim.n_images is None):
        raise EvidenceError(f"claim {claim.id}: a different test set needs both sizes (the paper's is "
                            f"{claim.n_images or 'not stated'}, ours {ev.n_images or 'not given'})")


# --------------------------------------------------------------------------- estimates


def _headline(claim: Claim, ev: Evidence) -> tuple[stats.Estimate, Callable]:
    """Single models or disjoint k-ensembles against the paper's one run (stats.against_published).

    Ensembles: the method follows the evidence given, never the number of seeds. With the
    single models' errors (the compare stage always has them) the conservative bound
    sigma_k <= sigma_1 from all singles, at any n; the ensembles' own spread only when no
    singles are given (`harness verdict --values` of ensembles). Switching at n = 2k made the
    interval jump from df 8 to df 1 between 9 and 10 seeds (not monotone in n)."""
    k = claim.n_models or 1
    vals = np.asarray(ev.values, float)
    diff_sets = not ev.same_test_set
    binom = 0.0
    if diff_sets:
        binom = stats.binomial_var_pct(min(max(vals.mean(), 0), 100), ev.n_images) \
            + stats.binomial_var_pct(claim.value, claim.n_images)
    bound = k > 1 and ev.singles is not None and len(ev.singles) >= 2
    if bound:
        est = stats.against_published_bound(vals, ev.singles, claim.value, ev.same_test_set, ev.n_images,
                                            claim.n_images)
        s2 = stats.spread_var(ev.singles)
    else:
        est = stats.against_published(vals, claim.value, ev.same_test_set, ev.n_images, claim.n_images)
        s2 = stats.spread_var(vals)
        if k > 1:
            est = stats.Estimate(est.value, est.se, est.df, est.n,
                                 method=f"{len(vals)} disjoint {k}-model ensembles; " + est.method)
    sd = None if s2 is None else math.sqrt(s2)

    def design(m: int, scale: float) -> tuple[float, float]:  # m single models, or m disjoint ensembles
        v = (scale * sd) ** 2 * (1.0 / m + 1.0)
        return math.sqrt(v + binom), (m * k - 1 if bound else m - 1)

    def plan(alpha: float, power: float, decision: str) -> tuple[int | None, str]:
        if sd is None:
            return None, "one value gives no spread: run at least 2 seeds" if k == 1 else \
                f"needs at least 2 disjoint {k}-model ensembles ({2 * k} seeds) or {k} single-model errors"
        if sd == 0:
            return None, NO_SPREAD_PLAN
        per = 1 if k == 1 else k
        per_what = "seeds in all" if k == 1 else f"seeds in all (disjoint {k}-model ensembles)"
        n, note = _plan(est.value, claim.band, design, sd, est.df, alpha, power, decision,
                        max(2, len(vals) + 1), "pp", per_what)
        if n is None and "even at" in note:
            note += ": the paper's single run carries seed noise of the same sd, so the interval never narrows below it"
        return (None if n is None else n * per), note
    return est, plan


def _plan(theta: float, band, design, sd: float, df: float, alpha: float, power: float, decision: str,
          n_from: int, unit: str, per: str) -> tuple[int | None, str]:
    """Seeds needed at the upper PLAN_SIGMA_LEVEL confidence limit of the spread.

    design(n, scale) -> (se, df) with every variance scaled by scale^2. Returns the n found at
    the upper limit. When there is none, "no number suffices" is said only if even the best
    case fails: the lower 95% confidence limit of the spread and, for "reproduced", the
    band's centre as the truth (a one-sided band always has a reachable best case);
    otherwise the note says that more seeds must first pin the spread down."""
    upper = stats.sd_limits(1.0, df, PLAN_SIGMA_LEVEL)[1]
    lower = stats.sd_limits(1.0, df, 0.95)[0]

    def first(scale: float, at: float = theta) -> int | None:
        return stats.seeds_needed(at, *band, lambda n: design(n, scale), alpha, power, decision,
                                  n_from=n_from, n_max=N_MAX)
    level = f"{PLAN_SIGMA_LEVEL:.0%}"
    n = first(upper)
    if n is not None:
        return n, (f"{per}, planned at the upper {level} confidence limit of the sd ({upper * sd:.3g} {unit}; "
                   f"observed {sd:.3g}) for power {power:g} (noncentral t)")
    best = theta
    if decision == "reproduced":
        if None in band:
            best = None  # a one-sided band: a true value far inside always gets there
        else:
            best = (band[0] + band[1]) / 2
    if best is not None and first(lower, best) is None:
        return None, (f"no design up to {N_MAX} {per} reaches power {power:g} even at the lower 95% "
                      f"confidence limit of the sd ({lower * sd:.3g} {unit}; observed {sd:.3g})"
                      + (" with the truth at the band's centre" if decision == "reproduced" else ""))
    plug = first(1.0)
    return None, (f"not plannable yet: at the upper {level} confidence limit of the sd ({upper * sd:.3g} {unit}) "
                  f"no design up to {N_MAX} {per} reaches power {power:g}; at the observed sd {sd:.3g} "
                  + (f"{plug} would" if plug is not None else "none would") + ": a few more seeds pin the spread down")


def printed_noise(claim: Claim) -> str | None:
    """How the paper's printed effect carries seed noise, or None when the band is no measurement.

    "runs": an effect printed from one training run per arm ([v/2, 3v/2] around it);
    "model": one model evaluated two ways (the 10-patch gain: measure protocol);
    None: no printed number ("unstated") or a one-sided threshold ("over v", at_least): the
    band is then a threshold on the recipe's effect, taken as exact (docs/statistics.md)."""
    if claim.kind != "ablation" or claim.value is None or claim.band is None or None in claim.band:
        return None
    if claim.qualifier not in ("exact", "about"):
        return None
    return "model" if claim.measure == "protocol" else "runs"


def _effect(claim: Claim, ev: Evidence) -> tuple[stats.Estimate, Callable]:
    """variant - paper's net, paired by seed or Welch; against a printed effect with its noise."""
    noise = printed_noise(claim)
    x, y = np.asarray(ev.values, float), np.asarray(ev.variant, float)
    if noise is not None:
        est = stats.effect_against_printed(x, y, ev.paired, one_model=noise == "model")
    else:
        est = stats.paired_effect(x, y) if ev.paired else stats.welch_effect(x, y)
    paired = ev.paired or noise == "model"
    vd = stats.paired_diff_var(x, y) if paired else None
    sx, sy = stats.spread_var(x), stats.spread_var(y)

    def design(n: int, scale: float) -> tuple[float, float]:
        c = scale**2
        if noise == "model":
            return math.sqrt(c * vd * (1 / n + 1)), n - 1
        if paired:
            return math.sqrt(c * (vd / n + (sx + sy if noise else 0.0))), n - 1
        tail = 1.0 if noise else 0.0
        a, b = c * sx * (1 / n + tail), c * sy * (1 / n + tail)
        return math.sqrt(a + b), (a + b) ** 2 / (a**2 / (n - 1) + b**2 / (n - 1))
    sd = math.sqrt(vd) if paired and vd is not None else (
        None if not sx or not sy else math.sqrt((sx + sy) / 2))
    if noise == "runs" and sd and sx and sy:
        sd = math.sqrt((sx + sy) / 2)  # shown: the per-run sd, which the paper's two runs carry
    if est.se is None and sd:
        sd = 0.0  # a group without spread
    return est, _two_group_plan(claim, est, sd, design, paired, "pp")


def _two_group_plan(claim: Claim, est: stats.Estimate, sd: float | None, design, paired: bool, unit: str,
                    lo_hi: tuple | None = None) -> Callable:
    def plan(alpha: float, power: float, decision: str) -> tuple[int | None, str]:
        if sd is None:
            return None, "one seed per group gives no spread: run at least 2 seeds per group"
        if sd == 0 or design is None or est.se is None:
            return None, NO_SPREAD_PLAN
        band = lo_hi if lo_hi is not None else claim.band
        per = "seed pairs" if paired else "seeds per group"
        n, note = _plan(est.value, band, design, sd, est.df, alpha, power, decision,
                        max(2, max(est.n, est.n_variant or 0) + 1), unit, per)
        if n is None and "even at" in note and printed_noise(claim):
            note += ": the paper's printed effect is one run per arm, and its seed noise does not shrink with our seeds"
        return n, note
    return plan


def _log_band(claim: Claim) -> tuple[float | None, float | None]:
    lo, hi = claim.band
    return (None if lo is None else math.log(lo), None if hi is None else math.log(hi))


def _censoring(ev: Evidence) -> str | None:
    """Which side the ratio is bounded on when seeds never reached the target."""
    paper = any(ev.censored or ())
    variant = any(ev.censored_variant or ())
    if paper and variant:
        return "both"
    if paper:
        return "upper"  # the paper's net would need more steps: variant / paper is at most this
    if variant:
        return "lower"  # the variant would need more steps: the ratio is at least this
    return None


def _ratio(claim: Claim, ev: Evidence) -> tuple[stats.Estimate, Callable]:
    """log(variant / paper's net) with the resolution floor (stats.log_ratio)."""
    est = stats.log_ratio(ev.values, ev.variant, ev.paired, ev.resolution)
    x, y = np.asarray(ev.values, float), np.asarray(ev.variant, float)
    qx, qy = float(np.mean((ev.resolution / x) ** 2)) / 12, float(np.mean((ev.resolution / y) ** 2)) / 12
    lx, ly = np.log(x), np.log(y)
    if ev.paired:  # per-pair variance on the log scale, floored as in stats.log_ratio
        v1 = max(float((ly - lx).var(ddof=1)) if len(x) >= 2 else 0.0, qx + qy)
    else:
        vx = max(float(lx.var(ddof=1)) if len(x) >= 2 else 0.0, qx)
        vy = max(float(ly.var(ddof=1)) if len(y) >= 2 else 0.0, qy)
        v1 = vx + vy  # a group of n in each arm: Var of the log ratio = (vx + vy) / n
    unknown = est.se is None
    sd = math.sqrt(v1 if ev.paired else v1 / 2) if not unknown else (None if min(len(x), len(y)) < 2 else 0.0)
    design = None if unknown or v1 == 0 else (lambda n, scale: (math.sqrt(scale**2 * v1 / n), n - 1))
    return est, _two_group_plan(claim, est, sd, design, ev.paired, "on the log scale", _log_band(claim))


def _proportion_plan(claim: Claim, k: int, n: int) -> Callable:
    def plan(alpha: float, power: float, decision: str) -> tuple[int | None, str]:
        p = k / n
        for m in range(n + 1, 10 * N_MAX + 1):
            if stats.proportion_power(p, m, *claim.band, alpha, decision) >= power:
                return m, f"runs in all, if the observed fraction {p:.2f} holds (exact binomial)"
        return None, f"no number of runs up to {10 * N_MAX} reaches power {power:g} at the observed fraction {p:.2f}"
    return plan


# --------------------------------------------------------------------------- assess


def _display(claim: Claim, value: float | None) -> float | None:
    """Estimate on the claim's scale (ratios are estimated on the log scale)."""
    if value is None or claim.kind != "convergence":
        return value
    return math.exp(value) if value < 700 else math.inf


def _direction(claim: Claim, estimate: float) -> tuple[str, str]:
    """Direction information (never a label): where the estimate lies against the paper's claim."""
    ref = claim.value
    if claim.kind == "headline":
        word = "lower" if estimate < ref else ("higher" if estimate > ref else "equal")
        return word, (f"our error is {word} than the paper's ({estimate:.2f} vs {ref:g}%)" if word != "equal"
                      else "our error equals the paper's")
    if claim.kind == "ablation":
        paper_sign = 1.0 if (claim.band[0] is not None and claim.band[0] > 0) else -1.0
        word = "zero" if estimate == 0 else ("same" if estimate * paper_sign > 0 else "reversed")
        text = {"zero": "no effect", "same": "the paper's direction", "reversed": "reversed"}[word]
        if ref is not None and word == "same":
            text += ", smaller than printed" if abs(estimate) < abs(ref) else ", at least the printed size"
        return word, f"effect {estimate:+.2f} pp: {text}" + ("" if ref is None else f" (paper {ref:g} pp)")
    if claim.kind == "convergence":
        paper_slower = claim.band[0] is not None and claim.band[0] > 1  # the paper: the variant is slower
        word = "none" if abs(estimate - 1) <= 1e-12 else ("same" if (estimate > 1) == paper_slower else "reversed")
        rel = "slower" if estimate > 1 + 1e-12 else ("faster" if estimate < 1 - 1e-12 else "as fast")
        how = {"same": "as the paper says", "reversed": "against the paper", "none": "no difference"}[word]
        return word, f"the variant is {rel} ({estimate:.3g}x), {how}"
    if claim.kind == "proportion":
        return ("same" if estimate >= claim.band[0] else "below"), f"the property held in {estimate:.0%} of runs"
    show = (lambda x: f"{x:,.0f}") if abs(ref) >= 1000 else (lambda x: f"{x:.3g}")  # noqa: E731
    word = "inside" if _inside(estimate, *claim.band) else "outside"
    return word, f"measured {show(estimate)}, printed {show(ref)}: {word} the printed precision"


def _size(claim: Claim, ev: Evidence) -> Assessment:
    """A count or share against the printed number at its precision: exact, no p-values."""
    x = float(ev.values[0])
    lo, hi = claim.band
    inside = _inside(x, lo, hi)
    word, text = _direction(claim, x)
    check = None if claim.exact is None else {"exact": claim.exact, "measured": x,
                                              "equal": abs(x - claim.exact) <= 1e-3 * max(1.0, abs(claim.exact))}
    return Assessment({**claim_base(claim), "tested": True, "method": "arithmetic (no sampling noise)",
                       "estimate": x, "lo": x, "hi": x, "excl_lo": x, "excl_hi": x, "n": 1,
                       "p_reproduced": None, "p_not_reproduced": None, "exact_decision": True,
                       "verdict": "reproduced" if inside else "not reproduced", "direction": word,
                       "direction_text": text, "model_check": check, "source": ev.source})


def assess(claim: Claim, ev: Evidence, settings: Settings) -> Assessment:
    """The row for one claim from its evidence, before multiplicity (see finalize).

    Raises EvidenceError when the numbers do not fit the claim (the CLI's `error:` line).
    """
    if claim.kind == "context":
        return not_tested(claim, "context", "context, not a claim about this network")
    if claim.band is None:
        return not_tested(claim, "not buildable", f"the claims file declares no band for {claim.id}")
    _check(claim, ev)
    if claim.kind == "size":
        return _size(claim, ev)
    if claim.kind == "proportion":
        return _assess_proportion(claim, ev, settings)
    if claim.kind == "headline":
        est, plan = _headline(claim, ev)
        band = claim.band
    elif claim.kind == "ablation":
        est, plan = _effect(claim, ev)
        band = claim.band
    else:
        est, plan = _ratio(claim, ev)
        band = _log_band(claim)
    bound = _censoring(ev) if claim.kind == "convergence" else None
    return _assess_estimate(claim, ev, est, band, bound, plan, settings)


def _assess_estimate(claim, ev, est: stats.Estimate, band, bound: str | None, plan, s: Settings) -> Assessment:
    lo, hi = band
    above = bound not in ("upper", "both")  # an upper bound cannot show "above the band"
    below = bound not in ("lower", "both")
    p_in, p_out = stats.band_pvalues(est, lo, hi, above=above, below=below)
    notes = []
    if bound is not None and p_in is not None:
        blocked = (bound == "both" or (bound == "upper" and lo is not None) or (bound == "lower" and hi is not None))
        if blocked:
            p_in = 1.0
        notes.append(_censor_note(ev, bound, blocked))
    r_lo, r_hi = stats.interval(est, 1 - 2 * s.alpha)
    x_lo, x_hi = stats.interval(est, 1 - s.alpha)
    estimate = _display(claim, est.value)
    word, text = _direction(claim, estimate)
    row = {**claim_base(claim), "tested": True, "method": est.method, "estimate": estimate,
           "lo": _display(claim, r_lo), "hi": _display(claim, r_hi),
           "excl_lo": _display(claim, x_lo), "excl_hi": _display(claim, x_hi),
           "interval_level": 1 - 2 * s.alpha, "exclusion_level": 1 - s.alpha,
           "se": est.se, "df": None if math.isinf(est.df) else est.df, "scale": "log" if claim.kind == "convergence" else "linear",
           "n": est.n, "n_variant": est.n_variant, "paired": ev.paired, "same_test_set": ev.same_test_set,
           "p_reproduced": p_in, "p_not_reproduced": p_out, "direction": word, "direction_text": text,
           "bound": bound, "notes": notes, "source": ev.source}
    if claim.kind == "headline" and (claim.n_models or 1) > 1:
        row["n_ensembles"] = len(ev.values)
        row["n_seeds"] = len(ev.singles) if ev.singles is not None else len(ev.values) * claim.n_models
    if est.se is None:
        one = est.n < 2 or (est.n_variant is not None and est.n_variant < 2)
        row["notes"] = notes + ["no spread: one value per group gives no standard error" if one else NO_SPREAD]
    row["assumes"] = FIXED_N
    return Assessment(row, plan)


def _censor_note(ev: Evidence, bound: str, blocked: bool) -> str:
    who = {"upper": "the paper's net", "lower": "the variant", "both": "both groups"}[bound]
    n_p, n_v = sum(ev.censored or ()), sum(ev.censored_variant or ())
    what = {"upper": "an upper bound of the ratio", "lower": "a lower bound of the ratio",
            "both": "neither bound"}[bound]
    return (f"{n_p + n_v} seed(s) of {who} never reached the target; they enter at the steps they ran "
            f"(the least they need), so the estimate is {what}" +
            ("; 'reproduced' cannot be decided" if blocked else ""))


def _assess_proportion(claim: Claim, ev: Evidence, s: Settings) -> Assessment:
    k, n = int(sum(ev.values)), len(ev.values)
    lo, hi = claim.band
    p_in, p_out = stats.proportion_pvalues(k, n, lo, hi)
    r = stats.clopper_pearson_interval(k, n, 1 - 2 * s.alpha) if n else (None, None)
    x = stats.clopper_pearson_interval(k, n, 1 - s.alpha) if n else (None, None)
    word, text = _direction(claim, k / n)
    notes = [] if k == n else [f"{n - k} of {n} runs did not show it (a counterexample to 'every run')"]
    row = {**claim_base(claim), "tested": True, "method": "exact binomial (Clopper-Pearson)", "estimate": k / n,
           "lo": r[0] / 100, "hi": r[1] / 100, "excl_lo": x[0] / 100, "excl_hi": x[1] / 100,
           "interval_level": 1 - 2 * s.alpha, "exclusion_level": 1 - s.alpha, "n": n, "k": k,
           "p_reproduced": p_in, "p_not_reproduced": p_out, "direction": word, "direction_text": text,
           "notes": notes, "source": ev.source}
    return Assessment(row, _proportion_plan(claim, k, n))


# --------------------------------------------------------------------------- finalize


def finalize(assessments: Sequence[Assessment], settings: Settings, plan: bool = True) -> list[dict]:
    """Multiplicity, labels and seeds needed for every row decided together (one report).

    The family is the rows with p-values (exact and untested rows are not in it). Holm runs
    over their p_reproduced and, separately, over their p_not_reproduced; a label needs the
    adjusted p below alpha. Seeds needed are planned at alpha / m (Holm's strictest step),
    so they hold whatever the claim's rank. plan=False skips them (simulations).
    """
    family = [a for a in assessments if a.row.get("p_reproduced") is not None]
    m = len(family)
    if settings.multiplicity == "holm":
        adj_in = stats.holm([a.row["p_reproduced"] for a in family])
        adj_out = stats.holm([a.row["p_not_reproduced"] for a in family])
    else:
        adj_in = [a.row["p_reproduced"] for a in family]
        adj_out = [a.row["p_not_reproduced"] for a in family]
    decided = {id(a): (pi, po) for a, pi, po in zip(family, adj_in, adj_out)}
    plan_alpha = settings.alpha / m if settings.multiplicity == "holm" and m else settings.alpha
    out = []
    for a in assessments:
        row = dict(a.row)
        if id(a) in decided:
            pi, po = decided[id(a)]
            row.update(p_reproduced_adj=pi, p_not_reproduced_adj=po,
                       multiplicity={"method": settings.multiplicity, "family_size": m})
            row["verdict"] = ("reproduced" if pi < settings.alpha else
                              "not reproduced" if po < settings.alpha else "inconclusive")
        elif row.get("tested") and not row.get("exact_decision"):
            row["verdict"] = "inconclusive"
        if plan and row.get("verdict") == "inconclusive" and a.plan is not None:
            decision = _aim(row)
            n, note = a.plan(plan_alpha, settings.power, decision)
            row.update(seeds_needed=n, seeds_needed_note=note, seeds_needed_for=decision)
        out.append(row)
    return out


def _aim(row: dict) -> str:
    """What more seeds would most likely show: 'reproduced' when the estimate is in the band."""
    lo, hi = row["band"]
    x = row["estimate"]
    return "reproduced" if _inside(x, lo, hi) else "not reproduced"


def _inside(x: float, lo: float | None, hi: float | None) -> bool:
    """x in the closed band [lo, hi], float-level differences counting as on the edge."""
    tol = stats.FLOAT_TOL
    return (lo is None or x >= lo - tol * max(1.0, abs(lo))) and (hi is None or x <= hi + tol * max(1.0, abs(hi)))


def counts(rows: Sequence[dict]) -> dict:
    """How many rows got each label, and the not-tested rows by category."""
    labels = {label: sum(r["verdict"] == label for r in rows) for label in LABELS}
    why: dict[str, int] = {}
    for r in rows:
        if r["verdict"] == "not tested":
            why[r["category"]] = why.get(r["category"], 0) + 1
    tested = sum(r["tested"] for r in rows)
    return {"claims_total": len(rows), "claims_tested": tested, "claims_untested": len(rows) - tested,
            "verdicts": labels, "not_tested_by_category": why}


def settings_dict(settings: Settings) -> dict:
    return asdict(settings)


def from_config(compare_cfg) -> Settings:
    """Settings from params `compare` (harness.config.CompareConfig; duck-typed, no import)."""
    c = compare_cfg
    return Settings(conf=c.conf, alpha=c.alpha, power=c.power, multiplicity=c.multiplicity, n_boot=c.n_boot,
                    reference_margin_pp=c.reference_margin_pp)


# --------------------------------------------------------------------------- for `harness verdict`


def record(row: dict) -> dict:
    """The `harness verdict --json` object of a finalized row: claim and verdict first."""
    out = {"claim": row["id"], "verdict": row["verdict"], "quantity": row["quantity"],
           "paper_value": row["paper_value"], "unit": row["unit"], "estimate": row.get("estimate"),
           "interval": [row.get("lo"), row.get("hi")], "interval_level": row.get("interval_level"),
           "exclusion_interval": [row.get("excl_lo"), row.get("excl_hi")],
           "exclusion_level": row.get("exclusion_level"),
           "tolerance": {"band": row["band"], "reason": row["tolerance_reason"]},
           "p": {"reproduced": row.get("p_reproduced"), "reproduced_adjusted": row.get("p_reproduced_adj"),
                 "not_reproduced": row.get("p_not_reproduced"),
                 "not_reproduced_adjusted": row.get("p_not_reproduced_adj")},
           "multiplicity": row.get("multiplicity"), "seeds_needed": row.get("seeds_needed"),
           "seeds_needed_note": row.get("seeds_needed_note"), "direction": row.get("direction"),
           "direction_text": row.get("direction_text"), "n": row.get("n"), "n_variant": row.get("n_variant"),
           "paired": row.get("paired"), "same_test_set": row.get("same_test_set"), "method": row.get("method"),
           "notes": row.get("notes", []), "assumes": row.get("assumes"), "source": row.get("source")}
    if row["verdict"] == "not tested":
        out["reason"] = row.get("reason")
    if row.get("model_check"):
        out["model_check"] = row["model_check"]
    return _plain(out)


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, np.generic):
        return _plain(obj.item())
    return obj


def _num(x) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if abs(x) >= 1e4 else f"{x:.4g}"


def describe(rec: dict) -> str:
    """A few lines for a person: label, estimate against the band, p-values, what next."""
    lines = [f"{rec['claim']}: {rec['verdict']}"]
    if rec["verdict"] == "not tested":
        return "\n".join(lines + [f"  {rec.get('reason')}"])
    band = rec["tolerance"]["band"]
    lo, hi = rec["interval"]
    level = rec.get("interval_level")
    lines.append(f"  {rec['quantity']}: {_num(rec['estimate'])}"
                 + (f", {level:.0%} interval {_num(lo)} to {_num(hi)}" if lo is not None and level else "")
                 + f"; band {_num(band[0]) if band[0] is not None else '-inf'} to "
                   f"{_num(band[1]) if band[1] is not None else 'inf'}")
    lines.append(f"  tolerance: {rec['tolerance']['reason']}")
    p = rec["p"]
    if p["reproduced"] is not None:
        lines.append(f"  p (reproduced) {_num(p['reproduced'])}, p (not reproduced) {_num(p['not_reproduced'])}"
                     f"; n {rec['n']}" + (f" vs {rec['n_variant']}" if rec.get("n_variant") else "")
                     + f"; {rec['method']}")
    if rec.get("direction_text"):
        lines.append(f"  {rec['direction_text']}")
    if rec.get("seeds_needed") is not None or rec.get("seeds_needed_note"):
        lines.append(f"  seeds needed: {rec.get('seeds_needed') or '-'} ({rec.get('seeds_needed_note')})")
    lines += [f"  note: {n}" for n in rec.get("notes") or []]
    if rec.get("assumes"):
        lines.append(f"  assumes: {rec['assumes']}")
    if rec.get("source"):
        lines.append(f"  data: {rec['source']}")
    return "\n".join(lines)
