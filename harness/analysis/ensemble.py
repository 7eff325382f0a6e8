"""Ensembles: average the softmax of several models (paper 6: "averaging the predictions")."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np

from harness.analysis.scoring import topk_correct
from harness.errors import UserError


def subsets(n: int, k: int, max_subsets: int, seed: int) -> list[tuple[int, ...]]:
    """All k-subsets of n models when there are at most max_subsets, else a fixed sample."""
    if math.comb(n, k) <= max_subsets:
        return list(itertools.combinations(range(n), k))
    rng = np.random.default_rng([seed, n, k])
    seen: set[tuple[int, ...]] = set()
    while len(seen) < max_subsets:
        seen.add(tuple(sorted(rng.choice(n, k, replace=False).tolist())))
    return sorted(seen)


def ensemble_errors(probs: list[np.ndarray], labels: np.ndarray, max_subsets: int, seed: int) -> list[dict]:
    """For every ensemble size k: mean and sd (over subsets) of top-1/top-5 error, percent."""
    rows = []
    for k in range(1, len(probs) + 1):
        e1, e5 = [], []
        for sub in subsets(len(probs), k, max_subsets, seed):
            avg = np.mean([probs[i] for i in sub], axis=0)
            e1.append(100.0 * (~topk_correct(avg, labels, 1)).mean())
            e5.append(100.0 * (~topk_correct(avg, labels, 5)).mean())
        rows.append({
            "k": k, "n_subsets": len(e1),
            "top1_error_mean": float(np.mean(e1)), "top1_error_sd": _sd(e1),
            "top1_error_min": float(np.min(e1)), "top1_error_max": float(np.max(e1)),
            "top5_error_mean": float(np.mean(e5)), "top5_error_sd": _sd(e5),
            "top5_error_min": float(np.min(e5)), "top5_error_max": float(np.max(e5)),
        })
    return rows


def _sd(values) -> float | None:
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def load_predictions(pred_dir: Path, seeds, protocol: str) -> list[np.ndarray]:
    out = []
    for s in seeds:
        p = pred_dir / f"seed-{s}" / f"{protocol}.npy"
        if not p.is_file():
            raise UserError(f"predictions missing: {p} (run evaluate@{s})")
        out.append(np.load(p))
    return out


def mixed_ensembles(base: list[np.ndarray], pre: list[np.ndarray], base_seeds, pre_seeds,
                    labels: np.ndarray) -> dict[str, dict]:
    """paper 6: ensembles of CNNs trained on ILSVRC-2012 only ("base") and pre-trained ones
    ("pre"), softmax averaged. For every mix "kb+kp" (kb base models, kp >= 1 pre-trained): the
    disjoint groups (base seeds and pre-trained seeds each taken in order, kb and kp at a time)
    and each group's top-1/top-5 error in percent. The claims pick their mix (claims.yaml)."""
    from harness.analysis import scoring

    out = {}
    for kb in range(0, len(base) + 1):
        for kp in range(1, len(pre) + 1):
            n = min(len(base) // kb if kb else len(pre) // kp, len(pre) // kp)
            groups, errors = [], {"top1_error": [], "top5_error": []}
            for j in range(n):
                bi, pi = list(range(j * kb, (j + 1) * kb)), list(range(j * kp, (j + 1) * kp))
                avg = np.mean([base[i] for i in bi] + [pre[i] for i in pi], axis=0)
                groups.append({"base": [base_seeds[i] for i in bi], "pretrained": [pre_seeds[i] for i in pi]})
                for t in (1, 5):
                    errors[f"top{t}_error"].append(100.0 * float(np.mean(~scoring.topk_correct(avg, labels, t))))
            out[f"{kb}+{kp}"] = {"k": kb + kp, "n_pretrained": kp, "groups": groups, **errors}
    return out
