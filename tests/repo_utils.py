"""A temporary copy of the repository with tiny params, driven through the real `dvc` CLI."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import tiny
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TINY = tiny.PARAMS  # the tiny profile of every end-to-end test (tests/tiny.py)


def deep_update(d: dict, patch: dict) -> dict:
    for k, v in patch.items():
        if isinstance(v, dict):
            deep_update(d[k], v)
        else:
            d[k] = v
    return d


def env_for(repo: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "DVC_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(repo)  # the copy's harness, not the installed one
    return env


def copy_repo(dst: Path, patch: dict | None = None) -> Path:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file() and (not f.startswith(("reports/", "dvc.lock")) or f in ("reports/benchmarks.json", "reports/reliability.json", "reports/cifar10_costs.json")):
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dst / f)
    (dst / "reports" / "reference").mkdir(parents=True)
    for d in ("metrics", "plots"):  # compare depends on these folders (ablation results), empty or not
        (dst / "reports" / d / "ablations").mkdir(parents=True)
    set_params(dst, deep_update(yaml.safe_load((REPO / "params.yaml").read_text()), copy.deepcopy(patch or TINY)))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dst, check=True)
    return dst


def set_params(repo: Path, params: dict) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def get_params(repo: Path) -> dict:
    return yaml.safe_load((repo / "params.yaml").read_text())


def dvc(repo: Path, *args: str) -> str:
    proc = subprocess.run(["dvc", *args], cwd=repo, env=env_for(repo), capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout + proc.stderr


def ran_stages(out: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", out))
