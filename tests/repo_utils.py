"""A temporary copy of the repository with tiny params, driven through the real `dvc` CLI."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import tiny
import yaml

from harness.presets import merged

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TINY = tiny.PARAMS  # the tiny profile of every end-to-end test (tests/tiny.py)

# copies made with copy_repo(..., tracking=False): env_for runs their stages with HARNESS_TRACKING=off
UNTRACKED: set[Path] = set()


def deep_update(d: dict, patch: dict) -> dict:
    """d with patch merged in, section by section, as `harness preset` merges (harness.presets.merged)."""
    return merged(d, patch)


def env_for(repo: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "DVC_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(repo)  # the copy's harness, not the installed one
    if Path(repo).resolve() in UNTRACKED:
        env["HARNESS_TRACKING"] = "off"
    return env


def copy_repo(dst: Path, patch: dict | None = None, cache: Path | None = None, tracking: bool = True) -> Path:
    """A git repository at dst holding the project's files, params.yaml patched (default: TINY).

    cache: a DVC cache folder shared with other copies (the `shared_dvc_cache` fixture), run-cache
    included: a stage that another copy already ran with the same command, deps and params is checked
    out of it instead of run again ("Stage ... is cached - skipping run"), as DVC does for a team
    sharing a cache. Only for tests that neither test the cache nor expect that stage's process (its
    MLflow run, its "Running stage" line) to run in this copy.

    tracking=False: the copy's stages (through env_for, so `dvc(...)` too) run with
    HARNESS_TRACKING=off: no mlflow import, store or run, about 1.3 s less per stage process (a
    third of a tiny `dvc repro`). Only for tests that look at nothing in MLflow and whose subject is
    not tracking: every stage's logging is tested with tracking on by test_pipeline_e2e,
    test_kill_stages, test_resume_kill and the configurations' own tests (test_paper_preset,
    test_cifar10_e2e, test_successors_e2e, test_fall2011_pipeline, test_torchrun_pipeline,
    test_parallel_seeds, test_ablation_e2e).
    """
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file() and (not f.startswith(("reports/", "dvc.lock")) or f in ("reports/benchmarks.json", "reports/reliability.json", "reports/pilot.json", "reports/cifar10_costs.json")):
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dst / f)
    (dst / "reports" / "reference").mkdir(parents=True)
    for d in ("metrics", "plots"):  # compare depends on these folders (ablation results), empty or not
        (dst / "reports" / d / "ablations").mkdir(parents=True)
    (dst / "reports" / "metrics" / "finetune").mkdir()  # compare depends on it (pre-trained CNNs), empty or not
    set_params(dst, deep_update(yaml.safe_load((REPO / "params.yaml").read_text()), copy.deepcopy(patch or TINY)))
    if cache is not None:  # .dvc/config.local: git-ignored, as `dvc cache dir --local` writes it
        (dst / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {cache}\n")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dst, check=True)
    if not tracking:
        UNTRACKED.add(dst.resolve())
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


# dvc.yaml's list_data runs on every `dvc repro` (always_changed: it lists data.root, so prepare sees
# changed images; docs/data.md). The helpers below leave it out, so "nothing re-ran" and "nothing is
# stale" keep meaning the stages that do work; tests/e2e/test_data_changes.py checks list_data itself.
ALWAYS_RUN = "list_data"


def ran_stages(out: str) -> set[str]:
    """The stages a `dvc repro` output says it ran, list_data (which always runs) left out."""
    return set(re.findall(r"Running stage '([^']+)'", out)) - {ALWAYS_RUN}


def stale(repo: Path, *args: str) -> dict:
    """`dvc status --json` without list_data's standing "always changed" entry (kept if its own
    deps or params changed)."""
    status = json.loads(dvc(repo, "status", "--json", *args).strip().splitlines()[-1])
    if status.get(ALWAYS_RUN) == ["always changed"]:
        del status[ALWAYS_RUN]
    return status


def kill_after_writes(repo: Path, watched: str | Path, n: int, *args: str) -> None:
    """Start `dvc repro args` in its own session, SIGKILL the whole session's process group after
    n writes of `watched` (its mtime changed n times); `watched` may be a glob relative to the repo
    (a resume checkpoint's folder is keyed by the training digest)."""
    proc = subprocess.Popen(["dvc", "repro", *args], cwd=repo, env=env_for(repo), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    seen, last = 0, None
    deadline = time.time() + 180
    while seen < n and time.time() < deadline and proc.poll() is None:
        path = watched if isinstance(watched, Path) else next(repo.glob(watched), None)
        mtime = path.stat().st_mtime_ns if path is not None and path.exists() else None
        if mtime is not None and mtime != last:
            seen, last = seen + 1, mtime
        time.sleep(0.005)
    assert proc.poll() is None, "the stage finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
