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
    more ensemble of k fresh runs. With n_singles >= 2k the disjoint-ensemble interval is used,
    else the conservative bound sigma_k <= sigma_1 (stats.against_published_bound).
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
        est = (stats.against_published(ens, c) if m >= 2 else stats.against_published_bound(ens, singles, c))
        lo, hi = stats.interval(est, 0.95)
        covered += lo <= c <= hi  # the true difference is 0: same recipe
        sd_1.append(float(np.std(singles, ddof=1)))
        if m >= 2:
            sd_k.append(float(np.std(ens, ddof=1)))
    return {"n_seeds": n_singles, "k": k, "method": "disjoint ensembles" if m >= 2 else "conservative bound",
            "reps": reps, "coverage_95": covered / reps, "mean_sd_single": float(np.mean(sd_1))}


# --------------------------------------------------------------------------- effects


def effect_rates(true_effect: float, band: tuple, n: int, sd: float, paired: bool, reps: int = 2000,
                 seed: int = 0) -> dict:
    """Rates of reproduced / not reproduced for an ablation effect (normal per-seed errors)."""
    rng = np.random.default_rng([seed, n, int(1000 * sd), int(1000 * (true_effect + 10))])
    claim = _effect_claim(band)
    s = verdict.Settings()
    out = {"reproduced": 0, "not reproduced": 0, "inconclusive": 0}
    for _ in range(reps):
        if paired:  # a seed effect shared by both arms; the differences have sd `sd`
            base = 40.0 + rng.normal(0, 1.0, n)
            var = base + true_effect + rng.normal(0, sd, n)
        else:
            base, var = rng.normal(40.0, sd, n), rng.normal(40.0 + true_effect, sd, n)
        ev = verdict.Evidence(tuple(base), tuple(var), paired=paired)
        out[verdict.finalize([verdict.assess(claim, ev, s)], s, plan=False)[0]["verdict"]] += 1
    return {"true_effect": true_effect, "band": list(band), "n": n, "sd": sd, "paired": paired, "reps": reps,
            **{k: v / reps for k, v in out.items()}}


def _effect_claim(band: tuple) -> CL.Claim:
    return CL.Claim(id="sim-effect", kind="ablation", dataset="imagenet-unspecified", split="unspecified",
                    protocol="none", pretraining="none", metric="top1_error_reduction", value=sum(band) / 2
                    if band[1] is not None else band[0], unit="pp", paper_section="sim", band=band,
                    tolerance_reason="simulation", measure="test_error", arm=(("model.x", 1),))


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


# --------------------------------------------------------------------------- the report


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
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
