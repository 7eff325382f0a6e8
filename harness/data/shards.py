"""Reading prepared data: the shard files, their index, the manifest and the pixel statistics.

The layout is written by harness/prepare/writer.py (see its docstring). Raw shards are
memory-mapped; JPEG shards are decoded per batch.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.data import imaging
from harness.errors import UserError

@dataclass(frozen=True)
class PreparedSplit:
    """A prepared split held as memory-mapped raw shards."""

    shards: tuple[np.ndarray, ...]
    shard_of: np.ndarray  # [N] shard number per image
    row_of: np.ndarray  # [N] row inside the shard
    labels: np.ndarray  # [N]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def size(self) -> int:
        """Stored side S."""
        return self.shards[0].shape[1]

    def images(self, idx: np.ndarray) -> np.ndarray:
        """uint8 [len(idx), S, S, 3] for dataset indices idx."""
        out = np.empty((len(idx),) + self.shards[0].shape[1:], np.uint8)
        for k, shard in enumerate(self.shards):
            sel = self.shard_of[idx] == k
            if sel.any():
                out[sel] = shard[self.row_of[idx[sel]]]
        return out


@dataclass(frozen=True)
class JpegSplit:
    """A prepared split whose shards hold JPEGs back to back; decoded per batch."""

    shards: tuple[np.ndarray, ...]  # uint8 memmaps of the .jpegs files
    shard_of: np.ndarray
    offset: np.ndarray
    length: np.ndarray
    labels: np.ndarray
    size: int

    def __len__(self) -> int:
        return len(self.labels)

    def images(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), self.size, self.size, 3), np.uint8)
        for j, i in enumerate(np.asarray(idx)):
            o, n = self.offset[i], self.length[i]
            out[j] = imaging.decode_stored(self.shards[self.shard_of[i]][o:o + n])
        return out


@dataclass(frozen=True)
class SubsetSplit:
    """The images `indices` of a prepared split (raw or JPEG), renumbered 0..len-1."""

    base: PreparedSplit | JpegSplit
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def size(self) -> int:
        return self.base.size

    @property
    def labels(self) -> np.ndarray:
        return self.base.labels[self.indices]

    def images(self, idx: np.ndarray) -> np.ndarray:
        return self.base.images(self.indices[np.asarray(idx)])

    # What JPEG decoding on the device reads (transforms.DeviceTrainBatches), for the subset's
    # images; computed once (per-image indexing of the base arrays would be O(N) per image).
    # A raw split has no offset/length, so hasattr() says False as for the base split.
    @functools.cached_property
    def shard_of(self) -> np.ndarray:
        return self.base.shard_of[self.indices]

    @functools.cached_property
    def offset(self) -> np.ndarray:
        return self.base.offset[self.indices]

    @functools.cached_property
    def length(self) -> np.ndarray:
        return self.base.length[self.indices]

    @property
    def shards(self):
        return self.base.shards


def holdout_indices(n: int, every: int) -> np.ndarray:
    """Training images held out to drive the plateau schedule (train.schedule_split holdout):
    every `every`-th index, starting at every - 1; deterministic, the same for every seed."""
    return np.arange(every - 1, n, every)


def holdout_split(split, every: int):
    """(training images without the held-out slice, the held-out slice) of a training split."""
    held = holdout_indices(len(split), every)
    if len(held) == 0:
        raise UserError(f"train.holdout_every: {every} is larger than the {len(split)} training images; "
                        "no image would be held out")
    keep = np.setdiff1d(np.arange(len(split)), held)
    return SubsetSplit(split, keep), SubsetSplit(split, held)


def load_manifest(root: Path) -> dict:
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise UserError(f"prepared data not found: {path} is missing (run the prepare stage)")
    return json.loads(path.read_text())


def load_split(root: Path, split: str):
    root = Path(root)
    manifest = load_manifest(root)
    if split not in manifest["counts"]:
        raise UserError(f"the prepared data in {root} has no {split!r} split "
                        f"(it has {', '.join(manifest['counts'])})")
    index = pd.read_csv(root / split / "index.csv")
    n_shards = int(index["shard"].max()) + 1 if len(index) else 0
    labels = index["label"].to_numpy(np.int64)
    if manifest.get("encoding", "raw") == "jpeg":
        shards = tuple(np.memmap(root / split / f"shard-{k:05d}.jpegs", np.uint8, "r")
                       for k in range(n_shards))
        return JpegSplit(shards, index["shard"].to_numpy(), index["offset"].to_numpy(),
                         index["length"].to_numpy(), labels, int(manifest["image_size"]))
    shards = tuple(np.load(root / split / f"shard-{k:05d}.npy", mmap_mode="r") for k in range(n_shards))
    return PreparedSplit(shards, index["shard"].to_numpy(), index["row"].to_numpy(), labels)


def load_stats(root: Path) -> tuple[np.ndarray, dict]:
    return np.load(Path(root) / "mean.npy"), json.loads((Path(root) / "pca.json").read_text())
