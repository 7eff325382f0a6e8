"""harness.stats checked against independent computations (house rule 9).

References: statsmodels (a separate implementation), PAPER.md 5's hand-worked numbers
and textbook examples. The module is imported as `st` (never `from ... import
test_against_published`, which pytest would try to collect as a test).
"""

import math
import time

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats import proportion as smp
from statsmodels.stats import weightstats as ws
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_confint

from harness.analysis import stats as st

# --------------------------------------------------------------------------- binomial


@pytest.mark.parametrize("wrong,n", [(0, 20), (3, 20), (20, 20), (25500, 150000), (9100, 50000), (1, 7)])
@pytest.mark.parametrize("conf", [0.9, 0.95, 0.99])
def test_wilson_and_clopper_pearson_match_statsmodels(wrong, n, conf):
    lo, hi = st.wilson_interval(wrong, n, conf)
    ref = proportion_confint(wrong, n, alpha=1 - conf, method="wilson")
    assert (lo, hi) == pytest.approx((100 * ref[0], 100 * ref[1]), abs=1e-9)
    lo, hi = st.clopper_pearson_interval(wrong, n, conf)
    ref = proportion_confint(wrong, n, alpha=1 - conf, method="beta")
    assert (lo, hi) == pytest.approx((100 * ref[0], 100 * ref[1]), abs=1e-7)


def test_paper_md_hand_worked_numbers():
    # PAPER.md 5: 17.0 on 150k -> SE 0.10 pp, Wilson 16.81-17.19; 18.2 on 50k -> SE 0.17,
    # 17.86-18.54; 16.4 on 100k -> SE 0.12.
    assert round(st.binomial_se_pct(17.0, 150_000), 2) == 0.10
    assert [round(x, 2) for x in st.wilson_interval(25_500, 150_000)] == [16.81, 17.19]
    assert round(st.binomial_se_pct(18.2, 50_000), 2) == 0.17
    assert [round(x, 2) for x in st.wilson_interval(9_100, 50_000)] == [17.86, 18.54]
    assert round(st.binomial_se_pct(16.4, 100_000), 2) == 0.12


def test_binomial_inputs_are_validated():
    with pytest.raises(ValueError):
        st.wilson_interval(5, 0)
    with pytest.raises(ValueError):
        st.wilson_interval(6, 5)
    with pytest.raises(ValueError):
        st.binomial_se_pct(120.0, 10)


# --------------------------------------------------------------------------- seed summary


def test_seed_summary_matches_statsmodels_tconfint():
    x = [40.1, 40.9, 40.4, 41.2, 40.6]
    out = st.seed_summary(x, conf=0.9)
    d = ws.DescrStatsW(np.array(x), ddof=1)
    assert out["mean"] == pytest.approx(d.mean)
    assert out["sd"] == pytest.approx(d.std)
    assert out["n"] == 5
    assert (out["t_lo"], out["t_hi"]) == pytest.approx(d.tconfint_mean(alpha=0.1))


def test_seed_summary_degenerate_cases_never_crash():
    one = st.seed_summary([31.0])
    assert one == {"mean": 31.0, "sd": None, "n": 1, "t_lo": None, "t_hi": None}
    none = st.seed_summary([])
    assert none["n"] == 0 and none["mean"] is None
    same = st.seed_summary([5.0, 5.0, 5.0])
    assert same["sd"] == 0.0 and same["t_lo"] == same["t_hi"] == 5.0


# --------------------------------------------------------------------------- vs published


def _paper_as_sample(paper_pct, n):
    """The paper's result as its n per-image 0/100 outcomes: an independent route to its
    binomial variance, p(100-p)/(n-1) instead of /n (relative difference 1/n)."""
    k = round(paper_pct * n / 100)
    return np.r_[np.full(k, 100.0), np.zeros(n - k)]


def test_against_published_without_n_is_plain_one_sample_t():
    x = [18.0, 18.4, 18.3, 17.9]
    out = st.test_against_published(x, 18.2, None, 50_000)
    t, p, df = ws.DescrStatsW(np.array(x)).ttest_mean(18.2)
    assert (out["t"], out["p"], out["df"]) == pytest.approx((t, p, df))


def test_against_published_matches_welch_with_paper_as_a_sample():
    x = np.array([18.6, 18.9, 18.4, 18.8, 18.7])
    paper = _paper_as_sample(18.2, 50_000)
    out = st.test_against_published(x, 18.2, 50_000)  # no term for our own test set
    t, p, df = ws.ttest_ind(x, paper, usevar="unequal")
    assert out["t"] == pytest.approx(t, rel=1e-3)
    assert out["p"] == pytest.approx(p, rel=1e-3)
    assert out["df"] == pytest.approx(df, rel=1e-2)
    lo, hi = ws.CompareMeans.from_data(x, paper).tconfint_diff(alpha=0.05, usevar="unequal")
    assert out["lo"] - 18.2 == pytest.approx(lo, rel=1e-3)
    assert out["hi"] - 18.2 == pytest.approx(hi, rel=1e-3)


def test_against_published_identical_seeds_is_the_two_proportion_wald_test():
    # Zero seed spread leaves only the two binomial terms: the unpooled Wald z-test of
    # two independent proportions (statsmodels test_proportions_2indep, method='wald').
    ours_wrong, n_ours, paper_wrong, n_paper = 9_350, 50_000, 9_100, 50_000
    ours_pct = 100 * ours_wrong / n_ours
    out = st.test_against_published([ours_pct] * 3, 18.2, n_paper, n_ours)
    ref = smp.test_proportions_2indep(ours_wrong, n_ours, paper_wrong, n_paper, method="wald",
                                  return_results=True)
    assert out["df"] is None  # infinite: normal reference
    assert out["t"] == pytest.approx(ref.statistic, rel=1e-9)
    assert out["p"] == pytest.approx(ref.pvalue, rel=1e-9)


def test_against_published_hand_formula_both_noise_terms():
    x = [18.1, 18.3, 18.2, 18.0, 18.4]
    out = st.test_against_published(x, 18.2, 50_000, 50_000)
    v_seed = np.var(x, ddof=1) / 5
    v = v_seed + 18.2 * 81.8 / 50_000 * 2
    assert out["se"] == pytest.approx(math.sqrt(v))
    assert out["df"] == pytest.approx(v**2 / (v_seed**2 / 4))


def test_against_published_one_seed_has_no_p_value():
    out = st.test_against_published([18.3], 18.2, 50_000, 50_000)
    assert out["p"] is None and out["lo"] is None and out["n"] == 1


def test_tost_without_n_matches_statsmodels_ttost_mean():
    x = np.array([18.0, 18.4, 18.3, 17.9, 18.1])
    out = st.tost_equivalence(x, 18.2, 0.5)
    p, lower, upper = ws.DescrStatsW(x).ttost_mean(18.2 - 0.5, 18.2 + 0.5)
    assert out["p"] == pytest.approx(p)
    assert out["lower_p"] == pytest.approx(lower[1])
    assert out["upper_p"] == pytest.approx(upper[1])


def test_tost_with_paper_n_matches_statsmodels_ttost_ind():
    x = np.array([18.0, 18.4, 18.3, 17.9, 18.1])
    out = st.tost_equivalence(x, 18.2, 0.6, paper_n_images=50_000)
    p, _, _ = ws.ttost_ind(x, _paper_as_sample(18.2, 50_000), -0.6, 0.6, usevar="unequal")
    assert out["p"] == pytest.approx(p, rel=2e-3)


def test_tost_and_published_test_agree_on_noise():
    # TOST p < alpha  <=>  the (1 - 2 alpha) interval lies inside paper +- margin.
    x = [18.1, 18.3, 18.2, 18.0, 18.4]
    for margin in (0.3, 0.45, 0.5, 0.7):
        tost = st.tost_equivalence(x, 18.2, margin, 50_000, 50_000)
        ci = st.test_against_published(x, 18.2, 50_000, 50_000, conf=0.90)
        inside = ci["lo"] > 18.2 - margin and ci["hi"] < 18.2 + margin
        assert (tost["p"] < 0.05) == inside


# --------------------------------------------------------------------------- two groups


def test_welch_difference_matches_statsmodels():
    a = [31.2, 30.8, 31.9, 31.5]
    b = [30.1, 30.6, 29.8, 30.9, 30.2]
    out = st.welch_difference(a, b, conf=0.95)
    t, p, df = ws.ttest_ind(a, b, usevar="unequal")
    lo, hi = ws.CompareMeans.from_data(np.array(a), np.array(b)).tconfint_diff(
        alpha=0.05, usevar="unequal")
    assert out["p"] == pytest.approx(p)
    assert out["df"] == pytest.approx(df)
    assert (out["lo"], out["hi"]) == pytest.approx((lo, hi))
    assert out["diff"] == pytest.approx(np.mean(a) - np.mean(b))


def test_welch_tost_matches_statsmodels():
    a = [31.2, 30.8, 31.9, 31.5]
    b = [31.1, 31.6, 30.8, 31.9, 31.2]
    out = st.welch_tost(a, b, 1.0)
    p, _, _ = ws.ttost_ind(np.array(a), np.array(b), -1.0, 1.0, usevar="unequal")
    assert out["p"] == pytest.approx(p)


def test_welch_difference_degenerate():
    assert st.welch_difference([1.0], [2.0, 3.0])["p"] is None
    assert st.welch_difference([1.0, 1.0], [2.0, 2.0])["lo"] is None


def test_bootstrap_difference_interval_brackets_difference_and_is_deterministic():
    a = [31.2, 30.8, 31.9, 31.5, 31.0]
    b = [30.1, 30.6, 29.8, 30.9, 30.2]
    lo, hi = st.bootstrap_difference_interval(a, b, n_boot=4000, rng_seed=3)
    assert lo < np.mean(a) - np.mean(b) < hi
    assert (lo, hi) == st.bootstrap_difference_interval(a, b, n_boot=4000, rng_seed=3)
    welch = st.welch_difference(a, b)
    # percentile bootstrap of 5 vs 5 is narrower than Welch's t (no small-sample t factor)
    assert welch["lo"] < lo and hi < welch["hi"]


def test_mann_whitney_textbook_exact():
    # complete separation of 3 vs 3: exact two-sided p = 2 / C(6, 3) = 0.1
    out = st.mann_whitney([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert out["u"] == 0.0
    assert out["p"] == pytest.approx(0.1)


@pytest.mark.parametrize("b,c,both,neither", [(10, 3, 100, 20), (0, 0, 5, 5), (7, 7, 0, 1), (0, 9, 40, 2)])
def test_mcnemar_matches_statsmodels_exact(b, c, both, neither):
    a_ok = np.r_[np.ones(both + b, bool), np.zeros(c + neither, bool)]
    b_ok = np.r_[np.ones(both, bool), np.zeros(b, bool), np.ones(c, bool), np.zeros(neither, bool)]
    out = st.mcnemar(a_ok, b_ok)
    assert (out["b"], out["c"]) == (b, c)
    ref = sm_mcnemar([[both, b], [c, neither]], exact=True)
    assert out["p"] == pytest.approx(min(1.0, ref.pvalue))


# --------------------------------------------------------------------------- planning


def test_seeds_needed_matches_paper_constant_and_statsmodels_power():
    # PAPER.md 5: n ~ 7.85 sd^2 / delta^2
    assert st.seeds_needed(1.0, 1.0) == math.ceil(7.849)
    for sd, delta in [(0.3, 0.2), (0.2, 0.1), (0.25, 0.3), (1.0, 0.5)]:
        n = NormalIndPower().solve_power(effect_size=delta / sd, alpha=0.05, power=0.8, ratio=0)
        assert st.seeds_needed(sd, delta) == max(2, math.ceil(n))
    assert st.seeds_needed(0.1, 5.0) == 2  # never fewer than 2 seeds


def test_seeds_needed_with_irreducible_noise():
    z2 = (sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) ** 2
    extra = 0.01
    assert st.seeds_needed(0.3, 0.5, extra_var=extra) == math.ceil(0.09 / (0.25 / z2 - extra))
    assert st.seeds_needed(0.3, 0.5, extra_var=0.25 / z2 + 1e-9) is None


def test_olympic_mean_and_convergence_test():
    assert st.olympic_mean([1.0, 2.0, 3.0, 100.0]) == 2.5
    with pytest.raises(ValueError):
        st.olympic_mean([1.0, 2.0])
    ours = [50.0, 52.0, 49.0, 51.0, 50.5]
    ref = [60.0, 62.0, 59.0, 61.0, 63.0]
    out = st.convergence_test(ours, ref)
    _, p, _ = ws.ttest_ind(ours, ref, alternative="smaller", usevar="unequal")
    assert out["p_faster"] == pytest.approx(p)
    assert out["faster"] is True
    assert out["ours_mean"] == pytest.approx(np.mean([50.0, 51.0, 50.5]))
    assert st.convergence_test(ref, ours)["faster"] is False
    single = st.convergence_test(ours, [60.0])
    assert single["p_faster"] == pytest.approx(sps.ttest_1samp(ours, 60.0, alternative="less").pvalue)


# --------------------------------------------------------------------------- verdict


@pytest.mark.parametrize("lo,hi,tost_p,expected", [
    (17.9, 18.5, 0.01, "reproduced"),      # equivalent within the margin
    (16.0, 17.0, 0.40, "better"),          # entirely below 18.2 - 0.5
    (19.0, 20.0, 0.40, "worse"),           # entirely above 18.2 + 0.5
    (17.6, 18.0, 0.20, "inconclusive"),    # below the paper but not beyond the margin
    (17.0, 19.5, 0.30, "inconclusive"),    # too wide
    (None, None, None, "inconclusive"),    # one seed: no interval
    (18.71, 19.0, None, "worse"),
])
def test_verdict_table(lo, hi, tost_p, expected):
    mean = None if lo is None else (lo + hi) / 2
    assert st.verdict(mean, lo, hi, 18.2, 0.5, tost_p, 0.05) == expected


def test_verdict_rejects_inconsistent_inputs():
    with pytest.raises(ValueError):
        st.verdict(18.0, 19.0, 17.0, 18.2, 0.5, None)
    with pytest.raises(ValueError):
        st.verdict(18.0, 17.0, 19.0, 18.2, 0.0, None)


# --------------------------------------------------------------------------- bootstrap


def _correct(rng, n_seeds, n_images, p_wrong, shared=0.0):
    """Bool [n_seeds, n_images]; `shared` of the images are wrong for every seed."""
    hard = rng.random(n_images) < shared
    return ~(hard[None, :] | (rng.random((n_seeds, n_images)) < p_wrong))


def test_bootstrap_is_deterministic_and_fast():
    rng = np.random.default_rng(1)
    c = _correct(rng, 5, 10_000, 0.4)
    t0 = time.perf_counter()
    a = st.two_level_bootstrap(c, n_boot=2000, rng_seed=7)
    assert time.perf_counter() - t0 < 5.0  # 5 seeds x 10,000 images, vectorised
    assert a == st.two_level_bootstrap(c, n_boot=2000, rng_seed=7)
    assert a != st.two_level_bootstrap(c, n_boot=2000, rng_seed=8)
    mean = 100 * (~c).mean()
    assert a[0] < mean < a[1]


def test_bootstrap_identical_seeds_reduces_to_one_model_image_interval():
    # Same model five times: seed resampling does nothing, and the crossed design must
    # give the plain binomial interval of ONE model (a nested design would shrink it by
    # sqrt(5), pretending the five copies saw independent test sets).
    rng = np.random.default_rng(2)
    row = _correct(rng, 1, 4000, 0.3)
    c = np.repeat(row, 5, axis=0)
    wrong = int((~row).sum())
    w_lo, w_hi = st.wilson_interval(wrong, 4000)
    lo, hi = st.two_level_bootstrap(c, n_boot=2000, rng_seed=0)
    assert (hi - lo) == pytest.approx(w_hi - w_lo, rel=0.12)
    n_lo, n_hi = st.two_level_bootstrap(c, n_boot=2000, rng_seed=0, design="nested")
    assert (n_hi - n_lo) < 0.6 * (w_hi - w_lo)


def test_bootstrap_width_close_to_analytic_crossed_variance():
    # Analytic variance of the seed-mean error under the crossed design: seed spread
    # s^2/S plus image variance of the per-image mean error / N.
    rng = np.random.default_rng(3)
    base = _correct(rng, 1, 3000, 0.0, shared=0.25)[0]
    seed_extra = np.array([0.05, 0.08, 0.10, 0.12, 0.15])[:, None]
    c = base[None, :] & ~(rng.random((5, 3000)) < seed_extra)
    wrong = (~c).astype(float) * 100
    seed_err = wrong.mean(axis=1)
    var = seed_err.var(ddof=1) / 5 + wrong.mean(axis=0).var(ddof=1) / 3000
    analytic = 2 * 1.96 * math.sqrt(var)
    lo, hi = st.two_level_bootstrap(c, n_boot=3000, rng_seed=4)
    assert 0.7 * analytic < hi - lo < 1.4 * analytic


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError):
        st.two_level_bootstrap(np.ones((2, 3)), n_boot=10)  # not boolean
    with pytest.raises(ValueError):
        st.two_level_bootstrap(np.ones(3, bool), n_boot=10)  # not 2-D


def test_bootstrap_vectorised_matches_brute_force_resampling():
    # The pattern/multinomial shortcut must give the same distribution as literally
    # resampling seed rows and image columns (different random streams: compare loosely).
    rng = np.random.default_rng(5)
    c = _correct(rng, 3, 300, 0.2, shared=0.2)
    brute = np.empty(4000)
    for b in range(brute.size):
        seeds = rng.integers(0, 3, 3)
        images = rng.integers(0, 300, 300)
        brute[b] = 100 * (~c[np.ix_(seeds, images)]).mean()
    b_lo, b_hi = np.percentile(brute, [2.5, 97.5])
    lo, hi = st.two_level_bootstrap(c, n_boot=4000, rng_seed=6)
    assert lo == pytest.approx(b_lo, abs=0.1 * (b_hi - b_lo))
    assert hi == pytest.approx(b_hi, abs=0.1 * (b_hi - b_lo))
