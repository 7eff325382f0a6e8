"""harness.analysis.stats checked against independent computations (docs/architecture.md, house rule 9).

References: statsmodels (a separate implementation), hand-worked numbers and textbook
examples. Error rates of the decisions are simulated in test_verdict_sim.py.
"""

import math
import time

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats import proportion as smp
from statsmodels.stats import weightstats as ws
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
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


def test_hand_worked_binomial_numbers():
    # 17.0 on 150k -> SE 0.10 pp, Wilson 16.81-17.19; 18.2 on 50k -> SE 0.17, 17.86-18.54;
    # 16.4 on 100k -> SE 0.12.
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


def test_same_test_set_is_a_pooled_t_test_with_the_paper_as_one_more_run():
    # docs/statistics.md: Var(mean - c) = sigma^2 (1/n + 1), df n - 1. That is exactly the
    # pooled two-sample t-test of our n seeds against the paper's one run (the one run adds
    # no degrees of freedom): statsmodels computes it independently.
    x = np.array([18.6, 18.9, 18.4, 18.8, 18.7])
    est = st.against_published(x, 18.2)
    t, p, df = ws.ttest_ind(x, [18.2], usevar="pooled")
    assert est.value == pytest.approx(x.mean()) and est.df == df == 4
    assert (est.value - 18.2) / est.se == pytest.approx(t)
    assert st.two_sided_p(st.Estimate(est.value - 18.2, est.se, est.df, 5)) == pytest.approx(p)
    assert est.se == pytest.approx(np.std(x, ddof=1) * math.sqrt(1 / 5 + 1))


def test_no_binomial_term_on_the_same_test_set():
    # the same images: the paper's run differs only by its seed noise; no image-sampling terms
    x = [18.3, 18.5, 18.1]
    est = st.against_published(x, 18.2)
    assert est.se == pytest.approx(np.std(x, ddof=1) * math.sqrt(1 + 1 / 3)) and est.df == 2
    # identical seeds are no evidence of zero seed noise: no standard error, not se 0 (docs/statistics.md, no spread)
    assert st.against_published([18.3, 18.3, 18.3], 18.2).se is None


def test_different_test_sets_add_both_binomial_terms_with_the_seeds_df():
    x = [18.1, 18.3, 18.2, 18.0, 18.4]
    est = st.against_published(x, 16.4, same_test_set=False, n_images=50_000, paper_n_images=100_000)
    v_seed = np.var(x, ddof=1) * (1 / 5 + 1)
    binom = 18.2 * 81.8 / 50_000 + 16.4 * 83.6 / 100_000
    assert est.se == pytest.approx(math.sqrt(v_seed + binom))
    # df from the seeds, n - 1 (docs/statistics.md, other test sets): Satterthwaite with the binomial term "known"
    # gave (v_seed + binom)^2 / (v_seed^2 / 4), here 4.9, and up to 5.6 at two seeds
    assert est.df == 4 < (v_seed + binom) ** 2 / (v_seed**2 / 4)
    # zero seed spread: no evidence about sigma, no standard error (was a Wald z-test of the images)
    assert st.against_published([18.7] * 3, 18.2, False, 50_000, 50_000).se is None
    # the binomial terms widen the interval, never narrow it: at two seeds it is the seeds' t_1
    two = st.against_published([16.3, 16.5], 16.4, False, 50_000, 100_000)
    assert two.df == 1 and st.interval(two, 0.9)[1] > st.interval(st.against_published([16.3, 16.5], 16.4), 0.9)[1]
    with pytest.raises(ValueError, match="both test-set sizes"):
        st.against_published(x, 16.4, same_test_set=False, n_images=50_000)


def test_one_seed_has_no_standard_error():
    est = st.against_published([18.3], 18.2)
    assert est.se is None and st.band_pvalues(est, 17.3, 19.1) == (None, None)
    assert st.interval(est, 0.9) == (None, None)


def test_ensemble_bound_uses_the_single_model_spread():
    singles = [18.1, 18.3, 18.2, 18.0, 18.4]
    est = st.against_published_bound([16.2], singles, 16.4)
    assert est.value == 16.2 and est.df == 4 and est.n == 1
    assert est.se == pytest.approx(np.std(singles, ddof=1) * math.sqrt(2))


# --------------------------------------------------------------------------- band decisions


@pytest.mark.parametrize("lo,hi", [(17.3, 19.1), (18.0, 18.5), (None, 18.4), (18.1, None)])
@pytest.mark.parametrize("mean", [17.2, 17.9, 18.2, 18.45, 19.3])
def test_band_pvalues_are_the_interval_rules(lo, hi, mean):
    # reproduced <=> the 90% interval inside the band; not reproduced <=> the 95% interval outside
    est = st.Estimate(mean, 0.15, 4.0, 5)
    p_in, p_out = st.band_pvalues(est, lo, hi)
    r_lo, r_hi = st.interval(est, 0.90)
    x_lo, x_hi = st.interval(est, 0.95)
    inside = (lo is None or r_lo > lo) and (hi is None or r_hi < hi)
    outside = (hi is not None and x_lo > hi) or (lo is not None and x_hi < lo)
    assert (p_in < 0.05) == inside
    assert (p_out < 0.05) == outside
    assert not (p_in < 0.05 and p_out < 0.05)


def test_tost_p_matches_statsmodels_paired_and_welch():
    d = np.array([0.35, 0.5, 0.42, 0.3, 0.46, 0.38])
    est = st.paired_effect(np.zeros(6), d)
    p, _, _ = ws.DescrStatsW(d).ttost_mean(0.2, 0.6)
    assert st.band_pvalues(est, 0.2, 0.6)[0] == pytest.approx(p)
    a, b = np.array([40.1, 40.5, 39.9, 40.3]), np.array([40.6, 40.9, 40.4, 41.0, 40.8])
    est = st.welch_effect(a, b)
    p, _, _ = ws.ttost_ind(b, a, 0.2, 0.6, usevar="unequal")
    assert st.band_pvalues(est, 0.2, 0.6)[0] == pytest.approx(p)


def test_log_ratio_is_a_t_test_on_logs_with_a_resolution_floor():
    slow, fast = np.array([820.0, 790, 805, 830]), np.array([400.0, 410, 395, 420])
    est = st.log_ratio(slow, fast, paired=True)
    t, p, df = ws.DescrStatsW(np.log(fast) - np.log(slow)).ttest_mean(0)
    assert est.value == pytest.approx(np.mean(np.log(fast / slow))) and est.df == df
    assert est.value / est.se == pytest.approx(t)
    welch = st.log_ratio(slow, fast, paired=False)
    tw, _, dfw = ws.ttest_ind(np.log(fast), np.log(slow), usevar="unequal")
    assert welch.value / welch.se == pytest.approx(tw) and welch.df == pytest.approx(dfw)
    # ties: zero sample spread; each value known to +-10 steps -> variance 20^2/12/x^2, a floor with
    # the seeds' df n - 1 each (docs/statistics.md, ratio floors: counting it known, df inf, undercovered at n = 2)
    tied = st.log_ratio([800.0] * 3, [400.0] * 3, paired=False, resolution=20)
    qx, qy = (20 / 800) ** 2 / 12 / 3, (20 / 400) ** 2 / 12 / 3
    assert tied.se == pytest.approx(math.sqrt(qx + qy))
    assert tied.df == pytest.approx((qx + qy) ** 2 / (qx**2 / 2 + qy**2 / 2))
    assert st.log_ratio([800.0] * 2, [400.0, 401.0], paired=True, resolution=20).df == 1
    # no spread and no floor (tied training times): no standard error, never a certain verdict
    assert st.log_ratio([3600.0] * 3, [5400.0] * 3, paired=True).se is None
    # one value in a group: the floor alone would pass for the seed noise (it was decided, df inf)
    assert st.log_ratio([800.0], [400.0, 410.0], paired=False, resolution=20).se is None
    assert st.log_ratio([800.0], [400.0], paired=True, resolution=20).se is None
    with pytest.raises(ValueError):
        st.log_ratio([0.0, 1.0], [1.0, 2.0], paired=True)


def test_proportion_pvalues_are_clopper_pearson():
    for k, n in [(5, 5), (11, 11), (9, 12), (0, 5), (3, 8)]:
        p_in, p_out = st.proportion_pvalues(k, n, 0.75, 1.0)
        lo90 = proportion_confint(k, n, alpha=0.10, method="beta")[0]
        hi95 = proportion_confint(k, n, alpha=0.05, method="beta")[1]
        assert (p_in < 0.05) == (lo90 > 0.75), (k, n)
        assert (p_out < 0.05) == (hi95 < 0.75), (k, n)
    assert st.proportion_pvalues(5, 5, 0.75, 1.0)[0] == pytest.approx(0.75**5)


def test_holm_matches_a_hand_step_down():
    p = [0.01, 0.04, 0.03, 0.20]
    # sorted 0.01, 0.03, 0.04, 0.20 times 4, 3, 2, 1, made monotone
    assert st.holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.20])
    assert st.holm([0.2]) == [0.2] and st.holm([]) == []


# --------------------------------------------------------------------------- power


@pytest.mark.parametrize("n,d", [(3, 1.0), (5, 0.8), (10, 0.5), (20, 0.3)])
def test_one_sided_power_matches_statsmodels(n, d):
    # one-sample design, se = sigma / sqrt(n): noncentral t, as statsmodels' TTestPower
    from statsmodels.stats.power import TTestPower
    power = st.decision_power(d, 1 / math.sqrt(n), n - 1, 0.0, None, 0.05, "reproduced")
    assert power == pytest.approx(TTestPower().power(effect_size=d, nobs=n, alpha=0.05, alternative="larger"),
                                  rel=1e-6)


def test_seeds_needed_matches_statsmodels_solve_power():
    from statsmodels.stats.power import TTestPower
    for d in (0.5, 0.8, 1.2):
        n = st.seeds_needed(d, 0.0, None, lambda m: (1 / math.sqrt(m), m - 1), 0.05, 0.8, "reproduced")
        assert n == math.ceil(TTestPower().solve_power(effect_size=d, alpha=0.05, power=0.8, alternative="larger"))


def test_normal_approximation_overstates_power_at_three_seeds():
    # the formula n = 7.85 sd^2 / delta^2 promises 0.8 at n = 3 for delta / sd = 1.62; the
    # two-sided t-test actually has about 0.35 (noncentral t, statsmodels agrees)
    from statsmodels.stats.power import TTestPower
    d = math.sqrt(7.85 / 3)
    t = st._t_ppf(0.975, 2)
    exact = st._nct_sf(t, 2, d * math.sqrt(3)) + (1 - st._nct_sf(-t, 2, d * math.sqrt(3)))
    assert exact == pytest.approx(TTestPower().power(effect_size=d, nobs=3, alpha=0.05), rel=1e-6)
    assert 0.3 < exact < 0.4


def test_headline_power_is_capped_by_the_papers_own_run():
    # se >= sigma whatever n: a +-0.5 band at sigma 0.4 is never reached with power 0.8
    sigma = 0.4
    design = lambda n: (sigma * math.sqrt(1 / n + 1), n - 1)  # noqa: E731
    assert st.seeds_needed(0.0, -0.5, 0.5, design, 0.05, 0.8, "reproduced") is None
    n = st.seeds_needed(0.0, -1.5, 1.5, design, 0.05, 0.8, "reproduced")

    def tost_power(m):  # both one-sided tests, each a noncentral t (scipy directly)
        nc = 1.5 / (sigma * math.sqrt(1 / m + 1))
        return 2 * sps.nct.sf(sps.t.ppf(0.95, m - 1), m - 1, nc) - 1
    assert tost_power(n) >= 0.8 > tost_power(n - 1)


def test_proportion_power_is_exact():
    p, n = 0.9, 12
    hits = [st.proportion_pvalues(k, n, 0.75, 1.0)[0] < 0.05 for k in range(n + 1)]
    expected = sum(sps.binom.pmf(k, n, p) for k in range(n + 1) if hits[k])
    assert st.proportion_power(p, n, 0.75, 1.0, 0.05, "reproduced") == pytest.approx(expected)


def test_welch_tost_power_matches_simulation():
    rng = np.random.default_rng(11)
    sims = 20_000
    a = rng.normal(0, 1.0, (sims, 4))
    b = rng.normal(0, 1.2, (sims, 6))
    hits = 0
    for x, y in zip(a[:4000], b[:4000]):
        hits += st.welch_tost(x, y, 1.5)["p"] < 0.05
    power = st.welch_tost_power(1.0, 1.2, 4, 6, 1.5, 0.05)
    assert power == pytest.approx(hits / 4000, abs=0.04)


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


def test_proportion_pvalues_of_every_count_are_the_scalar_bits():
    """proportion_power takes the p-values of all n + 1 counts in one scipy call: each must be the
    very float the one-count call gives (a verdict flips on `p < alpha`), for every band shape."""
    from harness.analysis.stats import _proportion_pvalues_of
    for n in (1, 2, 5, 17, 60, 233):
        ks = np.arange(n + 1)
        for lo, hi in ((0.75, 1.0), (0.0, 0.3), (0.2, 0.6), (None, 0.5), (0.5, None), (0.999, 1.0)):
            p_in, p_out = _proportion_pvalues_of(ks, n, lo, hi)
            for k in ks:
                assert (p_in[k], p_out[k]) == st.proportion_pvalues(int(k), n, lo, hi) == _scalar(int(k), n, lo, hi)


def _scalar(k, n, lo, hi):
    """The one-count formula as first written (scalar scipy calls), the reference."""
    from scipy import stats as sps
    lo = None if lo is None or lo <= 0 else lo
    hi = None if hi is None or hi >= 1 else hi
    p_lo = 0.0 if lo is None else float(sps.binom.sf(k - 1, n, lo))
    p_hi = 0.0 if hi is None else float(sps.binom.cdf(k, n, hi))
    q_above = 1.0 if hi is None else float(sps.binom.sf(k - 1, n, hi))
    q_below = 1.0 if lo is None else float(sps.binom.cdf(k, n, lo))
    return max(p_lo, p_hi), min(1.0, 2.0 * min(q_above, q_below))
