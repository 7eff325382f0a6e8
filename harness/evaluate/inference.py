"""Evaluation forward passes: per-image class probabilities for each test protocol."""

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
