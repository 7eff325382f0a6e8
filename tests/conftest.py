"""Shared test settings: pinned threads (CPU results depend on the thread count)."""

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import torch  # noqa: E402

torch.set_num_threads(1)
