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


@pytest.mark.parametrize("n_seeds", [5, 10])
def test_ensemble_intervals_cover(n_seeds):
    # 5 seeds: one 5-ensemble, the conservative bound; 10 seeds: two disjoint 5-ensembles
    r = sim.ensemble_coverage(n_seeds, 5, reps=300)
    assert r["coverage_95"] >= 0.93, r


@pytest.mark.parametrize("effect", [0.0, -0.2, -0.4])
@pytest.mark.parametrize("n, sd, paired", [(3, 0.3, False), (5, 0.2, True), (10, 0.05, True), (10, 0.3, False)])
def test_zero_and_reversed_effects_are_never_reproduced(effect, n, sd, paired):
    r = sim.effect_rates(effect, (0.2, 0.6), n, sd, paired, reps=400)
    assert r["reproduced"] == 0.0, r


def test_a_true_effect_of_the_printed_size_with_tight_seeds_is_reproduced():
    r = sim.effect_rates(0.4, (0.2, 0.6), 5, 0.05, paired=True, reps=400)
    assert r["reproduced"] >= 0.95 and r["not reproduced"] == 0.0
    edge = sim.effect_rates(0.2, (0.2, 0.6), 10, 0.2, paired=True, reps=800)  # at the edge: TOST's size
    assert edge["reproduced"] <= ALPHA + 0.015


def test_convergence_from_noisy_series_at_step_resolution():
    claimed = sim.convergence_rates(0.5, (0.333, 0.667), 3, 0.05, reps=60)
    assert claimed["reproduced"] >= 0.9 and claimed["coverage_95"] >= 0.9
    none = sim.convergence_rates(1.0, (0.333, 0.667), 3, 0.05, reps=60)
    assert none["reproduced"] == 0.0 and none["not reproduced"] >= 0.9
