"""Statistics behind the verdicts: estimates with their noise, band decisions, power, Holm.

Pure numpy/scipy/statsmodels; no I/O, no torch, no mlflow. Every error rate is in PERCENT
(0-100), like the paper. Functions return plain Python floats (or None where a quantity is
undefined, e.g. a standard deviation from one seed) so results drop straight into JSON.

docs/statistics.md derives every formula here and states the decision rules; the headline
null model in short: the paper's number c is ONE training run of the recipe on a fixed test
set, so against our n seeds on the same images Var(mean - c) = sigma^2 (1/n + 1) with
df = n - 1 (the image-sampling term is shared and cancels); binomial terms enter only when
the two test sets differ. Verdict logic (labels, claims, multiplicity) lives in verdict.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import stats as sps

__all__ = [
    "Estimate",
    "wilson_interval",
    "clopper_pearson_interval",
    "binomial_se_pct",
    "binomial_var_pct",
    "seed_summary",
    "two_level_bootstrap",
    "against_published",
    "against_published_bound",
    "value_step",
    "spread_var",
    "effect_against_printed",
    "paired_diff_var",
    "sd_limits",
    "paired_effect",
    "welch_effect",
    "log_ratio",
    "band_pvalues",
    "two_sided_p",
    "interval",
    "proportion_pvalues",
    "holm",
    "decision_power",
    "proportion_power",
    "seeds_needed",
    "tost_from_estimate",
    "welch_difference",
    "welch_tost",
    "welch_tost_power",
    "bootstrap_difference_interval",
    "mann_whitney",
    "mcnemar",
]

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


# A difference this small next to the numbers compared is float noise (0.6 computed as
# 41.6 - 41.0 is 0.6000000000000014), not a measurement: band edges and zero spreads use it.
FLOAT_TOL = 1e-9


def value_step(values: Sequence[float], max_decimals: int = 6) -> float:
    """The decimal step the values are given to: 0.1 for (18.2, 18.4), 0.01 for (19.01,);
    0.0 when they carry more than `max_decimals` decimals (computed, not typed, numbers)."""
    arr = _as_values(values)
    for d in range(max_decimals + 1):
        scaled = arr * 10.0**d
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-6 * np.maximum(1.0, np.abs(scaled))):
            return 10.0**-d
    return 0.0


def spread_var(values: Sequence[float]) -> float | None:
    """Sample variance (ddof 1) as evidence of seed noise: None from one value, 0.0 when the
    values show no spread (identical, or differing only at float level), else at least
    step^2/4, the largest variance a rounding error of +-step/2 can have (docs/statistics.md,
    "no spread"): with seeds tighter than the step the rounding errors are not uniform, and
    the uniform step^2/12 covered 0.925 (benchmarks/verdict_sim.py, rounded_values).

    No spread is no evidence of a small sigma: identical values may be one run given twice or
    numbers rounded too coarsely, so callers give no standard error (inconclusive) rather
    than a certain verdict."""
    arr = _as_values(values)
    if arr.size < 2:
        return None
    sd = float(arr.std(ddof=1))
    step = value_step(arr)
    if sd <= FLOAT_TOL * max(1.0, float(np.max(np.abs(arr)))) or sd < 1e-3 * step:
        return 0.0
    return max(sd**2, step**2 / 4.0)


def sd_limits(sd: float, df: float, level: float = 0.8) -> tuple[float, float]:
    """(lower, upper) one-sided `level` confidence limits of sigma from a sample sd on df
    degrees of freedom (chi-square): sigma <= upper with probability `level`, and >= lower."""
    if not math.isfinite(df):
        return sd, sd
    lower = sd * math.sqrt(df / float(sps.chi2.ppf(level, df)))
    upper = sd * math.sqrt(df / float(sps.chi2.ppf(1.0 - level, df)))
    return lower, upper


# --------------------------------------------------------------------------- one run


def wilson_interval(wrong: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for an error rate, in percent.

    `wrong` misclassified images out of `n`. Wilson keeps good coverage near 0/100
    (17.0% of 150k -> 16.81-17.19).
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

    17.0% on 150,000 images -> 0.097 pp; 18.2% on 50,000 -> 0.17 pp.
    """
    return math.sqrt(binomial_var_pct(error_pct, n))


# --------------------------------------------------------------------------- across seeds


def seed_summary(values: Sequence[float], conf: float = 0.95) -> dict:
    """Mean, sample sd (ddof=1), n and the t-interval of the mean across seeds.

    With one seed there is no spread: sd, t_lo and t_hi are None (docs/architecture.md, house rule 7: a single
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
    (both the seed spread and the test-set noise belong in an interval of the mean error).

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


# --------------------------------------------------------------------------- estimates


@dataclass(frozen=True)
class Estimate:
    """A quantity with its noise: `value` on the test scale (log for ratios), its standard
    error `se` (None: unknown, e.g. one seed) and the degrees of freedom of the reference t
    distribution (math.inf: normal). `n` is the number of independent units behind it
    (seeds, pairs or disjoint ensembles), `n_variant` the second group's (None: one group).
    """

    value: float
    se: float | None
    df: float
    n: int
    n_variant: int | None = None
    method: str = ""


def _vs_published(mean: float, seed_var: float | None, seed_df: float, binom: float, n: int,
                  method: str) -> Estimate:
    """mean with Var = seed_var + binom and df = seed_df, the seeds' (no spread: no se).

    The df is the seeds' even when the binomial term of two different test sets is added:
    with T = Z / sqrt((a chi2_df / df + B) / (a + B)), B a known variance, the t on df is
    conservative, whereas Welch-Satterthwaite with B counted as known (df inf) jumps from 1
    to about 5.6 at two seeds and undercovers (0.87; docs/statistics.md, "different test sets")."""
    if seed_var is None or seed_var == 0.0:
        return Estimate(mean, None, math.inf, n, method=method)
    return Estimate(mean, math.sqrt(seed_var + binom), float(seed_df), n, method=method)


def _binomial_terms(mean: float, paper_pct: float, n_images: int | None, paper_n_images: int | None) -> float:
    """p_o(100 - p_o)/N_o + c(100 - c)/N_p: the image sampling of two DIFFERENT test sets."""
    if n_images is None or paper_n_images is None:
        raise ValueError("different test sets need both test-set sizes (n_images and paper_n_images)")
    return binomial_var_pct(min(max(mean, 0.0), 100.0), n_images) + binomial_var_pct(paper_pct, paper_n_images)


def against_published(values_pct: Sequence[float], paper_pct: float, same_test_set: bool = True,
                      n_images: int | None = None, paper_n_images: int | None = None) -> Estimate:
    """Our mean error over n seeds against ONE published run c (docs/statistics.md, "headline").

    The paper's c is one draw of the same recipe: c = mu_T + e_p with Var(e_p) = sigma^2,
    sigma^2 the seed-to-seed variance on the test set T. Our mean = mu_T' + (mean of n seed
    draws). Same test set (T = T'): the image-sampling term mu_T is common and cancels, so

        Var(mean - c) = sigma^2 (1/n + 1),   t = (mean - c) / (s sqrt(1/n + 1)) ~ t_{n-1},

    exactly (c is independent of our seeds). Different test sets: mu_T - mu_T' adds the
    binomial variance of both sets, p_o(100-p_o)/N_o + c(100-c)/N_p (an upper bound of the
    image-sampling variance), with df n - 1 from the seeds (conservative, _vs_published).

    The Estimate's value is our mean (the error scale): the interval value +- t se equals
    c + the interval of mean - c, so it is compared with a band around c directly.
    """
    arr = _as_values(values_pct)
    if arr.size == 0:
        raise ValueError("need at least one value")
    n, mean = int(arr.size), float(arr.mean())
    s2 = spread_var(arr)
    seed_var = None if s2 is None else s2 * (1.0 / n + 1.0)
    binom = 0.0 if same_test_set else _binomial_terms(mean, paper_pct, n_images, paper_n_images)
    how = "same test set: Var = s^2 (1/n + 1)" if same_test_set else \
        "different test sets: Var = s^2 (1/n + 1) + both binomial terms"
    return _vs_published(mean, seed_var, n - 1, binom, n, how)


def against_published_bound(ensemble_pct: Sequence[float], singles_pct: Sequence[float], paper_pct: float,
                            same_test_set: bool = True, n_images: int | None = None,
                            paper_n_images: int | None = None) -> Estimate:
    """m disjoint k-model ensembles against one published k-ensemble, when m < 2.

    Declared conservative assumption (docs/statistics.md, "ensembles"): the seed-to-seed
    sd of a k-ensemble's error is at most a single model's, sigma_k <= sigma_1 (averaging
    models does not make the error vary more). Var(mean of m ensembles - c) = sigma_k^2
    (1/m + 1) <= sigma_1^2 (1/m + 1), with s_1 and df from the single models. Its coverage
    is checked by simulation (benchmarks/verdict_sim.py, tests/unit/test_verdict_sim.py).
    """
    ens, singles = _as_values(ensemble_pct), _as_values(singles_pct)
    if ens.size == 0 or singles.size == 0:
        raise ValueError("need at least one ensemble and one single-model value")
    m, mean, n1 = int(ens.size), float(ens.mean()), int(singles.size)
    s2 = spread_var(singles)
    seed_var = None if s2 is None else s2 * (1.0 / m + 1.0)
    binom = 0.0 if same_test_set else _binomial_terms(mean, paper_pct, n_images, paper_n_images)
    return _vs_published(mean, seed_var, n1 - 1, binom, m,
                         f"{m} ensemble(s), conservative bound sigma_k <= sigma_1 from {n1} single models")


def paired_effect(paper_values: Sequence[float], variant_values: Sequence[float]) -> Estimate:
    """variant - paper net, paired by seed: mean of the differences, sd/sqrt(n), df n - 1."""
    x, y = _as_values(paper_values), _as_values(variant_values)
    if x.size != y.size or x.size == 0:
        raise ValueError(f"paired values need equal, non-zero lengths, got {x.size} and {y.size}")
    d = y - x
    n = int(d.size)
    v = paired_diff_var(x, y)
    se = math.sqrt(v / n) if v else None
    return Estimate(float(d.mean()), se, float(n - 1) if se else math.inf, n, n, "paired t over seeds")


def paired_diff_var(x: np.ndarray, y: np.ndarray) -> float | None:
    """spread_var of the per-seed differences y - x, rounded to the values' own step first
    (41.6 - 41.0 is 0.6 to the data, whatever the float says)."""
    step = min((s for s in (value_step(x), value_step(y)) if s > 0), default=0.0)
    d = y - x
    return spread_var(np.round(d / step) * step if step else d)


def welch_effect(paper_values: Sequence[float], variant_values: Sequence[float]) -> Estimate:
    """variant - paper net for two independent groups of seeds (Welch se and df)."""
    x, y = _as_values(paper_values), _as_values(variant_values)
    if x.size == 0 or y.size == 0:
        raise ValueError("both groups need at least one value")
    diff = float(y.mean() - x.mean())
    sx, sy = spread_var(x), spread_var(y)
    if not sx or not sy:  # one value, or no spread, in a group: no standard error
        return Estimate(diff, None, math.inf, int(x.size), int(y.size), "Welch t")
    vx, vy = sx / x.size, sy / y.size
    var = vx + vy
    df = var**2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    return Estimate(diff, math.sqrt(var), df, int(x.size), int(y.size), "Welch t")


def effect_against_printed(paper_values: Sequence[float], variant_values: Sequence[float], paired: bool,
                           one_model: bool = False) -> Estimate:
    """variant - paper's net against an effect v the paper printed from ONE run per arm.

    The printed v = delta_p + e_p is one draw of the paper's recipe, as a headline number is
    (docs/statistics.md, "effects"): e_p is the difference of two independent training runs,
    Var(e_p) = sigma_x^2 + sigma_y^2, or, for one model evaluated two ways (one_model: the
    10-patch gain), the per-model sd of the difference, sigma_d^2. So the analogue of the
    headline's s^2 (1/n + 1) for our effect d minus the printed one is

      one_model:  s_d^2 (1/n + 1),                          df n - 1 (exact);
      paired:     s_d^2 / n + s_x^2 + s_y^2,                 df n - 1;
      unpaired:   s_x^2 (1/n_x + 1) + s_y^2 (1/n_y + 1),     Welch-Satterthwaite df,

    the paper's run variances estimated from our arms' seed spread. Paired, the three terms
    come from the same seeds (correlated sample variances): a sum of chi-squares on n - 1 df
    each, however correlated, has at least n - 1 effective df (Cauchy-Schwarz), so df n - 1
    is conservative. The estimate's value is our effect, compared with the band directly.
    """
    x, y = _as_values(paper_values), _as_values(variant_values)
    if x.size == 0 or y.size == 0:
        raise ValueError("both groups need at least one value")
    if paired or one_model:
        if x.size != y.size:
            raise ValueError(f"paired values need equal lengths, got {x.size} and {y.size}")
        n = int(x.size)
        value = float((y - x).mean())
        vd = paired_diff_var(x, y)
        if one_model:
            return _printed_estimate(value, vd and vd * (1.0 / n + 1.0), n - 1, n, n,
                                     "paired t over seeds, against one printed model: Var = s_d^2 (1/n + 1)")
        sx, sy = spread_var(x), spread_var(y)
        var = vd and sx and sy and vd / n + sx + sy
        return _printed_estimate(value, var, n - 1, n, n,
                                 "paired t over seeds, against one printed run per arm: Var = s_d^2/n + s_x^2 + s_y^2")
    value = float(y.mean() - x.mean())
    sx, sy = spread_var(x), spread_var(y)
    if not sx or not sy:
        return _printed_estimate(value, None, math.inf, int(x.size), int(y.size), "Welch t")
    vx, vy = sx * (1.0 / x.size + 1.0), sy * (1.0 / y.size + 1.0)
    df = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    return _printed_estimate(value, vx + vy, df, int(x.size), int(y.size),
                             "Welch t, against one printed run per arm: Var = s_x^2 (1/n_x + 1) + s_y^2 (1/n_y + 1)")


def _printed_estimate(value: float, var: float | None, df: float, n: int, n_variant: int, method: str) -> Estimate:
    if not var:
        return Estimate(value, None, math.inf, n, n_variant, method)
    return Estimate(value, math.sqrt(var), float(df), n, n_variant, method)


def _floored(var_sample: float, floor: float, n: int) -> tuple[float, float]:
    """(variance of a mean, df): the sample variance, or the resolution floor when larger.

    The df stay n - 1 under the floor: a sample variance below the floor does not make the
    true variance known (it may be far above it); counting it known (df inf) undercovered at
    n = 2 (a review measured 0.87-0.92; benchmarks/verdict_sim.py, ratio_floor: 0.928). Groups
    of one value get no standard error at all (log_ratio)."""
    return max(var_sample, floor) / n, float(n - 1)


def log_ratio(paper_values: Sequence[float], variant_values: Sequence[float], paired: bool,
              resolution: float = 0.0) -> Estimate:
    """log(variant / paper net) for positive quantities (iterations to a target, train time).

    On the log scale: mean log variant - mean log paper (unpaired, Welch) or the mean of
    per-seed log differences (paired). Each value is known only to `resolution` (the steps
    between logged points): a uniform error of that width has variance resolution^2 / 12,
    i.e. (resolution / x)^2 / 12 on the log scale. That is a floor on each group's variance,
    so tied seeds (zero sample spread) still get a non-zero standard error, with the seeds'
    df n - 1 (the floor is a lower bound of the variance, not its value: _floored). Without a
    floor (training times), no spread gives no standard error (docs/statistics.md, "no spread").
    """
    x, y = _as_values(paper_values), _as_values(variant_values)
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("ratios need positive values")
    lx, ly = np.log(x), np.log(y)
    qx = float(np.mean((resolution / x) ** 2)) / 12.0
    qy = float(np.mean((resolution / y) ** 2)) / 12.0
    if paired:
        if x.size != y.size:
            raise ValueError(f"paired values need equal lengths, got {x.size} and {y.size}")
        d = ly - lx
        n = int(d.size)
        if n < 2:  # one pair: the floor alone would pass for sigma (docs/statistics.md, "no spread")
            return Estimate(float(d.mean()), None, math.inf, n, n, "paired t on log values")
        var, df = _floored(float(d.var(ddof=1)) if n >= 2 else 0.0, qx + qy, n)
        if var <= 0.0:  # no spread and no resolution floor (e.g. tied training times): no evidence
            return Estimate(float(d.mean()), None, math.inf, n, n, "paired t on log values")
        return Estimate(float(d.mean()), math.sqrt(var), df, n, n, "paired t on log values")
    value = float(ly.mean() - lx.mean())
    if x.size < 2 or y.size < 2:  # one value in a group: no spread, whatever the floor
        return Estimate(value, None, math.inf, int(x.size), int(y.size), "Welch t on log values")
    vx, dfx = _floored(float(lx.var(ddof=1)) if x.size >= 2 else 0.0, qx, int(x.size))
    vy, dfy = _floored(float(ly.var(ddof=1)) if y.size >= 2 else 0.0, qy, int(y.size))
    if vx <= 0.0 or vy <= 0.0:  # a group with no spread and no resolution floor: no evidence
        return Estimate(value, None, math.inf, int(x.size), int(y.size), "Welch t on log values")
    var = vx + vy
    den = (vx**2 / dfx if math.isfinite(dfx) else 0.0) + (vy**2 / dfy if math.isfinite(dfy) else 0.0)
    df = math.inf if den == 0 else var**2 / den
    return Estimate(value, math.sqrt(var), df, int(x.size), int(y.size), "Welch t on log values")


# --------------------------------------------------------------------------- decisions


def _z(diff: float, se: float, scale: float = 1.0) -> float:
    """diff / se, with se = 0 giving +-inf (or 0 for a zero difference). A difference at float
    level next to `scale` (the edge compared with) is 0: an estimate of 0.6000000000000014
    lies on the edge 0.6, not outside it."""
    if abs(diff) <= FLOAT_TOL * max(1.0, abs(scale)):
        diff = 0.0
    if se > 0:
        return diff / se
    return math.inf if diff > 0 else (-math.inf if diff < 0 else 0.0)


def band_pvalues(est: Estimate, lo: float | None, hi: float | None, above: bool = True,
                 below: bool = True) -> tuple[float | None, float | None]:
    """(p_inside, p_outside) of the band [lo, hi] (None: unbounded side), docs/statistics.md.

    p_inside: TOST, max of the one-sided p of H0 theta <= lo and of H0 theta >= hi;
    p_inside < alpha  <=>  the (1 - 2 alpha) interval lies inside the band.
    p_outside: 2 min(p of H0 theta <= hi, p of H0 theta >= lo), capped at 1;
    p_outside < alpha  <=>  the (1 - alpha) interval lies entirely outside the band. Under
    any theta in the band the two events have probability <= alpha/2 each and are disjoint.
    above / below False: the data cannot show that side of "outside" (e.g. a censored bound),
    so it is not tested. Both None when the standard error is unknown.
    """
    if est.se is None:
        return None, None
    p_lo = 0.0 if lo is None else _t_sf(_z(est.value - lo, est.se, lo), est.df)
    p_hi = 0.0 if hi is None else _t_cdf(_z(est.value - hi, est.se, hi), est.df)
    q_above = 1.0 if hi is None or not above else _t_sf(_z(est.value - hi, est.se, hi), est.df)
    q_below = 1.0 if lo is None or not below else _t_cdf(_z(est.value - lo, est.se, lo), est.df)
    return max(p_lo, p_hi), min(1.0, 2.0 * min(q_above, q_below))


def two_sided_p(est: Estimate, null: float = 0.0) -> float | None:
    """Two-sided p of H0: theta = null (descriptive; verdicts use band_pvalues)."""
    if est.se is None:
        return None
    return min(1.0, 2.0 * _t_sf(abs(_z(est.value - null, est.se)), est.df))


def interval(est: Estimate, level: float) -> tuple[float | None, float | None]:
    """Two-sided `level` t interval of the estimate (None, None without a standard error)."""
    _check_conf(level)
    if est.se is None:
        return None, None
    half = _t_ppf(0.5 + level / 2.0, est.df) * est.se
    return est.value - half, est.value + half


def proportion_pvalues(k: int, n: int, lo: float | None, hi: float | None) -> tuple[float, float]:
    """(p_inside, p_outside) of a band for a binomial proportion k/n, exact (Clopper-Pearson dual).

    p of H0 p <= lo is P(X >= k | lo); of H0 p >= hi it is P(X <= k | hi). A band edge at
    0 or 1 is no constraint (None). Same rules as band_pvalues.
    """
    _check_counts(k, n)
    p_in, p_out = _proportion_pvalues_of(np.array([k]), n, lo, hi)
    return float(p_in[0]), float(p_out[0])


def _proportion_pvalues_of(ks: np.ndarray, n: int, lo: float | None, hi: float | None) -> tuple[np.ndarray, np.ndarray]:
    """proportion_pvalues for every count in ks at once: scipy's binom evaluates each element as
    it does a scalar, so the values are the same bits (tests/unit/test_stats.py), in one call
    instead of one per count (proportion_power over n + 1 counts, for every n it tries)."""
    lo = None if lo is None or lo <= 0 else lo
    hi = None if hi is None or hi >= 1 else hi
    zeros, ones = np.zeros(ks.shape), np.ones(ks.shape)
    p_lo = zeros if lo is None else sps.binom.sf(ks - 1, n, lo)
    p_hi = zeros if hi is None else sps.binom.cdf(ks, n, hi)
    q_above = ones if hi is None else sps.binom.sf(ks - 1, n, hi)
    q_below = ones if lo is None else sps.binom.cdf(ks, n, lo)
    return np.maximum(p_lo, p_hi), np.minimum(1.0, 2.0 * np.minimum(q_above, q_below))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (statsmodels multipletests, method 'holm')."""
    if len(pvalues) <= 1:  # nothing to adjust (and multipletests runs gc.collect() on every call)
        return [float(p) for p in pvalues]
    from statsmodels.stats.multitest import multipletests
    return [float(p) for p in multipletests(np.asarray(pvalues, float), method="holm")[1]]


# --------------------------------------------------------------------------- power


def _nct_sf(x: float, df: float, nc: float) -> float:
    """P(T > x) for a noncentral t (normal shifted by nc when df is infinite)."""
    if math.isinf(nc):
        return 1.0 if nc > 0 else 0.0
    if math.isinf(df) or df > 1e6:
        return float(sps.norm.sf(x - nc))
    return float(sps.nct.sf(x, df, nc))


def decision_power(theta: float, se: float, df: float, lo: float | None, hi: float | None,
                   alpha: float, decision: str) -> float:
    """Probability that a design with standard error `se` (true sigma times the design's
    factor) and `df` decides `decision` when the true value is theta.

    The one-sided statistics (theta_hat - edge) / se_hat are noncentral t with noncentrality
    (theta - edge) / se: exact for the t designs (one sample, paired, prediction-type) and
    the usual approximation for Welch and for known binomial terms. "reproduced": both
    one-sided tests of TOST reject; P >= P_L + P_U - 1 (a lower bound, so the seeds needed
    err on the safe side). "not reproduced": the (1 - alpha) interval lies above hi or below
    lo (disjoint events, summed).
    """
    if se <= 0:
        raise ValueError(f"se must be > 0, got {se}")
    if decision == "reproduced":
        t = _t_ppf(1.0 - alpha, df)
        p_l = 1.0 if lo is None else _nct_sf(t, df, (theta - lo) / se)
        p_u = 1.0 if hi is None else _nct_sf(t, df, (hi - theta) / se)
        return max(0.0, p_l + p_u - 1.0)
    if decision == "not reproduced":
        t = _t_ppf(1.0 - alpha / 2.0, df)
        above = 0.0 if hi is None else _nct_sf(t, df, (theta - hi) / se)
        below = 0.0 if lo is None else _nct_sf(t, df, (lo - theta) / se)
        return min(1.0, above + below)
    raise ValueError(f"decision must be 'reproduced' or 'not reproduced', got {decision!r}")


def seeds_needed(theta: float, lo: float | None, hi: float | None, design: Callable[[int], tuple[float, float]],
                 alpha: float, power: float, decision: str, n_from: int = 2, n_max: int = 100) -> int | None:
    """Smallest n in [n_from, n_max] at which `decision` has at least `power` when the truth is
    theta; design(n) -> (se, df). None when no n up to n_max does (for a headline the paper's
    own run keeps Var >= sigma^2 however many seeds we add).

    The power of these designs grows with n (se falls, df rise), so n_max is tried first and
    the first n found by bisection: about 8 power evaluations instead of up to 100."""
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha}, {power}")

    def enough(n: int) -> bool:
        se, df = design(n)
        return se > 0 and decision_power(theta, se, df, lo, hi, alpha, decision) >= power
    a, b = max(n_from, 1), n_max
    if a > b or not enough(b):
        return None
    while a < b:
        mid = (a + b) // 2
        if enough(mid):
            b = mid
        else:
            a = mid + 1
    return a


def proportion_power(p: float, n: int, lo: float | None, hi: float | None, alpha: float, decision: str) -> float:
    """Exact probability that k ~ Binomial(n, p) gives `decision` (proportion_pvalues < alpha)."""
    ks = np.arange(n + 1)
    pmf = sps.binom.pmf(ks, n, p)
    which = 0 if decision == "reproduced" else 1
    hits = _proportion_pvalues_of(ks, n, lo, hi)[which] < alpha
    return float(pmf[hits].sum())


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

    For two seed distributions, e.g. this run vs earlier runs, or an unpaired ablation pair. Returns {diff, lo, hi, p, se, df}; lo/hi/p/se/df are None when a side
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
    """Exact McNemar test for two classifiers on the same images (docs/statistics.md).

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


def tost_from_estimate(diff: float, se: float | None, df: float | None, margin_pp: float) -> dict:
    """TOST p-values for an estimated difference `diff` within +-margin_pp (reference runs).

    df None (or inf) means a normal reference distribution. Returns {p, lower_p, upper_p},
    all None when se is unknown or zero.
    """
    if margin_pp <= 0:
        raise ValueError(f"margin_pp must be > 0, got {margin_pp}")
    if se is None or se <= 0.0:
        return {"p": None, "lower_p": None, "upper_p": None}
    df = math.inf if df is None else df
    lower_p = _t_sf((diff + margin_pp) / se, df)  # H0: diff <= -margin
    upper_p = _t_cdf((diff - margin_pp) / se, df)  # H0: diff >= +margin
    return {"p": max(lower_p, upper_p), "lower_p": lower_p, "upper_p": upper_p}


def welch_tost_power(sd_a: float, sd_b: float, n_a: int, n_b: int, margin_pp: float, alpha: float) -> float:
    """Power of the two-sample Welch TOST within +-margin when the true difference is 0."""
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    se = math.sqrt(va + vb)
    if se == 0:
        return 1.0
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    return decision_power(0.0, se, df, -margin_pp, margin_pp, alpha, "reproduced")
