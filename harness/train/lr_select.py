"""Learning-rate selection before a run (paper 3.1, Figure 1: "The learning rates for each network
were chosen independently to make training as fast as possible").

The declared procedure (train.lr_select_factors, train.lr_select_steps; docs/cifar10.md): every
factor f trains a copy of the run's own initial weights for the run's first `steps` steps (same
data order, augmentation draws and dropout RNG as the run itself) at lr * f. The factor with the
lowest training top-1 error over those steps wins (ties: the factor listed first); a factor whose
loss diverges is out. The run then trains from scratch at lr * f, so its first `steps` steps are
exactly the winning pilot's. Nothing here reads the validation or test labels.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import torch

from harness import runtime
from harness.config import TrainConfig
from harness.runtime import Dist
from harness.train import loop

CRITERION = "lowest training top-1 error over the run's first lr_select_steps steps (ties: the factor listed first)"


def _pilot(model, make_optimizer, train_view, make_loader, val_loader, cfg: TrainConfig, seed: int, steps: int,
           d: Dist) -> loop.EpochResult | None:
    """One factor: the first `steps` steps of the run from a copy of `model`; None if it diverged."""
    pilot = copy.deepcopy(model)
    optimizer = make_optimizer(pilot, cfg)
    first_steps = lambda batches: make_loader(batches[:steps])  # noqa: E731 -- fit passes a whole epoch
    cuda = [torch.cuda.current_device()] if next(model.parameters()).is_cuda else []
    with torch.random.fork_rng(devices=cuda):  # the run itself then starts from the same RNG state
        try:
            return loop.fit(runtime.wrap_ddp(pilot, d), optimizer, train_view, first_steps, val_loader, cfg, seed,
                            loop.TrainState(), loop.Hooks(), d)[0]
        except loop.NonFiniteLoss:
            return None


def select_lr(model, make_optimizer, train_view, make_loader, val_loader, cfg: TrainConfig, seed: int,
              d: Dist = Dist()) -> dict:
    """Run the pilots of cfg.lr_select_factors; the record of what was tried and the lr chosen.

    make_optimizer(model, train_cfg) builds the run's optimizer; val_loader may be a single batch
    (fit validates after its epoch; the value is not used).
    """
    steps = cfg.lr_select_steps
    base = dataclasses.replace(cfg, epochs=1, lr_steps=(), stop_at_train_error=None, lr_select_factors=(),
                               checkpoint_every=0)
    errors, losses = [], []
    for factor in cfg.lr_select_factors:
        if d.main:
            print(f"lr selection: {steps} steps at lr {cfg.lr * factor:.3g} (x{factor:g})", flush=True)
        r = _pilot(model, make_optimizer, train_view, make_loader, val_loader,
                   dataclasses.replace(base, lr=cfg.lr * factor), seed, steps, d)
        errors.append(None if r is None else r.train_top1_error)
        losses.append(None if r is None or not math.isfinite(r.train_loss) else r.train_loss)
    valid = [i for i, e in enumerate(errors) if e is not None]
    if not valid:
        raise loop.NonFiniteLoss(f"every learning rate of the selection diverged: "
                                 f"{[cfg.lr * f for f in cfg.lr_select_factors]}")
    best = min(valid, key=lambda i: (errors[i], i))
    factor = cfg.lr_select_factors[best]
    return {"criterion": CRITERION, "steps": steps, "base_lr": cfg.lr, "factors": list(cfg.lr_select_factors),
            "lrs": [cfg.lr * f for f in cfg.lr_select_factors], "pilot_train_top1_error": errors,
            "pilot_train_loss": losses, "chosen_factor": factor, "lr": cfg.lr * factor}
