"""Learning-rate selection before a run (paper 3.1, Figure 1: "The learning rates for each network
were chosen independently to make training as fast as possible").

The declared procedure (train.lr_select_factors, train.lr_select_steps, train.lr_select_limit;
docs/cifar10.md): every factor f trains a copy of the run's own initial weights for the run's first
`steps` steps (same data order, augmentation draws and dropout RNG as the run itself) at lr * f.
The factor with the lowest training top-1 error over those steps wins (ties: the factor tried
first); a factor whose loss diverges is out, and counts as worse than any that did not. While the
winner is the largest factor tried, the search goes on upwards at the grid's own spacing (x2 for
0.5, 1, 2, 4); while it is the smallest, or every factor diverged, downwards; never past
lr_select_limit or 1 / lr_select_limit. A winner that is still the largest or smallest factor
tried is "at the limit": the fastest rate may lie beyond what was tried, and the record says so.
The run then trains from scratch at lr * f, so its first `steps` steps are exactly the winning
pilot's. Nothing here reads the validation or test labels.
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

CRITERION = ("lowest training top-1 error over the run's first lr_select_steps steps (ties: the factor tried "
             "first; diverged: worst), the grid extended at its edge spacing while the best is at an edge, "
             "up to lr_select_limit")
# a factor within this relative distance of the limit is inside it (0.5 ** 6 * 64 is exact, 3 ** 4 may not be)
_LIMIT_TOLERANCE = 1e-9


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


def best_index(errors: list) -> int | None:
    """The winner among the factors tried (in the order tried): lowest error, the first on ties;
    None when every one diverged (error None)."""
    valid = [i for i, e in enumerate(errors) if e is not None]
    return min(valid, key=lambda i: (errors[i], i)) if valid else None


def next_factor(grid, factors: list, errors: list, limit: float | None) -> float | None:
    """The factor to try next, or None: the best of `factors` (tried so far, errors alike) is
    interior, or the next step would pass the limit (None: the grid is the limit), or a grid of one
    factor has no spacing to extend at."""
    if limit is None or len(grid) < 2:
        return None
    ordered = sorted(grid)
    lo, hi = min(factors), max(factors)
    best = best_index(errors)
    if best is None:  # every rate so far diverged: smaller ones
        nxt = lo * ordered[0] / ordered[1]
    elif factors[best] == hi:
        nxt = hi * ordered[-1] / ordered[-2]
    elif factors[best] == lo:
        nxt = lo * ordered[0] / ordered[1]
    else:
        return None
    inside = 1.0 / limit * (1 - _LIMIT_TOLERANCE) <= nxt <= limit * (1 + _LIMIT_TOLERANCE)
    return nxt if inside else None


def max_pilots(grid, limit: float | None) -> int:
    """The most pilots a search can run: the grid, then the longer of its extensions up to `limit`
    and down to 1 / `limit` (it extends one way only: the best moves away from the other edge)."""
    if limit is None or len(grid) < 2:
        return len(grid)
    ordered, extra = sorted(grid), []
    for f, ratio in ((ordered[-1], ordered[-1] / ordered[-2]), (ordered[0], ordered[0] / ordered[1])):
        n = 0
        while 1.0 / limit * (1 - _LIMIT_TOLERANCE) <= f * ratio <= limit * (1 + _LIMIT_TOLERANCE):
            f, n = f * ratio, n + 1
        extra.append(n)
    return len(grid) + max(extra)


def at_limit(selection: dict) -> bool:
    """Whether a selection record's chosen factor is the largest or smallest it tried (one of a
    single-factor grid is both): the search stopped at its limit, not at an interior best.
    Records written before the field existed are judged from their factors."""
    if "at_limit" in selection:
        return bool(selection["at_limit"])
    return selection["chosen_factor"] in (min(selection["factors"]), max(selection["factors"]))


def select_lr(model, make_optimizer, train_view, make_loader, val_loader, cfg: TrainConfig, seed: int,
              d: Dist = Dist()) -> dict:
    """Run the pilots of cfg.lr_select_factors, and further ones while the best is at an edge (up
    to cfg.lr_select_limit); the record of what was tried, in the order tried, and the lr chosen.

    make_optimizer(model, train_cfg) builds the run's optimizer; val_loader may be a single batch
    (fit validates after its epoch; the value is not used).
    """
    steps = cfg.lr_select_steps
    base = dataclasses.replace(cfg, epochs=1, lr_steps=(), stop_at_train_error=None, lr_select_factors=(),
                               checkpoint_every=0)
    factors, errors, losses = [], [], []
    queue = list(cfg.lr_select_factors)
    while queue:
        factor = queue.pop(0)
        if d.main:
            print(f"lr selection: {steps} steps at lr {cfg.lr * factor:.3g} (x{factor:g})", flush=True)
        r = _pilot(model, make_optimizer, train_view, make_loader, val_loader,
                   dataclasses.replace(base, lr=cfg.lr * factor), seed, steps, d)
        factors.append(factor)
        errors.append(None if r is None else r.train_top1_error)
        losses.append(None if r is None or not math.isfinite(r.train_loss) else r.train_loss)
        if not queue:  # the declared grid is done: extend it while its best is at an edge
            nxt = next_factor(cfg.lr_select_factors, factors, errors, cfg.lr_select_limit)
            queue = [] if nxt is None else [nxt]
    best = best_index(errors)
    if best is None:
        raise loop.NonFiniteLoss(f"every learning rate of the selection diverged: {[cfg.lr * f for f in factors]}")
    factor = factors[best]
    return {"criterion": CRITERION, "steps": steps, "base_lr": cfg.lr, "grid": list(cfg.lr_select_factors),
            "limit": cfg.lr_select_limit, "factors": factors, "lrs": [cfg.lr * f for f in factors],
            "pilot_train_top1_error": errors, "pilot_train_loss": losses, "chosen_factor": factor,
            "lr": cfg.lr * factor, "at_limit": factor in (min(factors), max(factors))}
