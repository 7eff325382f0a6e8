"""Checkpoints: written atomically, read with weights_only=True (no code runs on load).

A checkpoint holds the model and optimizer state, the TrainState (schedule, position in the
data order, partial-epoch sums, history), the torch RNG state (dropout), the MLflow run id
and a digest of the params that shaped it: a checkpoint made under other params is ignored,
never resumed.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from harness.io import atomic_write_bytes


def save(path: Path, payload: dict) -> None:
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def compatible(payload: dict, digest: str, seed: int) -> bool:
    return payload.get("training_digest") == digest and payload.get("seed") == seed
