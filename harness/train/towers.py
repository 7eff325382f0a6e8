"""Tower specialisation (paper 6.1, Figure 3): how colour-selective each tower's conv1 kernels are.

The paper: "the kernels on GPU 1 are largely color-agnostic, while the kernels on GPU 2 are
largely color-specific", "during every run" and "independent of any particular random weight
initialization (modulo a renumbering of the GPUs)". The index and the rule below are declared
in docs/fidelity.md ("Tower specialisation"); they read the weights only, nothing of the data.

Colour-selectivity of one kernel w (3 x k x k, RGB): split w into its achromatic part (the
mean over the three colour channels at each position, the same in every channel) and the
chromatic rest. The kernel's index is the fraction of its energy (sum of squares) in the
chromatic rest: 0 for a kernel that weighs R, G and B alike (colour-agnostic), 1 for one whose
channels cancel at every position (pure colour opponency); a kernel on one channel only gives
2/3, and i.i.d. random weights 2/3 on average (the chromatic part is 2 of the 3 dimensions per
position). A tower's index is the energy-weighted mean over its kernels (sum of chromatic
energy / sum of energy), so near-dead kernels do not count as much as strong ones.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

# "separated" (declared in advance, docs/fidelity.md): the two towers' indices differ by at
# least SEPARATION_GAP, and their per-kernel indices differ in distribution (two-sided
# Mann-Whitney U, p < SEPARATION_P), so a gap that 12 random kernels per tower could show by
# chance does not count. i.i.d. random kernels give about 2/3 in both towers.
SEPARATION_GAP = 0.2
SEPARATION_P = 0.01


def kernel_energies(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(chromatic energy, total energy) per kernel of a conv1 weight [K, 3, kh, kw]."""
    w = np.asarray(weight, np.float64)
    if w.ndim != 4 or w.shape[1] != 3:
        raise ValueError(f"expected conv1 weights [K, 3, kh, kw], got shape {w.shape}")
    chroma = w - w.mean(axis=1, keepdims=True)
    return (chroma**2).sum(axis=(1, 2, 3)), (w**2).sum(axis=(1, 2, 3))


def kernel_selectivity(weight: np.ndarray) -> np.ndarray:
    """Colour-selectivity index in [0, 1] of each kernel (NaN for an all-zero kernel)."""
    chroma, total = kernel_energies(weight)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, chroma / np.where(total > 0, total, 1.0), np.nan)


def tower_selectivity(weight: np.ndarray, towers: int = 2) -> list[float]:
    """Energy-weighted colour-selectivity index of each tower; tower t holds kernels
    [t K / towers, (t + 1) K / towers) (the grouped layout, harness/model/two_device.py)."""
    chroma, total = kernel_energies(weight)
    out = []
    for c, t in zip(np.array_split(chroma, towers), np.array_split(total, towers)):
        out.append(float(c.sum() / t.sum()) if t.sum() > 0 else float("nan"))
    return out


def tower_summary(weight: np.ndarray) -> dict:
    """`towers` entry of a seed's train metrics for a two-tower conv1 weight [K, 3, kh, kw]."""
    index = tower_selectivity(weight, 2)
    per_kernel = [k[np.isfinite(k)] for k in np.array_split(kernel_selectivity(weight), 2)]
    gap = abs(index[0] - index[1])
    if min(len(k) for k in per_kernel) and np.ptp(np.concatenate(per_kernel)) > 0:
        p = float(stats.mannwhitneyu(per_kernel[0], per_kernel[1], alternative="two-sided").pvalue)
    else:
        p = 1.0  # no spread at all: nothing tells the towers apart
    return {"colour_selectivity": index, "separated": bool(gap >= SEPARATION_GAP and p < SEPARATION_P),
            "gap": gap, "mann_whitney_p": p, "colour_tower": int(np.argmax(index)),
            "kernels_per_tower": [len(k) for k in np.array_split(np.arange(len(weight)), 2)],
            "rule": f"gap >= {SEPARATION_GAP} and Mann-Whitney p < {SEPARATION_P} (docs/fidelity.md)"}
