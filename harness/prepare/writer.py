"""Prepared-data format and the prepare step: fixed-size images in a few shard files.

Layout of a prepared dataset folder (the same for every source):

    manifest.json                 counts, classes, skipped files and why, content digest
    mean.npy                      per-pixel training mean image, float32 [S, S, 3] on 0-255
    pca.json                      RGB PCA of training pixels (eigenvalues, eigenvectors)
    <split>/shard-00000.npy       raw: uint8 [n, S, S, 3]
    <split>/shard-00000.jpegs     jpeg: the n encoded images back to back
    <split>/index.csv             shard, row, label, source, offset, length (one line per image)
    <split>/labels.npy            int64 [N] in index order (the evaluation stage's labels.npy)
    <split>/parts/shard-00000.*   per-shard record (.json) and pixel sums (.stats.npz): resume

Preparation runs in chunks of images on all cores; each finished shard is written with its
record last, so a killed run keeps every finished shard and redoes only the rest. A shard is
reused when its record's fingerprint matches the job (params, each input's name, size, mtime),
the shard's sha256 verifies, and every input file still has the sha256 its bytes had when they
were read for the shard (the record keeps them): a file rewritten with the same size and its
mtime set back is seen too. The chunks are merged in a fixed order, so the bytes do not depend
on the number of workers.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from harness.config import SOURCES, DataConfig
from harness.data import imaging
from harness.errors import UserError
from harness.io import atomic_save_npy, atomic_write_bytes, atomic_write_json, atomic_write_text
from harness.prepare import portable, synthetic
from harness.prepare.scan import file_sha256

SPLITS = ("train", "val")
FORMAT = 2  # bump when the bytes a job writes would change for the same input
CHUNK = 128  # images per worker task
PCA_STRIDE = 4  # pixel subsampling of the PCA (see PixelStats.add)
RAW_LIMIT = 2 << 30  # "auto" encoding: raw up to 2 GiB of pixels, JPEG above (paper-size data)
UNREADABLE = "unreadable"  # the source hash of a file that could not be read


@dataclass(frozen=True)
class Item:
    """One input image: a file (path), a CIFAR row (path + row), or a synthetic index (row)."""

    key: str
    label: int
    path: str = ""
    row: int = -1


@dataclass(frozen=True)
class Job:
    """What a worker needs to turn a chunk of items into stored images."""

    source: str
    split: str
    items: tuple[Item, ...]
    size: int
    resize: str
    encoding: str
    quality: int
    synthetic: object = None
    stats: bool = False
    dct_scaling: bool = False  # data.dct_scaling (harness/data/imaging.py)


@dataclass
class ChunkResult:
    keys: list[str]
    labels: list[int]
    payload: list[bytes] | np.ndarray  # encoded JPEGs, or raw uint8 [n, S, S, 3]
    bad: list[tuple[str, str]]
    stats: "PixelStats | None"
    sources: list[str] = field(default_factory=list)  # sha256 of each item's input file, in item order


@dataclass
class Plan:
    """Everything prepare will write: classes and, per split, the items in shard order."""

    classes: list[str]
    descriptions: list[str]
    splits: dict[str, list[Item]]
    problems: list[tuple[str, str]] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # source facts for the manifest (fall2011: exclusions)
    problem_paths: dict = field(default_factory=dict)  # problem key -> absolute path
    empty_classes: list[str] = field(default_factory=list)  # classes without a usable training image


# ---------------------------------------------------------------------------- planning


def plan(cfg: DataConfig, work: Path) -> Plan:
    """List the source's items per split (synthetic: indices; others: files via sources)."""
    if cfg.source == "synthetic":
        splits = {s: [Item(f"synthetic:{s}:{i}", i % cfg.synthetic.num_classes, row=i)
                      for i in range(synthetic.split_size(cfg.synthetic, s))] for s in SPLITS}
        names = synthetic.class_names(cfg.synthetic.num_classes)
        return Plan(names, names, splits)
    if cfg.source not in SOURCES:
        raise UserError(f"data.source: {cfg.source!r} is not one of {', '.join(SOURCES)}")
    from harness.prepare import sources  # imported lazily: archives, devkits and scipy.io

    if not cfg.root:
        raise UserError(f"data.root: data.source {cfg.source!r} needs the folder that holds it")
    listing = sources.list_source(cfg.source, Path(cfg.root).expanduser(), work, data=cfg)
    splits = {s: [Item(x.key, x.label, x.path, x.row) for x in items]
              for s, items in listing.splits.items()}
    return Plan(list(listing.classes), list(listing.descriptions), splits,
                [tuple(p) for p in listing.problems], dict(listing.extra), dict(listing.problem_paths),
                list(listing.empty_classes))


def resolve_encoding(cfg: DataConfig, p: Plan) -> str:
    if cfg.encoding != "auto":
        return cfg.encoding
    pixels = sum(len(v) for v in p.splits.values()) * cfg.image_size ** 2 * 3
    return "raw" if pixels <= RAW_LIMIT else "jpeg"


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int]]:
    return [(s, min(n, s + shard_size)) for s in range(0, n, shard_size)]


# ---------------------------------------------------------------------------- workers


@lru_cache(maxsize=2)
def _cifar_batch(path: str):
    from harness.prepare import sources
    return sources.load_cifar_batch(path)


@lru_cache(maxsize=8)
def _cifar_sha256(path: str) -> str:
    return file_sha256(path)


def _load_item(job: Job, item: Item) -> tuple[np.ndarray | None, str, str | None]:
    """(uint8 [S, S, 3] or None, sha256 of the input file's bytes, why it is unusable or None).

    The bytes are hashed as they are read for the decode (about 3% of its time, docs/data.md),
    so a resumed preparation can tell that a file changed since its shard was written."""
    if job.source == "cifar10":
        return imaging.fit(_cifar_batch(item.path)[0][item.row], job.size, job.resize), \
            _cifar_sha256(item.path), None
    try:
        with open(item.path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        return None, UNREADABLE, f"unreadable: {exc.strerror or exc}"
    digest = hashlib.sha256(raw).hexdigest()
    try:
        return imaging.load_fitted(raw, job.size, job.resize, job.dct_scaling), digest, None
    except imaging.BadImage as exc:
        return None, digest, f"{exc} (file of {len(raw):,} bytes)"
    except Exception as exc:  # noqa: BLE001 - whatever a decoder raises on one file, name the file
        return None, digest, (f"could not be decoded ({type(exc).__name__}: {exc}) "
                              f"(file of {len(raw):,} bytes)")


def process_chunk(job: Job) -> ChunkResult:
    """Decode, fit and encode one chunk (runs in a worker process)."""
    import torch
    torch.set_num_threads(1)  # one process per core already
    if os.environ.get("HARNESS_PREPARE_DELAY_S"):  # fault injection for the kill tests only
        time.sleep(float(os.environ["HARNESS_PREPARE_DELAY_S"]))
    if job.source == "synthetic":
        images, labels = synthetic.generate(job.synthetic, job.split, job.size,
                                            job.items[0].row, job.items[-1].row + 1)
        keys, bad, hashes = [it.key for it in job.items], [], []  # rendered: no file to hash
    else:
        images, keys, labels, bad, hashes = [], [], [], [], []
        for it in job.items:
            image, digest, why = _load_item(job, it)
            hashes.append(digest)
            if why is not None:
                bad.append((it.key, why))
                continue
            images.append(image)
            keys.append(it.key)
            labels.append(it.label)
        images = np.stack(images) if images else np.empty((0, job.size, job.size, 3), np.uint8)
    stats = None
    if job.stats:
        stats = PixelStats(job.size)
        stats.add(images)
    payload = images if job.encoding == "raw" else [imaging.encode_jpeg(im, job.quality) for im in images]
    return ChunkResult(keys, [int(x) for x in labels], payload, bad, stats, hashes)


# ---------------------------------------------------------------------------- shards


def _fingerprint(cfg: DataConfig, encoding: str, split: str, items: list[Item]) -> str:
    """Identifies a shard job: params that shape its bytes, and each input's name, size, mtime."""
    # dct_scaling only when on, so that shards prepared before the switch existed still match
    h = hashlib.sha256(json.dumps(
        [FORMAT, cfg.source, cfg.image_size, cfg.resize, encoding, cfg.jpeg_quality,
         repr(cfg.synthetic) if cfg.source == "synthetic" else None, split]
        + (["dct_scaling"] if cfg.dct_scaling else [])).encode())
    stat_cache: dict[str, str] = {}
    for it in items:
        if it.path and it.path not in stat_cache:
            try:
                st = os.stat(it.path)
                stat_cache[it.path] = f"{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                stat_cache[it.path] = "missing"
        h.update(f"{it.key}\0{it.label}\0{stat_cache.get(it.path, '')}\0{it.row}\n".encode())
    return h.hexdigest()


def _shard_name(k: int, encoding: str) -> str:
    return f"shard-{k:05d}.{'npy' if encoding == 'raw' else 'jpegs'}"


def _load_done(folder: Path, k: int, encoding: str, fp: str, want_stats: bool, items: list[Item]):
    """The record of a finished shard when it matches `fp` and verifies (shard bytes, and the bytes
    of every input file: `_sources_unchanged`), else None."""
    rec_path = folder / "parts" / f"shard-{k:05d}.json"
    data_path = folder / _shard_name(k, encoding)
    if not (rec_path.is_file() and data_path.is_file()):
        return None
    try:
        rec = json.loads(rec_path.read_text())
    except (OSError, ValueError):
        return None
    if rec.get("fingerprint") != fp or rec.get("sha256") != file_sha256(data_path):
        return None
    if not _sources_unchanged(rec, items):
        return None
    stats = None
    if want_stats:
        try:
            stats = PixelStats.load(folder / "parts" / f"shard-{k:05d}.stats.npz")
        except (OSError, ValueError, KeyError):
            return None
    return rec, stats


def _sources_unchanged(rec: dict, items: list[Item]) -> bool:
    """Every input file of the shard still has the sha256 recorded when it was read. The
    fingerprint holds names, sizes and mtimes only; this catches a file rewritten in place with
    the same size and its mtime set back. It reads the inputs again (no decode): on resume only."""
    paths = [it.path for it in items if it.path]
    if not paths:  # synthetic: rendered from params, nothing on disk
        return True
    recorded = rec.get("sources")
    if not isinstance(recorded, list) or len(recorded) != len(items):
        return False  # written before records kept source hashes: redo it
    unique = sorted(set(paths))
    with ThreadPoolExecutor(min(16, os.cpu_count() or 1)) as pool:  # hashlib and reads release the GIL
        digests = dict(zip(unique, pool.map(_sha256_or_unreadable, unique)))
    return recorded == [digests.get(it.path, "") for it in items]


def _sha256_or_unreadable(path: str) -> str:
    try:
        return file_sha256(path)
    except OSError:
        return UNREADABLE


def _write_shard(folder: Path, k: int, encoding: str, fp: str, results: list[ChunkResult]):
    """Shard bytes, then pixel sums, then the record (last: marks the shard finished)."""
    keys = [key for r in results for key in r.keys]
    labels = [lab for r in results for lab in r.labels]
    bad = [list(b) for r in results for b in r.bad]
    if encoding == "raw":
        images = np.concatenate([r.payload for r in results])
        atomic_save_npy(folder / _shard_name(k, encoding), images)
        offsets, lengths = [0] * len(keys), [0] * len(keys)
    else:
        blobs = [b for r in results for b in r.payload]
        lengths = [len(b) for b in blobs]
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int).tolist() if blobs else []
        atomic_write_bytes(folder / _shard_name(k, encoding), b"".join(blobs))
    stats = None
    if results and results[0].stats is not None:
        stats = PixelStats.merged([r.stats for r in results])
        stats.save(folder / "parts" / f"shard-{k:05d}.stats.npz")
    rec = {"fingerprint": fp, "sha256": file_sha256(folder / _shard_name(k, encoding)),
           "rows": [[key, lab, off, ln] for key, lab, off, ln in zip(keys, labels, offsets, lengths)],
           "bad": bad, "sources": [h for r in results for h in r.sources]}
    atomic_write_json(folder / "parts" / f"shard-{k:05d}.json", rec)
    return rec, stats


def _jobs_for(cfg: DataConfig, encoding: str, split: str, items: list[Item]) -> list[Job]:
    return [Job(cfg.source, split, tuple(items[s:s + CHUNK]), cfg.image_size, cfg.resize, encoding,
                cfg.jpeg_quality, cfg.synthetic, split == "train", cfg.dct_scaling)
            for s in range(0, len(items), CHUNK)]


def _prepare_split(cfg, encoding, split, items, out, pool, bar, stats: "PixelStats"):
    """Write every shard of one split (reusing verified ones); returns index rows and bad files."""
    folder = out / split
    (folder / "parts").mkdir(parents=True, exist_ok=True)
    records, todo = {}, []
    for k, (a, b) in enumerate(shard_ranges(len(items), cfg.shard_size)):
        fp = _fingerprint(cfg, encoding, split, items[a:b])
        done = _load_done(folder, k, encoding, fp, split == "train", items[a:b])
        if done is None:
            todo.append((k, a, b, fp))
        else:
            records[k] = done
            bar.update(b - a)
    if todo and records:
        bar.write(f"{split}: {len(records)} finished shard(s) reused, {len(todo)} to prepare")
    jobs = [(k, job) for k, a, b, _ in todo for job in _jobs_for(cfg, encoding, split, items[a:b])]
    results = pool.map(process_chunk, [j for _, j in jobs]) if pool else map(process_chunk, (j for _, j in jobs))
    pending: dict[int, list[ChunkResult]] = {}
    n_chunks = collections.Counter(k for k, _ in jobs)  # one pass: ImageNet has ~10k chunks
    fps = {k: fp for k, _, _, fp in todo}
    for (k, job), res in zip(jobs, results):
        pending.setdefault(k, []).append(res)
        bar.update(len(job.items))
        if len(pending[k]) == n_chunks[k]:
            records[k] = _write_shard(folder, k, encoding, fps[k], pending.pop(k))
    rows, bad = [], []
    for k in sorted(records):
        rec, shard_stats = records[k]
        if shard_stats is not None:
            stats.merge(shard_stats)
        rows += [(k, r, lab, key, off, ln) for r, (key, lab, off, ln) in enumerate(rec["rows"])]
        bad += [(split, key, reason) for key, reason in rec["bad"]]
    paths = {it.key: it.path for it in items} if bad else {}
    return rows, [(s, key, paths.get(key, ""), reason) for s, key, reason in bad], len(records)


def _remove_stale(out: Path, splits: dict[str, int], encoding: str) -> None:
    """Shards of an earlier, larger or differently encoded preparation (the folder persists)."""
    for folder in out.iterdir():
        if not folder.is_dir():
            continue
        n = splits.get(folder.name, 0)
        keep = {_shard_name(k, encoding) for k in range(n)}
        keep_parts = {f"shard-{k:05d}.json" for k in range(n)} | {f"shard-{k:05d}.stats.npz" for k in range(n)}
        for p in folder.glob("shard-*"):
            if p.name not in keep:
                p.unlink()
        for p in (folder / "parts").glob("shard-*"):
            if p.name not in keep_parts:
                p.unlink()


def _check_bad(cfg: DataConfig, bad: list, total: int) -> None:
    """paper data has a few broken files; many mean a wrong root or a damaged copy."""
    if not bad or len(bad) <= cfg.max_bad_fraction * total:
        return
    shown = "\n".join(f"  {path or key}: {reason}" for _, key, path, reason in bad[:10])
    more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
    raise UserError(
        f"{len(bad)} of {total} input images are unusable ({100 * len(bad) / max(total, 1):.2f}%, "
        f"more than data.max_bad_fraction = {cfg.max_bad_fraction}):\n{shown}{more}\n"
        "Fix or remove them, or raise data.max_bad_fraction to skip them. "
        "Finished shards are kept; the next run redoes only the rest.")


def prepare(cfg: DataConfig, out: Path, workers: int = 2, work: Path | None = None) -> dict:
    """Write the prepared dataset to `out` (resuming a killed run); returns the manifest."""
    out = Path(out)
    work = Path(work) if work else out.parent / "extracted"
    p = plan(cfg, work / cfg.source)
    empty = [s for s in ("train", "val") if not p.splits.get(s)]
    if empty:
        raise UserError(f"data.source {cfg.source!r} under {cfg.root}: no images in the {empty[0]} split")
    encoding = resolve_encoding(cfg, p)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)  # the folder is incomplete until the end
    total = sum(len(v) for v in p.splits.values())
    stats = PixelStats(cfg.image_size)
    index, n_shards = {}, {}
    # files the listing found unusable: their split (when the key starts with one) and real path
    bad = [(key.split("/", 1)[0] if key.split("/", 1)[0] in p.splits else "", key,
            p.problem_paths.get(key, ""), reason) for key, reason in p.problems]
    for name in p.empty_classes:  # a class is not an input file: reported, not counted as one
        print(f"warning: class {name!r} has no usable training image", file=sys.stderr)
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        with tqdm(total=total, desc=f"prepare {cfg.source}", unit="img", smoothing=0.05) as bar:
            for split, items in p.splits.items():
                index[split], split_bad, n_shards[split] = _prepare_split(
                    cfg, encoding, split, items, out, pool, bar, stats)
                bad += split_bad
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    _check_bad(cfg, bad, total + len(p.problems))
    _remove_stale(out, n_shards, encoding)
    for split, rows in index.items():
        df = pd.DataFrame(rows, columns=["shard", "row", "label", "source", "offset", "length"])
        atomic_write_text(out / split / "index.csv", df.to_csv(index=False))
        atomic_save_npy(out / split / "labels.npy", df["label"].to_numpy(np.int64))
    atomic_save_npy(out / "mean.npy", stats.mean_image())
    atomic_write_json(out / "pca.json", stats.pca())
    manifest = {
        "source": cfg.source,
        "image_size": cfg.image_size,
        "resize": cfg.resize,
        # JPEGs decoded at 1/2-1/8 in the DCT domain before the resize (pixels differ a little)
        "dct_scaling": cfg.dct_scaling,
        "encoding": encoding,
        "classes": p.classes,
        "descriptions": p.descriptions,
        "counts": {s: len(r) for s, r in index.items()},
        "skipped": [{"split": s, "file": k, "path": path, "reason": r} for s, k, path, r in bad],
        "empty_classes": p.empty_classes,
        "digest": content_digest(out),
        **({cfg.source: p.extra} if p.extra else {}),  # fall2011: release, split, exclusions
    }
    atomic_write_json(out / "manifest.json", manifest)  # written last: marks completion
    return manifest


def staging_name(cfg: DataConfig) -> str:
    """Folder name of a preparation in progress: one per data config, so a changed data.* param
    never resumes another dataset's shards (each shard's record fingerprints its inputs too)."""
    blob = json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str).encode()
    return f"{cfg.source}-{hashlib.sha256(blob).hexdigest()[:16]}"


def publish(staging: Path, out: Path) -> None:
    """Move a finished preparation from `staging` into `out`; the resume records stay behind and
    are removed with the staging folder. manifest.json moves last: a kill in between leaves an
    output without a manifest (incomplete, never taken for complete), and the shards already moved
    are simply redone by the next run (their records no longer verify)."""
    staging, out = Path(staging), Path(out)
    if out.exists():
        shutil.rmtree(out)
    manifest = staging / "manifest.json"
    files = sorted(p for p in staging.rglob("*") if p.is_file() and p != manifest
                   and "parts" not in p.relative_to(staging).parts and not p.name.startswith("."))
    for f in [*files, manifest]:
        dst = out / f.relative_to(staging)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(f, dst)  # a rename on one file system: no copy of a 150 GB dataset
    shutil.rmtree(staging)


# ---------------------------------------------------------------------------- statistics


class PixelStats:
    """Streaming per-pixel mean image and 3x3 RGB covariance (paper 2 and 4.1)."""

    def __init__(self, size: int):
        self.sum = np.zeros((size, size, 3), np.float64)
        self.n = 0
        self.rgb_sub_sum = np.zeros(3, np.float64)
        self.rgb_outer = np.zeros((3, 3), np.float64)
        self.pixels = 0

    def add(self, images: np.ndarray) -> None:
        """Every sum is of integers below 2**53, so float64 holds it exactly: the result does
        not depend on chunking or order (byte-identical statistics for any worker count)."""
        self.n += len(images)
        self.sum += images.sum(0, dtype=np.int64)  # exact: at most 255 x images per chunk
        # paper 4.1 takes the PCA over "the set of RGB pixel values throughout the training
        # set"; every 4th row and column of every image (1/16 of 8e10 pixels on ImageNet)
        # gives the same 3x3 covariance to many digits at a seventh of the cost.
        sub = images[:, ::PCA_STRIDE, ::PCA_STRIDE].reshape(-1, 3).astype(np.float64)
        self.rgb_outer += sub.T @ sub
        self.rgb_sub_sum += sub.sum(0)
        self.pixels += len(sub)

    def merge(self, other: "PixelStats") -> None:
        self.sum += other.sum
        self.n += other.n
        self.rgb_sub_sum += other.rgb_sub_sum
        self.rgb_outer += other.rgb_outer
        self.pixels += other.pixels

    @classmethod
    def merged(cls, parts: list["PixelStats"]) -> "PixelStats":
        out = cls(parts[0].sum.shape[0])
        for p in parts:
            out.merge(p)
        return out

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        np.savez(buf, sum=self.sum, n=self.n, rgb_sub_sum=self.rgb_sub_sum, rgb_outer=self.rgb_outer,
                 pixels=self.pixels)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> "PixelStats":
        with np.load(path, allow_pickle=False) as z:
            out = cls(z["sum"].shape[0])
            out.sum, out.n = z["sum"], int(z["n"])
            out.rgb_sub_sum, out.rgb_outer, out.pixels = z["rgb_sub_sum"], z["rgb_outer"], int(z["pixels"])
        return out

    def mean_image(self) -> np.ndarray:
        return (self.sum / max(self.n, 1)).astype(np.float32)

    def pca(self) -> dict:
        """Eigen-decomposition of the RGB covariance of all training pixels (0-255 scale), by
        portable.eigh3: LAPACK's eigh through OpenBLAS gives other last bits on another CPU (an
        AVX-512 Intel and an AMD Zen disagree), and pca.json is in the data digest."""
        mu = self.rgb_sub_sum / max(self.pixels, 1)
        cov = self.rgb_outer / max(self.pixels, 1) - np.outer(mu, mu)
        vals, vecs = portable.eigh3(cov.tolist())
        return {"eigenvalues": vals, "eigenvectors": vecs, "scale": "0-255", "rgb_mean": mu.tolist()}


def content_digest(folder: Path) -> str:
    """sha256 over shards, indexes and statistics (not the manifest, not the resume records)."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and p.name != "manifest.json" and "parts" not in rel.parts \
                and not p.name.startswith("."):
            h.update(rel.as_posix().encode())
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()
