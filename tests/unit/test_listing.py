"""harness/prepare/listing.py: what the list_data stage writes changes exactly when the files that
`prepare` would read change (added, removed, renamed, resized, touched), and costs one stat each."""

import os
from pathlib import Path

import imagenet_fixtures as FX
import pytest

from harness.config import DataConfig, Fall2011Config
from harness.prepare import listing


def _lines(root):
    return listing.listing_lines(DataConfig(source="imagefolder", root=str(root)))


@pytest.fixture
def root(tmp_path):
    FX.sample_dir()
    return FX.make_imagefolder(tmp_path / "folder")


def _one_image(root) -> Path:
    return sorted((root / "train" / FX.WNIDS[0]).iterdir())[0]


@pytest.mark.parametrize("change", ["added", "removed", "renamed", "resized", "touched", "empty_folder",
                                    "rewritten"])
def test_every_change_prepare_would_see_changes_the_listing(root, change):
    before = _lines(root)
    img = _one_image(root)
    st = img.stat()
    if change == "added":
        (img.parent / "new.JPEG").write_bytes(img.read_bytes())
    elif change == "removed":
        img.unlink()
    elif change == "renamed":
        img.rename(img.with_name("renamed.JPEG"))
    elif change == "resized":
        img.write_bytes(img.read_bytes() + b"\0")
        os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the mtime set back
    elif change == "touched":
        os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    elif change == "empty_folder":
        (root / "train" / "n09999999").mkdir()  # an empty class: prepare sees a new class
    elif change == "rewritten":  # new bytes, same size: the mtime moves on any normal write
        data = bytearray(img.read_bytes())
        data[-3] ^= 0xFF
        img.write_bytes(bytes(data))
        os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    after = _lines(root)
    assert after != before
    changed = set(after) - set(before)
    assert changed and all('"dir": "train' in line for line in changed)  # the folder that changed is named


def test_what_prepare_ignores_does_not_change_the_listing(root):
    before = _lines(root)
    (root / "train" / ".DS_Store").write_bytes(b"finder")  # hidden: the sources skip it
    (root / "train" / FX.WNIDS[1] / ".cache").mkdir()
    assert _lines(root) == before


def test_links_are_followed_once_and_a_loop_ends(root, tmp_path):
    other = FX.make_imagefolder(tmp_path / "elsewhere")
    os.symlink(other / "train" / FX.WNIDS[0], root / "train" / "linked")
    os.symlink(root / "train", root / "train" / FX.WNIDS[2] / "loop")
    lines = _lines(root)
    assert any('"dir": "train/linked"' in line and '"files": 3' in line for line in lines)
    before = lines
    os.utime(sorted((other / "train" / FX.WNIDS[0]).iterdir())[0], ns=(1, 1))
    assert _lines(root) != before  # a change behind the link is seen


def test_inputs_of_each_source(tmp_path):
    assert listing.listing_lines(DataConfig()) == ['{"source": "synthetic", "inputs": []}']
    assert listing.listing_lines(None) == ['{"source": null, "inputs": []}']
    f11 = DataConfig(source="fall2011", root=str(tmp_path / "f11"),
                     fall2011=Fall2011Config(exclude_root=str(tmp_path / "i12"),
                                             exclude_list=str(tmp_path / "x.txt")))
    assert listing.inputs_of(f11) == [tmp_path / "f11", tmp_path / "i12" / "val",
                                      tmp_path / "i12" / "ILSVRC2012_img_val.tar", tmp_path / "x.txt"]
    # archives and missing inputs: one line each, an archive's by its size and mtime
    (tmp_path / "f11").mkdir()
    (tmp_path / "f11" / "n01440764.tar").write_bytes(b"x" * 10)
    (tmp_path / "i12").mkdir()
    (tmp_path / "i12" / "ILSVRC2012_img_val.tar").write_bytes(b"y" * 7)
    lines = listing.listing_lines(f11)
    assert '"missing": true' in lines[2] and '"size": 7' in lines[3] and '"missing": true' in lines[4]
    (tmp_path / "i12" / "ILSVRC2012_img_val.tar").write_bytes(b"z" * 8)  # replaced archive
    assert listing.listing_lines(f11)[3] != lines[3]


def test_the_listing_benchmark_runs(capsys):
    sample = FX.sample_dir()
    from benchmarks import data_listing

    data_listing.main(["--files", "50", "--per-folder", "20", "--repeats", "1", "--size", "64",
                       "--sample", str(sample)])
    out = capsys.readouterr().out
    assert "listing 50 files in 3 folders" in out and "the hash adds" in out
