"""Evaluation: per-image class probabilities for each test protocol, and top-k errors."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from harness import accel


@torch.no_grad()
def predict(model: torch.nn.Module, loader, n_images: int, desc: str, precision: str = "fp32",
            channels_last: bool = False) -> np.ndarray:
    """Softmax probabilities float32 [N, C], each image exactly once, in index order.

    10-patch batches arrive as [B, 10, 3, H, W]: paper 4.1 averages the softmax of the ten
    patches (not the logits). precision/channels_last: as in training (train.precision,
    train.channels_last); the softmax is taken in fp32 either way.
    """
    model.eval()
    device = next(model.parameters()).device
    out = []
    with tqdm(total=n_images, desc=desc, unit="img", leave=False) as bar:
        for x, _ in loader:
            x = x.to(device, non_blocking=True)
            with accel.autocast(device, precision):
                if x.dim() == 5:
                    b, v = x.shape[:2]
                    logits = model(accel.to_device(x.flatten(0, 1), device, channels_last))
                    p = torch.softmax(logits.float(), 1).view(b, v, -1).mean(1)
                else:
                    p = torch.softmax(model(accel.to_device(x, device, channels_last)).float(), 1)
            out.append(p.float().cpu().numpy())
            bar.update(len(x))
    probs = np.concatenate(out)
    if len(probs) != n_images:
        raise RuntimeError(f"predicted {len(probs)} images, expected {n_images}")
    return probs


def topk_correct(probs: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """bool [N]: the true label is among the k most probable classes.

    Ties are broken against the true class (a class tied with the label at the k-th place
    counts as ranked above it), so a constant prediction never scores by luck.
    """
    k = min(k, probs.shape[1])
    true_p = probs[np.arange(len(labels)), labels]
    higher = (probs > true_p[:, None]).sum(1)
    ties = (probs == true_p[:, None]).sum(1) - 1
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
