"""Checkpoints: written atomically, read with weights_only=True (no code runs on load).

A checkpoint holds the model and optimizer state, the TrainState (schedule, position in the
data order, partial-epoch sums, history), the torch RNG state (dropout), the MLflow run id
and a digest of the params that shaped it: a checkpoint made under other params is ignored,
never resumed.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch

from harness import config as C
from harness.errors import UserError
from harness.io import atomic_write_bytes
from harness.model import build_model


def save(path: Path, payload: dict) -> None:
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def load(path: Path) -> dict:
    """weights_only=True: tensors and plain data only; a pickle that would run code is refused."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # what weights_only raises for anything but plain data
        raise UserError(f"{path} was refused: it holds objects other than tensors and plain data, which "
                        f"could run code when loaded (weights_only=True); {str(exc).splitlines()[0][:160]}. "
                        "Delete it and train again") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise UserError(f"checkpoint not found: {path}") from None
        raise UserError(f"{path} is corrupt or truncated and cannot be loaded "
                        f"({str(exc).splitlines()[0][:160]}); delete it and train again") from None
    if not isinstance(payload, dict):
        raise UserError(f"{path} is not a checkpoint of this harness (it holds a {type(payload).__name__})")
    return payload


def compatible(payload: dict, digest: str, seed: int) -> bool:
    return payload.get("training_digest") == digest and payload.get("seed") == seed


def load_model(path: Path, cfg: C.Config, device: str | None = None) -> torch.nn.Module:
    """The trained net in the one-device (grouped) layout, on `device` (default: the first of
    train.devices)."""
    if not path.is_file():
        raise UserError(f"model weights not found: {path} (run the train stage)")
    ckpt = load(path)
    if not {"state_dict", "num_classes"} <= ckpt.keys():
        raise UserError(f"{path} is not a model file of the train stage (no weights in it); run the train stage")
    model = build_model(cfg.model, ckpt["num_classes"], (device or cfg.train.devices[0],))  # grouped format
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise UserError(f"{path} does not match the model params in params.yaml (model.*): "
                        f"{str(exc).splitlines()[0][:160]}; train again") from None
    return model


def model_tags(cfg: C.Config, seed: int) -> dict:
    """What identifies a seed's trained weights among the experiment's logged models."""
    return {"seed": seed, "arm": cfg.arm or "baseline", "training_digest": C.training_digest(cfg)}


def resume_path(work: Path, cfg: C.Config, seed: int) -> Path:
    """Where a seed's resume checkpoint lives: keyed by everything that shapes its weights (the
    training digest: data, model, train params and the arm) and the seed, so a changed param
    starts afresh and changing it back finds its own checkpoint again."""
    return Path(work) / "train" / C.training_digest(cfg) / f"seed-{seed}" / "checkpoint.pt"
