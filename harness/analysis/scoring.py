"""Top-k errors from per-image scores: the one top-k rule of the harness."""

from __future__ import annotations

import numpy as np
import torch


def topk_correct(scores, labels, k: int):
    """bool [N]: the true label is among the k highest-scoring classes. The harness's one top-k rule:
    training (per-step and validation errors, which drive the plateau schedule), evaluation and
    ensembles all count with it.

    Ties are broken against the true class (a class tied with the label at the k-th place counts
    as ranked above it), so a constant prediction never scores by luck. `scores` [N, C] (softmax
    probabilities or logits: the same ranking) and `labels` [N] are numpy arrays or torch tensors;
    the result has the same kind, on the same device.
    """
    if isinstance(scores, np.ndarray):
        return topk_correct(torch.from_numpy(scores), torch.from_numpy(np.asarray(labels)), k).numpy()
    k = min(k, scores.shape[1])
    true = scores.gather(1, labels.long()[:, None])
    higher = (scores > true).sum(1)
    ties = (scores == true).sum(1) - 1
    return higher + ties < k


def error_summary(probs: np.ndarray, labels: np.ndarray) -> dict:
    """Top-1 and top-5 error in percent, with the wrong counts (for Wilson intervals)."""
    n = len(labels)
    w1 = int((~topk_correct(probs, labels, 1)).sum())
    w5 = int((~topk_correct(probs, labels, 5)).sum())
    return {"top1_error": 100.0 * w1 / n, "top5_error": 100.0 * w5 / n,
            "top1_wrong": w1, "top5_wrong": w5, "n_images": n}


def per_class_error(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> list[float]:
    """Top-1 error (percent) of each class; classes without images get None."""
    wrong = ~topk_correct(probs, labels, 1)
    out = []
    for c in range(num_classes):
        sel = labels == c
        out.append(float(100.0 * wrong[sel].mean()) if sel.any() else None)
    return out
