"""Seeds in parallel on one machine through DVC's experiment queue (docs/scale-out.md, section 2).

DVC runs one stage at a time in a workspace, and parallel `dvc repro` processes fight over
dvc.lock. Its experiment queue runs each queued experiment in a copy of its own, one per worker
process, and `dvc queue start -j K` adds workers 1..K that inherit the environment of the call.
So each seed becomes one queued experiment (`dvc exp run --queue -n seed-N evaluate@N`), and
queue worker k runs with CUDA_VISIBLE_DEVICES set to its own GPUs: whatever seed it takes
trains on them as cuda:0, cuda:1. DVC schedules; nothing here decides which seed runs where.
`harness collect-seeds seed-1 ...` then merges the experiments' dvc.lock entries into the
workspace, whose `dvc repro` runs only ensemble, compare and report.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from harness import runtime
from harness.errors import UserError


def _dvc(root: Path, *args: str, env: dict | None = None) -> str:
    proc = subprocess.run(["dvc", *args], cwd=root, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise UserError(f"dvc {' '.join(args)} failed: {(proc.stderr or proc.stdout).strip()[-600:]}")
    return proc.stdout


def exp_name(seed: int, prefix: str = "seed") -> str:
    return f"{prefix}-{seed}"


def queue_seeds(root: Path, seeds: list[int], prefix: str = "seed") -> list[str]:
    """One queued experiment per seed, running that seed's train and evaluate stages."""
    names = []
    for seed in seeds:
        names.append(exp_name(seed, prefix))
        _dvc(root, "exp", "run", "--queue", "-n", names[-1], f"evaluate@{seed}")
    return names


def worker_name(root: Path, k: int) -> str:
    """The celery node name `dvc queue start` gives worker k (dvc/repo/experiments/queue/celery.py)."""
    wdir = os.path.join(os.path.realpath(root), ".dvc", "tmp", "exps", "celery")
    return f"dvc-exp-{hashlib.sha256(wdir.encode()).hexdigest()[:6]}-{k}@localhost"


def start_workers(root: Path, device_sets: list[str]) -> list[int]:
    """Worker k (1-based) with CUDA_VISIBLE_DEVICES=device_sets[k-1]; returns their pids.

    Each is the worker `dvc queue start -j K` spawns (`dvc exp queue-worker NAME`, worker 1 with
    --clean, output in .dvc/tmp/exps/celery/), started here only to give each its own environment:
    `dvc queue start` passes its caller's to all workers, and adding one worker at a time with it
    depends on a 1 s celery ping, which a loaded machine misses (a second worker 1 then starts).
    Each runs one experiment at a time and ends after 10 s with an empty queue, as DVC's do.
    """
    logs = Path(root, ".dvc", "tmp", "exps", "celery")
    logs.mkdir(parents=True, exist_ok=True)
    pids = []
    for k, devices in enumerate(device_sets, 1):
        cmd = ["dvc", "exp", "queue-worker", worker_name(root, k), *(["--clean"] if k == 1 else [])]
        with open(logs / f"dvc-exp-worker-{k}.out", "ab") as out:
            proc = subprocess.Popen(cmd, cwd=root, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=runtime.env_with(CUDA_VISIBLE_DEVICES=devices), start_new_session=True)
        pids.append(proc.pid)
    return pids


def exp_ref(root: Path, name: str) -> str | None:
    """The git ref of experiment `name` on the current commit (refs/exps/<xx>/<rest of HEAD>/<name>)."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    ref = f"refs/exps/{head[:2]}/{head[2:]}/{name}"
    ok = subprocess.run(["git", "rev-parse", "--verify", "-q", ref], cwd=root, capture_output=True).returncode == 0
    return ref if ok else None
