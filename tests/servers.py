"""Servers the tests start (mlflow server forks uvicorn workers, a job runner and huey
consumers): started in their own session, stopped as a whole process group, and checked gone."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def stop_process_group(proc: subprocess.Popen) -> None:
    """Stop a server started with start_new_session=True and everything it forked (mlflow server
    forks uvicorn workers, a job runner and huey consumers), then check that none is left."""
    pgid = os.getpgid(proc.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        for _ in range(50):
            if not group_alive(pgid):
                break
            time.sleep(0.1)
    proc.wait(timeout=10)
    assert not group_alive(pgid), f"processes of the mlflow server (group {pgid}) are still running"


def group_alive(pgid: int) -> bool:
    """Any live (non-zombie) process in process group pgid, from /proc."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
