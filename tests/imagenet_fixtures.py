"""Small dataset layouts built from real ImageNet JPEGs, for source and pipeline tests.

Every builder writes into `dst` (created if needed), takes well under a second, and
produces the layout as distributed (archives) or as users usually extract it (folders).
The constants below are the ground truth the tests check against; the builders only
use them, so a test comparing a listing with these constants checks the code under test,
not itself.

Images come from the 200-JPEG ImageNet sample (one per class), found at
$IMAGENET_SAMPLE_DIR or shared/data/imagenet-sample beside the repository; `sample_dir()`
skips the calling test when it is missing.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# Six classes; n02692877 (airship) and n04254680 (soccer ball) are greyscale JPEGs.
WNIDS = ("n01440764", "n01496331", "n01530575", "n01558993", "n02692877", "n04254680")
WORDS = {
    "n01440764": "tench, Tinca tinca",
    "n01496331": "electric ray, crampfish, numbfish, torpedo",
    "n01530575": "brambling, Fringilla montifringilla",
    "n01558993": "robin, American robin, Turdus migratorius",
    "n02692877": "airship, dirigible",
    "n04254680": "soccer ball",
}
# Official ids, deliberately not in wnid order: a listing must take them from the devkit.
ILSVRC_IDS = {"n01558993": 1, "n01496331": 2, "n04254680": 3, "n01440764": 4,
              "n02692877": 5, "n01530575": 6}
# Non-leaf synsets (num_children > 0): present in meta.mat, never a class.
NON_LEAVES = ((7, "n00001740", "entity", (8,)), (8, "n00021939", "artifact, artefact", (5, 3)))
# Training copies per class (alternating 3, 2 in wnid order): 15 images in all.
TRAIN_COPIES = {wnid: 3 if i % 2 == 0 else 2 for i, wnid in enumerate(WNIDS)}
# Validation image k (1-based, ILSVRC20xx_val_0000000k.JPEG) shows the class at k-1.
VAL_WNIDS = ("n04254680", "n01440764", "n02692877", "n01558993", "n01440764")
TEST_WNIDS = ("n01530575", "n01496331", "n04254680", "n01558993")  # ILSVRC-2010 only

CIFAR_LABEL_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                     "ship", "truck")
CIFAR_PER_BATCH = 10  # rows per batch file (the real files have 10000)


def sample_dir() -> Path:
    """Folder of the real ImageNet sample JPEGs; skips the test when it is absent."""
    candidates = [os.environ.get("IMAGENET_SAMPLE_DIR"),
                  REPO.parent / "shared" / "data" / "imagenet-sample",
                  "/work/shared/data/imagenet-sample"]
    for c in candidates:
        if c and Path(c, f"{WNIDS[0]}_tench.JPEG").is_file():
            return Path(c)
    import pytest

    pytest.skip("ImageNet sample JPEGs not found (set IMAGENET_SAMPLE_DIR)")


def image_bytes(wnid: str) -> bytes:
    """The real JPEG of class `wnid` from the sample folder."""
    (path,) = sample_dir().glob(f"{wnid}_*.JPEG")
    return path.read_bytes()


def train_name(wnid: str, copy: int) -> str:
    return f"{wnid}_{10000 + copy}.JPEG"  # real names look like n01440764_10026.JPEG


def eval_name(year: int, split: str, k: int) -> str:
    return f"ILSVRC{year}_{split}_{k:08d}.JPEG"


# ------------------------------------------------------------------------------ writing


def _tar_bytes(files: dict[str, bytes], mode: str = "w", dirs: tuple[str, ...] = ()) -> bytes:
    """A tar (or tar.gz with mode "w:gz") holding `files`, in the given order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_300_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def meta_mat(id_field: str) -> bytes:
    """meta.mat in the devkit's layout: a `synsets` struct array, leaves and non-leaves
    interleaved and not in id order."""
    import scipy.io

    fields = [id_field, "WNID", "words", "gloss", "num_children", "children",
              "wordnet_height", "num_train_images"]
    rows = [(ILSVRC_IDS[w], w, WORDS[w], f"gloss of {w}", 0, np.zeros((1, 0)), 0,
             TRAIN_COPIES[w]) for w in WNIDS]
    for i, (sid, wnid, words, children) in enumerate(NON_LEAVES):
        rows.insert(2 + 2 * i, (sid, wnid, words, f"gloss of {wnid}", len(children),
                                np.array([children], dtype=float), 1 + i, 0))
    synsets = np.empty((len(rows), 1), dtype=[(f, "O") for f in fields])
    for r, row in enumerate(rows):
        for f, value in zip(fields, row):
            synsets[r, 0][f] = value
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"synsets": synsets})
    return buf.getvalue()


def ground_truth(wnids: tuple[str, ...]) -> bytes:
    return "".join(f"{ILSVRC_IDS[w]}\n" for w in wnids).encode()


def _train_files(copies: int | None = None) -> dict[str, dict[str, bytes]]:
    """wnid -> {file name: JPEG bytes}; `copies` per class instead of TRAIN_COPIES."""
    return {w: {train_name(w, c): image_bytes(w) for c in range(copies or TRAIN_COPIES[w])} for w in WNIDS}


def _eval_files(year: int, split: str, wnids: tuple[str, ...]) -> dict[str, bytes]:
    return {eval_name(year, split, k): image_bytes(w) for k, w in enumerate(wnids, 1)}


def _write_folder(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        _write(folder / name, data)


def _write_train(dst: Path, archive: str | None, copies: int | None = None) -> None:
    train = _train_files(copies)
    if archive is None:
        for wnid, files in train.items():
            _write_folder(dst / "train" / wnid, files)
        return
    inner = {f"{wnid}.tar": _tar_bytes(files) for wnid, files in train.items()}
    _write(dst / archive, _tar_bytes(inner))


# ----------------------------------------------------------------------------- builders


def make_ilsvrc2012(dst: Path, archives: bool, train_copies: int | None = None) -> Path:
    """ILSVRC-2012 as distributed (archives=True: ILSVRC2012_img_train.tar of per-class tars,
    flat ILSVRC2012_img_val.tar, ILSVRC2012_devkit_t12.tar.gz) or extracted (train/<wnid>/,
    flat val/, ILSVRC2012_devkit_t12/data/). Returns the root folder. `train_copies`: training
    images per class instead of TRAIN_COPIES (e.g. 22: 132 images, one paper batch of 128)."""
    dst = Path(dst)
    devkit = {"ILSVRC2012_devkit_t12/data/meta.mat": meta_mat("ILSVRC2012_ID"),
              "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt":
                  ground_truth(VAL_WNIDS),
              "ILSVRC2012_devkit_t12/COPYING": b"devkit licence\n"}
    val = _eval_files(2012, "val", VAL_WNIDS)
    if archives:
        _write_train(dst, "ILSVRC2012_img_train.tar", train_copies)
        _write(dst / "ILSVRC2012_img_val.tar", _tar_bytes(val))
        folders = ("ILSVRC2012_devkit_t12", "ILSVRC2012_devkit_t12/data")
        _write(dst / "ILSVRC2012_devkit_t12.tar.gz", _tar_bytes(devkit, "w:gz", dirs=folders))
    else:
        _write_train(dst, None, train_copies)
        _write_folder(dst / "val", val)
        _write_folder(dst, devkit)
    return dst


def make_ilsvrc2010(dst: Path, archives: bool, patch_images: bool = False) -> Path:
    """ILSVRC-2010 in the layouts described by fuel's converter and OpenCV's loader.

    archives=True: ILSVRC2010_images_{train,val,test}.tar (val members inside a val/
    folder, test members flat), ILSVRC2010_devkit-1.0.tar.gz (devkit-1.0/data/meta.mat and
    the validation ground truth), ILSVRC2010_test_ground_truth.txt in root.
    archives=False: train/<wnid>/, flat val/ and test/, devkit-1.0/data/ holding meta.mat and
    both ground-truth files.
    patch_images=True adds patch_images.tar replacing val image 2 and the first training
    copy of n01530575 (each by the soccer-ball JPEG).
    """
    dst = Path(dst)
    val = _eval_files(2010, "val", VAL_WNIDS)
    test = _eval_files(2010, "test", TEST_WNIDS)
    devkit = {"devkit-1.0/data/meta.mat": meta_mat("ILSVRC2010_ID"),
              "devkit-1.0/data/ILSVRC2010_validation_ground_truth.txt": ground_truth(VAL_WNIDS)}
    test_gt = ground_truth(TEST_WNIDS)
    if archives:
        _write_train(dst, "ILSVRC2010_images_train.tar")
        _write(dst / "ILSVRC2010_images_val.tar",
               _tar_bytes({f"val/{k}": v for k, v in val.items()}, dirs=("val",)))
        _write(dst / "ILSVRC2010_images_test.tar", _tar_bytes(test))
        _write(dst / "ILSVRC2010_devkit-1.0.tar.gz", _tar_bytes(devkit, "w:gz"))
        _write(dst / "ILSVRC2010_test_ground_truth.txt", test_gt)
    else:
        _write_train(dst, None)
        _write_folder(dst / "val", val)
        _write_folder(dst / "test", test)
        _write_folder(dst, devkit)
        _write(dst / "devkit-1.0/data/ILSVRC2010_test_ground_truth.txt", test_gt)
    if patch_images:
        soccer = image_bytes("n04254680")
        _write(dst / "patch_images.tar", _tar_bytes({
            f"patch_images/val/{eval_name(2010, 'val', 2)}": soccer,
            f"patch_images/train/{train_name('n01530575', 0)}": soccer}))
    return dst


def make_imagefolder(dst: Path) -> Path:
    """Imagenette-style root/train/<wnid>/ and root/val/<wnid>/ with mixed extensions:
    the training copies of n01496331 are .jpg (lower case), its validation image a .png;
    one validation image per class. Returns the root folder."""
    from PIL import Image

    dst = Path(dst)
    for wnid, files in _train_files().items():
        for name, data in files.items():
            if wnid == "n01496331":
                name = name.replace(".JPEG", ".jpg")
            _write(dst / "train" / wnid / name, data)
    for wnid in WNIDS:
        data = image_bytes(wnid)
        if wnid == "n01496331":
            buf = io.BytesIO()
            Image.open(io.BytesIO(data)).save(buf, format="PNG")
            _write(dst / "val" / wnid / f"{wnid}_val.png", buf.getvalue())
        else:
            _write(dst / "val" / wnid / f"{wnid}_val.JPEG", data)
    return dst


def cifar_label(batch: int, row: int) -> int:
    """Label of `row` in data_batch_<batch> (batch 0 = test_batch)."""
    return (row + batch) % 10


def cifar_batch(batch: int, seed: int = 0) -> dict:
    """One batch dict in the distributed format: b"data" uint8 [N, 3072] channel-planar
    (1024 R, 1024 G, 1024 B), b"labels" list of int, plus the other keys of the originals."""
    rng = np.random.default_rng([seed, batch])
    name = "test_batch" if batch == 0 else f"data_batch_{batch}"
    return {
        b"batch_label": f"{name} of 1".encode(),
        b"labels": [cifar_label(batch, r) for r in range(CIFAR_PER_BATCH)],
        b"data": rng.integers(0, 256, (CIFAR_PER_BATCH, 3072), dtype=np.uint8),
        b"filenames": [f"img_{batch}_{r}.png".encode() for r in range(CIFAR_PER_BATCH)],
    }


def _cifar_files() -> dict[str, bytes]:
    files = {f"data_batch_{b}": pickle.dumps(cifar_batch(b), protocol=2) for b in range(1, 6)}
    files["test_batch"] = pickle.dumps(cifar_batch(0), protocol=2)
    files["batches.meta"] = pickle.dumps(
        {b"num_cases_per_batch": CIFAR_PER_BATCH, b"num_vis": 3072,
         b"label_names": [n.encode() for n in CIFAR_LABEL_NAMES]}, protocol=2)
    return files


def make_cifar10(dst: Path, as_tar: bool) -> Path:
    """CIFAR-10 python version: dst/cifar-10-batches-py/ (returned) or, with as_tar,
    dst/cifar-10-python.tar.gz (returned). 10 rows per batch: 50 train, 10 val."""
    dst = Path(dst)
    files = {f"cifar-10-batches-py/{name}": data for name, data in _cifar_files().items()}
    if as_tar:
        return _write(dst / "cifar-10-python.tar.gz",
                      _tar_bytes(files, "w:gz", dirs=("cifar-10-batches-py",)))
    _write_folder(dst, files)
    return dst / "cifar-10-batches-py"


# ------------------------------------------------------------------- ImageNet Fall 2011 (21k)

# Synsets of the tiny 21k-style layout: the first four are also ILSVRC-2012 classes above
# (overlap), the rest are other classes of the sample. n01530575 is an extracted folder, the
# others per-synset tars, as image-net.org distributes the release.
FALL2011_WNIDS = ("n01440764", "n01496331", "n01530575", "n01558993",
                  "n01601694", "n01629819", "n01641577", "n01667114")
FALL2011_FOLDER = "n01530575"
FALL2011_VARIANTS = 4  # distinct images per synset (new bytes and pixels: flips, re-encoding)
# Duplicates of ILSVRC-2012 val images (VAL_WNIDS above), which must be excluded:
# the same file bytes as val image 2 (a tench), and val image 4 (a robin) re-saved as PNG (other
# bytes, the same decoded pixels).
FALL2011_BYTE_DUP = ("n01440764", "n01440764_dupval.JPEG", 2)
FALL2011_PIXEL_DUP = ("n01558993", "n01558993_dupval.png", 4)


def _variants(wnid: str) -> dict[str, bytes]:
    from PIL import Image

    im = Image.open(io.BytesIO(image_bytes(wnid))).convert("RGB")
    ops = (lambda x: x, lambda x: x.transpose(Image.FLIP_LEFT_RIGHT),
           lambda x: x.transpose(Image.FLIP_TOP_BOTTOM), lambda x: x.transpose(Image.ROTATE_180))
    out = {}
    for i, op in enumerate(ops[:FALL2011_VARIANTS]):
        buf = io.BytesIO()
        op(im).save(buf, format="JPEG", quality=83)
        out[f"{wnid}_{i + 1}.JPEG"] = buf.getvalue()
    return out


def fall2011_files() -> dict[str, dict[str, bytes]]:
    """wnid -> {file name: bytes} of the tiny Fall-2011 layout, duplicates included."""
    from PIL import Image

    files = {w: _variants(w) for w in FALL2011_WNIDS}
    wnid, name, k = FALL2011_BYTE_DUP
    files[wnid][name] = image_bytes(VAL_WNIDS[k - 1])
    wnid, name, k = FALL2011_PIXEL_DUP
    buf = io.BytesIO()
    Image.open(io.BytesIO(image_bytes(VAL_WNIDS[k - 1]))).save(buf, format="PNG")
    files[wnid][name] = buf.getvalue()
    return files


def make_fall2011(dst: Path) -> Path:
    """The tiny 21k-style root: <wnid>.tar per synset, FALL2011_FOLDER as an extracted <wnid>/."""
    dst = Path(dst)
    for wnid, files in fall2011_files().items():
        if wnid == FALL2011_FOLDER:
            _write_folder(dst / wnid, files)
        else:
            _write(dst / f"{wnid}.tar", _tar_bytes(files))
    return dst
