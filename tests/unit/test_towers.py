"""The colour-selectivity index of paper 6.1 (harness/train/towers.py) on constructed kernels."""

import numpy as np
import pytest

from harness.train import towers


def grey(n: int, rng) -> np.ndarray:
    """Colour-agnostic kernels: the same 11x11 pattern in R, G and B."""
    pattern = rng.normal(size=(n, 1, 11, 11))
    return np.repeat(pattern, 3, axis=1)


def opponent(n: int, rng) -> np.ndarray:
    """Colour-specific kernels: the channels cancel at every position (R - G, zero B, ...)."""
    a = rng.normal(size=(n, 11, 11))
    b = rng.normal(size=(n, 11, 11))
    return np.stack([a, b, -a - b], axis=1)


def test_index_of_constructed_kernels():
    rng = np.random.default_rng(0)
    np.testing.assert_allclose(towers.kernel_selectivity(grey(5, rng)), 0.0, atol=1e-12)
    np.testing.assert_allclose(towers.kernel_selectivity(opponent(5, rng)), 1.0, atol=1e-12)
    one_channel = np.zeros((1, 3, 11, 11))
    one_channel[0, 0] = rng.normal(size=(11, 11))
    # red only: mean (r/3 per channel), rest (2r/3, -r/3, -r/3): (4 + 1 + 1) / 9 = 2/3 of the energy
    assert towers.kernel_selectivity(one_channel)[0] == pytest.approx(2 / 3)
    random = rng.normal(size=(2000, 3, 11, 11))
    assert towers.tower_selectivity(random, 1)[0] == pytest.approx(2 / 3, abs=0.005)
    assert np.isnan(towers.kernel_selectivity(np.zeros((1, 3, 11, 11)))[0])


def test_tower_index_weighs_kernels_by_energy():
    rng = np.random.default_rng(1)
    strong_grey, weak_colour = grey(1, rng) * 10, opponent(1, rng) * 0.1
    w = np.concatenate([strong_grey, weak_colour])
    c = towers.kernel_energies(w)
    assert towers.tower_selectivity(w, 1)[0] == pytest.approx(c[0].sum() / c[1].sum())
    assert towers.tower_selectivity(w, 1)[0] < 0.01  # mean of per-kernel indices would be 0.5


def test_figure_3_towers_separate_random_ones_do_not():
    rng = np.random.default_rng(2)
    fig3 = np.concatenate([grey(48, rng) + 0.2 * opponent(48, rng), opponent(48, rng) + 0.3 * grey(48, rng)])
    s = towers.tower_summary(fig3)
    assert s["separated"] is True and s["colour_tower"] == 1
    assert s["colour_selectivity"][0] < 0.1 and s["colour_selectivity"][1] > 0.8 and s["mann_whitney_p"] < 1e-10
    swapped = towers.tower_summary(np.concatenate([fig3[48:], fig3[:48]]))
    assert swapped["separated"] and swapped["colour_tower"] == 0  # up to renumbering the towers
    # i.i.d. random kernels (the initialisation): about 2/3 in both towers, not separated
    for seed in range(20):
        r = towers.tower_summary(np.random.default_rng(100 + seed).normal(size=(96, 3, 11, 11)))
        assert not r["separated"] and abs(r["colour_selectivity"][0] - 2 / 3) < 0.05


def test_a_gap_without_a_distribution_difference_is_not_separated():
    """12 kernels per tower: the gap alone can pass 0.2 by chance, the rank test guards it."""
    rng = np.random.default_rng(3)
    mixed = np.concatenate([grey(6, rng), opponent(6, rng), grey(5, rng), opponent(7, rng) * 3])
    s = towers.tower_summary(mixed)
    assert s["mann_whitney_p"] >= towers.SEPARATION_P and not s["separated"]


def test_shape_is_checked():
    with pytest.raises(ValueError, match="conv1 weights"):
        towers.kernel_energies(np.zeros((4, 1, 11, 11)))
