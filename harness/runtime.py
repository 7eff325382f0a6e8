"""Process-level facts: seeding, threads, determinism, repository root, provenance.

With config, the only module that reads the environment (house rule 2).
"""

from __future__ import annotations

import hashlib
import os
import platform
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist


def set_determinism(seed: int, threads: int, deterministic: bool = True) -> None:
    """Same params + seed + threads + workers => bitwise-identical weights on CPU.

    deterministic=False (train.deterministic) lets torch pick non-deterministic kernels:
    faster on GPUs, but the same seed no longer gives the same bits.
    """
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    # warn_only: on CUDA, LRN (avg_pool3d) and adaptive pooling backward have no
    # deterministic kernel (DESIGN.md); the run records which mode it ran in.
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def repo_root() -> Path:
    """The main repository: DVC_ROOT (set by DVC for every stage, queued too), else git, else cwd."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    try:
        out = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, check=True)
        return Path(out.stdout.strip()).resolve()
    except (OSError, subprocess.CalledProcessError):
        return Path.cwd().resolve()


def tracking_uri_override() -> str | None:
    return os.environ.get("MLFLOW_TRACKING_URI") or None


FAULT_ENV = "HARNESS_FAULT_KILL"
_fault_hits: dict[str, int] = {}


def fault_point(event: str, path) -> None:
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


def git_info(cwd: Path | None = None) -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                                  cwd=cwd).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""
    return {"commit": git("rev-parse", "HEAD") or "unknown",
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def dvc_context() -> dict:
    return {"exp_name": os.environ.get("DVC_EXP_NAME", ""), "stage": os.environ.get("DVC_STAGE", "")}


def pipeline_key(params_path: Path) -> str:
    """Identifies one pipeline execution: params content + git commit + DVC experiment name.

    Every stage of a `dvc repro` computes the same key, so they find the same MLflow
    parent run without passing state between processes.
    """
    h = hashlib.sha256(Path(params_path).read_bytes())
    h.update(git_info(Path(params_path).parent)["commit"].encode())
    h.update(dvc_context()["exp_name"].encode())
    return h.hexdigest()[:16]


def environment() -> dict:
    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "cuda": torch.version.cuda or "none",
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "platform": platform.platform(),
    }


# --- torch.distributed: its only home (house rule 4) -------------------------------------------

@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    """Join the torchrun job described by the environment, if any (gloo on CPU, NCCL on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


def all_reduce_sum(values: list[float], d: Dist) -> list[float]:
    if d.world == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def all_gather(obj, d: Dist) -> list:
    """Every rank's `obj`, in rank order (pickled; for small objects and result arrays)."""
    if d.world == 1:
        return [obj]
    out = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()


def wrap_ddp(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    """DDP averages gradients over ranks: with equal local batches that is the global-batch gradient."""
    if d.world == 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(model)


def shutdown(d: Dist) -> None:
    if d.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
