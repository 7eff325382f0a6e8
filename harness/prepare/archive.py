"""Safe, resumable extraction of the tar archives that datasets are distributed in.

Nothing here trusts an archive. Every member passes tarfile's `data` filter first
(`tarfile.data_filter`, Python 3.11.4+: no member outside the target folder, no special files,
no links that leave it), and two rules of this module on top: a link of any kind is refused (a
listing takes files, not links, and a link's target escapes the size and count checks), and so
is an absolute name (the data filter would strip its leading slash and write it inside, under a
name that is not the member's). Only regular files and folders are written; anything else stops
with a UserError that names the archive and the member.

Resumability: each unit of work (a whole archive, or one per-class tar inside the ILSVRC
training tar) is extracted into a hidden temp folder, checked (every file has the size
its header promised, the file count matches), renamed into place, and only then gets a
done marker under `<work>/.done/`. A killed run leaves either no folder, a stale temp
folder (deleted and redone) or a folder without marker (deleted and redone); units with a
marker are skipped. Markers record the archive's size and mtime (the per-class parts: the
outer archive's mtime too): replacing an archive by a different one redoes its extraction, even
at the same size. A marker written before mtimes were recorded is trusted on its size alone.
"""

from __future__ import annotations

import gzip
import json
import lzma
import os
import shutil
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from harness.errors import UserError
from harness.io import atomic_write_json

MARKERS = ".done"  # folder under the work folder; hidden so folder listings skip it
_CHUNK = 1 << 20  # bytes per copy step: large enough for throughput, small in memory
# What a damaged archive raises from inside tarfile / its decompressors.
_CORRUPT = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)


# ----------------------------------------------------------------------------- checks


def check_member(label: str, member: tarfile.TarInfo, dest: Path) -> None:
    """Refuse a member that could write outside `dest`, or that is not a file or a folder.

    `label` names the archive (and the inner tar, for nested archives) in the message.
    """
    name = member.name
    if member.issym() or member.islnk():  # the data filter keeps links that stay inside
        raise UserError(f"{label}: refusing link member {name!r} -> {member.linkname!r}: "
                        "expected only regular files and folders")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):  # the data filter strips a "/"
        raise UserError(f"{label}: refusing member with an absolute path {name!r}")
    try:
        tarfile.data_filter(member, str(dest))
    except tarfile.FilterError as exc:  # outside dest, or a device, fifo or other special member
        raise UserError(f"{label}: refusing member {name!r}: {exc}; expected only regular files and "
                        "folders inside the archive's folder") from None


# ---------------------------------------------------------------------------- markers


def _marker_valid(marker: Path, size: int, dest: Path, mtime_ns: int) -> bool:
    """A unit is done when its marker exists, names the same archive size and mtime, and the
    extracted folder is still there (the user may have deleted it)."""
    info = _read_marker(marker)
    return (info is not None and info.get("size") == size and dest.is_dir()
            and info.get("mtime_ns", mtime_ns) == mtime_ns)


def _read_marker(marker: Path) -> dict | None:
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------ extraction


def _fresh_tmp(dest: Path) -> Path:
    """Hidden temp folder beside `dest` (same file system, so the final rename is atomic)."""
    tmp = dest.parent / f".{dest.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)  # left by a killed run: its content is not trusted
    tmp.mkdir(parents=True)
    return tmp


def _replace_dir(tmp: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)  # a folder without a valid marker is an unfinished earlier try
    os.replace(tmp, dest)


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, label: str) -> None:
    """Copy one regular member to `target`; exclusive create, so a duplicate name is caught.

    Files are not fsync'ed one by one (1.3M files); the marker, written after the folder
    rename, is fsync'ed, and a run killed before it redoes the unit.
    """
    src = tar.extractfile(member)
    try:
        with open(target, "xb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
            written = out.tell()
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        raise UserError(f"{label}: member {member.name!r} clashes with another member of the "
                        "same name") from None
    if written != member.size:
        raise UserError(f"{label}: member {member.name!r} is truncated ({written} of "
                        f"{member.size} bytes)")


def _extract_members(tar: tarfile.TarFile, label: str, tmp: Path, flatten: bool,
                     bar: tqdm | None) -> int:
    """Write every member of `tar` under `tmp`; returns the number of files written.

    flatten: keep only the base name of each file (image tars whose members may or may not
    sit in a folder); folders are then skipped.
    """
    count = 0
    for member in tar:
        check_member(label, member, tmp)
        if member.isdir():
            if not flatten:
                (tmp / member.name).mkdir(parents=True, exist_ok=True)
            continue
        target = tmp / (PurePosixPath(member.name).name if flatten else member.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_member(tar, member, target, label)
        count += 1
        if bar is not None:
            bar.update(member.size)
    return count


def _verify(tmp: Path, expected: int, label: str) -> None:
    found = sum(len(files) for _, _, files in os.walk(tmp))
    if found != expected:
        raise UserError(f"{label}: extracted {found} files but the archive listed {expected}")


def _open(archive: Path, mode: str) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, mode)
    except (*_CORRUPT, OSError) as e:
        raise UserError(f"{archive}: not a readable tar archive ({e})") from None


def extract_tar(archive: Path, dest: Path, work: Path, *, flatten: bool = False,
                progress: bool = True) -> Path:
    """Extract `archive` into `dest` once; a done marker under `work/.done` skips later calls.

    Compressed or not (tarfile detects it). Returns `dest`.
    """
    archive, dest = Path(archive), Path(dest)
    st = archive.stat()
    size = st.st_size
    marker = Path(work) / MARKERS / f"{archive.name}.done"
    if _marker_valid(marker, size, dest, st.st_mtime_ns):
        return dest
    tmp = _fresh_tmp(dest)
    # Byte totals are only known in advance for an uncompressed tar.
    total = size if archive.suffix == ".tar" else None
    with tqdm(total=total, unit="B", unit_scale=True, desc=f"extract {archive.name}",
              disable=not progress) as bar:
        try:
            with _open(archive, "r|*") as tar:  # stream: one sequential read of the archive
                count = _extract_members(tar, archive.name, tmp, flatten, bar)
        except _CORRUPT as e:
            raise UserError(f"{archive}: archive is truncated or corrupt ({e})") from None
    _verify(tmp, count, archive.name)
    _replace_dir(tmp, dest)
    atomic_write_json(marker, {"archive": archive.name, "size": size, "mtime_ns": st.st_mtime_ns,
                               "files": count})
    return dest


def extract_nested_tars(archive: Path, dest: Path, work: Path, *, progress: bool = True) -> Path:
    """Extract a tar of per-class tars (ILSVRC training set): `<name>.tar` -> `dest/<name>/`.

    Each inner tar is streamed from the outer one (never written to disk) and has its own
    done marker, so a killed run redoes only the classes it had not finished. When every
    class is done, an archive marker lists them and later calls do not open the archive.
    Inner tars are flattened (base names only). Returns `dest`.
    """
    archive, dest = Path(archive), Path(dest)
    st = archive.stat()
    size, mtime = st.st_size, st.st_mtime_ns
    markers = Path(work) / MARKERS
    whole = markers / f"{archive.name}.done"
    parts_dir = markers / f"{archive.name}.parts"
    if _all_parts_done(whole, size, parts_dir, dest, mtime):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    parts: list[str] = []
    with tqdm(total=size, unit="B", unit_scale=True, desc=f"extract {archive.name}",
              disable=not progress) as bar:
        try:
            # Random-access mode: headers are read and the data of done classes is seeked
            # over, so resuming does not re-read the finished part of a 140 GB archive.
            with _open(archive, "r:*") as outer:
                for member in outer:
                    name = _inner_tar_name(archive.name, member, parts, dest)
                    if name is None:
                        continue
                    parts.append(name)
                    _extract_part(outer, member, archive.name, dest / name, parts_dir, name, mtime)
                    bar.update(member.size)
        except _CORRUPT as e:
            raise UserError(f"{archive}: archive is truncated or corrupt ({e})") from None
    if not parts:
        raise UserError(f"{archive}: no per-class .tar members found: expected a tar of "
                        "<wnid>.tar archives")
    atomic_write_json(whole, {"archive": archive.name, "size": size, "mtime_ns": mtime,
                              "parts": sorted(parts)})
    return dest


def _all_parts_done(whole: Path, size: int, parts_dir: Path, dest: Path, mtime_ns: int) -> bool:
    info = _read_marker(whole)
    if info is None or info.get("size") != size or info.get("mtime_ns", mtime_ns) != mtime_ns:
        return False
    return all((parts_dir / f"{p}.done").is_file() and (dest / p).is_dir()
               for p in info.get("parts", []))


def _inner_tar_name(label: str, member: tarfile.TarInfo, seen: list[str], dest: Path) -> str | None:
    """The class name of an outer member (`n01440764.tar` -> `n01440764`); None for folders."""
    check_member(label, member, dest)
    if member.isdir():
        return None
    base = PurePosixPath(member.name).name
    name = base[:-len(".tar")] if base.endswith(".tar") else ""
    if not name or name.startswith("."):
        raise UserError(f"{label}: unexpected member {member.name!r}: expected only "
                        "per-class <wnid>.tar archives")
    if name in seen:
        raise UserError(f"{label}: two members are named {base!r}")
    return name


def _extract_part(outer: tarfile.TarFile, member: tarfile.TarInfo, label: str, dest: Path,
                  parts_dir: Path, name: str, outer_mtime_ns: int) -> None:
    """One class tar; its marker holds the outer archive's mtime: a replaced archive redoes it."""
    marker = parts_dir / f"{name}.done"
    if _marker_valid(marker, member.size, dest, outer_mtime_ns):
        return
    inner_label = f"{label}:{member.name}"
    tmp = _fresh_tmp(dest)
    try:
        with tarfile.open(fileobj=outer.extractfile(member), mode="r|*") as inner:
            count = _extract_members(inner, inner_label, tmp, True, None)
    except _CORRUPT as e:
        raise UserError(f"{inner_label}: inner archive is truncated or corrupt ({e})") from None
    _verify(tmp, count, inner_label)
    _replace_dir(tmp, dest)
    atomic_write_json(marker, {"member": member.name, "size": member.size, "mtime_ns": outer_mtime_ns,
                               "files": count})


# ------------------------------------------------------------------------------ reading


def read_files(archive: Path, wanted: tuple[str, ...]) -> dict[str, bytes]:
    """Contents of the regular members whose path ends with one of `wanted` (a relative
    path such as "data/meta.mat"), read in memory: small files (a devkit) need no
    extraction. Missing ones are absent from the result."""
    found: dict[str, bytes] = {}
    try:
        with _open(Path(archive), "r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                for suffix in wanted:
                    if suffix not in found and (member.name == suffix
                                                or member.name.endswith("/" + suffix)):
                        found[suffix] = tar.extractfile(member).read()
    except _CORRUPT as e:
        raise UserError(f"{archive}: archive is truncated or corrupt ({e})") from None
    return found
