"""Data sources: listings of every source in archive and folder form, safe and resumable
extraction, and the errors users see. Expectations are written out by hand from the
fixture constants (tests/imagenet_fixtures.py), not computed by the code under test."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import imagenet_fixtures as fx
import numpy as np
import pytest

from harness.errors import UserError
from harness.prepare import archive
from harness.prepare.sources import Listing, Sample, list_source, load_cifar_batch

# Classes by official id (1..6) as assigned in the fixture devkit: not sorted wnid order.
ILSVRC_CLASSES = ("n01558993", "n01496331", "n04254680", "n01440764", "n02692877", "n01530575")
# label -> number of training copies (tench 3, electric ray 2, brambling 3, robin 2,
# airship 3, soccer ball 2; label = id - 1).
ILSVRC_TRAIN_COUNTS = {3: 3, 1: 2, 5: 3, 0: 2, 4: 3, 2: 2}
# VAL_WNIDS = soccer ball, tench, airship, robin, tench -> ids 3, 4, 5, 1, 4.
ILSVRC_VAL_LABELS = [2, 3, 4, 0, 3]
# TEST_WNIDS = brambling, electric ray, soccer ball, robin -> ids 6, 2, 3, 1.
ILSVRC2010_TEST_LABELS = [5, 1, 2, 0]


def _list(source, root, work, **kw) -> Listing:
    return list_source(source, root, work, progress=False, **kw)


def _labels(samples) -> list[int]:
    return [s.label for s in samples]


@pytest.fixture(autouse=True)
def _needs_samples():
    fx.sample_dir()  # skips every test here when the real JPEGs are not available


@pytest.fixture
def write_counter(monkeypatch):
    """Counts files written by the extractor (to prove what a rerun redoes)."""
    calls = []
    real = archive._write_member

    def counting(tar, member, target, label):
        calls.append(member.name)
        return real(tar, member, target, label)

    monkeypatch.setattr(archive, "_write_member", counting)
    return calls


# ------------------------------------------------------------------------ ILSVRC-2012


@pytest.mark.parametrize("archives", [True, False], ids=["archives", "folders"])
def test_ilsvrc2012_listing(tmp_path, archives):
    root = fx.make_ilsvrc2012(tmp_path / "root", archives)
    listing = _list("ilsvrc2012", root, tmp_path / "work")

    assert listing.source == "ilsvrc2012"
    assert listing.classes == ILSVRC_CLASSES  # id order from meta.mat; non-leaves 7, 8 absent
    assert listing.descriptions[3] == "tench, Tinca tinca"
    assert listing.descriptions[0] == "robin, American robin, Turdus migratorius"
    assert set(listing.splits) == {"train", "val"}
    train, val = listing.splits["train"], listing.splits["val"]
    assert len(train) == 15 and Counter(_labels(train)) == ILSVRC_TRAIN_COUNTS
    assert train[0] == Sample("train/n01440764/n01440764_10000.JPEG", 3, train[0].path)
    assert [s.key for s in val] == [f"val/ILSVRC2012_val_0000000{k}.JPEG" for k in range(1, 6)]
    assert _labels(val) == ILSVRC_VAL_LABELS
    assert listing.problems == ()
    base = tmp_path / ("work" if archives else "root")
    assert train[0].path == str(base / "train/n01440764/n01440764_10000.JPEG")
    assert all(os.path.isabs(s.path) and s.row == -1 for s in train + val)
    # The file behind a key is the real JPEG of its class.
    assert Path(val[1].path).read_bytes() == fx.image_bytes("n01440764")


def test_archive_and_folder_forms_give_the_same_samples(tmp_path):
    a = _list("ilsvrc2012", fx.make_ilsvrc2012(tmp_path / "a", True), tmp_path / "wa")
    b = _list("ilsvrc2012", fx.make_ilsvrc2012(tmp_path / "b", False), tmp_path / "wb")
    for split in ("train", "val"):
        pairs_a = [(s.key, s.label) for s in a.splits[split]]
        assert pairs_a == [(s.key, s.label) for s in b.splits[split]]


def test_listing_is_deterministic(tmp_path):
    root = fx.make_ilsvrc2012(tmp_path / "root", True)
    first = _list("ilsvrc2012", root, tmp_path / "work")
    again = _list("ilsvrc2012", root, tmp_path / "work")  # extraction skipped this time
    assert first == again
    keys = [s.key for s in first.splits["train"]]
    assert keys == sorted(keys)
    # Samples travel to worker processes during preparation.
    assert pickle.loads(pickle.dumps(first.splits["val"])) == first.splits["val"]


def test_val_sorted_into_wnid_folders(tmp_path):
    """torchvision's layout: val/<wnid>/ILSVRC2012_val_*.JPEG; labels come from folders."""
    root = fx.make_ilsvrc2012(tmp_path / "root", False)
    for k, wnid in enumerate(fx.VAL_WNIDS, 1):
        name = f"ILSVRC2012_val_{k:08d}.JPEG"
        (root / "val" / wnid).mkdir(exist_ok=True)
        (root / "val" / name).rename(root / "val" / wnid / name)
    (root / "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt").unlink()
    val = _list("ilsvrc2012", root, tmp_path / "work").splits["val"]
    assert {s.key.rsplit("/", 1)[1]: s.label for s in val} == {
        f"ILSVRC2012_val_0000000{k}.JPEG": lab for k, lab in enumerate(ILSVRC_VAL_LABELS, 1)}
    assert val[0].key == "val/n01440764/ILSVRC2012_val_00000002.JPEG"


def test_unusable_files_are_reported_not_listed(tmp_path):
    root = fx.make_ilsvrc2012(tmp_path / "root", False)
    (root / "train/n01440764/n01440764_99999.JPEG").write_bytes(b"")
    (root / "train/n01440764/readme.txt").write_text("notes")
    (root / "train/n01440764/.DS_Store").write_text("ignored")
    (root / "train/stray.JPEG").write_bytes(fx.image_bytes("n01440764"))
    (root / "val/ILSVRC2012_val_00000003.JPEG").write_bytes(b"")  # still counts for alignment
    listing = _list("ilsvrc2012", root, tmp_path / "work")
    assert len(listing.splits["train"]) == 15
    assert _labels(listing.splits["val"]) == [2, 3, 0, 3]  # image 3 (airship) dropped
    assert listing.problems == (
        ("train/n01440764/n01440764_99999.JPEG", "empty file (0 bytes)"),
        ("train/n01440764/readme.txt", "not an image file (extension '.txt')"),
        ("train/stray.JPEG", "not inside a class folder"),
        ("val/ILSVRC2012_val_00000003.JPEG", "empty file (0 bytes)"),
    )


def test_devkit_class_without_training_folder_is_reported_not_counted_as_a_file(tmp_path):
    root = fx.make_ilsvrc2012(tmp_path / "root", False)
    shutil.rmtree(root / "train/n01530575")
    listing = _list("ilsvrc2012", root, tmp_path / "work")
    assert listing.classes == ILSVRC_CLASSES  # the class still exists (label 5)
    assert len(listing.splits["train"]) == 12
    # a class is not an unusable input file: its own list, not `problems`
    assert listing.problems == () and listing.empty_classes == ("n01530575",)


# ------------------------------------------------------------------------ ILSVRC-2010


@pytest.mark.parametrize("archives", [True, False], ids=["archives", "folders"])
def test_ilsvrc2010_listing(tmp_path, archives):
    root = fx.make_ilsvrc2010(tmp_path / "root", archives)
    listing = _list("ilsvrc2010", root, tmp_path / "work")
    assert listing.classes == ILSVRC_CLASSES
    assert set(listing.splits) == {"train", "val", "test"}
    assert Counter(_labels(listing.splits["train"])) == ILSVRC_TRAIN_COUNTS
    assert [s.key for s in listing.splits["val"]][0] == "val/ILSVRC2010_val_00000001.JPEG"
    assert _labels(listing.splits["val"]) == ILSVRC_VAL_LABELS
    assert [s.key for s in listing.splits["test"]] == [
        f"test/ILSVRC2010_test_0000000{k}.JPEG" for k in range(1, 5)]
    assert _labels(listing.splits["test"]) == ILSVRC2010_TEST_LABELS
    assert listing.problems == ()


def test_ilsvrc2010_patch_images_replace_files(tmp_path):
    root = fx.make_ilsvrc2010(tmp_path / "root", True, patch_images=True)
    listing = _list("ilsvrc2010", root, tmp_path / "work")
    soccer = fx.image_bytes("n04254680")
    val2 = listing.splits["val"][1]
    assert val2.key == "val/ILSVRC2010_val_00000002.JPEG" and val2.label == 3  # key, label kept
    assert Path(val2.path).read_bytes() == soccer
    assert val2.path.startswith(str(tmp_path / "work/patch_images") + os.sep)
    brambling = [s for s in listing.splits["train"] if s.key.endswith("n01530575_10000.JPEG")]
    assert Path(brambling[0].path).read_bytes() == soccer
    untouched = listing.splits["val"][0]
    assert untouched.path == str(tmp_path / "work/val/ILSVRC2010_val_00000001.JPEG")
    assert listing.problems == ()


def test_ilsvrc2010_other_folder_variants(tmp_path):
    """Devkit folder named after its archive; ground-truth files beside the images
    (OpenCV's layout); val sorted into wnid folders."""
    root = fx.make_ilsvrc2010(tmp_path / "root", False)
    data = root / "devkit-1.0/data"
    for name in ("ILSVRC2010_validation_ground_truth.txt", "ILSVRC2010_test_ground_truth.txt"):
        (data / name).rename(root / name)
    (root / "devkit-1.0").rename(root / "ILSVRC2010_devkit-1.0")
    listing = _list("ilsvrc2010", root, tmp_path / "work")
    assert listing.classes == ILSVRC_CLASSES
    assert _labels(listing.splits["val"]) == ILSVRC_VAL_LABELS
    assert _labels(listing.splits["test"]) == ILSVRC2010_TEST_LABELS
    assert listing.inputs[0] == str(root / "ILSVRC2010_devkit-1.0")


def test_ilsvrc2010_unused_patch_is_reported(tmp_path):
    root = fx.make_ilsvrc2010(tmp_path / "root", True)
    stray = "patch/test/ILSVRC2010_test_00000009.JPEG"  # there are only 4 test images
    (root / "patch_images.tar").write_bytes(_tar({stray: b"x"}))
    listing = _list("ilsvrc2010", root, tmp_path / "work")
    assert listing.problems == ((str(tmp_path / "work/patch_images/patch/test/"
                                     "ILSVRC2010_test_00000009.JPEG"),
                                 "patch image matches no test image in the listing"),)


def test_ilsvrc2010_test_ground_truth_missing(tmp_path):
    root = fx.make_ilsvrc2010(tmp_path / "root", True)
    (root / "ILSVRC2010_test_ground_truth.txt").unlink()
    with pytest.raises(UserError, match="ILSVRC2010_test_ground_truth.txt"):
        _list("ilsvrc2010", root, tmp_path / "work")


# ------------------------------------------------------------------------ imagefolder


def test_imagefolder_listing(tmp_path):
    root = fx.make_imagefolder(tmp_path / "root")
    listing = _list("imagefolder", root, tmp_path / "work")
    assert listing.classes == fx.WNIDS  # sorted folder names
    assert listing.descriptions == fx.WNIDS
    train, val = listing.splits["train"], listing.splits["val"]
    assert Counter(_labels(train)) == {0: 3, 1: 2, 2: 3, 3: 2, 4: 3, 5: 2}
    assert [s.key for s in train if s.label == 1] == [
        "train/n01496331/n01496331_10000.jpg", "train/n01496331/n01496331_10001.jpg"]
    assert _labels(val) == [0, 1, 2, 3, 4, 5]
    assert val[1].key == "val/n01496331/n01496331_val.png"
    assert listing.problems == ()


def test_imagefolder_nested_and_odd_files(tmp_path):
    root = fx.make_imagefolder(tmp_path / "root")
    (root / "train/n01440764/more").mkdir()
    (root / "train/n01440764/more/extra.WebP").write_bytes(b"RIFF0000WEBP")  # decoder's job
    (root / "train/n01440764/labels.csv").write_text("x")
    os.symlink(root / "missing.JPEG", root / "train/n01440764/dangling.JPEG")
    listing = _list("imagefolder", root, tmp_path / "work")
    assert "train/n01440764/more/extra.WebP" in [s.key for s in listing.splits["train"]]
    assert listing.problems == (
        ("train/n01440764/dangling.JPEG", "broken link or unreadable entry"),
        ("train/n01440764/labels.csv", "not an image file (extension '.csv')"),
    )


def test_imagefolder_val_class_unknown(tmp_path):
    root = fx.make_imagefolder(tmp_path / "root")
    (root / "val/n09999999").mkdir()
    (root / "val/n09999999/x.JPEG").write_bytes(fx.image_bytes("n01440764"))
    with pytest.raises(UserError, match="n09999999"):
        _list("imagefolder", root, tmp_path / "work")


def test_imagefolder_empty_val_split(tmp_path):
    root = fx.make_imagefolder(tmp_path / "root")
    for wnid in fx.WNIDS:
        shutil.rmtree(root / "val" / wnid)
    with pytest.raises(UserError, match="split 'val' has no usable samples"):
        _list("imagefolder", root, tmp_path / "work")


def test_imagefolder_missing_val_folder(tmp_path):
    root = fx.make_imagefolder(tmp_path / "root")
    shutil.rmtree(root / "val")
    with pytest.raises(UserError, match=str(root / "val")):
        _list("imagefolder", root, tmp_path / "work")


# --------------------------------------------------------------------------- CIFAR-10


@pytest.mark.parametrize("form", ["folder", "parent", "tar", "tar-parent"])
def test_cifar10_listing(tmp_path, form):
    made = fx.make_cifar10(tmp_path / "src", as_tar=form.startswith("tar"))
    root = made.parent if form.endswith("parent") else made
    listing = _list("cifar10", root, tmp_path / "work")
    assert listing.classes == ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                               "horse", "ship", "truck")
    train, val = listing.splits["train"], listing.splits["val"]
    assert len(train) == 50 and len(val) == 10
    s = train[12]  # data_batch_2, row 2: label (2 + 2) % 10
    assert (s.key, s.label, s.row) == ("cifar10/data_batch_2:2", 4, 2)
    assert Path(s.path).name == "data_batch_2"
    assert _labels(val) == list(range(10))  # test_batch row r: label r
    assert _labels(train[:10]) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    assert listing.problems == ()


def test_load_cifar_batch_layout(tmp_path):
    folder = fx.make_cifar10(tmp_path, as_tar=False)
    images, labels = load_cifar_batch(folder / "data_batch_3")
    raw = fx.cifar_batch(3)[b"data"]
    assert images.dtype == np.uint8 and images.shape == (10, 32, 32, 3)
    assert labels.dtype == np.int64 and labels.tolist() == [3, 4, 5, 6, 7, 8, 9, 0, 1, 2]
    # Pixel (row 1, col 2) of image 4: R at 1*32+2, G 1024 further, B 2048 further.
    assert images[4, 1, 2].tolist() == [raw[4, 34], raw[4, 1024 + 34], raw[4, 2048 + 34]]


def test_cifar_batch_not_a_pickle(tmp_path):
    folder = fx.make_cifar10(tmp_path, as_tar=False)
    (folder / "data_batch_3").write_bytes(b"this is not a pickle")
    with pytest.raises(UserError, match="data_batch_3"):
        _list("cifar10", folder, tmp_path / "work")


def test_cifar_batch_cannot_run_code(tmp_path):
    folder = fx.make_cifar10(tmp_path, as_tar=False)
    flag = tmp_path / "pwned"
    (folder / "test_batch").write_bytes(pickle.dumps(_Evil(str(flag))))
    with pytest.raises(UserError, match="test_batch.*refusing to load"):
        load_cifar_batch(folder / "test_batch")
    assert not flag.exists()


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_cifar_missing_batch(tmp_path):
    folder = fx.make_cifar10(tmp_path, as_tar=False)
    (folder / "data_batch_5").unlink()
    with pytest.raises(UserError, match="data_batch_5"):
        _list("cifar10", folder, tmp_path / "work")


def test_cifar_nothing_there(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="cifar-10-python.tar.gz"):
        _list("cifar10", tmp_path / "empty", tmp_path / "work")


# --------------------------------------------------------------------------- errors


def test_root_missing(tmp_path):
    with pytest.raises(UserError, match=str(tmp_path / "nowhere")):
        _list("ilsvrc2012", tmp_path / "nowhere", tmp_path / "work")


def test_unknown_source(tmp_path):
    with pytest.raises(UserError, match="unknown data source 'imagenet'"):
        _list("imagenet", tmp_path, tmp_path / "work")


def test_devkit_missing(tmp_path):
    root = fx.make_ilsvrc2012(tmp_path / "root", True)
    (root / "ILSVRC2012_devkit_t12.tar.gz").unlink()
    with pytest.raises(UserError) as e:
        _list("ilsvrc2012", root, tmp_path / "work")
    assert str(e.value) == (f"ilsvrc2012: no devkit found in {root}: expected "
                            "ILSVRC2012_devkit_t12.tar.gz or ILSVRC2012_devkit_t12/data/meta.mat")


def test_meta_mat_malformed(tmp_path):
    root = fx.make_ilsvrc2012(tmp_path / "root", False)
    (root / "ILSVRC2012_devkit_t12/data/meta.mat").write_bytes(b"MATLAB? no")
    with pytest.raises(UserError, match="meta.mat"):
        _list("ilsvrc2012", root, tmp_path / "work")


def test_train_folder_not_in_devkit(tmp_path):
    root = fx.make_ilsvrc2012(tmp_path / "root", False)
    (root / "train/n09999999").mkdir()
    (root / "train/n09999999/n09999999_1.JPEG").write_bytes(fx.image_bytes("n01440764"))
    with pytest.raises(UserError, match=f"{root / 'train/n09999999'} is not a class of the devkit"):
        _list("ilsvrc2012", root, tmp_path / "work")


def test_train_tar_with_unknown_class(tmp_path):
    root = fx.make_ilsvrc2012(tmp_path / "root", True)
    with tarfile.open(root / "ILSVRC2012_img_train.tar", "a") as tar:
        _add(tar, "n09999999.tar", _tar({"n09999999_1.JPEG": b"jpeg"}))
    with pytest.raises(UserError, match="n09999999"):
        _list("ilsvrc2012", root, tmp_path / "work")


def _gt_path(root: Path) -> Path:
    return root / "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt"


def test_ground_truth_line_count(tmp_path):
    root = fx.make_ilsvrc2012(tmp_path / "root", False)
    _gt_path(root).write_text("3\n4\n5\n1\n")  # 4 lines for 5 images
    with pytest.raises(UserError, match="ILSVRC2012_validation_ground_truth.txt has 4 labels "
                                        "but .* has 5 images"):
        _list("ilsvrc2012", root, tmp_path / "work")


@pytest.mark.parametrize("bad, message", [
    ("7", "line 5: class id 7 is out of range 1..6"),  # 7 is a non-leaf synset id
    ("0", "line 5: class id 0 is out of range 1..6"),
    ("tench", "line 5 is 'tench'"),
])
def test_ground_truth_bad_ids(tmp_path, bad, message):
    root = fx.make_ilsvrc2012(tmp_path / "root", False)
    _gt_path(root).write_text(f"3\n4\n5\n1\n{bad}\n")
    with pytest.raises(UserError, match=message) as e:
        _list("ilsvrc2012", root, tmp_path / "work")
    assert "ILSVRC2012_validation_ground_truth.txt" in str(e.value)


def test_ground_truth_inside_devkit_archive_named(tmp_path):
    root = fx.make_ilsvrc2012(tmp_path / "root", True)
    devkit = {"ILSVRC2012_devkit_t12/data/meta.mat": fx.meta_mat("ILSVRC2012_ID"),
              "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt": b"1\n2\n"}
    (root / "ILSVRC2012_devkit_t12.tar.gz").write_bytes(_tar(devkit, "w:gz"))
    with pytest.raises(UserError, match=r"ILSVRC2012_devkit_t12.tar.gz:data/"
                                        r"ILSVRC2012_validation_ground_truth.txt has 2 labels"):
        _list("ilsvrc2012", root, tmp_path / "work")


def test_val_images_missing(tmp_path):
    root = fx.make_ilsvrc2012(tmp_path / "root", True)
    (root / "ILSVRC2012_img_val.tar").unlink()
    with pytest.raises(UserError, match="no val images in .*: expected ILSVRC2012_img_val.tar"):
        _list("ilsvrc2012", root, tmp_path / "work")


def test_truncated_archive(tmp_path):
    root = fx.make_ilsvrc2012(tmp_path / "root", True)
    tar = root / "ILSVRC2012_img_val.tar"
    tar.write_bytes(tar.read_bytes()[:150_000])
    with pytest.raises(UserError, match="ILSVRC2012_img_val.tar"):
        _list("ilsvrc2012", root, tmp_path / "work")
    assert not (tmp_path / "work/val").exists()  # nothing that looks complete


# ---------------------------------------------------------------- safe extraction


def _tar(files: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in files.items():
            _add(tar, name, data)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _special(name: str, kind: bytes, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def _evil_members(tmp_path: Path):
    """(description, member, data) of members a safe extractor must refuse."""
    outside = tmp_path / "outside"
    return [
        ("dotdot", tarfile.TarInfo("../evil"), b"x"),
        ("dotdot-deep", tarfile.TarInfo("val/../../evil"), b"x"),
        ("absolute", tarfile.TarInfo(str(outside / "evil")), b"x"),
        ("symlink", _special("link.JPEG", tarfile.SYMTYPE, str(outside)), None),
        ("hardlink", _special("hard.JPEG", tarfile.LNKTYPE, "/etc/passwd"), None),
        ("fifo", _special("pipe.JPEG", tarfile.FIFOTYPE), None),
        ("device", _special("dev.JPEG", tarfile.CHRTYPE), None),
    ]


def _evil_tar(member: tarfile.TarInfo, data: bytes | None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add(tar, "ILSVRC2012_val_00000001.JPEG", b"fine")
        if data is not None:
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        else:
            tar.addfile(member)
    return buf.getvalue()


@pytest.mark.parametrize("case", range(7), ids=["dotdot", "dotdot-deep", "absolute", "symlink",
                                                 "hardlink", "fifo", "device"])
def test_unsafe_val_tar_refused(tmp_path, case):
    desc, member, data = _evil_members(tmp_path)[case]
    name = member.name
    root = fx.make_ilsvrc2012(tmp_path / "root", True)
    (root / "ILSVRC2012_img_val.tar").write_bytes(_evil_tar(member, data))
    work = tmp_path / "deep/work"
    with pytest.raises(UserError) as e:
        _list("ilsvrc2012", root, work)
    assert "ILSVRC2012_img_val.tar" in str(e.value) and repr(name) in str(e.value)
    _assert_nothing_outside(tmp_path, work)
    assert not (work / "val").exists()


@pytest.mark.parametrize("case", [0, 2, 3], ids=["dotdot", "absolute", "symlink"])
def test_unsafe_member_in_inner_train_tar_refused(tmp_path, case):
    desc, member, data = _evil_members(tmp_path)[case]
    root = fx.make_ilsvrc2012(tmp_path / "root", True)
    (root / "ILSVRC2012_img_train.tar").write_bytes(_tar({
        "n01440764.tar": _tar({"n01440764_1.JPEG": fx.image_bytes("n01440764")}),
        "n01558993.tar": _evil_tar(member, data)}))
    work = tmp_path / "deep/work"
    with pytest.raises(UserError) as e:
        _list("ilsvrc2012", root, work)
    assert "ILSVRC2012_img_train.tar:n01558993.tar" in str(e.value)
    assert repr(member.name) in str(e.value)
    _assert_nothing_outside(tmp_path, work)


def test_unsafe_outer_member_refused(tmp_path):
    root = fx.make_ilsvrc2012(tmp_path / "root", True)
    with tarfile.open(root / "ILSVRC2012_img_train.tar", "a") as tar:
        _add(tar, "../n01558993.tar", _tar({"a.JPEG": b"x"}))
    with pytest.raises(UserError, match=r"ILSVRC2012_img_train.tar: .*'\.\./n01558993.tar'"):
        _list("ilsvrc2012", root, tmp_path / "deep/work")
    _assert_nothing_outside(tmp_path, tmp_path / "deep/work")


def _assert_nothing_outside(tmp_path: Path, work: Path) -> None:
    assert not (tmp_path / "outside").exists()
    assert not (work.parent / "evil").exists() and not (tmp_path / "evil").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "root"]
    assert [p.name for p in work.parent.iterdir()] in ([], ["work"])


def test_extract_tar_keeps_structure_and_refuses_clashes(tmp_path):
    tar = tmp_path / "a.tar.gz"
    tar.write_bytes(_tar({"top/x.bin": b"12345", "top/sub/y.bin": b""}, "w:gz"))
    dest = archive.extract_tar(tar, tmp_path / "out", tmp_path / "work", progress=False)
    assert (dest / "top/x.bin").read_bytes() == b"12345"
    assert (dest / "top/sub/y.bin").read_bytes() == b""
    dup = tmp_path / "dup.tar"
    dup.write_bytes(_tar({"a/x.JPEG": b"1", "b/x.JPEG": b"2"}))
    with pytest.raises(UserError, match="dup.tar: member 'b/x.JPEG' clashes"):
        archive.extract_tar(dup, tmp_path / "flat", tmp_path / "work", flatten=True, progress=False)


# ----------------------------------------------------------------- resumable extraction


def test_extraction_skipped_when_done(tmp_path, write_counter):
    root = fx.make_ilsvrc2012(tmp_path / "root", True)
    first = _list("ilsvrc2012", root, tmp_path / "work")
    assert len(write_counter) == 15 + 5
    write_counter.clear()
    assert _list("ilsvrc2012", root, tmp_path / "work") == first
    assert write_counter == []


def test_deleted_marker_redoes_only_that_part(tmp_path, write_counter):
    root = fx.make_ilsvrc2012(tmp_path / "root", True)
    work = tmp_path / "work"
    first = _list("ilsvrc2012", root, work)
    write_counter.clear()
    (work / ".done/ILSVRC2012_img_train.tar.parts/n01530575.done").unlink()
    assert _list("ilsvrc2012", root, work) == first
    assert write_counter == ["n01530575_10000.JPEG", "n01530575_10001.JPEG", "n01530575_10002.JPEG"]
    write_counter.clear()
    (work / ".done/ILSVRC2012_img_val.tar.done").unlink()
    assert _list("ilsvrc2012", root, work) == first
    assert len(write_counter) == 5 and all(n.startswith("ILSVRC2012_val_") for n in write_counter)


def test_killed_extraction_resumes(tmp_path, monkeypatch):
    root = fx.make_ilsvrc2012(tmp_path / "root", True)
    work = tmp_path / "work"
    real = archive._write_member
    written = []

    def dies_at_fifth_file(tar, member, target, label):
        if len(written) == 4:  # tench's 3 files and 1 of electric ray's 2 are written
            raise KeyboardInterrupt
        written.append(member.name)
        return real(tar, member, target, label)

    monkeypatch.setattr(archive, "_write_member", dies_at_fifth_file)
    with pytest.raises(KeyboardInterrupt):
        _list("ilsvrc2012", root, work)
    assert (work / "train/.n01496331.partial").is_dir()  # unfinished class left hidden
    assert not (work / "train/n01496331").exists()
    assert (work / "train/n01440764").is_dir()

    written.clear()
    monkeypatch.setattr(archive, "_write_member",
                        lambda tar, m, target, label: (written.append(m.name),
                                                       real(tar, m, target, label))[1])
    listing = _list("ilsvrc2012", root, work)
    assert len(written) == 15 - 3 + 5  # everything but tench's finished class
    assert not any(n.startswith("n01440764") for n in written)
    assert not (work / "train/.n01496331.partial").exists()
    assert len(listing.splits["train"]) == 15


def test_changed_archive_is_extracted_again(tmp_path, write_counter):
    root = fx.make_ilsvrc2012(tmp_path / "root", True)
    _list("ilsvrc2012", root, tmp_path / "work")
    write_counter.clear()
    val = {f"ILSVRC2012_val_0000000{k}.JPEG": fx.image_bytes("n01440764") + b"\0"
           for k in range(1, 6)}
    (root / "ILSVRC2012_img_val.tar").write_bytes(_tar(val))  # different size
    listing = _list("ilsvrc2012", root, tmp_path / "work")
    assert len(write_counter) == 5
    assert Path(listing.splits["val"][0].path).read_bytes().endswith(b"\0")


@pytest.mark.parametrize("tar_name", ["ILSVRC2012_img_val.tar", "ILSVRC2012_img_train.tar"])
def test_archive_replaced_at_the_same_size_is_extracted_again(tmp_path, write_counter, tar_name):
    """A byte of one image changed inside the tar (same size, a new mtime, as a copy
    leaves it): the size-only marker used to keep the old extraction."""
    root = fx.make_ilsvrc2012(tmp_path / "root", True)
    _list("ilsvrc2012", root, tmp_path / "work")
    tar = root / tar_name
    data = bytearray(tar.read_bytes())
    at = data.find(b"\xff\xd9", 2048) - 100  # inside the first image's entropy-coded data
    data[at] ^= 0x01
    st = tar.stat()
    tar.write_bytes(bytes(data))
    os.utime(tar, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert tar.stat().st_size == st.st_size
    write_counter.clear()
    listing = _list("ilsvrc2012", root, tmp_path / "work")
    assert write_counter  # extracted again
    split = "val" if "val" in tar_name else "train"
    changed = [s for s in listing.splits[split] if Path(s.path).read_bytes() not in
               {fx.image_bytes(w) for w in fx.WNIDS}]
    assert len(changed) == 1  # the extracted copy holds the new byte


def test_extracted_folder_deleted_by_user_is_redone(tmp_path, write_counter):
    root = fx.make_cifar10(tmp_path / "src", as_tar=True)
    work = tmp_path / "work"
    _list("cifar10", root, work)
    shutil.rmtree(work / "cifar-10-python")
    write_counter.clear()
    assert len(_list("cifar10", root, work).splits["train"]) == 50
    assert len(write_counter) == 7  # 5 data batches, test batch, batches.meta


def test_builders_are_fast(tmp_path):
    import time

    for i, build in enumerate([lambda d: fx.make_ilsvrc2012(d, True),
                               lambda d: fx.make_ilsvrc2012(d, False),
                               lambda d: fx.make_ilsvrc2010(d, True, patch_images=True),
                               lambda d: fx.make_ilsvrc2010(d, False),
                               fx.make_imagefolder,
                               lambda d: fx.make_cifar10(d, True)]):
        start = time.perf_counter()
        build(tmp_path / str(i))
        assert time.perf_counter() - start < 2.0


def test_every_configurable_source_but_synthetic_has_a_lister(tmp_path):
    """config.SOURCES is the one list of sources: data.source accepts exactly those, and every one
    that reads files is listed here (fall2011 through harness/prepare/fall2011.py)."""
    from harness import config as C
    from harness.prepare import sources

    assert set(sources._LISTERS) | {"fall2011"} == set(C.SOURCES) - {"synthetic"}
    with pytest.raises(UserError, match="unknown data source 'synthetic'"):
        list_source("synthetic", tmp_path, tmp_path)


@pytest.mark.parametrize("member", [_special("link.JPEG", tarfile.SYMTYPE, "ILSVRC2012_val_00000001.JPEG"),
                                    tarfile.TarInfo("/abs/evil.JPEG")], ids=["inner-link", "absolute"])
def test_what_the_data_filter_lets_through_is_still_refused(tmp_path, member):
    """tarfile's data filter passes a link that stays inside the folder, and rewrites an absolute
    name to a relative one; the extractor refuses both (a listing takes files, under their names)."""
    tarfile.data_filter(member, str(tmp_path / "dest"))  # the filter alone lets it through
    tar = tmp_path / "a.tar"
    tar.write_bytes(_evil_tar(member, None if member.issym() else b"x"))
    with pytest.raises(UserError, match=f"a.tar: refusing .*{member.name!r}"):
        archive.extract_tar(tar, tmp_path / "out", tmp_path / "work", progress=False)
    assert not (tmp_path / "out").exists()
