"""What the train stage and the pilot build before the first step, alike: the training input,
the compiled model, the centre-crop loaders of validation and of the schedule's held-out slice,
and the batch-size checks."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from harness import accel
from harness import config as C
from harness.data import transforms
from harness.errors import UserError


def train_input(cfg: C.Config, train_view: transforms.TrainView, devices: tuple[str, ...] | None = None):
    """(view, make_loader) of the training batches: decoded on the CPU in the loader (workers,
    pinned memory), or on this rank's first device with train.decode_device (JPEG shards only)."""
    if cfg.train.decode_device == "cpu":
        return train_view, lambda batches: transforms.batch_loader(train_view, batches, cfg.train.num_workers)
    view = transforms.DeviceTrainBatches.from_view(train_view, (devices or cfg.train.devices)[0])
    return view, view.loader


def check_batch_size(cfg: C.TrainConfig, train_images: int, world: int = 1) -> None:
    """A batch must fit in the training set and split evenly over the torchrun processes."""
    if cfg.batch_size > train_images:
        raise UserError(f"train.batch_size: {cfg.batch_size} is larger than the {train_images} training images")
    if cfg.batch_size % world:
        raise UserError(f"train.batch_size: {cfg.batch_size} is not divisible by the {world} torchrun processes")


def compile_model(model, cfg: C.TrainConfig, crop: int, world: int, devices: tuple[str, ...] | None = None):
    """(model to train, how it runs) with train.compile: torch.compile, compiled now on a batch of
    zeros, or the eager model with a warning when compiling fails (no compiler, no Triton)."""
    if not cfg.compile:
        return model, "off"
    device = next(model.parameters()).device
    example = accel.to_device(torch.zeros(cfg.batch_size // world, 3, crop, crop), device, cfg.channels_last)
    cuda = [torch.device(x).index if torch.device(x).index is not None else torch.cuda.current_device()
            for x in devices or cfg.devices if x.startswith("cuda")]
    # the example's forward draws dropout masks: fork the RNGs, so a resumed run's masks match
    with torch.random.fork_rng(devices=cuda), accel.autocast(device, cfg.precision):
        compiled, error = accel.try_compile(model, example)
    if error:
        print(f"warning: train.compile: torch.compile failed ({error}); training eagerly", file=sys.stderr, flush=True)
        return model, f"failed, eager: {error[:200]}"
    return compiled, "inductor"


class CenterLoaders:
    """Centre-crop loaders of one split, this rank's share of it (split over ranks, no padding):
    the whole split, or its first batch (what the lr selection's pilots validate on)."""

    def __init__(self, split, norm, cfg: C.Config, rank: int = 0, world: int = 1):
        self.view = transforms.EvalView(split, norm, cfg.model.input_size, "center")
        self.batches = transforms.eval_batches(len(split), cfg.evaluate.batch_size, rank, world)
        self.images = len(split)

    def all(self):
        return transforms.batch_loader(self.view, self.batches, 0)

    def first_batch(self):
        return transforms.batch_loader(self.view, self.batches[:1], 0)


def schedule_loader(cfg: C.Config, data_dir: Path, norm, rank: int = 0, world: int = 1):
    """(loader, images) of the held-out training slice that drives the plateau rule
    (train.schedule_split holdout), centre crops split over ranks like val; (None, 0) when val
    drives it."""
    held = transforms.schedule_split(cfg, data_dir)
    if held is None:
        return None, 0
    return CenterLoaders(held, norm, cfg, rank, world).all(), len(held)
