"""How the plateau rule (harness/train/recipe.py update_plateau) behaves on a noisy validation set.

`python -m benchmarks.plateau_sim` simulates one constant-lr phase of training many times: the
true centre-crop top-1 error falls as e(t) = e_end + (e_start - e_end) exp(-t / tau) and each
epoch's measured error is Binomial(n, e(t)) / n, drawn independently per epoch (the worst case:
on the same images, consecutive epochs' errors are positively correlated, so their differences
are less noisy than this). The rule under test is the harness's own update_plateau. For each
(patience, threshold) it prints

- the median epoch of the first drop, and its 5th-95th percentiles (noise in the drop epoch
  adds seed-to-seed variance to every result);
- early: the share of runs whose drop came while the true error was still falling by at least
  0.25 pp per epoch (the lr cut while it was clearly still paying);
- forgone: the mean improvement the phase still had left at the drop, e(t_drop) - e_end (pp);
- late: the mean number of epochs spent after the true gain fell below 0.05 pp per epoch.

docs/fidelity.md ("The plateau rule") and the ImageNet presets' comments quote its output.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from harness.config import TrainConfig
from harness.train.loop import TrainState
from harness.train.recipe import update_plateau

EARLY_GAIN_PP = 0.25  # pp per epoch: still clearly improving
FLAT_GAIN_PP = 0.05  # pp per epoch: flat for practical purposes


def true_error(t: np.ndarray, start: float, end: float, tau: float) -> np.ndarray:
    return end + (start - end) * np.exp(-t / tau)


def gain(t: float, start: float, end: float, tau: float) -> float:
    """True improvement per epoch at epoch t (pp)."""
    return (start - end) / tau * math.exp(-t / tau)


def first_drop(errors: np.ndarray, patience: int, threshold: float) -> int | None:
    """Epochs completed at the first lr drop of the harness's plateau rule, or None."""
    cfg = TrainConfig(schedule="plateau", patience=patience, plateau_threshold=threshold, max_drops=1)
    state = TrainState()
    for e in errors:
        dropped = update_plateau(cfg, state, float(e))
        state.epoch += 1
        if dropped:
            return state.epoch
    return None


def simulate(patience: int, threshold: float, *, n: int, start: float, end: float, tau: float,
             epochs: int, runs: int, seed: int) -> dict:
    rng = np.random.default_rng([seed, patience, int(threshold * 1000)])
    t = np.arange(1, epochs + 1, dtype=float)
    p = true_error(t, start, end, tau) / 100.0
    drops, early, forgone, late = [], 0, [], []
    t_flat = tau * math.log((start - end) / tau / FLAT_GAIN_PP)  # gain falls below FLAT_GAIN_PP
    for _ in range(runs):
        measured = 100.0 * rng.binomial(n, p) / n
        d = first_drop(measured, patience, threshold)
        d = epochs if d is None else d
        drops.append(d)
        early += gain(d, start, end, tau) >= EARLY_GAIN_PP
        forgone.append(float(true_error(np.array([d]), start, end, tau)[0] - end))
        late.append(max(0.0, d - t_flat))
    lo, hi = np.percentile(drops, [5, 95])
    return {"patience": patience, "threshold_pp": threshold, "median_drop_epoch": float(np.median(drops)),
            "drop_epoch_5_95": [float(lo), float(hi)],
            "early": early / runs, "forgone_pp": float(np.mean(forgone)), "late_epochs": float(np.mean(late))}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000, help="validation images (ILSVRC-2012 val: 50,000)")
    ap.add_argument("--start", type=float, default=80.0, help="true top-1 error at the phase start (%%)")
    ap.add_argument("--end", type=float, default=45.0, help="error the phase tends to (%%)")
    ap.add_argument("--tau", type=float, default=8.0, help="epochs for the remaining gain to shrink by e")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    se = 100 * math.sqrt(args.end / 100 * (1 - args.end / 100) / args.n)
    print(f"n={args.n} (binomial SE at {args.end:g}%: {se:.2f} pp), error {args.start:g} -> {args.end:g}% "
          f"with tau {args.tau:g} epochs, {args.runs} runs each; early = dropped while gaining >= "
          f"{EARLY_GAIN_PP} pp/epoch, late = epochs after the gain fell below {FLAT_GAIN_PP} pp/epoch")
    print(f"{'patience':>8} {'threshold pp':>12} {'drop epoch: median [5-95%]':>27} {'early':>6} {'forgone pp':>10} "
          f"{'late ep':>7}")
    for patience in (1, 2, 3, 4, 5):
        for threshold in (0.0, 0.1, 0.2, 0.25, 0.3, 0.5):
            r = simulate(patience, threshold, n=args.n, start=args.start, end=args.end, tau=args.tau,
                         epochs=args.epochs, runs=args.runs, seed=args.seed)
            lo, hi = r["drop_epoch_5_95"]
            print(f"{patience:>8} {threshold:>12.2f} {r['median_drop_epoch']:>14.0f} [{lo:>4.0f}-{hi:>4.0f}]      "
                  f"{r['early']:>6.1%} "
                  f"{r['forgone_pp']:>10.2f} {r['late_epochs']:>7.1f}")


if __name__ == "__main__":
    main()
