"""Prepared-data format: fixed-size images in a few shard files with an index.

Layout of a prepared dataset folder (the same for every source):

    manifest.json            counts, class names, skipped files, content digest
    mean.npy                 per-pixel training mean image, float32 [S, S, 3] on 0-255
    pca.json                 RGB PCA of training pixels (eigenvalues, eigenvectors)
    <split>/shard-00000.npy  uint8 [n, S, S, 3]
    <split>/index.csv        shard, row, label, source (one line per image)
    <split>/labels.npy       int64 [N] in index order (the evaluation stage's labels.npy)
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from harness import synthetic
from harness.config import DataConfig
from harness.errors import UserError
from harness.io import atomic_write_json, atomic_save_npy, atomic_write_text

SPLITS = ("train", "val")


@dataclass(frozen=True)
class ShardJob:
    split: str
    shard: int
    start: int
    stop: int


def _synthetic_jobs(cfg: DataConfig) -> list[ShardJob]:
    jobs = []
    for split in SPLITS:
        n = synthetic.split_size(cfg.synthetic, split)
        for k, start in enumerate(range(0, n, cfg.shard_size)):
            jobs.append(ShardJob(split, k, start, min(n, start + cfg.shard_size)))
    return jobs


def _render_chunk(args):
    cfg, split, size, start, stop = args
    return synthetic.generate(cfg, split, size, start, stop)


def _render_shard(cfg: DataConfig, job: ShardJob, pool: ProcessPoolExecutor, bar: tqdm):
    """Render one shard in chunks across processes; order is fixed, so bytes are too."""
    step = 256
    chunks = [(cfg.synthetic, job.split, cfg.image_size, s, min(job.stop, s + step))
              for s in range(job.start, job.stop, step)]
    images, labels = [], []
    for im, lab in pool.map(_render_chunk, chunks):
        images.append(im)
        labels.append(lab)
        bar.update(len(lab))
    return np.concatenate(images), np.concatenate(labels)


def prepare(cfg: DataConfig, out: Path, workers: int = 2) -> dict:
    """Write the prepared dataset to `out`; returns the manifest."""
    if cfg.source != "synthetic":
        raise UserError(f"data.source: {cfg.source!r} is not supported yet")
    out.mkdir(parents=True, exist_ok=True)
    jobs = _synthetic_jobs(cfg)
    total = sum(j.stop - j.start for j in jobs)
    index_rows = {s: [] for s in SPLITS}
    stats = PixelStats(cfg.image_size)
    with ProcessPoolExecutor(workers) as pool, tqdm(total=total, desc="prepare", unit="img") as bar:
        for job in jobs:
            images, labels = _render_shard(cfg, job, pool, bar)
            (out / job.split).mkdir(exist_ok=True)
            atomic_save_npy(out / job.split / f"shard-{job.shard:05d}.npy", images)
            if job.split == "train":
                stats.add(images)
            index_rows[job.split] += [
                (job.shard, r, int(lab), f"synthetic:{job.split}:{job.start + r}")
                for r, lab in enumerate(labels)]
    for split, rows in index_rows.items():
        df = pd.DataFrame(rows, columns=["shard", "row", "label", "source"])
        atomic_write_text(out / split / "index.csv", df.to_csv(index=False))
        atomic_save_npy(out / split / "labels.npy", df["label"].to_numpy(np.int64))
    atomic_save_npy(out / "mean.npy", stats.mean_image())
    atomic_write_json(out / "pca.json", stats.pca())
    manifest = {
        "source": cfg.source,
        "image_size": cfg.image_size,
        "classes": synthetic.class_names(cfg.synthetic.num_classes),
        "counts": {s: len(r) for s, r in index_rows.items()},
        "skipped": [],
        "digest": content_digest(out),
    }
    atomic_write_json(out / "manifest.json", manifest)  # written last: marks completion
    return manifest


class PixelStats:
    """Streaming per-pixel mean image and 3x3 RGB covariance (paper 2 and 4.1)."""

    def __init__(self, size: int):
        self.sum = np.zeros((size, size, 3), np.float64)
        self.n = 0
        self.rgb_sum = np.zeros(3, np.float64)
        self.rgb_outer = np.zeros((3, 3), np.float64)
        self.pixels = 0

    def add(self, images: np.ndarray) -> None:
        x = images.astype(np.float64)
        self.sum += x.sum(0)
        self.n += len(images)
        flat = x.reshape(-1, 3)
        self.rgb_sum += flat.sum(0)
        self.rgb_outer += flat.T @ flat
        self.pixels += len(flat)

    def mean_image(self) -> np.ndarray:
        return (self.sum / max(self.n, 1)).astype(np.float32)

    def pca(self) -> dict:
        """Eigen-decomposition of the RGB covariance of all training pixels (0-255 scale)."""
        mu = self.rgb_sum / self.pixels
        cov = self.rgb_outer / self.pixels - np.outer(mu, mu)
        vals, vecs = np.linalg.eigh(cov)
        order = np.argsort(vals)[::-1]
        return {"eigenvalues": vals[order].tolist(), "eigenvectors": vecs[:, order].tolist(),
                "scale": "0-255", "rgb_mean": mu.tolist()}


def content_digest(folder: Path) -> str:
    """sha256 over every shard, index and statistics file (manifest excluded)."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != "manifest.json":
            h.update(p.relative_to(folder).as_posix().encode())
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class PreparedSplit:
    """A prepared split held as memory-mapped shards."""

    shards: tuple[np.ndarray, ...]
    shard_of: np.ndarray  # [N] shard number per image
    row_of: np.ndarray  # [N] row inside the shard
    labels: np.ndarray  # [N]

    def __len__(self) -> int:
        return len(self.labels)

    def images(self, idx: np.ndarray) -> np.ndarray:
        """uint8 [len(idx), S, S, 3] for dataset indices idx."""
        out = np.empty((len(idx),) + self.shards[0].shape[1:], np.uint8)
        for k, shard in enumerate(self.shards):
            sel = self.shard_of[idx] == k
            if sel.any():
                out[sel] = shard[self.row_of[idx[sel]]]
        return out


def load_manifest(root: Path) -> dict:
    path = root / "manifest.json"
    if not path.is_file():
        raise UserError(f"prepared data not found: {path} is missing (run the prepare stage)")
    return json.loads(path.read_text())


def load_split(root: Path, split: str) -> PreparedSplit:
    index = pd.read_csv(root / split / "index.csv")
    n_shards = int(index["shard"].max()) + 1
    shards = tuple(np.load(root / split / f"shard-{k:05d}.npy", mmap_mode="r") for k in range(n_shards))
    return PreparedSplit(shards, index["shard"].to_numpy(), index["row"].to_numpy(),
                         index["label"].to_numpy(np.int64))


def load_stats(root: Path) -> tuple[np.ndarray, dict]:
    return np.load(root / "mean.npy"), json.loads((root / "pca.json").read_text())
