"""Statistics for comparing seed distributions with the paper's published numbers.

Pure numpy/scipy; no I/O, no torch, no mlflow. Every error rate here is in PERCENT
(0-100), like the paper. Functions return plain Python floats (or None where a quantity
is undefined, e.g. a standard deviation from one seed) so results drop straight into JSON.

Why these tests (paper facts, see PAPER.md section 5): the paper reports single numbers
with no seeds or error bars, measured on a finite test set. Its own numbers therefore
carry binomial sampling noise (17.0% on 150k images: SE 0.10 pp), of the same size as
the seed-to-seed spread of ImageNet CNNs (0.1-0.3 pp). A fair comparison of "our N seeds"
with "one published number" must count both.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats as sps

__all__ = [
    "wilson_interval",
    "clopper_pearson_interval",
    "binomial_se_pct",
    "binomial_var_pct",
    "seed_summary",
    "two_level_bootstrap",
    "compare_mean_to_published",
    "test_against_published",
    "tost_equivalence",
    "tost_from_estimate",
    "welch_difference",
    "welch_tost",
    "bootstrap_difference_interval",
    "mann_whitney",
    "mcnemar",
    "seeds_needed",
    "olympic_mean",
    "convergence_test",
    "verdict",
    "VERDICTS",
]

VERDICTS = ("reproduced", "better", "worse", "inconclusive")


# --------------------------------------------------------------------------- helpers


def _as_values(values: Sequence[float]) -> np.ndarray:
    """Return a 1-D float array of finite values, or raise naming the problem."""
    arr = np.asarray(values, dtype=float).ravel()
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"values must be finite numbers, got {values!r}")
    return arr


def _float_or_none(x) -> float | None:
    """Plain float, with NaN/inf mapped to None (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _check_conf(conf: float) -> None:
    """Confidence levels are probabilities strictly between 0 and 1."""
    if not 0.0 < conf < 1.0:
        raise ValueError(f"conf must be in (0, 1), got {conf}")


def _check_counts(wrong: int, n: int) -> None:
    """Binomial counts: 0 <= wrong <= n, n >= 1."""
    if int(n) != n or int(wrong) != wrong:
        raise ValueError(f"wrong and n must be integers, got wrong={wrong}, n={n}")
    if n < 1 or not 0 <= wrong <= n:
        raise ValueError(f"need 0 <= wrong <= n and n >= 1, got wrong={wrong}, n={n}")


def _t_cdf(t: float, df: float) -> float:
    """Student-t CDF that accepts df=inf (normal limit)."""
    return float(sps.norm.cdf(t)) if math.isinf(df) else float(sps.t.cdf(t, df))


def _t_sf(t: float, df: float) -> float:
    """Student-t survival function that accepts df=inf."""
    return float(sps.norm.sf(t)) if math.isinf(df) else float(sps.t.sf(t, df))


def _t_ppf(q: float, df: float) -> float:
    """Student-t quantile that accepts df=inf."""
    return float(sps.norm.ppf(q)) if math.isinf(df) else float(sps.t.ppf(q, df))


# --------------------------------------------------------------------------- one run


def wilson_interval(wrong: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for an error rate, in percent.

    `wrong` misclassified images out of `n`. Wilson keeps good coverage near 0/100 and is
    what PAPER.md 5 uses for the published numbers (17.0% of 150k -> 16.81-17.19).
    """
    _check_counts(wrong, n)
    _check_conf(conf)
    ci = sps.binomtest(int(wrong), int(n)).proportion_ci(confidence_level=conf, method="wilson")
    return 100.0 * float(ci.low), 100.0 * float(ci.high)


def clopper_pearson_interval(wrong: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for an error rate, in percent; conservative."""
    _check_counts(wrong, n)
    _check_conf(conf)
    ci = sps.binomtest(int(wrong), int(n)).proportion_ci(confidence_level=conf, method="exact")
    return 100.0 * float(ci.low), 100.0 * float(ci.high)


def binomial_var_pct(error_pct: float, n: int) -> float:
    """Binomial sampling variance of an error rate measured on n images, in pp^2.

    var = p (100 - p) / n with p in percent.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0.0 <= error_pct <= 100.0:
        raise ValueError(f"error_pct must be in [0, 100], got {error_pct}")
    return float(error_pct) * (100.0 - float(error_pct)) / float(n)


def binomial_se_pct(error_pct: float, n: int) -> float:
    """Binomial standard error of an error rate, in percentage points.

    PAPER.md 5: 17.0% on 150,000 images -> 0.097 pp; 18.2% on 50,000 -> 0.17 pp.
    """
    return math.sqrt(binomial_var_pct(error_pct, n))


# --------------------------------------------------------------------------- across seeds


def seed_summary(values: Sequence[float], conf: float = 0.95) -> dict:
    """Mean, sample sd (ddof=1), n and the t-interval of the mean across seeds.

    With one seed there is no spread: sd, t_lo and t_hi are None (house rule 7: a single
    seed is not a result, but the summary must not crash). With no values, everything but
    n is None.
    """
    _check_conf(conf)
    arr = _as_values(values)
    n = int(arr.size)
    out = {"mean": None, "sd": None, "n": n, "t_lo": None, "t_hi": None}
    if n == 0:
        return out
    mean = float(arr.mean())
    out["mean"] = mean
    if n < 2:
        return out
    sd = float(arr.std(ddof=1))
    half = _t_ppf(0.5 + conf / 2.0, n - 1) * sd / math.sqrt(n)
    out.update(sd=sd, t_lo=mean - half, t_hi=mean + half)
    return out


def _image_patterns(wrong: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct per-image wrongness patterns across seeds and how many images have each.

    Returns (patterns [K, n_seeds] as float, frequencies [K] summing to 1); K is at most
    min(2^n_seeds, n_images), e.g. 32 for 5 seeds.
    """
    patterns, counts = np.unique(wrong.T, axis=0, return_counts=True)
    return patterns.astype(np.float64), counts / counts.sum()


def two_level_bootstrap(
    correct: np.ndarray,
    n_boot: int = 2000,
    conf: float = 0.95,
    rng_seed: int = 0,
    design: str = "crossed",
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean error over seeds, in percent.

    `correct` is a boolean array [n_seeds, n_images] (True = image classified correctly).
    Each replicate resamples seeds with replacement, then images with replacement
    (PAPER.md 5: both the seed spread and the test-set noise belong in a comparison).

    design="crossed" (default): one image resample per replicate is shared by all
    resampled seeds, because every seed is evaluated on the SAME test images; hard
    images are hard for all seeds, and resampling them jointly keeps that correlation
    (a nested design would treat each seed's test-set noise as independent and
    understate the image-level variance of the mean).
    design="nested": each resampled seed gets its own image resample (classic
    hierarchical bootstrap); its per-seed wrong count is then exactly
    Binomial(N, error_of_that_seed), which is what we draw.

    Resampling at both levels slightly overstates the variance (the seed x image noise
    is counted at both levels), so the interval errs on the wide, conservative side;
    with identical seeds the crossed interval reduces to the one-model image bootstrap.

    Vectorised and exact: resampling N images with replacement only matters through how
    many draws land on each distinct wrongness pattern across seeds, and those counts
    are Multinomial(N, pattern frequencies) with at most 2^n_seeds categories; the
    per-seed wrong counts are then counts @ patterns. Deterministic for a fixed rng_seed.
    """
    _check_conf(conf)
    arr = np.asarray(correct)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"correct must be a non-empty [n_seeds, n_images] array, got shape {arr.shape}")
    if arr.dtype != bool:
        raise ValueError(f"correct must be a boolean array, got dtype {arr.dtype}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    n_seeds, n_images = arr.shape
    rng = np.random.default_rng(rng_seed)
    wrong = ~arr
    seed_idx = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    if design == "nested":
        p = wrong.mean(axis=1)
        counts = rng.binomial(n_images, p[seed_idx])
        errors = counts.sum(axis=1) / (n_seeds * n_images)
    elif design == "crossed":
        patterns, freq = _image_patterns(wrong)
        draws = rng.multinomial(n_images, freq, size=n_boot)  # [n_boot, K]
        per_seed = draws @ patterns  # [n_boot, n_seeds] wrong counts
        picked = np.take_along_axis(per_seed, seed_idx, axis=1)
        errors = picked.mean(axis=1) / n_images
    else:
        raise ValueError(f"design must be 'crossed' or 'nested', got {design!r}")
    tail = 100.0 * (1.0 - conf) / 2.0
    lo, hi = np.percentile(100.0 * errors, [tail, 100.0 - tail])
    return float(lo), float(hi)


# --------------------------------------------------------------------------- vs the paper


def compare_mean_to_published(
    mean: float,
    var_of_mean: float | None,
    df_seed: float,
    paper_pct: float,
    paper_n_images: int | None,
    n_images_ours: int | None = None,
    conf: float = 0.95,
) -> dict:
    """Core of test_against_published, for a mean whose seed variance is given directly.

    Used for single-model claims (var_of_mean = s^2/n, df = n-1) and for ensemble claims
    (var_of_mean = approximate variance of one k-model ensemble, df of the single-model
    sd it was derived from). Returns t, df, p (two-sided), se, lo, hi (the conf-level
    interval of our mean minus the paper's number, shifted back to the paper's scale,
    i.e. an interval for our error that includes every noise term), diff.

    SE^2 = var_of_mean + p_o (100 - p_o) / N_o + p_p (100 - p_p) / N_p, see
    test_against_published. Welch-Satterthwaite: df = SE^4 / (var_of_mean^2 / df_seed);
    the binomial terms count as known variances (df = inf). If var_of_mean is 0 the
    reference distribution is normal. If var_of_mean is None (unknown: one seed) the
    test is not done and p, t, lo, hi are None.
    """
    _check_conf(conf)
    out = {"t": None, "df": None, "p": None, "se": None, "lo": None, "hi": None,
           "diff": float(mean) - float(paper_pct)}
    if var_of_mean is None:
        return out
    binom = 0.0  # each binomial term is added when its test-set size is known
    if paper_n_images is not None:
        binom += binomial_var_pct(paper_pct, paper_n_images)
    if n_images_ours is not None:
        binom += binomial_var_pct(min(max(mean, 0.0), 100.0), n_images_ours)
    var = float(var_of_mean) + binom
    if var <= 0.0:
        return out
    se = math.sqrt(var)
    df = math.inf if var_of_mean == 0.0 else var**2 / (float(var_of_mean) ** 2 / df_seed)
    t = out["diff"] / se
    p = 2.0 * _t_sf(abs(t), df)
    half = _t_ppf(0.5 + conf / 2.0, df) * se
    out.update(t=t, df=_float_or_none(df), p=p, se=se, lo=mean - half, hi=mean + half)
    return out


def test_against_published(
    values_pct: Sequence[float],
    paper_pct: float,
    paper_n_images: int | None,
    n_images_ours: int | None = None,
    conf: float = 0.95,
) -> dict:
    """Two-sided test of "our seed mean equals the paper's number", noise on both sides.

    The paper's number c was measured once on N_p test images, so it is itself a noisy
    estimate: Var(c) = c (100 - c) / N_p (binomial, pp^2; PAPER.md 5). Our mean over n
    seeds, all evaluated on the same N_o images, has seed variance s^2 / n plus the
    binomial noise of our own test set, p_o (100 - p_o) / N_o, shared by all seeds and
    so not visible in s. The statistic is

        t = (mean - c) / sqrt(s^2/n + p_o(100-p_o)/N_o + c(100-c)/N_p)

    with Welch-Satterthwaite degrees of freedom in which the binomial terms are treated
    as having huge (infinite) df:  df = SE^4 / ((s^2/n)^2 / (n-1)).  When the binomial
    terms dominate, df grows and the test approaches a z-test; when they vanish it is
    the ordinary one-sample t-test. n_images_ours=None drops our binomial term.
    A df of None in the result means infinite (normal reference; JSON has no inf).

    paper_n_images=None (test-set size unknown) falls back to scipy.stats.ttest_1samp.
    Returns {t, df, p, se, lo, hi, diff, mean, n}; with fewer than two seeds the seed
    variance is unknown and t, p, lo, hi are None.
    """
    arr = _as_values(values_pct)
    if arr.size == 0:
        raise ValueError("need at least one value")
    mean, n = float(arr.mean()), int(arr.size)
    if paper_n_images is None:
        out = _plain_one_sample(arr, paper_pct, conf)
    else:
        var_mean = float(arr.var(ddof=1)) / n if n >= 2 else None
        out = compare_mean_to_published(mean, var_mean, n - 1, paper_pct, paper_n_images,
                                        n_images_ours, conf)
    out.update(mean=mean, n=n)
    return out


# The name starts with "test_": keep pytest from collecting it when a test module imports it.
test_against_published.__test__ = False


def _plain_one_sample(arr: np.ndarray, paper_pct: float, conf: float) -> dict:
    """scipy.stats.ttest_1samp plus the matching t-interval; None where undefined."""
    n, mean = arr.size, float(arr.mean())
    out = {"t": None, "df": None, "p": None, "se": None, "lo": None, "hi": None,
           "diff": mean - float(paper_pct)}
    if n < 2 or float(arr.std(ddof=1)) == 0.0:
        return out
    res = sps.ttest_1samp(arr, paper_pct)
    se = float(arr.std(ddof=1)) / math.sqrt(n)
    half = _t_ppf(0.5 + conf / 2.0, n - 1) * se
    out.update(t=float(res.statistic), df=float(n - 1), p=float(res.pvalue), se=se,
               lo=mean - half, hi=mean + half)
    return out


def tost_from_estimate(diff: float, se: float | None, df: float | None, margin_pp: float) -> dict:
    """TOST p-values for an estimated difference `diff` with standard error se.

    df None (or inf) means a normal reference distribution. Returns {p, lower_p, upper_p},
    all None when se is unknown or zero.
    """
    if margin_pp <= 0:
        raise ValueError(f"margin_pp must be > 0, got {margin_pp}")
    if se is None or se <= 0.0:
        return {"p": None, "lower_p": None, "upper_p": None}
    df = math.inf if df is None else df
    # H0_lower: diff <= -margin (reject when diff is clearly above -margin)
    lower_p = _t_sf((diff + margin_pp) / se, df)
    # H0_upper: diff >= +margin (reject when diff is clearly below +margin)
    upper_p = _t_cdf((diff - margin_pp) / se, df)
    return {"p": max(lower_p, upper_p), "lower_p": lower_p, "upper_p": upper_p}


def tost_equivalence(
    values_pct: Sequence[float],
    paper_pct: float,
    margin_pp: float,
    paper_n_images: int | None = None,
    n_images_ours: int | None = None,
) -> dict:
    """Two one-sided tests: is our seed mean within +-margin_pp of the paper's number?

    Same standard error and df as test_against_published (so the two tests agree on the
    noise model): lower test H0: mean - c <= -margin, upper test H0: mean - c >= +margin;
    p = max(lower_p, upper_p). p < alpha means "equivalent within the margin", which is
    the same as the (1 - 2 alpha) interval lying inside c +- margin. The margin must be
    declared before looking at the data (PAPER.md 5). Returns {p, lower_p, upper_p};
    all None when the variance is unknown (one seed) or zero.
    """
    if margin_pp <= 0:
        raise ValueError(f"margin_pp must be > 0, got {margin_pp}")
    res = test_against_published(values_pct, paper_pct, paper_n_images, n_images_ours)
    return tost_from_estimate(res["diff"], res["se"], res["df"], margin_pp)


# --------------------------------------------------------------------------- two groups


def _welch_parts(a: np.ndarray, b: np.ndarray) -> tuple[float, float | None, float | None]:
    """Difference of means, its Welch standard error and Welch-Satterthwaite df."""
    diff = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return diff, None, None
    va, vb = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
    var = va + vb
    if var <= 0.0:
        return diff, None, None
    df = var**2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    return diff, math.sqrt(var), df


def welch_difference(a: Sequence[float], b: Sequence[float], conf: float = 0.95) -> dict:
    """Welch (unequal-variance) t-test and interval for mean(a) - mean(b).

    For two seed distributions, e.g. this run vs earlier runs, or an ablation pair
    (PAPER.md 5). Returns {diff, lo, hi, p, se, df}; lo/hi/p/se/df are None when a side
    has fewer than two values or both sides have zero spread.
    """
    _check_conf(conf)
    xa, xb = _as_values(a), _as_values(b)
    if xa.size == 0 or xb.size == 0:
        raise ValueError("both groups need at least one value")
    diff, se, df = _welch_parts(xa, xb)
    out = {"diff": diff, "lo": None, "hi": None, "p": None, "se": se, "df": df}
    if se is None:
        return out
    half = _t_ppf(0.5 + conf / 2.0, df) * se
    p = float(sps.ttest_ind(xa, xb, equal_var=False).pvalue)
    out.update(lo=diff - half, hi=diff + half, p=p)
    return out


def welch_tost(a: Sequence[float], b: Sequence[float], margin_pp: float) -> dict:
    """Two-sample TOST (Welch): is |mean(a) - mean(b)| < margin_pp? Returns {p, lower_p, upper_p}."""
    diff, se, df = _welch_parts(_as_values(a), _as_values(b))
    return tost_from_estimate(diff, se, df, margin_pp)


def bootstrap_difference_interval(
    a: Sequence[float],
    b: Sequence[float],
    n_boot: int = 10000,
    conf: float = 0.95,
    rng_seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval for mean(a) - mean(b), resampling each group separately.

    Crude with a handful of seeds (the resampled means take few distinct values), so
    it is reported beside the Welch interval, never instead of it.
    """
    _check_conf(conf)
    xa, xb = _as_values(a), _as_values(b)
    if xa.size == 0 or xb.size == 0:
        raise ValueError("both groups need at least one value")
    rng = np.random.default_rng(rng_seed)
    ma = xa[rng.integers(0, xa.size, size=(n_boot, xa.size))].mean(axis=1)
    mb = xb[rng.integers(0, xb.size, size=(n_boot, xb.size))].mean(axis=1)
    tail = 100.0 * (1.0 - conf) / 2.0
    lo, hi = np.percentile(ma - mb, [tail, 100.0 - tail])
    return float(lo), float(hi)


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> dict:
    """Two-sided Mann-Whitney U test (rank-based; no normality assumed). Returns {u, p}."""
    xa, xb = _as_values(a), _as_values(b)
    if xa.size == 0 or xb.size == 0:
        raise ValueError("both groups need at least one value")
    res = sps.mannwhitneyu(xa, xb, alternative="two-sided")
    return {"u": float(res.statistic), "p": _float_or_none(res.pvalue)}


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """Exact McNemar test for two classifiers on the same images (PAPER.md 5).

    b = images A gets right and B gets wrong, c = the reverse; under H0 each discordant
    image is a fair coin, so p = two-sided exact binomial test of b out of b + c at 0.5.
    With no discordant images p = 1. Returns {b, c, p}.
    """
    xa, xb = np.asarray(correct_a), np.asarray(correct_b)
    if xa.shape != xb.shape or xa.dtype != bool or xb.dtype != bool:
        raise ValueError(f"need two boolean arrays of equal shape, got {xa.shape}/{xa.dtype} "
                         f"and {xb.shape}/{xb.dtype}")
    b = int(np.count_nonzero(xa & ~xb))
    c = int(np.count_nonzero(~xa & xb))
    p = 1.0 if b + c == 0 else float(sps.binomtest(b, b + c, 0.5).pvalue)
    return {"b": b, "c": c, "p": p}


# --------------------------------------------------------------------------- planning


def seeds_needed(
    sd: float,
    delta: float,
    alpha: float = 0.05,
    power: float = 0.8,
    extra_var: float = 0.0,
) -> int | None:
    """Seeds needed to detect a mean shift of `delta` pp with a two-sided test.

    n = ceil((z_{1-alpha/2} + z_power)^2 sd^2 / delta^2), at least 2 (one seed gives no
    spread). PAPER.md 5 quotes n ~ 7.85 sd^2/delta^2 for alpha 0.05, power 0.8.
    `extra_var` (pp^2) is noise that more seeds cannot reduce, e.g. the binomial noise of
    the paper's and our test sets: then n = sd^2 / ((delta / (z_a + z_b))^2 - extra_var),
    and None is returned when extra_var alone already exceeds the budget (no number of
    seeds reaches that power).
    """
    if delta <= 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    if sd < 0 or extra_var < 0:
        raise ValueError(f"sd and extra_var must be >= 0, got sd={sd}, extra_var={extra_var}")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha}, {power}")
    z = sps.norm.ppf(1.0 - alpha / 2.0) + sps.norm.ppf(power)
    budget = (delta / z) ** 2 - extra_var
    if budget <= 0:
        return None
    return max(2, math.ceil(sd**2 / budget))


def olympic_mean(values: Sequence[float]) -> float:
    """Mean after dropping the single best and single worst value (MLPerf style); n >= 3."""
    arr = np.sort(_as_values(values))
    if arr.size < 3:
        raise ValueError(f"olympic mean needs at least 3 values, got {arr.size}")
    return float(arr[1:-1].mean())


def convergence_test(
    ours_iters: Sequence[float],
    reference_iters: Sequence[float],
    alpha: float = 0.05,
) -> dict:
    """MLPerf-style check: do our runs converge significantly faster than the reference?

    One-sided Welch t-test, H1: mean(ours) < mean(reference) (fewer iterations to the
    target), at alpha 0.05 as in MLPerf's reference convergence points; a one-element
    reference is a fixed number (one-sample t-test). Olympic means (drop best and worst)
    are reported when a side has >= 3 runs, plain means otherwise. Returns
    {ours_mean, reference_mean, ratio, t, p_faster, faster}; t/p None when undefined.
    """
    xo, xr = _as_values(ours_iters), _as_values(reference_iters)
    if xo.size == 0 or xr.size == 0:
        raise ValueError("both groups need at least one value")
    centre = lambda x: olympic_mean(x) if x.size >= 3 else float(x.mean())  # noqa: E731
    ours_c, ref_c = centre(xo), centre(xr)
    t = p = None
    if xr.size == 1:
        if xo.size >= 2 and float(xo.std(ddof=1)) > 0:
            res = sps.ttest_1samp(xo, xr[0], alternative="less")
            t, p = float(res.statistic), float(res.pvalue)
    else:
        diff, se, df = _welch_parts(xo, xr)
        if se is not None:
            t = diff / se
            p = _t_cdf(t, df)
    return {"ours_mean": ours_c, "reference_mean": ref_c,
            "ratio": ours_c / ref_c if ref_c else None,
            "t": t, "p_faster": p, "faster": bool(p is not None and p < alpha)}


# --------------------------------------------------------------------------- verdict


def verdict(
    mean: float | None,
    lo: float | None,
    hi: float | None,
    paper_pct: float,
    margin_pp: float,
    tost_p: float | None,
    alpha: float = 0.05,
) -> str:
    """One word for "our error vs the paper's", with a margin declared in advance.

    - "reproduced": TOST p < alpha, i.e. our mean is shown to lie within +-margin of the
      paper's number (equivalent to the (1-2 alpha) interval inside paper +- margin).
    - "better": the interval [lo, hi] lies entirely below paper - margin (lower error is
      better): we are lower by more than the margin, beyond all noise.
    - "worse": the interval lies entirely above paper + margin.
    - "inconclusive": anything else, including no interval (one seed) and intervals that
      exclude the paper's number but not the margin (a difference that may be smaller
      than what we declared as meaningful).
    The interval must already include the paper's sampling noise (see
    compare_mean_to_published); this function does no statistics of its own.
    """
    if margin_pp <= 0:
        raise ValueError(f"margin_pp must be > 0, got {margin_pp}")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"interval is reversed: lo={lo} > hi={hi}")
    if mean is not None and lo is not None and hi is not None and not lo <= mean <= hi:
        raise ValueError(f"mean {mean} lies outside its interval [{lo}, {hi}]")
    if tost_p is not None and tost_p < alpha:
        return "reproduced"
    if lo is None or hi is None:
        return "inconclusive"
    if hi < paper_pct - margin_pp:
        return "better"
    if lo > paper_pct + margin_pp:
        return "worse"
    return "inconclusive"
