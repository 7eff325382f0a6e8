"""ImageNet Fall 2011 (ImageNet-21k) as a source: the pre-training data of paper section 6.

Layouts accepted in `data.root` (docs/paper.md, "The Fall-2011 path"):
  <wnid>.tar            one tar per synset, as image-net.org distributes the release (extracted
                        once, resumably, into work/<wnid>/, base names kept)
  <whole>.tar           a tar of <wnid>.tar (fall11_whole.tar, winter21_whole.tar): extracted per
                        synset, as the ILSVRC training tar (harness/prepare/archive.py)
  <wnid>/               extracted synset folders
  train/<wnid>/ [val/<wnid>/]  the processed 21k variants that keep the wnid layout; their own
                        train/val division is ignored, every image is listed once
A folder wins over a tar of the same synset. Keys are "<wnid>/<file>" in every form.

Class ids: the sorted wnids of the synsets found (index = label), recorded in the manifest.

Split (data.fall2011.split): "holdout" puts every val_every-th image of each synset (in key
order) into val; "half" is the Fall-2009 protocol of paper 6 ("half of the images for training
and half for testing"): alternate images of each synset.

Exclusion (paper 6 trains on Fall 2011 and reports on ILSVRC-2012 val): an image whose file
bytes equal an ILSVRC-2012 validation image's (sha256), or, with exclude_pixels, whose decoded
pixels fitted to data.image_size equal one's, or whose key is in exclude_list, is listed in
neither split; the manifest holds the count and each key with the val image it duplicates.
Pixel hashes are computed only for images whose header size (w, h) equals some val image's
(a decoded copy keeps its size), so the cost is a header read for the rest. With exclude_near
(bits), an image whose perceptual hash lies within that Hamming distance of a val image's is left
out too (a resized, re-compressed or brightened copy; harness/prepare/phash.py): that decodes every
image once more. Per-synset hashes are cached in work/.hashes/ keyed by (name, size, mtime): a
rerun after a kill does not re-read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from harness.errors import UserError
from harness.io import atomic_write_json
from harness.prepare import phash
from harness.prepare.listing import ILSVRC2012_VAL_TAR  # one name for the reader and the listing
from harness.prepare.writer import file_sha256

WNID = re.compile(r"^n\d{8}$")
WHOLE_TARS = ("fall11_whole.tar", "winter21_whole.tar", "imagenet21k.tar")


def synset_folders(root: Path, work: Path, progress: bool) -> dict[str, Path]:
    """wnid -> folder of its images, extracting synset tars under `work` (folders win)."""
    from harness.prepare import archive

    found: dict[str, Path] = {}
    for whole in WHOLE_TARS:
        if (root / whole).is_file():
            dest = archive.extract_nested_tars(root / whole, work / "synsets", work, progress=progress)
            found.update({e.name: Path(e.path) for e in os.scandir(dest) if e.is_dir()})
    tars = sorted((e for e in os.scandir(root) if e.is_file() and e.name.endswith(".tar")
                   and WNID.match(e.name[:-4])), key=lambda e: e.name)
    for e in tqdm(tars, desc="extract fall2011 synsets", unit="tar", disable=not progress):
        found[e.name[:-4]] = archive.extract_tar(Path(e.path), work / "synsets" / e.name[:-4], work,
                                                 flatten=True, progress=False)
    for base in (root / "train", root):  # later wins: root/<wnid>/, then train/<wnid>/, then tars
        if base.is_dir():
            found.update({e.name: Path(e.path) for e in os.scandir(base)
                          if e.is_dir() and WNID.match(e.name)})
    if not found:
        raise UserError(f"fall2011: no synsets in {root}: expected <wnid>.tar files, "
                        f"{' or '.join(WHOLE_TARS)}, <wnid>/ folders or train/<wnid>/ folders "
                        "(wnid: n followed by 8 digits)")
    return dict(sorted(found.items()))


def extra_folders(root: Path) -> dict[str, list[Path]]:
    """Processed variants: wnid -> further folders (val/<wnid>/ beside train/<wnid>/)."""
    out: dict[str, list[Path]] = {}
    if (root / "train").is_dir() and (root / "val").is_dir():
        for e in os.scandir(root / "val"):
            if e.is_dir() and WNID.match(e.name):
                out.setdefault(e.name, []).append(Path(e.path))
    return out


def split_of(position: int, mode: str, val_every: int) -> str:
    """train or val for the position-th image (key order) of a synset."""
    every = 2 if mode == "half" else val_every
    return "val" if position % every == every - 1 else "train"


# ------------------------------------------------------------------ duplicates of ILSVRC val


def header_size(path: str) -> tuple[int, int] | None:
    """(width, height) from the image header, without decoding; None if unreadable."""
    try:
        with Image.open(path) as im:
            return im.size
    except Exception:  # the decoder reports unreadable files later, with the reason
        return None


def pixel_sha256(path: str, size: int, resize: str) -> str | None:
    """sha256 of the pixels as the preparation stores them (paper 2), None if undecodable."""
    from harness.data import imaging

    try:
        with open(path, "rb") as f:
            return hashlib.sha256(imaging.load_fitted(f.read(), size, resize).tobytes()).hexdigest()
    except (OSError, imaging.BadImage):
        return None


def _hash_one(args) -> dict:
    path, want_pixels, size, resize, val_sizes, near = args
    rec = {"sha256": file_sha256(path), "wh": header_size(path)}
    if want_pixels and rec["wh"] is not None and tuple(rec["wh"]) in val_sizes:
        rec["pixels"] = pixel_sha256(path, size, resize)
    if near:
        rec["phash"] = phash.hash_file(path)
    return rec


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # one process per core already (the resizes run in torch)


def hash_files(paths: list[str], *, pixels: bool, size: int, resize: str, val_sizes: frozenset,
               cache: Path | None, workers: int, near: bool = False) -> list[dict]:
    """One record per path: sha256, header size, the pixel hash when asked and the size matches,
    the perceptual hash when `near`."""
    stamp = {p: _stamp(p) for p in paths}
    known = _read_cache(cache)
    todo = [p for p in paths if known.get(p, {}).get("stamp") != stamp[p]
            or (pixels and tuple(known[p].get("wh") or ()) in val_sizes and "pixels" not in known[p])
            or (near and "phash" not in known[p])]
    args = [(p, pixels, size, resize, val_sizes, near) for p in todo]
    if workers > 1 and len(args) > 64:
        with ProcessPoolExecutor(workers, initializer=_one_thread) as pool:
            done = list(pool.map(_hash_one, args, chunksize=64))
    else:
        done = [_hash_one(a) for a in args]
    for p, rec in zip(todo, done):
        known[p] = {**rec, "stamp": stamp[p]}
    if cache is not None and todo:
        atomic_write_json(cache, known)
    return [known[p] for p in paths]


def _stamp(path: str) -> list:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def _read_cache(cache: Path | None) -> dict:
    if cache is None or not cache.is_file():
        return {}
    try:
        return json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}  # a cache is never trusted over the files: recompute


def ilsvrc2012_val_files(root: Path, work: Path, progress: bool) -> list[str]:
    """Absolute paths of the ILSVRC-2012 validation images under `root` (val/ folder, flat or
    per class, or ILSVRC2012_img_val.tar extracted into work/ilsvrc2012-val)."""
    from harness.prepare import archive, sources

    root = Path(os.path.abspath(os.path.expanduser(str(root))))
    if (root / "val").is_dir():
        folder = root / "val"
    elif (root / ILSVRC2012_VAL_TAR).is_file():
        folder = archive.extract_tar(root / ILSVRC2012_VAL_TAR, work / "ilsvrc2012-val", work,
                                     flatten=True, progress=progress)
    else:
        raise UserError(f"data.fall2011.exclude_root: no ILSVRC-2012 validation images in {root}: "
                        f"expected {ILSVRC2012_VAL_TAR} or a val/ folder")
    problems = sources._Problems()
    files = [p for _, p in sources._scan_tree(folder, "val", problems)]
    if not files:
        raise UserError(f"data.fall2011.exclude_root: {folder} holds no validation images")
    return files


def read_exclude_list(path: str | None) -> set[str]:
    """Keys "<wnid>/<file>" from a documented list (blank lines and # comments ignored)."""
    if not path:
        return set()
    p = Path(os.path.expanduser(path))
    if not p.is_file():
        raise UserError(f"data.fall2011.exclude_list: {p} does not exist")
    keys = set()
    for lineno, line in enumerate(p.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not re.match(r"^n\d{8}/[^/]+$", line):
            raise UserError(f"data.fall2011.exclude_list: {p} line {lineno} is {line!r}: "
                            "expected <wnid>/<file name>")
        keys.add(line)
    return keys
