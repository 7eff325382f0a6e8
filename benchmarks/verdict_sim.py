"""Simulated error rates of the verdicts (docs/statistics.md, "validation").

`python -m benchmarks.verdict_sim` prints, over a grid, the rate of each verdict under the
null and near the band edges, the coverage of the intervals and the power; `--quick` runs a
smaller grid. tests/unit/test_verdict_sim.py runs the same functions with fixed seeds and
asserts the rates (false "not reproduced" <= alpha + 1 pp, coverage >= 93%, ...).

Headline claims are simulated per image on a FIXED test set of 50,000 images, as the null of
docs/statistics.md says: each image has its own difficulty q_i (a U-shaped Beta with mean
18.2%, most images always right or always wrong), a training run r shifts every image's
logit by u_r ~ N(0, tau^2), and each image is wrong with probability expit(logit q_i + u_r)
independently. The seed-to-seed sd sigma comes from both parts; tau is set for the target
sigma. The paper's number is one more run on the same images. Images share K difficulty
levels, so a run's wrong count is a sum of K binomials: exact for that test set, and fast.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy import special

from harness.analysis import claims as CL
from harness.analysis import stats, verdict

N_IMAGES = 50_000
P0 = 18.2  # % top-5 error of the paper's 1 CNN on ILSVRC-2012 val
ALPHA = 0.05


# --------------------------------------------------------------------------- the fixed test set


class TestSet:
    """A fixed test set: K difficulty levels q_k with m_k images each (sum N_IMAGES)."""

    __test__ = False  # not a pytest class

    def __init__(self, n_images: int = N_IMAGES, mean_pct: float = P0, levels: int = 200, seed: int = 2012):
        rng = np.random.default_rng(seed)
        a = 0.05
        b = a * (100 - mean_pct) / mean_pct
        q = np.sort(np.clip(rng.beta(a, b, n_images), 1e-6, 1 - 1e-6))
        bins = np.array_split(q, levels)
        self.m = np.array([len(x) for x in bins])
        self.logit = special.logit(np.array([x.mean() for x in bins]))
        self.n = int(self.m.sum())
        self.bernoulli_var = float(np.sum(self.m * _p(self.logit) * (1 - _p(self.logit)))) / self.n**2 * 1e4

    def error(self, shift: np.ndarray | float = 0.0) -> np.ndarray:
        """Expected error (%) of runs with logit shift `shift` on this set."""
        s = np.asarray(shift, float)[..., None]
        return 100.0 * (_p(self.logit + s) * self.m).sum(-1) / self.n

    def tau_for(self, sigma_pp: float) -> float:
        """The run-level shift sd that gives a seed-to-seed sd of sigma_pp in total."""
        slope = float((_p(self.logit) * (1 - _p(self.logit)) * self.m).sum()) / self.n * 100.0
        return math.sqrt(max(sigma_pp**2 - self.bernoulli_var, 0.0)) / slope

    def shift_for(self, delta_pp: float) -> float:
        """The logit shift that moves the expected error by delta_pp (bisection)."""
        base = float(self.error(0.0))
        lo, hi = -3.0, 3.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if float(self.error(mid)) - base < delta_pp else (lo, mid)
        return (lo + hi) / 2

    def runs(self, rng: np.random.Generator, shape: tuple, tau: float, shift: float = 0.0) -> np.ndarray:
        """Per-image simulated error (%) of independent runs, shape `shape`."""
        u = rng.normal(shift, tau, shape) if tau > 0 else np.full(shape, shift)
        probs = _p(self.logit + u[..., None])
        wrong = rng.binomial(self.m, probs).sum(-1)
        return 100.0 * wrong / self.n


def _p(x):
    return special.expit(x)


# --------------------------------------------------------------------------- headline


def headline(n: int, sigma: float, reps: int = 2000, tol: float = 0.9, delta: float = 0.0, seed: int = 0,
             test_set: TestSet | None = None) -> dict:
    """Rates of the decisions for `reps` simulated comparisons of n seeds with one paper run.

    delta: our recipe's expected error minus the paper's (0: the null of docs/statistics.md).
    Returns the rates of reproduced / not reproduced with the band +-tol around the paper's
    printed number, the rate of 'not reproduced' with a zero-width band (the point null:
    the worst case, calibration), the coverage of the 95% interval of mean - c for delta,
    the realised seed sd, and the same point-null rejection under the previous noise model
    (s^2/n plus both binomial terms) for contrast.
    """
    ts = test_set or TestSet()
    rng = np.random.default_rng([seed, n, int(sigma * 1000), int(1000 * delta)])
    tau = ts.tau_for(sigma)
    paper = ts.runs(rng, (reps,), tau)
    ours = ts.runs(rng, (reps, n), tau, ts.shift_for(delta) if delta else 0.0)
    repro = notrep = point = covered = old = 0
    for r in range(reps):
        c = float(paper[r])
        est = stats.against_published(ours[r], c)
        p_in, p_out = stats.band_pvalues(est, c - tol, c + tol)
        repro += p_in < ALPHA
        notrep += p_out < ALPHA
        lo, hi = stats.interval(est, 1 - ALPHA)
        point += not (lo <= c <= hi)
        covered += lo - c <= delta <= hi - c
        old += _old_model_rejects(ours[r], c)
    sd = float(np.mean(ours.std(axis=1, ddof=1)))
    return {"n": n, "sigma": sigma, "delta": delta, "tol": tol, "reps": reps, "realised_sd": sd,
            "reproduced": repro / reps, "not_reproduced": notrep / reps, "point_null_rejects": point / reps,
            "coverage_95": covered / reps, "old_model_point_rejects": old / reps}


def _old_model_rejects(values: np.ndarray, c: float) -> bool:
    """The noise model this harness used before: s^2/n + both binomial terms (wrong on one test set)."""
    n, mean = values.size, float(values.mean())
    sv = float(values.var(ddof=1)) / n
    v = sv + stats.binomial_var_pct(c, N_IMAGES) + stats.binomial_var_pct(mean, N_IMAGES)
    df = v**2 / (sv**2 / (n - 1))
    return bool(2 * stats._t_sf(abs(mean - c) / math.sqrt(v), df) < ALPHA)


# --------------------------------------------------------------------------- ensembles


def ensemble_coverage(n_singles: int, k: int, reps: int = 400, n_images: int = 10_000, seed: int = 0,
                      sd_model: float = 0.01, sd_image_noise: float = 0.6) -> dict:
    """Coverage of the k-ensemble interval against one published k-ensemble, per image.

    Latent margins: image i has margin z_i (fixed set), run r adds u_r ~ N(0, sd_model^2) and
    per-image noise e_ir ~ N(0, sd_image_noise^2); a model (or an ensemble, averaging margins as
    the softmax average does) is wrong where its margin is below 0. The paper's number is one
    more ensemble of k fresh runs. As in verdict._headline, the single models' errors are
    always there, so the method is the conservative bound sigma_k <= sigma_1 at every n
    (stats.against_published_bound; docs/statistics.md, ensembles: it used to switch at n = 2k).
    """
    rng = np.random.default_rng([seed, n_singles, k])
    z = rng.normal(1.2, 1.3, n_images)  # about 18% of images wrong for one model

    def errors(runs: int) -> tuple[np.ndarray, np.ndarray]:
        u = rng.normal(0, sd_model, (runs, 1))
        margins = z[None, :] + u + rng.normal(0, sd_image_noise, (runs, n_images))
        return margins, 100.0 * (margins < 0).mean(1)

    covered, sd_k, sd_1 = 0, [], []
    m = n_singles // k
    for _ in range(reps):
        margins, singles = errors(n_singles)
        ens = [100.0 * (margins[j * k:(j + 1) * k].mean(0) < 0).mean() for j in range(m)]
        paper_m, _ = errors(k)
        c = 100.0 * (paper_m.mean(0) < 0).mean()
        est = stats.against_published_bound(ens, singles, c)
        lo, hi = stats.interval(est, 0.95)
        covered += lo is not None and lo <= c <= hi  # the true difference is 0: same recipe
        sd_1.append(float(np.std(singles, ddof=1)))
        if m >= 2:
            sd_k.append(float(np.std(ens, ddof=1)))
    return {"n_seeds": n_singles, "k": k, "method": "conservative bound",
            "reps": reps, "coverage_95": covered / reps, "mean_sd_single": float(np.mean(sd_1))}


# --------------------------------------------------------------------------- effects


def _arms(rng, reps: int, n: int, sd: float, rho: float, effect: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed errors of the paper's net and the variant: per-run sd `sd`, correlation rho
    between the two arms of one seed (a shared seed effect; 0 for independent groups)."""
    shared = rng.normal(0, 1, (reps, n))
    base = 40.0 + sd * (math.sqrt(rho) * shared + math.sqrt(1 - rho) * rng.normal(0, 1, (reps, n)))
    var = 40.0 + effect + sd * (math.sqrt(rho) * shared + math.sqrt(1 - rho) * rng.normal(0, 1, (reps, n)))
    return base, var


def effect_rates(true_effect: float, band: tuple, n: int, sd: float, paired: bool, reps: int = 2000,
                 seed: int = 0, rho: float = 0.5) -> dict:
    """Rates of reproduced / not reproduced for an ablation effect (normal per-seed errors,
    per-run sd `sd`, the arms of a seed correlated rho when paired) against a fixed band: a
    printed effect at the band's centre when both edges are finite (its run noise counts)."""
    rng = np.random.default_rng([seed, n, int(1000 * sd), int(1000 * (true_effect + 10))])
    claim = _effect_claim(band)
    s = verdict.Settings()
    out = {"reproduced": 0, "not reproduced": 0, "inconclusive": 0}
    bases, vars_ = _arms(rng, reps, n, sd, rho if paired else 0.0, true_effect)
    for base, var in zip(bases, vars_):
        ev = verdict.Evidence(tuple(base), tuple(var), paired=paired)
        out[verdict.finalize([verdict.assess(claim, ev, s)], s, plan=False)[0]["verdict"]] += 1
    return {"true_effect": true_effect, "band": list(band), "n": n, "sd": sd, "paired": paired, "reps": reps,
            **{k: v / reps for k, v in out.items()}}


def _effect_claim(band: tuple, value: float | None = None) -> CL.Claim:
    if value is None:
        value = sum(band) / 2 if band[1] is not None else band[0]
    return CL.Claim(id="sim-effect", kind="ablation", dataset="imagenet-unspecified", split="unspecified",
                    protocol="none", pretraining="none", metric="top1_error_reduction", value=value,
                    qualifier="exact" if band[1] is not None else "at_least", unit="pp", paper_section="sim",
                    band=band, tolerance_reason="simulation", measure="test_error", arm=(("model.x", 1),))


def printed_effect(n: int, sd: float, paired: bool, rho: float = 0.5, effect: float = 0.4, reps: int = 1000,
                   seed: int = 0) -> dict:
    """An exact replication of an ablation against the paper's printed effect (docs/statistics.md, printed effects).

    The paper's recipe and ours have the same true effect `effect`; the printed v is ONE run
    per arm, two independent runs with per-run sd `sd`: v = effect + sd (z1 - z2). The band is
    the claims file's rule around it, [v/2, 3v/2]. Our n seeds per arm (correlated rho within
    a seed when paired) go through verdict.assess. Returns the rates of the labels ("not
    reproduced" is an error here: the claim is true), the coverage of the 95% interval (our
    effect minus v estimates 0, so the row's interval covers v), and "not reproduced" under
    the old rule (v taken as exact: plain paired t or Welch against the band).
    """
    rng = np.random.default_rng([seed, n, int(1000 * sd), int(100 * rho), int(paired)])
    s = verdict.Settings()
    printed = effect + sd * (rng.normal(0, 1, reps) - rng.normal(0, 1, reps))
    bases, vars_ = _arms(rng, reps, n, sd, rho if paired else 0.0, effect)
    out = {"reproduced": 0, "not reproduced": 0, "inconclusive": 0}
    covered = old = 0
    for v, base, var in zip(printed, bases, vars_):
        band = tuple(sorted((float(v) / 2, 3 * float(v) / 2)))
        claim = _effect_claim(band, value=float(v))
        row = verdict.finalize([verdict.assess(claim, verdict.Evidence(tuple(base), tuple(var), paired=paired), s)],
                               s, plan=False)[0]
        out[row["verdict"]] += 1
        covered += row["excl_lo"] is not None and row["excl_lo"] <= v <= row["excl_hi"]
        plain = stats.paired_effect(base, var) if paired else stats.welch_effect(base, var)
        old += (stats.band_pvalues(plain, *band)[1] or 1.0) < ALPHA
    return {"n": n, "sd": sd, "paired": paired, "rho": rho, "effect": effect, "reps": reps,
            "coverage_95": covered / reps, "old_not_reproduced": old / reps, **{k: x / reps for k, x in out.items()}}


# --------------------------------------------------------------------------- zero spread


def rounded_values(n: int, sd: float, step: float, reps: int = 1000, seed: int = 0) -> dict:
    """Headline values and the paper's number rounded to `step` (ties are common when sd < step),
    the same recipe (t2-1cnn-top5-val), through verdict.assess (docs/statistics.md, no spread).

    Returns the rate of rows without p-values (no spread: inconclusive), the range of
    p_reproduced, how many rows had a certain p (p_reproduced 0 or 1, or p_not_reproduced 0;
    p_not_reproduced is 1 by construction for an estimate inside the band) and the coverage
    of the 95% interval among the rows that have one."""
    claim = {c.id: c for c in CL.load_claims()}["t2-1cnn-top5-val"]
    rng = np.random.default_rng([seed, n, int(1000 * sd), int(1000 * step)])
    s = verdict.Settings()
    paper = np.round((claim.value + sd * rng.normal(0, 1, reps)) / step) * step
    ours = np.round((claim.value + sd * rng.normal(0, 1, (reps, n))) / step) * step
    none = certain = with_ci = covered = 0
    p_min, p_max = 1.0, 0.0
    for c, x in zip(paper, ours):
        row = verdict.assess(claim, verdict.Evidence(tuple(float(v) for v in x)), s).row
        if row["p_reproduced"] is None:
            none += 1
            continue
        p_in, p_out = row["p_reproduced"], row["p_not_reproduced"]
        p_min, p_max = min(p_min, p_in), max(p_max, p_in)
        certain += p_in in (0.0, 1.0) or p_out == 0.0
        with_ci += 1
        covered += row["excl_lo"] <= c <= row["excl_hi"]  # mean - c covers 0: the same recipe
    return {"n": n, "sd": sd, "step": step, "reps": reps, "no_p": none / reps, "certain": certain,
            "p_reproduced_range": (p_min, p_max), "coverage_95": covered / max(with_ci, 1)}


# --------------------------------------------------------------------------- different test sets


def different_sets(n: int, sigma: float, reps: int = 1000, delta: float = 0.0, tol: float = 0.8,
                   n_ours: int = 50_000, n_paper: int = 100_000, seed: int = 0,
                   population: TestSet | None = None) -> dict:
    """Our val set against the paper's test-server number (docs/statistics.md, other test sets), per image.

    A population of images (difficulty levels of a TestSet); each replicate draws two test
    sets from it (multinomial counts per level): the paper's (n_paper images, one run) and
    ours (n_ours, n runs). delta: our recipe's population error minus the paper's. Returns
    the coverage of the 95% interval of mean - c for delta, the rate of "reproduced" with the
    band +-tol around c and of "not reproduced"."""
    pop = population or TestSet(n_images=200_000, seed=7)
    rng = np.random.default_rng([seed, n, int(1000 * sigma), int(1000 * delta)])
    freq = pop.m / pop.m.sum()
    tau = pop.tau_for(sigma)
    shift = pop.shift_for(delta) if delta else 0.0
    m_paper = rng.multinomial(n_paper, freq, size=reps)
    m_ours = rng.multinomial(n_ours, freq, size=reps)
    u_paper = rng.normal(0, tau, reps)
    u_ours = rng.normal(shift, tau, (reps, n))
    c = 100.0 * rng.binomial(m_paper, _p(pop.logit[None, :] + u_paper[:, None])).sum(-1) / n_paper
    ours = 100.0 * rng.binomial(m_ours[:, None, :], _p(pop.logit[None, None, :] + u_ours[..., None])).sum(-1) / n_ours
    covered = repro = notrep = no_se = 0
    for r in range(reps):
        est = stats.against_published(ours[r], float(c[r]), False, n_ours, n_paper)
        if est.se is None:  # tied seeds: no interval, inconclusive (counted as not covering)
            no_se += 1
            continue
        lo, hi = stats.interval(est, 1 - ALPHA)
        covered += lo - c[r] <= delta <= hi - c[r]
        p_in, p_out = stats.band_pvalues(est, c[r] - tol, c[r] + tol)
        repro += p_in < ALPHA
        notrep += p_out < ALPHA
    return {"n": n, "sigma": sigma, "delta": delta, "tol": tol, "reps": reps, "coverage_95": covered / reps,
            "reproduced": repro / reps, "not_reproduced": notrep / reps, "no_se": no_se / reps}


# --------------------------------------------------------------------------- ratios under the floor


def ratio_floor(n: int, sd_log: float, resolution: float, true_ratio: float = 0.5, band: tuple = (0.333, 0.667),
                reps: int = 2000, seed: int = 0, paired: bool = False) -> dict:
    """Log ratios whose values are known only to `resolution` steps (docs/statistics.md, ratio floors).

    Iterations of the paper's net are 800 exp(N(0, sd_log^2)) per seed, the variant's
    true_ratio times that; each is read with a uniform error of +-resolution/2 (the logging
    grid's phase). Returns the coverage of the 95% interval of the log ratio and the rates of
    "reproduced" / "not reproduced" against `band`."""
    rng = np.random.default_rng([seed, n, int(1000 * sd_log), int(resolution), int(1000 * true_ratio), int(paired)])
    lo, hi = math.log(band[0]), math.log(band[1])
    covered = repro = notrep = 0
    for _ in range(reps):
        x = 800.0 * np.exp(rng.normal(0, sd_log, n))
        y = 800.0 * true_ratio * (np.exp(rng.normal(0, sd_log, n)) if not paired else x / 800.0)
        x = x + rng.uniform(-resolution / 2, resolution / 2, n)
        y = y + rng.uniform(-resolution / 2, resolution / 2, n)
        est = stats.log_ratio(x, y, paired, resolution)
        a, b = stats.interval(est, 1 - ALPHA)
        covered += a <= math.log(true_ratio) <= b
        p_in, p_out = stats.band_pvalues(est, lo, hi)
        repro += p_in < ALPHA
        notrep += p_out < ALPHA
    return {"n": n, "sd_log": sd_log, "resolution": resolution, "true_ratio": true_ratio, "reps": reps,
            "coverage_95": covered / reps, "reproduced": repro / reps, "not_reproduced": notrep / reps}


# --------------------------------------------------------------------------- seeds needed, fixed n


def planning(sigma: float, n0: int = 3, tol: float = 0.8, reps: int = 1000, seed: int = 0, power: float = 0.8) -> dict:
    """How often `seeds needed` keeps its promise (docs/statistics.md, seeds needed), headline +-tol, same recipe.

    n0 seeds and the paper's run, normal with sd sigma; for each inconclusive row aiming at
    "reproduced" the planned n (verdict.py: sigma's upper 80% limit) and the old plug-in n (at
    the observed sd) are scored by the true power at that n (decision_power with the true
    sigma). "reachable": the true sigma reaches `power` at some n <= N_MAX. Returns the share of
    plans that reach the promised power, and how often "no number suffices" was said though
    the band was reachable."""
    claim = {c.id: c for c in CL.load_claims()}["t2-1cnn-top5-val"]
    c0 = claim.value
    rng = np.random.default_rng([seed, n0, int(1000 * sigma), int(1000 * tol)])
    s = verdict.Settings()
    lo, hi = -tol, tol

    def true_power(m: int) -> float:
        return stats.decision_power(0.0, sigma * math.sqrt(1 / m + 1), m - 1, lo, hi, ALPHA, "reproduced")
    reachable = any(true_power(m) >= power for m in range(2, verdict.N_MAX + 1))
    counts = {"inconclusive": 0, "planned": 0, "planned_kept": 0, "old_planned": 0, "old_kept": 0,
              "never_said": 0, "old_never_said": 0}
    for _ in range(reps):
        c = c0 + sigma * rng.normal()
        x = c0 + sigma * rng.normal(0, 1, n0)
        row = verdict.finalize([verdict.assess(_shifted(claim, c, tol), verdict.Evidence(tuple(x)), s)], s)[0]
        if row["verdict"] != "inconclusive" or row.get("seeds_needed_for") != "reproduced":
            continue
        counts["inconclusive"] += 1
        n_new = row["seeds_needed"]
        counts["planned"] += n_new is not None
        counts["planned_kept"] += n_new is not None and true_power(n_new) >= power
        counts["never_said"] += "even at" in (row.get("seeds_needed_note") or "")
        sd = float(np.std(x, ddof=1))
        n_old = stats.seeds_needed(float(np.mean(x)), c - tol, c + tol, lambda m: (sd * math.sqrt(1 / m + 1), m - 1),
                                   ALPHA, power, "reproduced", n_from=n0 + 1, n_max=verdict.N_MAX)
        counts["old_planned"] += n_old is not None
        counts["old_kept"] += n_old is not None and true_power(n_old) >= power
        counts["old_never_said"] += n_old is None
    k = max(counts["inconclusive"], 1)
    return {"sigma": sigma, "n0": n0, "tol": tol, "reps": reps, "reachable": reachable,
            "inconclusive": counts["inconclusive"] / reps,
            "kept": counts["planned_kept"] / max(counts["planned"], 1), "planned": counts["planned"] / k,
            "no_number_said": counts["never_said"] / k,
            "old_kept": counts["old_kept"] / max(counts["old_planned"], 1), "old_planned": counts["old_planned"] / k,
            "old_no_number_said": counts["old_never_said"] / k}


def planning_effect(sd: float, theta: float = 1.3, n0: int = 3, reps: int = 1000, seed: int = 0,
                    power: float = 0.8) -> dict:
    """`seeds needed` for a paired effect against a threshold (pca-colour-top1: over 1 pp, no
    printed noise): per-pair sd `sd`, true effect theta. Same scores as planning()."""
    claim = {c.id: c for c in CL.load_claims()}["pca-colour-top1"]
    rng = np.random.default_rng([seed, n0, int(1000 * sd), int(1000 * theta)])
    s = verdict.Settings()
    lo = claim.band[0]

    def true_power(m: int) -> float:
        return stats.decision_power(theta, sd / math.sqrt(m), m - 1, lo, None, ALPHA, "reproduced")
    counts = dict.fromkeys(("inconclusive", "planned", "kept", "old_planned", "old_kept", "never", "old_never"), 0)
    for _ in range(reps):
        base = 40.0 + rng.normal(0, 1, n0)
        d = theta + sd * rng.normal(0, 1, n0)
        row = verdict.finalize([verdict.assess(claim, verdict.Evidence(tuple(base), tuple(base + d), paired=True), s)],
                               s)[0]
        if row["verdict"] != "inconclusive" or row.get("seeds_needed_for") != "reproduced":
            continue
        counts["inconclusive"] += 1
        n_new = row["seeds_needed"]
        counts["planned"] += n_new is not None
        counts["kept"] += n_new is not None and true_power(n_new) >= power
        counts["never"] += "even at" in (row.get("seeds_needed_note") or "")
        s_d = float(np.std(d, ddof=1))
        n_old = stats.seeds_needed(float(np.mean(d)), lo, None, lambda m: (s_d / math.sqrt(m), m - 1), ALPHA, power,
                                   "reproduced", n_from=n0 + 1, n_max=verdict.N_MAX)
        counts["old_planned"] += n_old is not None
        counts["old_kept"] += n_old is not None and true_power(n_old) >= power
        counts["old_never"] += n_old is None
    k = max(counts["inconclusive"], 1)
    return {"sd": sd, "theta": theta, "n0": n0, "reps": reps, "inconclusive": counts["inconclusive"] / reps,
            "planned": counts["planned"] / k, "kept": counts["kept"] / max(counts["planned"], 1),
            "no_number_said": counts["never"] / k, "old_planned": counts["old_planned"] / k,
            "old_kept": counts["old_kept"] / max(counts["old_planned"], 1),
            "old_no_number_said": counts["old_never"] / k}


def _shifted(claim: CL.Claim, c: float, tol: float) -> CL.Claim:
    """The claim as if the paper had printed c (band +-tol around it)."""
    from dataclasses import replace
    return replace(claim, value=float(c), band=(float(c) - tol, float(c) + tol))


def sequential(n_max: int = 10, n_min: int = 2, sigma: float = 0.3, tol: float = 0.8, reps: int = 2000,
               seed: int = 0) -> dict:
    """Testing again after each added seed (optional stopping), headline at the band's edge.

    Our recipe is tol worse than the paper's (the claim just fails): the rate of "reproduced"
    at a fixed n_max against stopping at the first n in [n_min, n_max] that says "reproduced"."""
    rng = np.random.default_rng([seed, n_max, int(1000 * sigma)])
    paper = sigma * rng.normal(0, 1, reps)
    ours = tol + sigma * rng.normal(0, 1, (reps, n_max))
    fixed = ever = 0
    for c, x in zip(paper, ours):
        hits = []
        for m in range(n_min, n_max + 1):
            est = stats.against_published(x[:m], float(c))
            hits.append(stats.band_pvalues(est, c - tol, c + tol)[0] < ALPHA)
        fixed += hits[-1]
        ever += any(hits)
    return {"sigma": sigma, "tol": tol, "n_min": n_min, "n_max": n_max, "reps": reps,
            "fixed_n_reproduced": fixed / reps, "sequential_reproduced": ever / reps}


# --------------------------------------------------------------------------- convergence


def convergence_rates(true_ratio: float, band: tuple, n: int, sd_log: float, reps: int = 300, seed: int = 0,
                      steps: int = 4000, window: int = 20, images: int = 640) -> dict:
    """Rates for a convergence claim from simulated training-error series at step resolution.

    Each seed's error curve is 100 * exp(-t / T_r) + 10 (percent), T_r log-normal around T
    (paper's net) or true_ratio * T (variant) with sd sd_log, read every `window` steps from
    `images` images per window (binomial noise); the crossing of 50% goes through
    ablation.crossing, the ratio through verdict (unpaired)."""
    from harness.analysis import ablation
    rng = np.random.default_rng([seed, n, int(100 * true_ratio), int(1000 * sd_log)])
    claim = CL.Claim(id="sim-conv", kind="convergence", dataset="imagenet-unspecified", split="train",
                     protocol="none", pretraining="none", metric="ratio", value=None, qualifier="unstated",
                     unit="x", paper_section="sim", band=band, tolerance_reason="simulation",
                     measure="iterations", arm=(("model.x", 1),), target=(("ilsvrc2012", 50.0),))
    s = verdict.Settings()
    ends = np.arange(window, steps + 1, window, dtype=float)
    out = {"reproduced": 0, "not reproduced": 0, "inconclusive": 0}
    covered = 0
    for _ in range(reps):
        its = []
        for scale in (1.0, true_ratio):
            t = 600.0 * scale * np.exp(rng.normal(0, sd_log, n))
            curves = 100.0 * np.exp(-(ends[None, :] - window / 2) / t[:, None]) * 0.9 + 10.0
            wrong = rng.binomial(images, np.clip(curves / 100.0, 0, 1))
            its.append([ablation.crossing(ablation.Series.from_windows(ends, np.full(ends.size, images), w), 50.0)[0]
                        for w in wrong])
        ev = verdict.Evidence(tuple(its[0]), tuple(its[1]), resolution=window)
        row = verdict.finalize([verdict.assess(claim, ev, s)], s, plan=False)[0]
        out[row["verdict"]] += 1
        covered += row["excl_lo"] <= true_ratio <= row["excl_hi"]
    return {"true_ratio": true_ratio, "band": list(band), "n": n, "sd_log": sd_log, "reps": reps,
            "coverage_95": covered / reps, **{k: v / reps for k, v in out.items()}}


# --------------------------------------------------------------------------- reachability


def reachable_sigma(alpha: float = ALPHA, power: float = 0.8) -> list[dict]:
    """Per claim with a two-sided band around a printed number: the per-run seed sd sigma under
    which "reproduced" is reachable at all (any number of seeds, estimate at the printed
    value), and under which it is reached with `power` (truth at the printed value).

    With infinitely many seeds our part of the variance vanishes and the paper's one run is
    left: headline errors sigma^2; effects printed from one run per arm 2 sigma^2 (the two
    runs of the paper); the 10-patch gain sigma_d^2 (one model two ways; sigma is then the
    per-model sd of the gain). The band's half-width h must exceed z_(1-alpha) times that sd,
    and (z_(1-alpha) + z_((1+power)/2)) times it for TOST power `power` at the centre."""
    from scipy.stats import norm
    z, zp = float(norm.ppf(1 - alpha)), float(norm.ppf((1 + power) / 2))
    rows = []
    for c in CL.load_claims():
        if c.band is None or None in c.band or c.kind not in ("headline", "ablation"):
            continue
        noise = "run" if c.kind == "headline" else verdict.printed_noise(c)
        if noise is None:
            continue
        half = (c.band[1] - c.band[0]) / 2
        factor = math.sqrt(2) if noise == "runs" else 1.0
        rows.append({"claim": c.id, "band": c.band, "paper_noise": {"run": "sigma", "runs": "sqrt(2) sigma",
                                                                     "model": "sigma_d"}[noise],
                     "sigma_reachable": half / (z * factor), "sigma_power": half / ((z + zp) * factor)})
    return rows


# --------------------------------------------------------------------------- the report


def issue29(reps: int) -> None:
    """The rates of the printed-effect, no-spread, other-test-set and ratio-floor cases (docs/statistics.md, "Validation by simulation")."""
    small = max(200, reps // 4)
    print(f"\nAblation, exact replication against the printed effect (docs/statistics.md, printed effects), {small} replicates:")
    print("true effect 0.4 pp in both recipes, the printed v one run per arm, band [v/2, 3v/2]")
    print(f"{'n':>3} {'sd':>5} {'rho':>4} {'paired':>6} {'not repro':>10} {'repro':>6} {'cover95':>8} "
          f"{'old not repro':>14}")
    for n in (3, 10, 30):
        for sd, rho in ((0.2, 0.5), (0.05, 0.9), (0.5, 0.0)):
            for paired in (True, False):
                r = printed_effect(n, sd, paired, rho=rho, reps=small)
                print(f"{n:>3} {sd:>5} {rho:>4} {str(paired):>6} {r['not reproduced']:>10.3f} {r['reproduced']:>6.3f} "
                      f"{r['coverage_95']:>8.3f} {r['old_not_reproduced']:>14.3f}")
    print("\nValues rounded to their printed step (item 2): rows without p (ties), certain p, coverage:")
    for n, sd, step in ((2, 0.02, 0.1), (3, 0.05, 0.1), (3, 0.2, 0.1), (5, 0.03, 0.01), (10, 0.05, 0.1)):
        r = rounded_values(n, sd, step, reps=small)
        print(f"  n {n:>2} sd {sd:<5} step {step:<5}: no p {r['no_p']:.3f}, certain p {r['certain']}, "
              f"p_reproduced in [{r['p_reproduced_range'][0]:.2g}, {r['p_reproduced_range'][1]:.2g}], "
              f"coverage {r['coverage_95']:.3f}")
    print("\nDifferent test sets (item 3): our 50,000 val images vs the paper's 100,000 test images, band +-0.8:")
    print(f"{'n':>3} {'sigma':>6} {'cover95':>8} {'not repro':>10} {'edge: repro':>12} {'edge cover95':>13}")
    pop = TestSet(n_images=200_000, seed=7)
    for n in (2, 3, 5, 10):
        for sigma in (0.1, 0.3, 0.5):
            r = different_sets(n, sigma, reps=small, population=pop)
            e = different_sets(n, sigma, reps=small, delta=0.8, population=pop)
            print(f"{n:>3} {sigma:>6} {r['coverage_95']:>8.3f} {r['not_reproduced']:>10.3f} {e['reproduced']:>12.3f} "
                  f"{e['coverage_95']:>13.3f}")
    print("\nRatios under the resolution floor (item 4), 800 steps, band [0.333, 0.667]:")
    print(f"{'n':>3} {'sd_log':>7} {'res':>4} {'cover95':>8} {'edge: repro':>12} {'edge cover95':>13}")
    for n in (2, 3):
        for sd in (0.0, 0.01, 0.02, 0.05):
            for res in (20, 100):
                r = ratio_floor(n, sd, res, reps=reps // 2)
                e = ratio_floor(n, sd, res, true_ratio=0.667, reps=reps // 2)
                print(f"{n:>3} {sd:>7} {res:>4} {r['coverage_95']:>8.3f} {e['reproduced']:>12.3f} "
                      f"{e['coverage_95']:>13.3f}")
    issue29_planning(reps)


def issue29_planning(reps: int) -> None:
    """Items 5 and 6: ensembles by design, seeds needed, optional stopping; reachable sigma."""
    small = max(200, reps // 4)
    print("\nEnsembles by design (item 5): coverage of the conservative bound at every n:")
    for n in (5, 9, 10, 15):
        r = ensemble_coverage(n, 5, reps=max(100, reps // 10))
        print(f"  {n} seeds: coverage {r['coverage_95']:.3f} ({r['reps']} replicates)")
    print("\nSeeds needed (item 6): share of plans whose true power reaches 0.8; 'no number' said when reachable:")
    for sd, theta, n0 in ((0.3, 1.2, 3), (0.3, 1.2, 5), (0.5, 1.2, 3), (0.5, 1.5, 3)):
        r = planning_effect(sd, theta, n0=n0, reps=small)
        print(f"  effect over 1 pp, sd {sd}, true {theta}, {n0} seeds: kept {r['kept']:.2f} (old {r['old_kept']:.2f}), "
              f"planned {r['planned']:.2f} (old {r['old_planned']:.2f}), no number {r['no_number_said']:.2f} "
              f"(old {r['old_no_number_said']:.2f})")
    for sigma, n0 in ((0.15, 3), (0.2, 3), (0.2, 5), (0.3, 3)):
        r = planning(sigma, n0=n0, reps=small)
        print(f"  headline +-0.8, sigma {sigma}, {n0} seeds (reachable: {r['reachable']}): planned {r['planned']:.2f} "
              f"(old {r['old_planned']:.2f}), kept {r['kept']:.2f} (old {r['old_kept']:.2f}), no number "
              f"{r['no_number_said']:.2f} (old {r['old_no_number_said']:.2f})")
    print("\nOptional stopping (item 6), headline at the band's edge, a test after each seed from 2 to 10:")
    for sigma in (0.1, 0.2, 0.3, 0.5):
        r = sequential(sigma=sigma, reps=reps // 2)
        print(f"  sigma {sigma}: reproduced at n = 10 fixed {r['fixed_n_reproduced']:.3f}, "
              f"stopping at the first 'reproduced' {r['sequential_reproduced']:.3f}")
    print("\nPer-run sigma under which 'reproduced' is reachable (any n) / reached with power 0.8:")
    for r in reachable_sigma():
        print(f"  {r['claim']:<22} band {r['band'][0]:g}-{r['band'][1]:g}, paper noise {r['paper_noise']:<14}: "
              f"sigma < {r['sigma_reachable']:.3f} / {r['sigma_power']:.3f} pp")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer replicates (about 10 s)")
    args = p.parse_args(argv)
    reps = 500 if args.quick else 4000
    t0 = time.perf_counter()
    ts = TestSet()
    print(f"Fixed test set: {ts.n} images, {len(ts.m)} difficulty levels, mean error {float(ts.error()):.2f}%, "
          f"per-image Bernoulli sd of a run {math.sqrt(ts.bernoulli_var):.3f} pp; alpha {ALPHA}; {reps} replicates")
    print("\nHeadline, null (same recipe, same test set), band +-0.9 pp (t2-1cnn-top5-val):")
    print(f"{'n':>3} {'sigma':>6} {'sd':>6} {'not repro':>10} {'point null':>11} {'cover95':>8} {'repro':>7} "
          f"{'old model':>10}")
    for n in (3, 5, 10):
        for sigma in (0.1, 0.3, 0.5):
            r = headline(n, sigma, reps, test_set=ts)
            print(f"{n:>3} {sigma:>6} {r['realised_sd']:>6.3f} {r['not_reproduced']:>10.3f} "
                  f"{r['point_null_rejects']:>11.3f} {r['coverage_95']:>8.3f} {r['reproduced']:>7.3f} "
                  f"{r['old_model_point_rejects']:>10.3f}")
    print("\nHeadline at the band edge (delta = +0.9 pp: the claim just holds / just fails):")
    print(f"{'n':>3} {'sigma':>6} {'P(not reproduced)':>18} {'P(reproduced)':>14} {'cover95':>8}")
    for n in (3, 5, 10):
        for sigma in (0.1, 0.3, 0.5):
            r = headline(n, sigma, reps, delta=0.9, test_set=ts)
            print(f"{n:>3} {sigma:>6} {r['not_reproduced']:>18.3f} {r['reproduced']:>14.3f} {r['coverage_95']:>8.3f}")
    print("\nEnsembles (5-model), coverage of the 95% interval vs one published 5-ensemble, per image:")
    for n in (5, 10):
        r = ensemble_coverage(n, 5, reps=max(100, reps // 10))
        print(f"  {n} seeds, {r['method']}: coverage {r['coverage_95']:.3f} ({r['reps']} replicates)")
    print("\nAblation effects, band [0.2, 0.6] pp (overlap-pool-top1), paired by seed:")
    print(f"{'effect':>7} {'n':>3} {'sd':>5} {'reproduced':>11} {'not repro':>10} {'inconcl':>8}")
    for eff in (-0.4, 0.0, 0.2, 0.4):
        for n, sd in ((5, 0.2), (10, 0.2), (5, 0.05)):
            r = effect_rates(eff, (0.2, 0.6), n, sd, paired=True, reps=max(200, reps // 2))
            print(f"{eff:>7} {n:>3} {sd:>5} {r['reproduced']:>11.3f} {r['not reproduced']:>10.3f} "
                  f"{r['inconclusive']:>8.3f}")
    print("\nConvergence, ratio band [0.333, 0.667] (dropout-convergence), series every 20 steps:")
    print(f"{'ratio':>6} {'n':>3} {'sd_log':>7} {'reproduced':>11} {'not repro':>10} {'cover95':>8}")
    for ratio in (0.5, 1.0, 0.667):
        for n, sd in ((3, 0.05), (5, 0.1)):
            r = convergence_rates(ratio, (0.333, 0.667), n, sd, reps=max(100, reps // 20))
            print(f"{ratio:>6} {n:>3} {sd:>7} {r['reproduced']:>11.3f} {r['not reproduced']:>10.3f} "
                  f"{r['coverage_95']:>8.3f}")
    issue29(reps)
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
