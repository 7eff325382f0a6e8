"""Shared wiring for the stage scripts in pipelines/: argument parsing and user-facing errors."""

from __future__ import annotations

import argparse
import atexit
import errno
import gc
import sys
from pathlib import Path

from harness.errors import UserError


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    return p


def main_guard(fn) -> None:
    """Run fn(); a UserError prints one clear line and exits 2, with no traceback."""
    # Registered first, so it runs after every other exit handler (MLflow's flushes included):
    # the stage's files are written and closed by then, and the interpreter's final garbage
    # collections over torch's and MLflow's module objects would take ~1.6 s of each stage
    # process on 2 cores (measured). Frozen objects are skipped by those collections; objects
    # freed by reference counting are still finalised.
    atexit.register(gc.freeze)
    try:
        fn()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; finished outputs are kept", file=sys.stderr)
        sys.exit(130)
    except OSError as exc:  # the machine, not the code: say which file and what to do; bugs keep their traceback
        hint = _OS_HINTS.get(exc.errno)
        if hint is None:
            raise
        where = exc.filename or "an output file"
        print(f"error: cannot write {where}: {exc.strerror or exc} ({hint}); finished outputs are kept, "
              "no partial file was left in place", file=sys.stderr)
        sys.exit(2)


# errno -> what the user can do (atomic writes leave at most a hidden .*.tmp file behind)
_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free space and run again",
    errno.EDQUOT: "the disk quota is exhausted: free space and run again",
    errno.EFBIG: "the file exceeds the size limit of this process or file system",
    errno.EACCES: "no permission: make the folder writable or choose another output path",
    errno.EPERM: "not permitted: make the folder writable or choose another output path",
    errno.EROFS: "the file system is read-only: choose another output path",
}
