"""The tiny configurations the tests share (CPU seconds, not minutes).

PARAMS patches params.yaml for the copies of the repository that the end-to-end tests drive
through `dvc repro`; DATA, MODEL and data() are the in-process dataclass configs of the unit
tests. Pin threads and workers wherever weights are compared (CPU bits depend on both).
"""

from __future__ import annotations

from harness.config import DataConfig, ModelConfig, SyntheticConfig

PARAMS = {
    "data": {"image_size": 72, "shard_size": 64,
             "synthetic": {"num_classes": 6, "train_per_class": 24, "val_per_class": 10}},
    "model": {"width": 0.125, "input_size": 64},
    "train": {"seeds": [1, 2], "epochs": 2, "batch_size": 16, "lr_steps": [2], "threads": 1},
    "ensemble": {"max_subsets": 10},
    "compare": {"n_boot": 200},
    "tracking": {"log_models": False},  # seconds per seed; tests/e2e/test_pipeline_e2e.py turns it on
}

# An eighth-width paper net on 64 px crops, He init (the paper's N(0, 0.01) stays at chance
# in a few steps) and inputs scaled to about unit range; zero biases and torch's inverted
# dropout, like the default profile in params.yaml.
MODEL = ModelConfig(width=0.125, input_size=64, init="kaiming", input_scale=1 / 64, hidden_bias=0.0,
                    dropout_scaling="inverted")


def data(train_per_class: int = 12, val_per_class: int = 4, num_classes: int = 4, **kw) -> DataConfig:
    """Synthetic data at 72 px (64 px crops), one shard of at most 100 images."""
    return DataConfig(image_size=72, shard_size=100, **kw,
                      synthetic=SyntheticConfig(num_classes=num_classes, train_per_class=train_per_class,
                                                val_per_class=val_per_class))


DATA = data()


def prepared(tmp_path_factory, train_per_class: int, val_per_class: int):
    """A tiny synthetic dataset prepared on disk (one worker), for module-scoped fixtures."""
    from harness.prepare import writer
    out = tmp_path_factory.mktemp("data")
    writer.prepare(data(train_per_class=train_per_class, val_per_class=val_per_class), out, workers=1)
    return out
