"""What `prepare` will read, listed cheaply: the DVC stage `list_data` (docs/data.md).

DVC cannot hash `data.root` on every `dvc status` (150 GB of ImageNet would take hours), and a
stage that does not depend on the data never notices that it changed; DVC's run-cache would even
restore a dataset prepared from other files. So `list_data` runs on every `dvc repro`
(`always_changed` in dvc.yaml) and writes one small file per prepared dataset; `prepare` depends on
it, so its content is part of the key DVC runs and restores `prepare` by.

The file has a header line (source, the input paths) and one JSON line per folder under each input
path: its path relative to the input, its number of files and bytes, and the sha256 of every
visible entry's (name, size, mtime in ns) and of its sub-folder names. A file added, removed,
renamed, resized or touched, or a folder added (even empty), changes its folder's line. An input
that is a file (an archive, a CIFAR tarball, an exclusion list) is one line with its own size and
mtime, so a replaced ILSVRC tar is seen by one stat. Names starting with "." are left out, as
the sources leave them out (harness/prepare/sources.py). Links are followed, as the sources follow
them, each folder once. What the listing cannot see is a file rewritten with the same size whose
mtime was set back: the shard records check the files' content for that (harness/prepare/writer.py).

Cost: one stat per file (measured in docs/data.md). Synthetic data reads no files: the listing is
the header line alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.io import atomic_write_text

# The ILSVRC-2012 validation archive that fall2011's exclusion reads when no val/ folder is there
# (harness/prepare/fall2011.py ilsvrc2012_val_files).
ILSVRC2012_VAL_TAR = "ILSVRC2012_img_val.tar"
THREADS = 8  # concurrent stats; the file is the same for any number


def inputs_of(data) -> list[Path]:
    """Absolute paths that preparing the DataConfig `data` reads (none for synthetic data, and
    none for `data` None: a dataset that is not prepared, e.g. pretrain.data while pretraining is off)."""
    if data is None or data.source == "synthetic" or not data.root:
        return []
    out = [data.root]
    if data.source == "fall2011":
        opts = data.fall2011
        if opts.exclude_root:  # only its validation images are read
            base = Path(os.path.expanduser(opts.exclude_root))
            out += [base / "val", base / ILSVRC2012_VAL_TAR]
        if opts.exclude_list:
            out.append(opts.exclude_list)
    return [Path(os.path.abspath(os.path.expanduser(str(p)))) for p in out]


def listing_lines(data) -> list[str]:
    """The listing of what preparing `data` reads: a header line, then one line per folder."""
    paths = inputs_of(data)
    lines = [json.dumps({"source": getattr(data, "source", None), "inputs": [str(p) for p in paths]})]
    for path in paths:
        lines += _list_path(path)
    return lines


def write_listing(data, out: Path) -> int:
    """Write the listing of `data` to `out`; returns the number of files it covers."""
    lines = listing_lines(data)
    atomic_write_text(Path(out), "\n".join(lines) + "\n")
    return sum(json.loads(line).get("files", 0) for line in lines[1:])


def _list_path(path: Path) -> list[str]:
    try:
        st = os.stat(path)
    except OSError:  # absent (the exclusion's val/ or its tar: one of the two) or unreadable
        return [json.dumps({"input": str(path), "missing": True})]
    if not stat.S_ISDIR(st.st_mode):
        return [json.dumps({"input": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns})]
    folders, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(path, followlinks=True):
        real = os.path.realpath(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if real in seen:  # a link back up the tree, or a second link to one folder
            dirnames[:] = []
            continue
        seen.add(real)
        folders.append((dirpath, list(dirnames), filenames))
    # The stats of a folder's files in threads (a stat releases the GIL): on a network file system
    # each waits for a round trip, and 1.3M of them one after the other would take many minutes.
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(lambda f: _folder_line(path, *f), folders))


def _folder_line(top: Path, dirpath: str, dirnames: list[str], filenames: list[str]) -> str:
    h = hashlib.sha256()
    n = total = 0
    for name in sorted(f for f in filenames if not f.startswith(".")):
        try:
            st = os.stat(os.path.join(dirpath, name))  # follows links, as the sources do
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:  # a broken link: listed, so that mending it is seen too
            size, mtime = -1, -1
        # NUL cannot occur in a file name: the entries cannot run into each other
        h.update(os.fsencode(name) + b"\0%d\0%d\n" % (size, mtime))
        n, total = n + 1, total + max(size, 0)
    for name in dirnames:
        h.update(b"d\0" + os.fsencode(name) + b"\n")
    rel = os.path.relpath(dirpath, top).replace(os.sep, "/")
    return json.dumps({"input": str(top), "dir": rel, "files": n, "bytes": total,
                       "sha256": h.hexdigest()})
