"""The paper's update rule and learning-rate schedule (paper 5)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from harness.config import TrainConfig

if TYPE_CHECKING:
    from harness.train.loop import TrainState


# --- the update rule --------------------------------------------------------------------------

class PaperSGD(torch.optim.Optimizer):
    """paper 5: v <- 0.9 v - 0.0005 lr w - lr grad;  w <- w + v.

    The velocity is in parameter units, so an lr drop scales only new gradients. torch.optim.SGD
    keeps its buffer in gradient units and multiplies the whole buffer by the new lr: identical
    at constant lr, different for a while after each drop (PAPER.md section 2).

    Groups may carry lr_mult and decay_mult (Caffe's names): that group's lr is lr * lr_mult and
    its decay wd * decay_mult, so per-layer values survive the loop setting every group's "lr" to
    the schedule's value each step (cuda-convnet's per-layer epsW/epsB/wc, harness/model/
    cuda_convnet.py). Without them (multipliers 1.0) the arithmetic is bit for bit the same.
    """

    def __init__(self, params, lr: float, momentum: float, weight_decay: float):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, lr_mult=1.0,
                                      decay_mult=1.0))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            # .get: optimizer states saved before the multipliers existed load without them
            lr, m = group["lr"] * group.get("lr_mult", 1.0), group["momentum"]
            wd = group["weight_decay"] * group.get("decay_mult", 1.0)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p)
                v = state["velocity"]
                v.mul_(m).add_(p, alpha=-wd * lr).add_(p.grad, alpha=-lr)
                p.add_(v)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """paper 5: SGD, momentum 0.9, weight decay 0.0005, in the paper's form or torch's.

    A model with optim_groups() (the cuda-convnet nets) gets one group per tensor with its
    layer's lr_mult and decay_mult; those need the paper rule (config.py checks).
    """
    groups = model.optim_groups() if hasattr(model, "optim_groups") else None
    if groups is not None:
        if cfg.update_rule != "paper":
            raise ValueError("per-layer learning rates need train.update_rule: paper")
        return PaperSGD(groups, cfg.lr, cfg.momentum, cfg.weight_decay)
    if cfg.update_rule == "paper":
        return PaperSGD(model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay)


# --- the schedule ------------------------------------------------------------------------------

def lr_at(cfg: TrainConfig, state: TrainState, epoch_float: float) -> float:
    """paper 5: lr 0.01, divided by 10 at each drop; optional linear warm-up (a departure)."""
    if cfg.schedule == "steps":
        drops = sum(epoch_float >= s for s in cfg.lr_steps)
    else:
        drops = state.drops
    lr = cfg.lr * 0.1 ** drops
    if cfg.warmup_epochs > 0 and epoch_float < cfg.warmup_epochs:
        lr *= (epoch_float + 1e-3) / cfg.warmup_epochs
    return lr


def update_plateau(cfg: TrainConfig, state: TrainState, val_error: float) -> bool:
    """paper 5: divide lr by 10 "when the validation error rate stopped improving", at most
    max_drops times (the paper: 3). Deterministic stand-in: after `patience` epochs without
    a new best. Returns True when it dropped."""
    if val_error < state.best_val:
        state.best_val, state.bad_epochs = val_error, 0
        return False
    state.bad_epochs += 1
    if cfg.schedule == "plateau" and state.bad_epochs >= cfg.patience and state.drops < cfg.max_drops:
        state.drops += 1
        state.bad_epochs = 0
        return True
    return False
