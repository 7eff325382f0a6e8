"""Preparation and loading speed on real ImageNet JPEGs, each against its baseline, per core.

  python -m benchmarks.data_bench [--sample ../shared/data/imagenet-sample] [--rounds 3]

- prepare: the harness's per-image work (decode, shorter side to 256, centre crop, JPEG
  encode for the shard and the pixel statistics: harness.prepare.writer.process_chunk)
  against a plain Pillow loop doing open-convert-resize-crop (no encode), both in this one
  process on one core; also the harness doing only what the Pillow loop does (read, decode,
  resize, crop: imaging.load_fitted), and the whole work with data.dct_scaling on. Rounds
  alternate the order of the four.
- dct_scaling: how many sample images data.dct_scaling decodes at a reduced scale, and the
  PSNR of their 256x256 result against the exact path (full-size decode, then the resize).
- loader: harness TrainView over the prepared JPEG shards (decode 256x256, random 224 crop,
  flip, PCA colour, mean subtraction; paper 4.1) against torchvision ImageFolder with the
  usual transforms (RandomResizedCrop 224, flip, ToTensor, Normalize) on the same source
  JPEGs, both through a DataLoader with num_workers=0 (one core).
Rounds alternate baseline and harness; the ratio is of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from harness.config import DataConfig
from harness.data import imaging, shards, transforms
from harness.prepare import writer

REPO = Path(__file__).resolve().parents[1]
# the project's shared data beside the checkout; $IMAGENET_SAMPLE_DIR overrides
DEFAULT_SAMPLE = Path(os.environ.get("IMAGENET_SAMPLE_DIR") or REPO.parent / "shared" / "data" / "imagenet-sample")
SIZE, CROP = 256, 224


def pil_baseline(files: list[Path]) -> None:
    for f in files:
        im = Image.open(f).convert("RGB")
        w, h = im.size
        s = SIZE / min(w, h)
        im = im.resize((max(SIZE, round(w * s)), max(SIZE, round(h * s))), Image.BILINEAR)
        w, h = im.size
        left, top = (w - SIZE) // 2, (h - SIZE) // 2
        np.asarray(im.crop((left, top, left + SIZE, top + SIZE)))


def harness_prepare(files: list[Path], dct_scaling: bool = False) -> None:
    items = tuple(writer.Item(f.name, 0, str(f)) for f in files)
    writer.process_chunk(writer.Job("imagefolder", "train", items, SIZE, "crop", "jpeg", 90, None, True, dct_scaling))


def harness_fit(files: list[Path]) -> None:
    """What the Pillow loop does, the harness's way: read, decode, shorter side to 256, crop."""
    for f in files:
        imaging.load_fitted(f.read_bytes(), SIZE)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def dct_quality(files: list[Path]) -> dict:
    """Which images data.dct_scaling decodes at a reduced scale, and their PSNR (dB) against the
    exact path; `all_images_psnr_db` pools the squared error over the whole sample."""
    scaled, errors, total = [], 0.0, 0
    for f in files:
        data = f.read_bytes()
        exact, fast = imaging.load_fitted(data, SIZE), imaging.load_fitted(data, SIZE, dct_scaling=True)
        h, w = Image.open(f).size[::-1]
        if imaging.dct_factor(h, w, SIZE) > 1:
            scaled.append(psnr(exact, fast))
        errors += float(np.sum((exact.astype(np.float64) - fast.astype(np.float64)) ** 2))
        total += exact.size
    pooled = float("inf") if errors == 0 else float(10 * np.log10(255.0**2 / (errors / total)))
    return {"images": len(files), "scaled_images": len(scaled), "scaled_fraction": len(scaled) / len(files),
            "scaled_psnr_db_mean": float(np.mean(scaled)) if scaled else None,
            "scaled_psnr_db_min": float(np.min(scaled)) if scaled else None,
            "all_images_psnr_db": pooled, "reference": "full-size decode, then the same resize"}


def imagefolder_layout(files: list[Path], dst: Path) -> Path:
    """train/<wnid>/<file>: one class per sample file (symlinks, no copies)."""
    for f in files:
        d = dst / "train" / f.name.split("_")[0]
        d.mkdir(parents=True, exist_ok=True)
        (d / f.name).symlink_to(f)
    for split in ("val",):
        (dst / split).symlink_to(dst / "train", target_is_directory=True)
    return dst


def torchvision_loader(root: Path, batch: int):
    import torchvision
    from torchvision import transforms as T
    tf = T.Compose([T.RandomResizedCrop(CROP), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    ds = torchvision.datasets.ImageFolder(str(root / "train"), tf)
    return torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=0,
                                       generator=torch.Generator().manual_seed(0))


def harness_loader(prepared: Path, batch: int):
    mean, pca = shards.load_stats(prepared)
    split = shards.load_split(prepared, "train")
    view = transforms.TrainView(split, transforms.Normaliser(mean, 1.0), pca, CROP, seed=1, pca_std=0.1)
    order = np.random.default_rng(0).permutation(len(split))
    return transforms.batch_loader(view, [order[i:i + batch] for i in range(0, len(order), batch)], 0)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def drain(loader) -> int:
    return sum(len(y) for _, y in loader)


def measure(sample: Path, rounds: int, batch: int = 32, limit: int | None = None) -> dict:
    torch.set_num_threads(1)  # per core
    files = sorted(sample.glob("*.JPEG"))[:limit]
    if not files:
        raise SystemExit(f"no *.JPEG files in {sample}")
    n = len(files)
    res = {"images": n, "sample": str(sample), "rounds": rounds}
    res["prepare"] = prepare_rounds(files, rounds)
    res["dct_scaling"] = dct_quality(files)
    with tempfile.TemporaryDirectory() as tmp:
        root = imagefolder_layout(files, Path(tmp) / "folder")
        prepared = Path(tmp) / "prepared"
        cfg = DataConfig(source="imagefolder", root=str(root), image_size=SIZE, encoding="jpeg")
        t = time.perf_counter()
        writer.prepare(cfg, prepared, workers=1, work=Path(tmp) / "work")
        res["prepare_stage_1_worker_img_s"] = 2 * n / (time.perf_counter() - t)  # train + val
        base, ours = [], []
        for _ in range(rounds):
            tv, hv = torchvision_loader(root, batch), harness_loader(prepared, batch)
            base.append(n / timed(lambda: drain(tv)))
            ours.append(n / timed(lambda: drain(hv)))
        res["loader"] = _pair("torchvision_imagefolder_img_s", base, "harness_trainview_jpeg_shards_img_s", ours)
    return res


PREPARE = {"pil_open_convert_resize_crop_img_s": pil_baseline,
           "harness_decode_fit_img_s": harness_fit,  # the Pillow loop's work, the harness's way
           "harness_decode_fit_encode_img_s": harness_prepare,  # the prepare stage's work
           "harness_dct_decode_fit_encode_img_s": lambda files: harness_prepare(files, dct_scaling=True)}


def prepare_rounds(files: list[Path], rounds: int) -> dict:
    """img/s of each PREPARE entry, rounds alternating their order; ratios to the Pillow loop."""
    speeds = {k: [] for k in PREPARE}
    for r in range(rounds):
        for k in (list(PREPARE) if r % 2 == 0 else list(PREPARE)[::-1]):
            speeds[k].append(len(files) / timed(lambda: PREPARE[k](files)))
    med = {k: statistics.median(v) for k, v in speeds.items()}
    base = med["pil_open_convert_resize_crop_img_s"]
    out = {k: round(v, 1) for k, v in med.items()}
    out.update({"ratio": round(med["harness_decode_fit_encode_img_s"] / base, 2),
                "ratio_same_work": round(med["harness_decode_fit_img_s"] / base, 2),
                "ratio_dct_scaling": round(med["harness_dct_decode_fit_encode_img_s"] / base, 2),
                "rounds_img_s": {k: [round(x, 1) for x in v] for k, v in speeds.items()}})
    return out


def _pair(base_name: str, base: list[float], ours_name: str, ours: list[float]) -> dict:
    b, o = statistics.median(base), statistics.median(ours)
    return {base_name: round(b, 1), ours_name: round(o, 1), "ratio": round(o / b, 2),
            "rounds_baseline": [round(x, 1) for x in base], "rounds_harness": [round(x, 1) for x in ours]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE, help="folder of real ImageNet JPEGs")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    args = p.parse_args(argv)
    res = measure(args.sample, args.rounds)
    print(json.dumps(res, indent=2))
    if args.out:
        from harness.io import atomic_write_json
        atomic_write_json(args.out, res)


if __name__ == "__main__":
    main()
