"""The verdicts' error rates, by simulation with fixed seeds (docs/statistics.md, "validation").

Headline claims are simulated per image on a fixed test set of 50,000 images (benchmarks/
verdict_sim.py says how); `python -m benchmarks.verdict_sim` prints the same rates over a
larger grid. Fixed seeds make every rate here a deterministic number: the bounds have a margin
for Monte-Carlo error (1000 replicates: SE 0.7 pp at 5%), they are not tuned to pass.
"""

import pytest

from benchmarks import verdict_sim as sim

ALPHA = 0.05


@pytest.fixture(scope="module")
def test_set():
    return sim.TestSet()


def test_the_simulated_test_set_is_a_fixed_set_of_50000_images(test_set):
    assert test_set.n == 50_000 and test_set.m.sum() == 50_000
    assert float(test_set.error()) == pytest.approx(18.2, abs=0.2)
    # per-image Bernoulli noise alone: part of the seed-to-seed sd, below the smallest sigma simulated
    assert test_set.bernoulli_var ** 0.5 < 0.1


@pytest.mark.parametrize("n", [3, 5, 10])
@pytest.mark.parametrize("sigma", [0.1, 0.3, 0.5])
def test_under_the_null_not_reproduced_is_rare_and_intervals_cover(test_set, n, sigma):
    r = sim.headline(n, sigma, reps=1000, test_set=test_set)
    assert r["realised_sd"] == pytest.approx(sigma, rel=0.25)  # the simulation hits the sd it aims at
    assert r["not_reproduced"] <= ALPHA + 0.01
    # the worst case for a true claim: a zero-width band, i.e. the test of "our recipe = the paper's"
    assert r["point_null_rejects"] <= ALPHA + 0.01
    assert r["coverage_95"] >= 0.93


@pytest.mark.parametrize("n", [3, 5, 10])
@pytest.mark.parametrize("sigma", [0.3, 0.5])
def test_the_previous_noise_model_was_anticonservative(test_set, n, sigma):
    # s^2/n plus both binomial terms, on one test set: the bug the one-run model fixes
    r = sim.headline(n, sigma, reps=1000, test_set=test_set)
    assert r["old_model_point_rejects"] > ALPHA + 0.02 > r["point_null_rejects"]


@pytest.mark.parametrize("n", [3, 5, 10])
@pytest.mark.parametrize("sigma", [0.1, 0.3, 0.5])
def test_at_the_band_edge_both_errors_stay_below_alpha(test_set, n, sigma):
    # our recipe 0.9 pp worse than the paper's: the claim holds just barely (band +-0.9)
    r = sim.headline(n, sigma, reps=600, delta=0.9, test_set=test_set)
    assert r["not_reproduced"] <= ALPHA / 2 + 0.015  # "the data exclude the claim" though it holds
    assert r["reproduced"] <= ALPHA + 0.015  # TOST's size at the edge
    assert r["coverage_95"] >= 0.93


def test_headline_power_at_the_null(test_set):
    # what the grid in the closing note shows: tight seeds reproduce, noisy ones need more seeds
    assert sim.headline(5, 0.1, reps=300, test_set=test_set)["reproduced"] >= 0.95
    assert sim.headline(3, 0.5, reps=300, test_set=test_set)["reproduced"] <= 0.3


@pytest.mark.parametrize("n_seeds", [5, 9, 10])
def test_ensemble_intervals_cover(n_seeds):
    # one method at every n (docs/statistics.md, ensembles): the conservative bound from the single models
    r = sim.ensemble_coverage(n_seeds, 5, reps=300)
    assert r["coverage_95"] >= 0.93 and r["method"] == "conservative bound", r


@pytest.mark.parametrize("effect", [0.0, -0.2, -0.4])
@pytest.mark.parametrize("n, sd, paired", [(3, 0.3, False), (5, 0.2, True), (10, 0.05, True), (10, 0.3, False)])
def test_zero_and_reversed_effects_are_never_reproduced(effect, n, sd, paired):
    r = sim.effect_rates(effect, (0.2, 0.6), n, sd, paired, reps=400)
    assert r["reproduced"] == 0.0, r


def test_a_true_effect_of_the_printed_size_with_tight_seeds_is_reproduced():
    # per-run sd 0.03 pp: tight enough that the printed 0.4 pp, one run per arm, is itself precise
    r = sim.effect_rates(0.4, (0.2, 0.6), 5, 0.03, paired=True, reps=400)
    assert r["reproduced"] >= 0.95 and r["not reproduced"] == 0.0
    edge = sim.effect_rates(0.2, (0.2, 0.6), 10, 0.2, paired=True, reps=800)  # at the edge: TOST's size
    assert edge["reproduced"] <= ALPHA + 0.015


def test_convergence_from_noisy_series_at_step_resolution():
    claimed = sim.convergence_rates(0.5, (0.333, 0.667), 3, 0.05, reps=60)
    assert claimed["reproduced"] >= 0.9 and claimed["coverage_95"] >= 0.9
    none = sim.convergence_rates(1.0, (0.333, 0.667), 3, 0.05, reps=60)
    assert none["reproduced"] == 0.0 and none["not reproduced"] >= 0.9


# --------------------------------------------------------------------------- docs/statistics.md: printed effects, no spread, other test sets, ratio floors, planning


@pytest.mark.parametrize("n", [3, 10, 30])
@pytest.mark.parametrize("paired", [True, False])
def test_an_exact_replication_of_an_ablation_is_rarely_not_reproduced(n, paired):
    # item 1: the printed 0.4 pp is one run per arm of the same recipe (per-run sd 0.2 pp); the old
    # rule took it as exact and said "not reproduced" 7-28% of the time (old_not_reproduced)
    r = sim.printed_effect(n, 0.2, paired, reps=1000)
    assert r["not reproduced"] <= ALPHA + 0.01, r
    assert r["coverage_95"] >= 0.93, r
    if n >= 10:
        assert r["old_not_reproduced"] > ALPHA + 0.05, r  # the defect, for contrast


@pytest.mark.parametrize("sd, rho", [(0.05, 0.0), (0.05, 0.9), (0.5, 0.0), (0.5, 0.9)])
def test_an_exact_replication_holds_for_other_spreads_and_correlations(sd, rho):
    r = sim.printed_effect(10, sd, True, rho=rho, reps=600)
    assert r["not reproduced"] <= ALPHA + 0.01 and r["coverage_95"] >= 0.93, r


@pytest.mark.parametrize("n, sd, step", [(2, 0.02, 0.1), (3, 0.05, 0.1), (3, 0.2, 0.1), (5, 0.03, 0.01),
                                         (10, 0.03, 0.1)])
def test_zero_spread_never_gives_a_certain_p(n, sd, step):
    # item 2: values rounded to their printed step tie often; a tie gives no p at all (inconclusive)
    r = sim.rounded_values(n, sd, step, reps=500)
    assert r["certain"] == 0, r
    lo, hi = r["p_reproduced_range"]
    assert 0.0 < lo and hi < 1.0, r
    assert r["coverage_95"] >= 0.93, r
    if sd < step:
        assert r["no_p"] > 0.3, r  # the ties really happen in this cell


@pytest.fixture(scope="module")
def population():
    return sim.TestSet(n_images=200_000, seed=7)


@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("sigma", [0.1, 0.3])
def test_different_test_sets_cover_and_hold_the_edge(population, n, sigma):
    # item 3: our val against the paper's 100,000 test images, each drawn from one population
    r = sim.different_sets(n, sigma, reps=400, population=population)
    assert r["coverage_95"] >= 0.93 and r["not_reproduced"] <= ALPHA + 0.01, r
    edge = sim.different_sets(n, sigma, reps=400, delta=0.8, population=population)
    assert edge["reproduced"] <= ALPHA + 0.015 and edge["coverage_95"] >= 0.93, edge


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("sd_log", [0.0, 0.01, 0.02, 0.05])
@pytest.mark.parametrize("resolution", [20, 100])
def test_ratios_under_the_resolution_floor_cover(n, sd_log, resolution):
    # item 4: the sample variance often falls under the floor at n = 2; the df stay n - 1 (the floor
    # counted as a known variance, df inf, covered 0.928 at n = 2, sd_log 0.02, resolution 20)
    r = sim.ratio_floor(n, sd_log, resolution, reps=2000)
    assert r["coverage_95"] >= 0.93, r
    edge = sim.ratio_floor(n, sd_log, resolution, true_ratio=0.667, reps=1000)  # on the band's edge
    assert edge["reproduced"] <= ALPHA + 0.015 and edge["coverage_95"] >= 0.93, edge


def test_seeds_needed_keeps_its_promise_more_often():
    # item 6: a paired effect over a 1 pp threshold, true 1.2 pp, sd 0.3, 3 seeds first
    r = sim.planning_effect(0.3, 1.2, n0=3, reps=400)
    assert r["kept"] >= 0.8 and r["kept"] > r["old_kept"] + 0.2, r
    assert r["no_number_said"] == 0.0 < r["old_no_number_said"], r


def test_no_number_suffices_is_rarely_said_where_the_band_is_reachable():
    # item 6: headline +-0.8, sigma 0.2 (reachable); plug-in said "no number" in 62% of the inconclusive rows
    r = sim.planning(0.2, n0=3, tol=0.8, reps=300)
    assert r["reachable"] and r["no_number_said"] <= 0.05 < 0.5 < r["old_no_number_said"], r


def test_testing_after_each_added_seed_inflates_false_reproduced():
    # item 6: why every verdict says n was fixed in advance (at the band's edge the claim just fails)
    r = sim.sequential(sigma=0.2, reps=1000)
    assert r["fixed_n_reproduced"] <= ALPHA + 0.015 and r["sequential_reproduced"] > ALPHA + 0.03, r
