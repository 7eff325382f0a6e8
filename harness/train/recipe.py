"""The paper's update rule and learning-rate schedule (paper 5)."""

from __future__ import annotations

import torch

from harness.config import TrainConfig
from harness.train.state import TrainState


# --- the update rule --------------------------------------------------------------------------

class PaperSGD(torch.optim.Optimizer):
    """paper 5: v <- 0.9 v - 0.0005 lr w - lr grad;  w <- w + v.

    The velocity is in parameter units, so an lr drop scales only new gradients. torch.optim.SGD
    keeps its buffer in gradient units and multiplies the whole buffer by the new lr: identical
    at constant lr, different for a while after each drop (docs/paper.md, "Ambiguities": the schedule).

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


def param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict]:
    """The optimizer's groups: the per-layer multipliers a model declares, then train.bias_decay.

    A model with optim_groups() (the cuda-convnet nets) gives one group per tensor with its
    layer's lr_mult and decay_mult (harness/model/cuda_convnet.py); without bias_decay every bias
    group's decay_mult becomes 0 (the authors' code decays weights only, docs/fidelity.md), with
    it a bias decays as its layer's weights. Any other model: one group (everything decayed) with
    bias_decay, else weights and biases apart, the biases with weight decay 0.
    """
    if hasattr(model, "optim_groups"):
        groups = model.optim_groups()
        if cfg.bias_decay:
            return groups
        return [dict(g, decay_mult=0.0) if g["name"].endswith("bias") else g for g in groups]
    if cfg.bias_decay:
        return [{"params": list(model.parameters())}]
    named = list(model.named_parameters())
    weights = [p for n, p in named if not n.endswith("bias")]
    biases = [p for n, p in named if n.endswith("bias")]
    return [{"params": weights}, {"params": biases, "weight_decay": 0.0}]


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """paper 5: SGD, momentum 0.9, weight decay 0.0005, in the paper's form or torch's; the
    decay reaches the biases only with train.bias_decay (both forms, through param_groups).
    Per-layer multipliers (the cuda-convnet nets) need the paper rule (config.py checks)."""
    groups = param_groups(model, cfg)
    if any("lr_mult" in g for g in groups) and cfg.update_rule != "paper":
        raise ValueError("per-layer learning rates need train.update_rule: paper")
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
