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
    at constant lr, different for a while after each drop (docs/paper.md, "Ambiguities": the schedule).
    """

    def __init__(self, params, lr: float, momentum: float, weight_decay: float):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, m, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p)
                v = state["velocity"]
                v.mul_(m).add_(p, alpha=-wd * lr).add_(p.grad, alpha=-lr)
                p.add_(v)


def param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict]:
    """One group (everything decayed) with train.bias_decay, else weights and biases apart,
    the biases with weight decay 0 (the authors' cuda-convnet code; docs/fidelity.md)."""
    if cfg.bias_decay:
        return [{"params": list(model.parameters())}]
    named = list(model.named_parameters())
    weights = [p for n, p in named if not n.endswith("bias")]
    biases = [p for n, p in named if n.endswith("bias")]
    return [{"params": weights}, {"params": biases, "weight_decay": 0.0}]


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """paper 5: SGD, momentum 0.9, weight decay 0.0005, in the paper's form or torch's; the
    decay reaches the biases only with train.bias_decay (both forms, through param groups)."""
    groups = param_groups(model, cfg)
    if cfg.update_rule == "paper":
        return PaperSGD(groups, cfg.lr, cfg.momentum, cfg.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


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


def update_plateau(cfg: TrainConfig, state: TrainState, error: float) -> bool:
    """paper 5: divide lr by 10 "when the validation error rate stopped improving", at most
    max_drops times (the paper: 3). Deterministic stand-in: after `patience` epochs without a
    new best, where a new best must beat the best so far by train.plateau_threshold pp (a noise
    floor, docs/fidelity.md). `error`: centre-crop top-1 % of the split train.schedule_split
    names. Records the epochs completed at each drop in state.lr_drops. Returns True on a drop."""
    if error < state.best_val - cfg.plateau_threshold:
        state.best_val, state.bad_epochs = error, 0
        return False
    state.bad_epochs += 1
    if cfg.schedule == "plateau" and state.bad_epochs >= cfg.patience and state.drops < cfg.max_drops:
        state.drops += 1
        state.bad_epochs = 0
        state.lr_drops.append(state.epoch + 1)
        return True
    return False
