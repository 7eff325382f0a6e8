"""ImageNet Fall 2011 as a source (harness/prepare/fall2011.py): per-synset tars and folders,
class ids from the sorted wnids, the holdout and Fall-2009 half/half splits, and the exclusion of
ILSVRC-2012 validation duplicates by file bytes, by decoded pixels and by perceptual hash. Expected
counts are written out from the fixture constants (tests/imagenet_fixtures.py), not from the code."""

from __future__ import annotations

import json
from pathlib import Path

import imagenet_fixtures as fx
import numpy as np
import pytest

from harness.config import DataConfig, Fall2011Config
from harness.errors import UserError
from harness.prepare import writer
from harness.prepare.sources import list_source

N_SYNSETS = 8  # fx.FALL2011_WNIDS
PER_SYNSET = 4  # fx.FALL2011_VARIANTS distinct images; n01440764 and n01558993 hold one dup more
# Each synset's variant 1 is its photo re-encoded at JPEG quality 83: a near-duplicate of a val image
# when that photo is one (fx.VAL_WNIDS: the tench, val 2 and 5, and the robin, val 4); the flips and
# the rotation are other images
NEAR_DUPS = {f"{w}/{w}_1.JPEG": [fx.eval_name(2012, "val", k + 1) for k, v in enumerate(fx.VAL_WNIDS) if v == w]
             for w in fx.FALL2011_WNIDS if w in fx.VAL_WNIDS}


@pytest.fixture
def roots(tmp_path):
    fx.sample_dir()
    return fx.make_fall2011(tmp_path / "f11"), fx.make_ilsvrc2012(tmp_path / "il", archives=True)


def _cfg(root, **f11) -> DataConfig:
    return DataConfig(source="fall2011", root=str(root), image_size=64, encoding="raw",
                      fall2011=Fall2011Config(**f11))


def _list(root, work, **f11):
    return list_source("fall2011", root, work, progress=False, data=_cfg(root, **f11))


def test_classes_are_the_sorted_wnids_and_the_duplicates_are_excluded(roots, tmp_path):
    f11, il = roots
    listing = _list(f11, tmp_path / "w", val_every=4, exclude_root=str(il), exclude_near=None)
    assert listing.classes == tuple(sorted(fx.FALL2011_WNIDS))
    # 4 kept per synset: the 4th (key order) held out, 3 trained on
    assert [len(listing.splits[s]) for s in ("train", "val")] == [3 * N_SYNSETS, N_SYNSETS]
    ex = listing.extra["exclusion"]
    assert ex["n_excluded"] == 2 and ex["near_bits"] is None
    by_key = {e["key"]: e for e in ex["excluded"]}
    byte_key = f"{fx.FALL2011_BYTE_DUP[0]}/{fx.FALL2011_BYTE_DUP[1]}"
    pixel_key = f"{fx.FALL2011_PIXEL_DUP[0]}/{fx.FALL2011_PIXEL_DUP[1]}"
    assert by_key[byte_key]["why"] == "sha256"
    # val images 2 and 5 are both the tench JPEG: either is the duplicated one
    assert by_key[byte_key]["val"] in (fx.eval_name(2012, "val", 2), fx.eval_name(2012, "val", 5))
    assert by_key[pixel_key] == {"key": pixel_key, "why": "pixels",
                                 "val": fx.eval_name(2012, "val", fx.FALL2011_PIXEL_DUP[2])}
    listed = {s.key for split in listing.splits.values() for s in split}
    assert byte_key not in listed and pixel_key not in listed
    for s in listing.splits["train"]:
        assert listing.classes[s.label] == s.key.split("/")[0]  # label from the wnid list


def test_near_duplicates_are_excluded_by_default(roots, tmp_path):
    f11, il = roots
    listing = _list(f11, tmp_path / "w", val_every=4, exclude_root=str(il))
    ex = listing.extra["exclusion"]
    assert ex["near_bits"] == Fall2011Config().exclude_near == 8
    near = {e["key"]: e for e in ex["excluded"] if e["why"] == "near"}
    assert sorted(near) == sorted(NEAR_DUPS) and len(near) == 2
    for key, e in near.items():
        assert e["val"] in NEAR_DUPS[key] and 0 <= e["bits"] <= 8
    # the byte and pixel copies keep their reason (checked first); 4 out, so the two synsets keep 3
    assert ex["n_excluded"] == 4 and {e["why"] for e in ex["excluded"]} == {"sha256", "pixels", "near"}
    assert [len(listing.splits[s]) for s in ("train", "val")] == [3 * N_SYNSETS, N_SYNSETS - 2]
    listed = {s.key for split in listing.splits.values() for s in split}
    assert not listed & set(NEAR_DUPS)
    # the flipped variants of the same photos stay: a mirror image is another image
    assert {f"{w}/{w}_{i}.JPEG" for w in ("n01440764", "n01558993") for i in (2, 3, 4)} <= listed


def test_a_cache_written_without_perceptual_hashes_gains_them(roots, tmp_path):
    f11, il = roots
    _list(f11, tmp_path / "w", val_every=4, exclude_root=str(il), exclude_near=None)
    cache = tmp_path / "w" / ".hashes" / "n01440764.json"
    assert not any("phash" in r for r in json.loads(cache.read_text()).values())
    listing = _list(f11, tmp_path / "w", val_every=4, exclude_root=str(il))
    assert sorted(e["key"] for e in listing.extra["exclusion"]["excluded"] if e["why"] == "near") == sorted(NEAR_DUPS)
    assert all(isinstance(r["phash"], int) for r in json.loads(cache.read_text()).values())


def test_bytes_only_keeps_the_png_copy_and_no_exclusion_keeps_both(roots, tmp_path):
    f11, il = roots
    listing = _list(f11, tmp_path / "w", val_every=4, exclude_root=str(il), exclude_pixels=False,
                    exclude_near=None)
    assert listing.extra["exclusion"]["n_excluded"] == 1
    # without the pixel check the perceptual hash still finds the PNG copy (0 bits apart)
    listing = _list(f11, tmp_path / "w1", val_every=4, exclude_root=str(il), exclude_pixels=False)
    png = {e["key"]: e for e in listing.extra["exclusion"]["excluded"]}[
        f"{fx.FALL2011_PIXEL_DUP[0]}/{fx.FALL2011_PIXEL_DUP[1]}"]
    assert png["why"] == "near" and png["bits"] == 0
    listing = _list(f11, tmp_path / "w2", val_every=4)
    assert listing.extra["exclusion"]["n_excluded"] == 0
    assert sum(len(v) for v in listing.splits.values()) == N_SYNSETS * PER_SYNSET + 2


def test_half_split_is_alternate_images_per_synset(roots, tmp_path):
    f11, il = roots
    listing = _list(f11, tmp_path / "w", split="half", exclude_root=str(il), exclude_near=None)
    assert [len(listing.splits[s]) for s in ("train", "val")] == [16, 16]
    val = sorted(s.key for s in listing.splits["val"] if s.key.startswith("n01601694/"))
    assert val == ["n01601694/n01601694_2.JPEG", "n01601694/n01601694_4.JPEG"]
    assert listing.extra["split"] == "half" and listing.extra["val_every"] == 2


def test_documented_exclude_list(roots, tmp_path):
    f11, _ = roots
    lst = tmp_path / "exclude.txt"
    lst.write_text("# known duplicates\nn01667114/n01667114_1.JPEG\n\n")
    listing = _list(f11, tmp_path / "w", val_every=4, exclude_list=str(lst))
    assert listing.extra["exclusion"]["excluded"] == [
        {"key": "n01667114/n01667114_1.JPEG", "why": "list", "val": None}]
    lst.write_text("not a key\n")
    with pytest.raises(UserError, match="line 1"):
        _list(f11, tmp_path / "w", exclude_list=str(lst))


def test_extracted_folders_win_and_hashes_are_cached(roots, tmp_path):
    f11, il = roots
    _list(f11, tmp_path / "w", val_every=4, exclude_root=str(il))
    cache = tmp_path / "w" / ".hashes" / "n01667114.json"
    first = json.loads(cache.read_text())
    assert len(first) == PER_SYNSET and all(isinstance(r["phash"], int) for r in first.values())
    stamp = cache.stat().st_mtime_ns
    _list(f11, tmp_path / "w", val_every=4, exclude_root=str(il))
    assert cache.stat().st_mtime_ns == stamp  # nothing re-hashed, nothing rewritten
    folder = tmp_path / "w" / "synsets" / fx.FALL2011_FOLDER
    assert not folder.exists()  # an extracted <wnid>/ is read in place, not copied


def test_errors_name_the_problem(tmp_path, roots):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no synsets"):
        _list(tmp_path / "empty", tmp_path / "w")
    f11, _ = roots
    with pytest.raises(UserError, match="exclude_root: no ILSVRC-2012 validation images"):
        _list(f11, tmp_path / "w", exclude_root=str(tmp_path / "empty"))


def test_prepare_writes_the_exclusions_into_the_manifest(roots, tmp_path):
    f11, il = roots
    cfg = DataConfig(source="fall2011", root=str(f11), image_size=64, encoding="raw",
                     fall2011=Fall2011Config(val_every=4, exclude_root=str(il)))
    m = writer.prepare(cfg, tmp_path / "p", workers=1, work=tmp_path / "w")
    assert m["counts"] == {"train": 24, "val": 6}  # the two near-duplicates out as well
    assert m["classes"] == sorted(fx.FALL2011_WNIDS)
    assert m["fall2011"]["exclusion"]["n_excluded"] == 4
    labels = np.load(tmp_path / "p" / "val" / "labels.npy")
    # one held-out image per synset, key order, but for the two that kept 3 (classes 0 and 3)
    kept3 = [sorted(fx.FALL2011_WNIDS).index(k.split("/")[0]) for k in NEAR_DUPS]
    assert labels.tolist() == [c for c in range(N_SYNSETS) if c not in kept3]
