"""What listing a dataset's files needs, whatever its source: the sample and listing types, the
scan of a folder tree with its rules for which files are images, the collected problems, and a
file's sha256.

Every module of the prepare package that reads files builds on this one (sources, fall2011,
writer), so it imports nothing of the project: no import cycle runs through it.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True, slots=True)  # slots: 1.3M of them for ILSVRC train
class Sample:
    key: str  # stable id relative to the source: "train/n01440764/x.JPEG", "cifar10/test_batch:17"
    label: int  # class index 0..K-1 (ILSVRC: official id - 1)
    path: str  # absolute path of the image file, or of the CIFAR batch file
    row: int = -1  # >= 0: row inside a CIFAR-10 batch (then `path` is the batch file)


@dataclass(frozen=True)
class Listing:
    source: str
    classes: tuple[str, ...]  # wnid (ILSVRC), folder name (imagefolder), label name (CIFAR)
    descriptions: tuple[str, ...]  # human-readable class names; the class name when unknown
    splits: dict[str, tuple[Sample, ...]]  # "train", "val" (+ "test" for ilsvrc2010)
    problems: tuple[tuple[str, str], ...]  # (key or path, reason) of files found but unusable
    inputs: tuple[str, ...] = ()  # absolute paths of the files/folders the listing read
    extra: dict = field(default_factory=dict)  # source-specific facts for the manifest (fall2011)
    # the absolute path of each problem key, where there is one: what a user can paste
    problem_paths: dict = field(default_factory=dict)
    # classes without a usable training image: not an unusable file, so not in `problems`
    empty_classes: tuple[str, ...] = ()


class Problems(list):
    """(key or path, reason) pairs collected while listing; sorted at the end. `paths` maps each
    key to the file's absolute path (the key is relative to the source, not a path to paste)."""

    def __init__(self):
        super().__init__()
        self.paths: dict[str, str] = {}

    def add(self, where: str, reason: str, path: str | None = None) -> None:
        self.append((where, reason))
        if path is not None:
            self.paths[where] = str(path)

    def frozen(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(self))


def unusable(path: str, name: str) -> str | None:
    """Why a file cannot be a sample, or None if it can (one stat call per file)."""
    ext = os.path.splitext(name)[1]
    if ext.lower() not in IMAGE_EXTENSIONS:
        return f"not an image file (extension {ext or 'missing'!r})"
    try:
        st = os.stat(path)  # follows links: a link to an image is fine
    except OSError:
        return "broken link or unreadable entry"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_size == 0:
        return "empty file (0 bytes)"
    return None


def visible(folder: Path) -> list[os.DirEntry]:
    """Entries of `folder` not starting with '.', sorted by name (deterministic order)."""
    with os.scandir(folder) as it:
        return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)


def scan_tree(folder: Path, key_prefix: str, problems: Problems) -> list[tuple[str, str]]:
    """(key, absolute path) of usable image files under `folder`, recursively, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = os.path.relpath(dirpath, folder).replace(os.sep, "/")
        prefix = key_prefix if rel_dir == "." else f"{key_prefix}/{rel_dir}"
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            key, path = f"{prefix}/{name}", os.path.join(dirpath, name)
            reason = unusable(path, name)
            if reason:
                problems.add(key, reason, path)
            else:
                found.append((key, path))
    return sorted(found)


def empty_classes(samples, classes) -> tuple[str, ...]:
    """Classes without a usable training image (an empty folder, or only unusable files there)."""
    present = {s.label for s in samples}
    return tuple(name for i, name in enumerate(classes) if i not in present)


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in blocks (shard records, Fall-2011 duplicate checks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
