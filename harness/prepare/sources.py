"""Data sources: turn a dataset as distributed (archives or folders) into a sample listing.

`list_source(source, root, work)` returns a `Listing`: class names, and per split the
samples (stable key, label, absolute path) in a deterministic order, plus the files that
were found but cannot be used (with the reason). Decoding images is not done here
(harness/prepare/writer.py does it); archives are extracted safely and resumably into `work`
(harness/prepare/archive.py). Nothing is downloaded. Every missing or malformed input raises a
UserError that says what was expected and where.

Sources
-------
imagefolder  root/train/<class>/... and root/val/<class>/... (Imagenette layout), searched
             recursively inside class folders. Classes: sorted train folder names.
cifar10      root = the folder cifar-10-batches-py, its parent, cifar-10-python.tar.gz, or a
             folder holding that archive. train = data_batch_1..5, val = test_batch.
ilsvrc2012   archives as distributed, or folders extracted from them (see `_ILSVRC2012`).
ilsvrc2010   same, with a test split whose labels are public (see `_ILSVRC2010`).
fall2011     ImageNet Fall 2011 / 21k: per-synset tars or <wnid>/ folders, ILSVRC-2012 val
             duplicates excluded (harness/prepare/fall2011.py).

ILSVRC layouts accepted in root, per part (an extracted folder wins over its archive, so
nothing is copied when the user has extracted already):
  devkit  <devkit>.tar.gz (read in memory, not extracted) or <devkit folder>/data/meta.mat
  train   <train>.tar (a tar of <wnid>.tar; extracted per class into work/train/<wnid>/)
          or train/<wnid>/<images>
  val     <val>.tar (extracted into work/val/; members may sit in a folder) or val/ holding
          either all images flat (labelled by the ground-truth file) or <wnid>/ folders
          (labelled by folder, as torchvision leaves them; no ground truth needed)
  test    (2010) as val
  ground truth  in the devkit's data/ folder, else in root
Keys do not depend on the form: "train/<wnid>/<file>", "val/<file>" or "val/<wnid>/<file>".

File rules (all sources that list files; harness/prepare/scan.py): names starting with "." are ignored (OS
droppings such as .DS_Store, and this module's own partial folders); image files are
recognised by extension, case-insensitively: .jpg .jpeg .png .bmp .webp. Any other file,
a zero-byte file, a broken link or a non-regular file is not listed as a sample but
reported in `Listing.problems`, so the preparation manifest can say what was skipped and
why. A file with an image extension whose content is not a decodable image is for the
decoder to find.

ILSVRC labels come from the devkit: the 1000 leaf synsets of meta.mat (num_children == 0),
label = ILSVRC20xx_ID - 1, read with scipy.io.loadmat(squeeze_me=True) as torchvision does
(pytorch/vision torchvision/datasets/imagenet.py, parse_devkit_archive). Validation (and
2010 test) labels: the ground-truth file has one 1-based ILSVRC id per line, line i for
image i in sorted file-name order (same source, parse_val_archive).
"""

from __future__ import annotations

import io
import os
import pickle
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from harness.config import SOURCES
from harness.errors import UserError
from harness.prepare import archive
from harness.prepare.scan import IMAGE_EXTENSIONS, Listing, Problems, Sample, empty_classes, scan_tree, unusable, visible

FILE_SOURCES = tuple(s for s in SOURCES if s != "synthetic")  # synthetic data is made, not listed

__all__ = ["IMAGE_EXTENSIONS", "Listing", "Sample", "list_source", "load_cifar_batch"]



def list_source(source: str, root: str | Path, work: Path, progress: bool = True,
                data=None) -> Listing:
    """List the samples of `source` found at `root`; archives are extracted under `work`.

    `data`: the DataConfig, needed by fall2011 (its split and exclusion switches)."""
    if source not in FILE_SOURCES:
        raise UserError(f"unknown data source {source!r}: expected one of {', '.join(FILE_SOURCES)}")
    root = Path(os.path.abspath(os.path.expanduser(str(root))))
    if not root.exists():
        raise UserError(f"{source}: data root {root} does not exist")
    if source != "cifar10" and not root.is_dir():  # only CIFAR accepts an archive as root
        raise UserError(f"{source}: data root {root} is not a folder")
    work = Path(os.path.abspath(str(work)))
    if source == "fall2011":
        from harness.config import DataConfig
        from harness.prepare import fall2011  # imported lazily: PIL and the hashing pool

        listing = fall2011.list_fall2011(root, work, progress, data or DataConfig(source="fall2011"))
    else:
        listing = _LISTERS[source](root, work, progress)
    for split, samples in listing.splits.items():
        if not samples:
            raise UserError(f"{source}: split {split!r} has no usable samples in {root}"
                            + _problem_hint(listing.problems))
    return listing


def _problem_hint(problems) -> str:
    if not problems:
        return ""
    key, reason = problems[0]
    return f" ({len(problems)} unusable files, e.g. {key}: {reason})"


def _class_folders(split_dir: Path, key_prefix: str, problems: Problems) -> list[str]:
    """Sub-folder names of a split folder; stray files there are reported, not listed."""
    names = []
    for entry in visible(split_dir):
        if entry.is_dir():  # follows links: symlinked class folders are common
            _check_class_name(entry.name, split_dir)
            names.append(entry.name)
        else:
            problems.add(f"{key_prefix}/{entry.name}", "not inside a class folder", entry.path)
    return names


def _check_class_name(name: str, split_dir: Path) -> None:
    """A class name is printed in tables, logs and line-based files: a newline or another control
    character in it would split or garble them, so such a folder is refused, not escaped."""
    bad = [c for c in name if unicodedata.category(c) == "Cc"]
    if bad:
        raise UserError(f"class folder {name!r} in {split_dir} has a control character "
                        f"({bad[0]!r}) in its name: rename the folder (class names end up in the "
                        "manifest, the report and the logs)")


def _list_class_tree(split_dir: Path, split: str, folders: list[str], index: dict[str, int],
                     problems: Problems, desc: str, progress: bool) -> tuple[Sample, ...]:
    samples = []
    for name in tqdm(folders, desc=desc, unit="class", disable=not progress):
        for key, path in scan_tree(split_dir / name, f"{split}/{name}", problems):
            samples.append(Sample(key, index[name], path))
    return tuple(sorted(samples, key=lambda s: s.key))


def _require_dir(path: Path, source: str, what: str) -> Path:
    if not path.is_dir():
        raise UserError(f"{source}: {what} not found: expected the folder {path}")
    return path


# ------------------------------------------------------------------------ imagefolder


def _list_imagefolder(root: Path, work: Path, progress: bool) -> Listing:
    expect = "root/train/<class>/<images> and root/val/<class>/<images>"
    train_dir = _require_dir(root / "train", "imagefolder", f"training images ({expect})")
    val_dir = _require_dir(root / "val", "imagefolder", f"validation images ({expect})")
    problems = Problems()
    classes = _class_folders(train_dir, "train", problems)
    if not classes:
        raise UserError(f"imagefolder: no class folders in {train_dir}: expected {expect}")
    val_classes = _class_folders(val_dir, "val", problems)
    unknown = sorted(set(val_classes) - set(classes))
    if unknown:
        raise UserError(f"imagefolder: validation class folder(s) {', '.join(unknown)} in "
                        f"{val_dir} have no training folder in {train_dir}")
    index = {name: i for i, name in enumerate(classes)}
    splits = {
        "train": _list_class_tree(train_dir, "train", classes, index, problems,
                                  "list imagefolder train", progress),
        "val": _list_class_tree(val_dir, "val", val_classes, index, problems,
                                "list imagefolder val", progress),
    }
    return Listing("imagefolder", tuple(classes), tuple(classes), splits, problems.frozen(),
                   (str(train_dir), str(val_dir)), problem_paths=problems.paths,
                   empty_classes=empty_classes(splits["train"], classes))


# ---------------------------------------------------------------------------- CIFAR-10

CIFAR_DIR = "cifar-10-batches-py"
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR_SPLITS = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "val": ("test_batch",)}
_CIFAR_EXPECT = (f"the folder {CIFAR_DIR} (data_batch_1..5, test_batch, batches.meta), "
                 f"its parent, or {CIFAR_ARCHIVE}")


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that can only rebuild numpy arrays: a batch file cannot run code."""

    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"),
                ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                ("_codecs", "encode")}  # how protocol-2 pickles written by Python 3 store bytes

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        # numpy 2 renamed numpy.core to numpy._core; the original batches name the old one.
        return super().find_class(module.replace("numpy.core.", "numpy._core."), name)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _CifarUnpickler(f, encoding="bytes").load()  # written by Python 2
    except OSError as e:
        raise UserError(f"cifar10: cannot read {path} ({e})") from None
    except Exception as e:  # junk bytes make the unpickler raise almost anything
        raise UserError(f"cifar10: {path} is not a valid CIFAR-10 pickle "
                        f"({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise UserError(f"cifar10: {path} holds a {type(obj).__name__}, expected a dict")
    return obj


def _field(batch: dict, name: str, path: Path):
    """A CIFAR dict entry; keys are bytes in the distributed (Python 2) files."""
    for key in (name.encode(), name):
        if key in batch:
            return batch[key]
    raise UserError(f"cifar10: {path} has no {name!r} entry")


def load_cifar_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, 32, 32, 3] RGB and labels int64 [N] of one CIFAR-10 batch file."""
    path = Path(path)
    batch = _unpickle(path)
    data, labels = _field(batch, "data", path), _field(batch, "labels", path)
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == 3 * 32 * 32):
        raise UserError(f"cifar10: {path}: 'data' should be uint8 [N, 3072], got "
                        f"{getattr(data, 'dtype', type(data).__name__)} "
                        f"{getattr(data, 'shape', '')}")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (data.shape[0],):
        raise UserError(f"cifar10: {path}: {labels.size} labels for {data.shape[0]} images")
    # Rows are channel-planar (1024 R, then G, then B values, each row-major 32x32).
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _cifar_label_names(folder: Path) -> tuple[str, ...]:
    path = folder / "batches.meta"
    if not path.is_file():
        raise UserError(f"cifar10: missing {path}: expected {_CIFAR_EXPECT}")
    names = _field(_unpickle(path), "label_names", path)
    if not names:
        raise UserError(f"cifar10: {path} has an empty 'label_names' list")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def _cifar_folder(root: Path, work: Path, progress: bool) -> Path:
    if root.is_file():
        tar = root
    elif (root / "data_batch_1").exists() or (root / "batches.meta").exists():
        return root
    elif (root / CIFAR_DIR).is_dir():
        return root / CIFAR_DIR
    elif (root / CIFAR_ARCHIVE).is_file():
        tar = root / CIFAR_ARCHIVE
    else:
        raise UserError(f"cifar10: no CIFAR-10 data in {root}: expected {_CIFAR_EXPECT}")
    dest = archive.extract_tar(tar, work / "cifar-10-python", work, progress=progress)
    if not (dest / CIFAR_DIR).is_dir():
        raise UserError(f"cifar10: {tar} has no {CIFAR_DIR}/ folder inside")
    return dest / CIFAR_DIR


def _list_cifar10(root: Path, work: Path, progress: bool) -> Listing:
    folder = _cifar_folder(root, work, progress)
    classes = _cifar_label_names(folder)
    splits = {}
    for split, batches in CIFAR_SPLITS.items():
        samples = []
        for name in tqdm(batches, desc=f"list cifar10 {split}", unit="batch", disable=not progress):
            samples.extend(_cifar_batch_samples(folder / name, len(classes)))
        splits[split] = tuple(samples)  # batch order, then row order: the distributed order
    return Listing("cifar10", classes, classes, splits, (), (str(folder),))


def _cifar_batch_samples(path: Path, n_classes: int) -> list[Sample]:
    if not path.is_file():
        raise UserError(f"cifar10: missing {path}: expected {_CIFAR_EXPECT}")
    _, labels = load_cifar_batch(path)
    bad = np.flatnonzero((labels < 0) | (labels >= n_classes))
    if bad.size:
        raise UserError(f"cifar10: {path} row {bad[0]} has label {labels[bad[0]]}, "
                        f"outside 0..{n_classes - 1} (batches.meta names {n_classes} classes)")
    return [Sample(f"cifar10/{path.name}:{row}", int(label), str(path), row)
            for row, label in enumerate(labels)]


# ------------------------------------------------------------------------------ ILSVRC


@dataclass(frozen=True)
class _Ilsvrc:
    """Where one ILSVRC year keeps its files (names as distributed)."""

    name: str
    id_field: str  # meta.mat synsets field holding the official class id
    devkit_archive: str
    devkit_dirs: tuple[str, ...]  # names of an extracted devkit folder in root
    train_tar: str
    eval_tars: dict[str, str]  # split -> image tar
    ground_truth: dict[str, str]  # split -> ground-truth file name (devkit data/ or root)
    patch_tar: str | None = None  # ILSVRC-2010 replacement images, optional


# pytorch/vision torchvision/datasets/imagenet.py (ARCHIVE_META, parse_devkit_archive):
# ILSVRC2012_img_train.tar (a tar of <wnid>.tar), ILSVRC2012_img_val.tar (flat JPEGs),
# ILSVRC2012_devkit_t12.tar.gz holding ILSVRC2012_devkit_t12/data/meta.mat and
# .../data/ILSVRC2012_validation_ground_truth.txt.
_ILSVRC2012 = _Ilsvrc(
    name="ilsvrc2012", id_field="ILSVRC2012_ID",
    devkit_archive="ILSVRC2012_devkit_t12.tar.gz", devkit_dirs=("ILSVRC2012_devkit_t12",),
    train_tar="ILSVRC2012_img_train.tar", eval_tars={"val": "ILSVRC2012_img_val.tar"},
    ground_truth={"val": "ILSVRC2012_validation_ground_truth.txt"})

# ILSVRC-2010. Evidence (no official layout document was available):
# - mila-iqia/fuel fuel/converters/ilsvrc2010.py: archives ILSVRC2010_images_{train,val,test}.tar
#   (train = tar of <wnid>.tar; val/test members taken by base name after sorting the member
#   names, so they may sit in a folder inside the tar), devkit ILSVRC2010_devkit-1.0.tar.gz
#   with devkit-1.0/data/meta.mat (synsets field ILSVRC2010_ID) and
#   devkit-1.0/data/ILSVRC2010_validation_ground_truth.txt, the test ground truth
#   ILSVRC2010_test_ground_truth.txt as a separate download beside the archives, and
#   patch_images.tar: replacement JPEGs for blank images, members .../<train|val|test>/<name>.
#   It also notes that a few images in the archives are gzip-compressed JPEGs (a decoding
#   matter for harness/prepare/writer.py).
# - opencv/opencv_contrib modules/datasets/src/or_imagenet.cpp: extracted layout
#   train/<wnid>/..., val/ILSVRC2010_val_%08d.JPEG, test/ILSVRC2010_test_%08d.JPEG, with
#   both ground-truth files in the root folder.
# Accepted variants therefore (the exact 2010 layout could not be checked against the real
# files): devkit as the tar.gz, or extracted in root as devkit-1.0/data/meta.mat or
# ILSVRC2010_devkit-1.0/data/meta.mat; each ground-truth file in the devkit's data/ folder
# or in root; val/test tars with flat members or members inside folders (base names are
# kept); extracted val/test folders flat or per-wnid; patch_images.tar optional.
_ILSVRC2010 = _Ilsvrc(
    name="ilsvrc2010", id_field="ILSVRC2010_ID",
    devkit_archive="ILSVRC2010_devkit-1.0.tar.gz",
    devkit_dirs=("devkit-1.0", "ILSVRC2010_devkit-1.0"),
    train_tar="ILSVRC2010_images_train.tar",
    eval_tars={"val": "ILSVRC2010_images_val.tar", "test": "ILSVRC2010_images_test.tar"},
    ground_truth={"val": "ILSVRC2010_validation_ground_truth.txt",
                  "test": "ILSVRC2010_test_ground_truth.txt"},
    patch_tar="patch_images.tar")


@dataclass(frozen=True)
class _Devkit:
    wnids: tuple[str, ...]  # index = official id - 1
    words: tuple[str, ...]
    ground_truth: dict[str, tuple[str, str]]  # split -> (where, text)
    where: str


def _list_ilsvrc(spec: _Ilsvrc, root: Path, work: Path, progress: bool) -> Listing:
    devkit = _load_devkit(spec, root)
    index = {wnid: i for i, wnid in enumerate(devkit.wnids)}
    problems = Problems()
    inputs = [devkit.where]
    train_dir = _split_dir(spec, "train", root, work, progress)
    splits = {"train": _list_ilsvrc_train(spec, train_dir, index, problems, progress)}
    inputs.append(str(train_dir))
    for split in spec.eval_tars:
        split_dir = _split_dir(spec, split, root, work, progress)
        splits[split] = _list_ilsvrc_eval(spec, split, split_dir, devkit, index, problems)
        inputs.append(str(split_dir))
    if spec.patch_tar and (root / spec.patch_tar).is_file():
        splits = _apply_patches(root / spec.patch_tar, work, splits, problems, progress)
        inputs.append(str(root / spec.patch_tar))
    return Listing(spec.name, devkit.wnids, devkit.words, splits, problems.frozen(),
                   tuple(inputs), problem_paths=problems.paths,
                   empty_classes=empty_classes(splits["train"], devkit.wnids))


def _split_dir(spec: _Ilsvrc, split: str, root: Path, work: Path, progress: bool) -> Path:
    """An extracted split folder in root wins (no copy needed); else the archive is
    extracted into work/<split>."""
    if (root / split).is_dir():
        return root / split
    tar_name = spec.train_tar if split == "train" else spec.eval_tars[split]
    tar = root / tar_name
    if not tar.is_file():
        layout = "<wnid>/<images>" if split == "train" else "<images> or <wnid>/<images>"
        raise UserError(f"{spec.name}: no {split} images in {root}: expected {tar_name} or a "
                        f"{split}/{layout} folder")
    if split == "train":
        return archive.extract_nested_tars(tar, work / split, work, progress=progress)
    return archive.extract_tar(tar, work / split, work, flatten=True, progress=progress)


def _list_ilsvrc_train(spec, train_dir, index, problems, progress) -> tuple[Sample, ...]:
    folders = _class_folders(train_dir, "train", problems)
    unknown = [f for f in folders if f not in index]
    if unknown:
        raise UserError(f"{spec.name}: training class folder {train_dir / unknown[0]} is not a "
                        f"class of the devkit ({len(unknown)} such folders): expected folders "
                        "named by the wnids of the devkit's 1000 leaf synsets")
    return _list_class_tree(train_dir, "train", folders, index, problems,
                            f"list {spec.name} train", progress)


def _list_ilsvrc_eval(spec, split, split_dir, devkit, index, problems) -> tuple[Sample, ...]:
    entries = visible(split_dir)
    folders = [e.name for e in entries if e.is_dir()]
    files = [e.name for e in entries if not e.is_dir()]
    if folders and files:
        raise UserError(f"{spec.name}: {split_dir} mixes files and folders: expected either all "
                        f"{split} images flat (labels from the ground-truth file) or "
                        "<wnid>/ folders")
    if folders:  # already sorted into <wnid>/ folders (torchvision's layout): labels from names
        unknown = [f for f in folders if f not in index]
        if unknown:
            raise UserError(f"{spec.name}: {split} class folder {split_dir / unknown[0]} is not a "
                            "class of the devkit")
        return _list_class_tree(split_dir, split, folders, index, problems,
                                f"list {spec.name} {split}", False)
    return _list_flat(spec, split, split_dir, files, devkit, problems)


def _list_flat(spec, split, split_dir, files, devkit, problems) -> tuple[Sample, ...]:
    images = sorted(f for f in files if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS)
    for name in sorted(set(files) - set(images)):
        problems.add(f"{split}/{name}", unusable(str(split_dir / name), name), split_dir / name)
    if split not in devkit.ground_truth:
        raise UserError(f"{spec.name}: no {split} ground truth found: expected "
                        f"{spec.ground_truth[split]} in the devkit's data/ folder or in "
                        f"{split_dir.parent}")
    where, text = devkit.ground_truth[split]
    ids = _parse_ground_truth(text, where, len(devkit.wnids))
    if len(ids) != len(images):
        raise UserError(f"{spec.name}: {where} has {len(ids)} labels but {split_dir} has "
                        f"{len(images)} images: expected one line per image, in sorted "
                        "file-name order")
    samples = []
    for name, class_id in zip(images, ids):  # line i labels the i-th image in name order
        path, key = str(split_dir / name), f"{split}/{name}"
        reason = unusable(path, name)
        if reason:
            problems.add(key, reason, path)
        else:
            samples.append(Sample(key, class_id - 1, path))
    return tuple(samples)


def _parse_ground_truth(text: str, where: str, n_classes: int) -> list[int]:
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()  # a trailing newline or blank line is harmless; inner blanks are not
    ids = []
    for lineno, line in enumerate(lines, 1):
        try:
            value = int(line.strip())
        except ValueError:
            raise UserError(f"{where}: line {lineno} is {line.strip()!r}: expected one class id "
                            f"(1..{n_classes}) per line") from None
        if not 1 <= value <= n_classes:
            raise UserError(f"{where}: line {lineno}: class id {value} is out of range "
                            f"1..{n_classes} (the devkit has {n_classes} leaf classes)")
        ids.append(value)
    return ids


# ---------------------------------------------------------------------------- devkit


def _load_devkit(spec: _Ilsvrc, root: Path) -> _Devkit:
    """meta.mat and ground-truth files, from an extracted devkit folder or the tar.gz."""
    wanted = {f"data/{name}": split for split, name in spec.ground_truth.items()}
    files: dict[str, tuple[str, bytes]] = {}
    for folder in spec.devkit_dirs:
        data = root / folder / "data"
        if (data / "meta.mat").is_file():
            where = str(root / folder)
            for rel in ("data/meta.mat", *wanted):
                if (root / folder / rel).is_file():
                    files[rel] = (str(root / folder / rel), (root / folder / rel).read_bytes())
            break
    else:
        tar = root / spec.devkit_archive
        if not tar.is_file():
            raise UserError(f"{spec.name}: no devkit found in {root}: expected "
                            f"{spec.devkit_archive} or {spec.devkit_dirs[0]}/data/meta.mat")
        where = str(tar)
        for rel, content in archive.read_files(tar, ("data/meta.mat", *wanted)).items():
            files[rel] = (f"{tar}:{rel}", content)
        if "data/meta.mat" not in files:
            raise UserError(f"{spec.name}: {tar} has no data/meta.mat inside")
    wnids, words = _parse_meta(files["data/meta.mat"][1], files["data/meta.mat"][0], spec.id_field)
    ground_truth = {}
    for rel, split in wanted.items():
        if rel in files:
            path, content = files[rel]
        elif (root / spec.ground_truth[split]).is_file():  # downloaded beside the archives
            path = str(root / spec.ground_truth[split])
            content = Path(path).read_bytes()
        else:
            continue
        ground_truth[split] = (path, content.decode("ascii", errors="replace"))
    return _Devkit(wnids, words, ground_truth, where)


def _parse_meta(content: bytes, where: str, id_field: str) -> tuple[tuple[str, ...], ...]:
    """(wnids, words) of the leaf synsets, ordered by official id (id 1 first)."""
    import scipy.io  # only ILSVRC needs it; keeps `import harness.sources` light

    try:
        synsets = scipy.io.loadmat(io.BytesIO(content), squeeze_me=True)["synsets"]
    except Exception as e:  # loadmat raises many types on junk input
        raise UserError(f"{where}: not a readable meta.mat with a 'synsets' array "
                        f"({type(e).__name__}: {e})") from None
    synsets = np.atleast_1d(synsets)
    needed = (id_field, "WNID", "words", "num_children")
    names = synsets.dtype.names or ()
    missing = [f for f in needed if f not in names]
    if missing:
        raise UserError(f"{where}: 'synsets' lacks field(s) {', '.join(missing)}: expected "
                        f"{', '.join(needed)}")
    leaves = sorted((int(s[id_field]), str(s["WNID"]), str(s["words"]))
                    for s in synsets if int(s["num_children"]) == 0)
    ids = [i for i, _, _ in leaves]
    if ids != list(range(1, len(ids) + 1)):
        raise UserError(f"{where}: leaf synset ids should be 1..{len(ids)}, got "
                        f"{ids[:5]}{'...' if len(ids) > 5 else ''}")
    wnids = tuple(w for _, w, _ in leaves)
    if len(set(wnids)) != len(wnids):
        raise UserError(f"{where}: a wnid appears twice among the leaf synsets")
    return wnids, tuple(w for _, _, w in leaves)


# ----------------------------------------------------------------- 2010 patch images


def _apply_patches(tar: Path, work: Path, splits: dict, problems: Problems,
                   progress: bool) -> dict:
    """Point samples at their replacement from patch_images.tar (members .../<split>/<name>).

    Keys stay the same; a patch that matches no listed sample is reported.
    """
    dest = archive.extract_tar(tar, work / "patch_images", work, progress=progress)
    patches: dict[tuple[str, str], str] = {}
    for dirpath, _, filenames in os.walk(dest):
        for name in filenames:
            patches[(os.path.basename(dirpath), name)] = os.path.join(dirpath, name)
    used = set()
    patched = {}
    for split, samples in splits.items():
        out = []
        for s in samples:
            hit = patches.get((split, s.key.rsplit("/", 1)[-1]))
            if hit:
                used.add((split, s.key.rsplit("/", 1)[-1]))
                s = Sample(s.key, s.label, hit, s.row)
            out.append(s)
        patched[split] = tuple(out)
    for (split, name), path in sorted(patches.items()):
        if (split, name) not in used:
            problems.add(path, f"patch image matches no {split} image in the listing", path)
    return patched


# the listers of FILE_SOURCES but fall2011, which needs the DataConfig (harness/prepare/fall2011.py)
_LISTERS = {
    "imagefolder": _list_imagefolder,
    "cifar10": _list_cifar10,
    "ilsvrc2012": lambda root, work, progress: _list_ilsvrc(_ILSVRC2012, root, work, progress),
    "ilsvrc2010": lambda root, work, progress: _list_ilsvrc(_ILSVRC2010, root, work, progress),
}
