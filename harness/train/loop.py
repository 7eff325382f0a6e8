"""Training: the paper's update rule, its lr schedule, one epoch, validation, and fit (paper 5).

fit() is exactly resumable: everything that decides the next step lives in TrainState (plus
model, optimizer and the torch RNG, which the caller checkpoints), and the data order and
augmentation of every epoch derive from (seed, epoch) alone.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from harness import accel, runtime
from harness.config import TrainConfig
from harness.runtime import Dist
from harness.analysis.scoring import topk_correct
from harness.model.successors import AUX_LOSS_WEIGHT, main_and_aux
from harness.train.recipe import lr_at, update_plateau
from harness.train.state import EMPTY_PARTIAL, TrainState  # noqa: F401 (loop.TrainState, as callers name it)


class NonFiniteLoss(FloatingPointError):
    """The loss became NaN or Inf; the last checkpoint is left as it was."""


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    train_loss: float
    train_top1_error: float  # percent, on augmented training batches (dropout on)
    train_top5_error: float
    val_loss: float
    val_top1_error: float  # percent, centre crop
    val_top5_error: float
    lr: float
    images_per_s: float
    epoch_time_s: float
    # train.schedule_split holdout: centre-crop top-1 % on the held-out training slice, which
    # the plateau rule then reads instead of val_top1_error; None otherwise
    holdout_top1_error: float | None = None


# --- epochs ------------------------------------------------------------------------------------

def epoch_batches(n: int, batch: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The data order of one epoch, from (seed, epoch) alone; last partial batch dropped."""
    perm = np.random.default_rng([seed, epoch, 0x5EED]).permutation(n)
    return [perm[i:i + batch] for i in range(0, n - batch + 1, batch)]


@dataclass(frozen=True)
class Hooks:
    """Callbacks of fit: progress for tracking and checkpointing, which live elsewhere."""

    on_step: Callable[[int, float, float], None] | None = None  # (global step, loss, lr)
    on_epoch: Callable[[EpochResult], None] | None = None
    on_checkpoint: Callable[[TrainState], None] | None = None


# Steps between reads of the device-side sums (loss, errors, NaN check, progress, on_step): the
# host queues up to this many steps ahead of the GPU instead of waiting for each (measured by benchmarks/gpu_check.py).
SYNC_EVERY = 20


class _DeviceSums:
    """Per-step loss and top-1/top-5 wrong counts, summed on the device and read in one sync.

    The sum starts from the checkpointed partial and adds each step in order in float64, so the
    epoch's train_loss has the same bits as a per-step `loss.item()` sum, wherever the reads fall
    (a resumed epoch reads at other steps than an uninterrupted one).
    """

    def __init__(self, partial: dict):
        self.p = partial
        self.sums = None  # float64 [loss sum, wrong, wrong5] on the logits' device
        self.pending: list = []  # (global step, step in epoch, loss tensor, lr) not yet read
        self.last = [partial["loss"], partial["wrong"], partial["wrong5"], partial["seen"]]  # at the last read

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, state: TrainState, lr: float):
        scores = logits.detach()
        step = torch.stack([loss.detach().double() * len(y), (~topk_correct(scores, y, 1)).sum().double(),
                            (~topk_correct(scores, y, 5)).sum().double()])
        if self.sums is None:
            p = self.p
            self.sums = torch.tensor([p["loss"], p["wrong"], p["wrong5"]], dtype=torch.float64, device=step.device)
        self.sums += step
        self.pending.append((state.global_step, state.step_in_epoch - 1, loss.detach(), lr))  # after the step's increments

    def read(self, state: TrainState, hooks: Hooks) -> float | None:
        """One host-device sync: partial sums into state.partial, on_step for each pending step.

        Raises NonFiniteLoss naming the first step whose loss was NaN or Inf; callers read before
        every checkpoint, so no checkpoint ever holds the weights that such a step produced.
        """
        if not self.pending:
            return None
        values = torch.cat([self.sums, torch.stack([x[2] for x in self.pending]).double()]).tolist()
        losses, pending = values[3:], self.pending
        self.pending = []
        for (global_step, step, _, lr), loss in zip(pending, losses):
            if not math.isfinite(loss):
                raise NonFiniteLoss(f"training loss became {loss} at epoch {state.epoch + 1}, "
                                    f"step {step}; the last checkpoint is kept")
            if hooks.on_step:
                hooks.on_step(global_step, loss, lr)
        self.p["loss"], self.p["wrong"], self.p["wrong5"] = values[0], int(values[1]), int(values[2])
        now = [self.p["loss"], self.p["wrong"], self.p["wrong5"], self.p["seen"]]
        state.windows.append([state.global_step, state.epoch + 1, now[3] - self.last[3], now[1] - self.last[1],
                              now[2] - self.last[2], now[0] - self.last[0]])
        self.last = now
        return losses[-1]


def train_one_epoch(model, loader, optimizer, cfg: TrainConfig, state: TrainState, steps: int,
                    hooks: Hooks) -> None:
    """Continue the current epoch from state.step_in_epoch to its end."""
    model.train()
    p = state.partial
    start = time.perf_counter() - p["time"]
    bar = tqdm(loader, total=steps, initial=state.step_in_epoch, desc=f"epoch {state.epoch + 1}/{cfg.epochs}",
               unit="batch", leave=False)
    device = next(model.parameters()).device  # the first tower's device (paper: GPU 1)
    sums = _DeviceSums(p)
    for x, y in bar:
        x = accel.to_device(x, device, cfg.channels_last)
        lr = lr_at(cfg, state, state.epoch + state.step_in_epoch / steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with accel.autocast(device, cfg.precision):
            logits, aux = main_and_aux(model(x))  # aux: GoogLeNet's auxiliary heads in training
            y = y.to(logits.device, non_blocking=True)
            loss = F.cross_entropy(logits, y)
            if aux:
                loss = loss + AUX_LOSS_WEIGHT * sum(F.cross_entropy(a, y) for a in aux)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state.step_in_epoch += 1
        state.global_step += 1
        sums.add(loss, logits, y, state, lr)
        p["seen"] += len(y)
        p["time"] = time.perf_counter() - start
        checkpoint_now = hooks.on_checkpoint and cfg.checkpoint_every and \
            state.global_step % cfg.checkpoint_every == 0 and state.step_in_epoch < steps
        if checkpoint_now or state.step_in_epoch % SYNC_EVERY == 0 or state.step_in_epoch == steps:
            last = sums.read(state, hooks)
            bar.set_postfix(loss=f"{last:.3f}", img_s=f"{p['seen'] / max(p['time'], 1e-9):.0f}", refresh=False)
        if checkpoint_now:
            hooks.on_checkpoint(state)
    sums.read(state, hooks)  # a loader shorter than `steps` (it never is in fit)


@torch.no_grad()
def validate_sums(model, loader, precision: str = "fp32", channels_last: bool = False) -> list[float]:
    """Centre-crop [loss sum, top-1 wrong, top-5 wrong, images] over this rank's images."""
    model.eval()
    device = next(model.parameters()).device
    total_loss, wrong1, wrong5, n = 0.0, 0, 0, 0
    for x, y in loader:
        with accel.autocast(device, precision):
            logits = model(accel.to_device(x, device, channels_last)).float().cpu()
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        wrong1 += int((~topk_correct(logits, y, 1)).sum())
        wrong5 += int((~topk_correct(logits, y, 5)).sum())
        n += len(y)
    return [total_loss, wrong1, wrong5, n]


def validate(model, loader, d: Dist = Dist(), precision: str = "fp32", channels_last: bool = False) -> dict:
    """Loss and top-1/top-5 error (percent) over the whole split, summed over ranks."""
    loss, w1, w5, n = runtime.all_reduce_sum(validate_sums(model, loader, precision, channels_last), d)
    return {"loss": loss / n, "top1_error": 100.0 * w1 / n, "top5_error": 100.0 * w5 / n}


def _finish_epoch(cfg: TrainConfig, state: TrainState, val: dict, steps: int, d: Dist,
                  held: dict | None = None) -> EpochResult:
    keys = ("loss", "wrong", "wrong5", "seen")
    p = {**state.partial, **dict(zip(keys, runtime.all_reduce_sum([state.partial[k] for k in keys], d)))}
    lr = lr_at(cfg, state, state.epoch + (steps - 1) / steps)  # lr of the epoch's last step
    seen = max(p["seen"], 1)
    result = EpochResult(state.epoch + 1, p["loss"] / seen, 100.0 * p["wrong"] / seen, 100.0 * p["wrong5"] / seen,
                         val["loss"], val["top1_error"], val["top5_error"], lr,
                         p["seen"] / max(p["time"], 1e-9), p["time"],
                         None if held is None else held["top1_error"])
    update_plateau(cfg, state, (held or val)["top1_error"])  # the split train.schedule_split names
    state.history.append(asdict(result))
    state.epoch += 1
    state.step_in_epoch = 0
    state.partial = dict(EMPTY_PARTIAL)
    return result


def fit(model, optimizer, train_view, make_loader, val_loader, cfg: TrainConfig, seed: int,
        state: TrainState, hooks: Hooks = Hooks(), d: Dist = Dist(), schedule_loader=None) -> list[EpochResult]:
    """Train from `state` to cfg.epochs; returns the whole per-epoch history.

    schedule_loader: centre crops of the held-out training slice (train.schedule_split
    holdout); the plateau rule then reads its error instead of the validation error.

    Under torchrun each rank takes every world-th image of each global batch, so the global
    batch (paper 5: 128) and the data order do not depend on the number of processes.
    """
    if cfg.batch_size % d.world:
        raise ValueError(f"train.batch_size {cfg.batch_size} is not divisible by the {d.world} processes")
    while state.epoch < cfg.epochs:
        train_view.set_epoch(state.epoch)
        batches = epoch_batches(len(train_view), cfg.batch_size, seed, state.epoch)
        remaining = [b[d.rank::d.world] for b in batches[state.step_in_epoch:]]  # resume skips done steps
        train_one_epoch(model, make_loader(remaining), optimizer, cfg, state, len(batches), hooks)
        val = validate(model, val_loader, d, cfg.precision, cfg.channels_last)
        held = None if schedule_loader is None else validate(model, schedule_loader, d, cfg.precision,
                                                             cfg.channels_last)
        result = _finish_epoch(cfg, state, val, len(batches), d, held)
        if hooks.on_epoch:
            hooks.on_epoch(result)
        if hooks.on_checkpoint:
            hooks.on_checkpoint(state)
    return [EpochResult(**h) for h in state.history]
