"""Atomic file writes: temp file in the same folder, fsync, rename.

A stage killed at any moment leaves either the old file or the new one, never a partial
file that looks complete.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_temps(path.parent, f".{path.name}.*.tmp")  # left by a killed write of this file
    # the writer's pid in the name tells a killed write's leftover from a write in progress
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    os.fchmod(fd, 0o644)  # mkstemp makes 0600; results are meant to be read by others
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _fault("before", path)  # reliability tests only: see _fault
        os.replace(tmp, path)
    except OSError as exc:  # a full disk fails in write() with no file name: name the target
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fault("after", path)


FAULT_ENV = "HARNESS_FAULT_KILL"  # here, not in runtime: this module stays free of torch for light stages
_fault_hits: dict[str, int] = {}


def _fault(event: str, path) -> None:
    """Fault injection for the reliability suite (tests/reliability/test_kill_stages.py); a no-op unless
    HARNESS_FAULT_KILL is set.

    HARNESS_FAULT_KILL="before:evaluate/seed-1.json#1" SIGKILLs this process when the 1st atomic
    write of a path ending in evaluate/seed-1.json is complete in its temp file but not yet
    renamed into place ("after:" right after the rename; "#n" defaults to 1). Nothing else
    reads it, and it cannot change a result: it only ends the process, as a preemption would.
    """
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    point, _, nth = spec.partition("#")
    want_event, _, suffix = point.partition(":")
    if want_event != event or not str(path).endswith(suffix):
        return
    _fault_hits[spec] = _fault_hits.get(spec, 0) + 1
    if _fault_hits[spec] == int(nth or 1):
        import signal
        os.kill(os.getpid(), signal.SIGKILL)


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temp files left by a write that was killed before its rename (a persistent output
    folder would otherwise carry them into DVC's cache); returns what was removed."""
    return _remove_dead_temps(Path(folder), ".*.tmp")


def _remove_dead_temps(folder: Path, pattern: str) -> list[Path]:
    removed = []
    for p in sorted(folder.glob(pattern)) if folder.is_dir() else []:
        parts = p.name.rsplit(".", 3)  # .<name>.<pid>.<random>.tmp
        pid = int(parts[-3]) if len(parts) == 4 and parts[-3].isdigit() else None
        if pid is not None and pid != os.getpid() and _alive(pid):
            continue  # another process is writing it right now
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) is not writing anything
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def check_writable(*folders: Path) -> None:
    """Create each output folder and write a probe file there, so an unwritable or read-only
    output fails in seconds, before hours of work (OSError names the folder)."""
    for folder in folders:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe.", suffix=".tmp")
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(folder)) from exc
        os.close(fd)
        os.unlink(probe)
