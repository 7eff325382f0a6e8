"""TrainState: the progress of a fit as plain data (its own module, so that the update rule in
harness/train/recipe.py and the loop in harness/train/loop.py both read it without importing each
other)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

EMPTY_PARTIAL = {"loss": 0.0, "wrong": 0, "wrong5": 0, "seen": 0, "time": 0.0}


@dataclass
class TrainState:
    """Progress of a fit; plain data, so it checkpoints with torch.save(weights_only=True)."""

    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # batches done in the current epoch
    global_step: int = 0
    drops: int = 0  # lr divisions by 10 so far (plateau schedule)
    best_val: float = math.inf  # best centre-crop top-1 of the split the plateau rule reads
    bad_epochs: int = 0
    lr_drops: list = field(default_factory=list)  # plateau: epochs completed at each lr drop
    partial: dict = field(default_factory=lambda: dict(EMPTY_PARTIAL))
    history: list = field(default_factory=list)  # EpochResult dicts
    # [global step, epoch, images, top-1 wrong, top-5 wrong, loss sum] per read of the device sums
    # (every SYNC_EVERY steps): the training error at step resolution, for convergence claims
    # (docs/statistics.md, "convergence"); rank 0's share of each batch under torchrun
    windows: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainState":
        return cls(**d)
