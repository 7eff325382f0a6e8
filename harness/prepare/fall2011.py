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
from harness.prepare.scan import Listing, Problems, Sample, empty_classes, file_sha256, scan_tree

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
    from harness.prepare import archive

    root = Path(os.path.abspath(os.path.expanduser(str(root))))
    if (root / "val").is_dir():
        folder = root / "val"
    elif (root / ILSVRC2012_VAL_TAR).is_file():
        folder = archive.extract_tar(root / ILSVRC2012_VAL_TAR, work / "ilsvrc2012-val", work,
                                     flatten=True, progress=progress)
    else:
        raise UserError(f"data.fall2011.exclude_root: no ILSVRC-2012 validation images in {root}: "
                        f"expected {ILSVRC2012_VAL_TAR} or a val/ folder")
    files = [p for _, p in scan_tree(folder, "val", Problems())]
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


# ----------------------------------------------------------------- the listing


def list_fall2011(root: Path, work: Path, progress: bool, data) -> Listing:
    """Every image of every synset, minus ILSVRC-2012 val duplicates, split per synset."""
    opts = data.fall2011
    folders = synset_folders(root, work, progress)
    more = extra_folders(root)
    wnids = tuple(folders)
    index = {w: i for i, w in enumerate(wnids)}
    problems = Problems()
    per_synset = {}
    for wnid in tqdm(wnids, desc="list fall2011", unit="synset", disable=not progress):
        found = scan_tree(folders[wnid], wnid, problems)
        for extra in more.get(wnid, []):
            found += scan_tree(extra, wnid, problems)
        per_synset[wnid] = sorted(dict(found).items())  # a name in train/ and val/ is listed once
    excluded = _exclusions(per_synset, root, work, progress, data)
    splits = {"train": [], "val": []}
    for wnid, found in per_synset.items():
        kept = [(k, p) for k, p in found if k not in excluded]
        for pos, (key, path) in enumerate(kept):
            splits[split_of(pos, opts.split, opts.val_every)].append(Sample(key, index[wnid], path))
    splits = {s: tuple(sorted(v, key=lambda x: x.key)) for s, v in splits.items()}
    extra = {"release": opts.release, "split": opts.split,
             "val_every": opts.val_every if opts.split == "holdout" else 2,
             "n_synsets": len(wnids),
             "exclusion": {"against": opts.exclude_root, "pixels": opts.exclude_pixels,
                           "near_bits": opts.exclude_near,
                           "list": opts.exclude_list, "n_excluded": len(excluded),
                           "excluded": [{"key": k, **v} for k, v in sorted(excluded.items())]}}
    inputs = tuple(str(folders[w]) for w in wnids)
    return Listing("fall2011", wnids, wnids, splits, problems.frozen(), inputs, extra,
                   problem_paths=problems.paths, empty_classes=empty_classes(splits["train"], wnids))


def _exclusions(per_synset, root, work, progress, data) -> dict[str, dict]:
    """key -> {"why": sha256 | pixels | near | list, "val": the ILSVRC-2012 val file (and for
    near, "bits": the Hamming distance of the hashes)} to leave out."""
    opts = data.fall2011
    out = {k: {"why": "list", "val": None} for k in read_exclude_list(opts.exclude_list)}
    if not opts.exclude_root:
        return out
    near = opts.exclude_near is not None
    common = dict(pixels=opts.exclude_pixels, size=data.image_size, resize=data.resize,
                  workers=os.cpu_count() or 1, near=near)
    val_files = ilsvrc2012_val_files(Path(opts.exclude_root), work, progress)
    val = hash_files(val_files, val_sizes=frozenset(), cache=None, **{**common, "pixels": False, "near": False})
    val_sizes = frozenset(tuple(r["wh"]) for r in val if r["wh"])
    if opts.exclude_pixels or near:  # every val image's pixel hash (its size is in the set) and phash
        val = hash_files(val_files, val_sizes=val_sizes, cache=None, **common)
    by_bytes = {r["sha256"]: p for p, r in zip(val_files, val)}
    by_pixels = {r["pixels"]: p for p, r in zip(val_files, val) if r.get("pixels")}
    index = _near_index(val_files, val) if near else None
    for wnid, found in tqdm(per_synset.items(), desc="fall2011 vs ILSVRC-2012 val", unit="synset",
                            disable=not progress):
        recs = hash_files([p for _, p in found], val_sizes=val_sizes,
                              cache=work / ".hashes" / f"{wnid}.json", **common)
        for (key, _), rec in zip(found, recs):
            if rec["sha256"] in by_bytes:
                out[key] = {"why": "sha256", "val": os.path.basename(by_bytes[rec["sha256"]])}
            elif rec.get("pixels") in by_pixels:
                out[key] = {"why": "pixels", "val": os.path.basename(by_pixels[rec["pixels"]])}
        if index is not None:
            out.update(_near_matches(index, opts.exclude_near, found, recs, out))
    return out


def _near_index(val_files, val_recs) -> tuple[list[int], list[str]]:
    """The val images' perceptual hashes and their file names (undecodable ones left out)."""
    hashed = [(p, r["phash"]) for p, r in zip(val_files, val_recs) if r.get("phash") is not None]
    return [h for _, h in hashed], [os.path.basename(p) for p, _ in hashed]


def _near_matches(index, bits: int, found, recs, excluded) -> dict[str, dict]:
    """The keys not yet excluded whose perceptual hash lies within `bits` of a val image's."""
    hashes, names = index
    todo = [(key, rec["phash"]) for (key, _), rec in zip(found, recs)
            if key not in excluded and rec.get("phash") is not None]
    if not todo:
        return {}
    which, dist = phash.nearest([h for _, h in todo], hashes, bits)
    return {key: {"why": "near", "val": names[i], "bits": int(d)}
            for (key, _), i, d in zip(todo, which, dist) if i >= 0}
