"""Training: one epoch, validation, the learning-rate schedule, and the fit loop (paper 5)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from harness.config import TrainConfig


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    train_loss: float
    train_top1_error: float  # percent, on augmented training batches
    val_loss: float
    val_top1_error: float  # percent, centre crop
    val_top5_error: float
    lr: float
    images_per_s: float
    epoch_time_s: float


def lr_at(cfg: TrainConfig, epoch_float: float) -> float:
    """paper 5: lr 0.01, divided by 10 at each step; optional linear warm-up (a departure)."""
    lr = cfg.lr * 0.1 ** sum(epoch_float >= s for s in cfg.lr_steps)
    if cfg.warmup_epochs > 0 and epoch_float < cfg.warmup_epochs:
        lr *= (epoch_float + 1e-3) / cfg.warmup_epochs
    return lr


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """paper 5: SGD, momentum 0.9, weight decay 0.0005 (torch's form: buffer in grad units)."""
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay)


def epoch_batches(n: int, batch: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The data order of one epoch, from (seed, epoch) alone; last partial batch dropped."""
    perm = np.random.default_rng([seed, epoch, 0x5EED]).permutation(n)
    return [perm[i:i + batch] for i in range(0, n - batch + 1, batch)]


def train_one_epoch(model, loader, optimizer, cfg: TrainConfig, epoch: int, steps: int,
                    on_step: Callable[[int, float, float], None] | None = None) -> dict:
    model.train()
    total_loss, wrong, seen = 0.0, 0, 0
    start = time.perf_counter()
    bar = tqdm(loader, total=steps, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False)
    for i, (x, y) in enumerate(bar):
        lr = lr_at(cfg, epoch + i / steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}, step {i}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(y)
        wrong += (logits.argmax(1) != y).sum().item()
        seen += len(y)
        rate = seen / (time.perf_counter() - start)
        bar.set_postfix(loss=f"{loss.item():.3f}", img_s=f"{rate:.0f}")
        if on_step:
            on_step(epoch * steps + i, loss.item(), lr)
    elapsed = time.perf_counter() - start
    return {"loss": total_loss / max(seen, 1), "top1_error": 100.0 * wrong / max(seen, 1),
            "images_per_s": seen / elapsed, "time_s": elapsed}


@torch.no_grad()
def validate(model, loader) -> dict:
    """Centre-crop loss and top-1/top-5 error (percent) over the whole split."""
    model.eval()
    total_loss, wrong1, wrong5, n = 0.0, 0, 0, 0
    for x, y in loader:
        logits = model(x)
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        top5 = logits.topk(min(5, logits.shape[1]), 1).indices
        wrong1 += (top5[:, 0] != y).sum().item()
        wrong5 += (~(top5 == y[:, None]).any(1)).sum().item()
        n += len(y)
    return {"loss": total_loss / n, "top1_error": 100.0 * wrong1 / n, "top5_error": 100.0 * wrong5 / n}


def fit(model, train_view, make_train_loader, val_loader, cfg: TrainConfig, seed: int,
        on_epoch: Callable[[EpochResult], None] | None = None,
        on_step: Callable[[int, float, float], None] | None = None) -> list[EpochResult]:
    """Train for cfg.epochs; returns the per-epoch history."""
    optimizer = make_optimizer(model, cfg)
    history = []
    for epoch in range(cfg.epochs):
        train_view.set_epoch(epoch)
        batches = epoch_batches(len(train_view), cfg.batch_size, seed, epoch)
        tr = train_one_epoch(model, make_train_loader(batches), optimizer, cfg, epoch,
                             len(batches), on_step)
        va = validate(model, val_loader)
        result = EpochResult(epoch + 1, tr["loss"], tr["top1_error"], va["loss"], va["top1_error"],
                             va["top5_error"], lr_at(cfg, epoch + 1 - 1e-9), tr["images_per_s"],
                             tr["time_s"])
        history.append(result)
        if on_epoch:
            on_epoch(result)
        if not math.isfinite(result.train_loss):
            break
    return history
