"""What checking the data on disk costs (docs/data.md, "What prepare checks").

1. The list_data stage (harness/prepare/listing.py) on a made tree: `--files` empty files in
   folders of `--per-folder` (ImageNet's training set: 1000 folders of about 1300), written to a
   temporary folder. A stat costs the same for an empty file as for a 110 KB JPEG, so the time is
   that of a real tree whose metadata is in the OS cache (a second listing; a cold cache on a
   network file system is slower, by its latency per stat).
2. The sha256 that prepare takes of each source file as it reads it, against the decode and resize
   it sits next to, on the real sample JPEGs (a ratio, as benchmarks/README.md asks).

    python -m benchmarks.data_listing --files 300000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

from harness.config import DataConfig
from harness.prepare import listing


def make_tree(root: Path, files: int, per_folder: int) -> None:
    for k in range(0, files, per_folder):
        folder = root / "train" / f"n{k // per_folder:08d}"
        folder.mkdir(parents=True)
        for i in range(k, min(files, k + per_folder)):
            (folder / f"n{k // per_folder:08d}_{i}.JPEG").touch()


def time_listing(root: Path, repeats: int) -> list[float]:
    cfg = DataConfig(source="imagefolder", root=str(root))
    listing.listing_lines(cfg)  # warm the OS cache once
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        listing.listing_lines(cfg)
        times.append(time.perf_counter() - start)
    return times


# the project's shared data beside the checkout (as benchmarks/data_bench.py); $IMAGENET_SAMPLE_DIR overrides
DEFAULT_SAMPLE = Path(os.environ.get("IMAGENET_SAMPLE_DIR")
                      or Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample")


def hash_vs_decode(size: int, sample: Path = DEFAULT_SAMPLE) -> dict:
    """Seconds per image of sha256 and of load_fitted on the sample JPEGs (one thread)."""
    import torch

    from harness.data import imaging
    torch.set_num_threads(1)
    raws = [p.read_bytes() for p in sorted(Path(sample).glob("*.JPEG"))]
    if not raws:
        raise SystemExit(f"error: no *.JPEG in {sample}: pass --sample DIR (or set IMAGENET_SAMPLE_DIR)")
    start = time.perf_counter()
    for _ in range(5):
        for raw in raws:
            hashlib.sha256(raw).hexdigest()
    hashing = (time.perf_counter() - start) / (5 * len(raws))
    start = time.perf_counter()
    for raw in raws:
        imaging.load_fitted(raw, size)
    decode = (time.perf_counter() - start) / len(raws)
    return {"images": len(raws), "mean_bytes": statistics.mean(map(len, raws)),
            "sha256_ms": 1e3 * hashing, "decode_ms": 1e3 * decode, "ratio_pct": 100 * hashing / decode}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=300_000)
    p.add_argument("--per-folder", type=int, default=1300)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--size", type=int, default=256, help="stored side of the decode (paper: 256)")
    p.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE, help="folder of real ImageNet JPEGs for the hash ratio")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        make_tree(Path(tmp), args.files, args.per_folder)
        made = time.perf_counter() - start
        times = time_listing(Path(tmp), args.repeats)
    best = min(times)
    print(f"listing {args.files:,} files in {-(-args.files // args.per_folder)} folders: "
          f"{best:.2f} s best of {args.repeats} (median {statistics.median(times):.2f} s; "
          f"{1e6 * best / args.files:.1f} us per file; made in {made:.0f} s)")
    print(f"  extrapolated to ILSVRC-2012 train (1,281,167 files): {best / args.files * 1_281_167:.1f} s")
    h = hash_vs_decode(args.size, args.sample)
    print(f"sha256 of a source file: {h['sha256_ms']:.3f} ms, decode + resize to {args.size}: "
          f"{h['decode_ms']:.2f} ms per image ({h['images']} sample JPEGs, {h['mean_bytes'] / 1e3:.0f} KB "
          f"mean): the hash adds {h['ratio_pct']:.1f}%")


if __name__ == "__main__":
    main()
