"""`python -m benchmarks.near_duplicates`: how well the Fall-2011 near-duplicate check
(harness/prepare/phash.py, `data.fall2011.exclude_near`) separates copies from other images, on the
real ImageNet sample JPEGs (../shared/data/imagenet-sample, or IMAGENET_SAMPLE_DIR), and what it
costs.

- Distinct images: the Hamming distance of every pair of sample images (200 images: 19,900 pairs).
  A distance within the radius would wrongly exclude a Fall-2011 image.
- Copies: each image turned into what a re-posted copy in another collection tends to be (a JPEG
  re-encode at quality 30; a half-size and a quarter-size resize; a PNG; brightness 1.1x + 10; a warp
  to 256 x 256; a 5% crop on each side), and its distance to the original. A distance above the
  radius would let a copy of a val image into the pre-training data.
- Cost: hashing (a full decode per image, one process) in images per second, and the lookup of one
  image against 50,000 val hashes (ILSVRC-2012 val's count) in microseconds and as a share of the
  hashing's time per image, both measured in this run.

Writes the key "near_duplicates" of reports/benchmarks.json and keeps the file's other keys.
  python -m benchmarks.near_duplicates            # about a minute on one core
"""

from __future__ import annotations

import argparse
import datetime
import io
import itertools
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from harness.io import atomic_write_json
from harness.prepare import phash

COPIES = ("jpeg_q30", "half_size", "quarter_size", "png", "brighter", "warp_256", "crop_5pct")
RADII = (4, 6, 8, 10, 12)


def sample_files(folder: Path | None) -> list[Path]:
    import os

    candidates = [folder, os.environ.get("IMAGENET_SAMPLE_DIR"),
                  Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample"]
    for c in candidates:
        if c and Path(c).is_dir() and any(Path(c).glob("*.JPEG")):
            return sorted(Path(c).glob("*.JPEG"))
    raise SystemExit("no sample JPEGs: pass --sample or set IMAGENET_SAMPLE_DIR")


def make_copy(data: bytes, kind: str) -> bytes:
    """One re-posted copy of an image file's bytes."""
    im = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = im.size
    fmt, quality = "JPEG", 75
    if kind == "jpeg_q30":
        quality = 30
    elif kind == "half_size":
        im = im.resize((max(1, w // 2), max(1, h // 2)), Image.LANCZOS)
    elif kind == "quarter_size":
        im = im.resize((max(1, w // 4), max(1, h // 4)), Image.BILINEAR)
    elif kind == "png":
        fmt = "PNG"
    elif kind == "brighter":
        im = Image.eval(im, lambda v: min(255, int(v * 1.1 + 10)))
    elif kind == "warp_256":
        im = im.resize((256, 256), Image.BILINEAR)
    elif kind == "crop_5pct":
        im = im.crop((w // 20, h // 20, w - w // 20, h - h // 20))
    buf = io.BytesIO()
    im.save(buf, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buf.getvalue()


def hash_bytes(data: bytes) -> int:
    from harness.data import imaging

    return phash.hash_rgb(imaging.decode_rgb(data))


def distances(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def lookup_cost(n_ref: int, n_query: int, radius: int) -> dict:
    """Microseconds per query (median of 5 runs) of phash.nearest against n_ref reference hashes (uniform random; the
    cost does not depend on the values), checked against a plain Python loop on a few queries."""
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 2 ** 63, n_ref, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    query = np.concatenate([ref[rng.integers(0, n_ref, n_query // 2)] ^ np.uint64(0b1011),
                            rng.integers(0, 2 ** 63, n_query - n_query // 2, dtype=np.int64).astype(np.uint64)])
    times = []
    for _ in range(5):  # the median of 5: single runs here varied 2x (allocation, other load)
        t = time.perf_counter()
        idx, dist = phash.nearest(query, ref, radius)
        times.append((time.perf_counter() - t) / n_query)
    per_query = float(np.median(times))
    for k in range(0, n_query, n_query // 10):  # the first of the nearest, by hand
        d = [distances(int(query[k]), int(r)) for r in ref]
        want = (d.index(min(d)), min(d)) if min(d) <= radius else (-1, -1)
        assert (int(idx[k]), int(dist[k])) == want, "nearest disagrees with the loop"
    return {"n_ref": n_ref, "n_query": n_query, "radius": radius, "us_per_query": round(1e6 * per_query, 1)}


def run(files: list[Path]) -> dict:
    raw = [f.read_bytes() for f in files]
    t = time.perf_counter()
    hashes = [hash_bytes(b) for b in raw]
    hash_s = time.perf_counter() - t
    lookup = lookup_cost(50_000, 4_000, 8)
    pairs = np.array([distances(a, b) for a, b in itertools.combinations(hashes, 2)])
    copies = {}
    for kind in COPIES:
        d = np.array([distances(h, hash_bytes(make_copy(b, kind))) for h, b in zip(hashes, raw)])
        copies[kind] = {"max_bits": int(d.max()), "median_bits": float(np.median(d)),
                        "caught": {str(r): round(float((d <= r).mean()), 4) for r in RADII}}
    return {
        "measured_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "n_images": len(files), "n_distinct_pairs": len(pairs),
        "distinct_min_bits": int(pairs.min()),
        "distinct_quantiles_bits": {q: float(np.percentile(pairs, float(q))) for q in ("0.1", "1", "50")},
        "distinct_within": {str(r): int((pairs <= r).sum()) for r in RADII},
        "copies": copies,
        "hash_images_per_s": round(len(files) / hash_s, 1),
        "lookup": lookup,
        # per Fall-2011 image: the lookup's time against the hashing's, measured in this run
        "lookup_vs_hash": round(lookup["us_per_query"] * 1e-6 / (hash_s / len(files)), 3),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sample", type=Path, default=None, help="folder of JPEGs (default: the shared sample)")
    p.add_argument("--out", type=Path, default=Path("reports/benchmarks.json"), help="the JSON updated")
    args = p.parse_args(argv)
    res = run(sample_files(args.sample))
    print(json.dumps(res, indent=1))
    old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    atomic_write_json(args.out, {**old, "near_duplicates": res})


if __name__ == "__main__":
    main()
