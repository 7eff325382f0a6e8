"""Wall time of a whole `dvc repro` of the default profile, in a throw-away copy of the repository.

The copy holds the committed and untracked-but-not-ignored files (no dvc.lock, no artifacts,
no DVC cache), so every stage runs from scratch, as on a fresh clone.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def copy_tree(src: Path, dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=src,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for f in files:
        if (src / f).is_file() and f != "dvc.lock":
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / f, dst / f)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=bench@localhost", "-c", "user.name=bench", "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=dst, check=True, capture_output=True)


def clean_env(repo: Path) -> dict:
    """No outside MLflow server or DVC state leaks in; the copy's harness is imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(repo)
    return env


def dvc_repro_wall_time(root: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-repro-") as tmp:
        repo = Path(tmp)
        copy_tree(root, repo)
        t0 = time.perf_counter()
        proc = subprocess.run(["dvc", "repro"], cwd=repo, env=clean_env(repo), capture_output=True, text=True)
        wall = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    return {"wall_s": wall, "returncode": proc.returncode,
            "stages": sorted(set(re.findall(r"Running stage '([^']+)'", out))),
            "tail": out[-1500:] if proc.returncode else ""}
