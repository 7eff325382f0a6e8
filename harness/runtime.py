"""Process-level facts: seeding, threads, determinism, repository root, provenance.

With config, the only module that reads the environment (docs/architecture.md, house rule 2).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import platform
import random
import subprocess
import sys
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
    # deterministic kernel (docs/architecture.md, "Determinism"); the run records which mode it ran in.
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


TRACKING_ENV = "HARNESS_TRACKING"


def tracking_off() -> bool:
    """HARNESS_TRACKING=off: the stages log nothing to MLflow and never import it, for a machine
    without mlflow (the GPU machine of benchmarks/gpu_e2e.py). Every result is in the stages' files
    either way; only the MLflow runs are missing. Unset or "on": tracking as usual."""
    value = os.environ.get(TRACKING_ENV, "").strip().lower()
    if value not in ("", "on", "off"):
        from harness.errors import UserError
        raise UserError(f"{TRACKING_ENV}={os.environ[TRACKING_ENV]!r}: expected 'on' or 'off'")
    return value == "off"


def git_info(cwd: Path | None = None, ignore: tuple[str, ...] = ()) -> dict:
    """Commit, dirty flag and code commit. `ignore`: fnmatch patterns of changed paths that do not
    make the tree dirty (what the pipeline writes itself, stages.pipeline_outputs). `code_commit`:
    the last commit that changed anything but those paths, the code and params the results came
    from; committing regenerated results does not move it, so a fresh clone's run names the same
    commit as the committed report (HEAD without `ignore`)."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                                  cwd=cwd).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""
    changed = git("diff", "--name-only", "HEAD").splitlines()  # staged or not, tracked files only
    head = git("rev-parse", "HEAD") or "unknown"
    code = git("log", "-1", "--format=%H", "--", ".", *_exclude_pathspecs(ignore)) if ignore else ""
    return {"commit": head,
            "dirty": any(not any(fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat + "/*") for pat in ignore)
                         for p in changed),
            "code_commit": code or head}


def _exclude_pathspecs(patterns: tuple[str, ...]) -> list[str]:
    """fnmatch patterns (whose * crosses /) as git's exclude pathspecs: a leading */ at any depth,
    a folder with everything in it."""
    out = []
    for pat in patterns:
        pat = "**/" + pat[2:] if pat.startswith("*/") else pat
        out += [f":(exclude,glob){pat}", f":(exclude,glob){pat}/**"]
    return out


def dvc_context() -> dict:
    return {"exp_name": os.environ.get("DVC_EXP_NAME", ""), "stage": os.environ.get("DVC_STAGE", "")}


def pipeline_key(params_path: Path) -> str:
    """Identifies one pipeline execution: params content + the git commit it runs on.

    Every stage of a `dvc repro` computes the same key, so they find the same MLflow parent run
    without passing state between processes. So do the seeds of one configuration that DVC's
    experiment queue trains in parallel (docs/scale-out.md): each queued experiment has its own
    name (DVC_EXP_NAME, a tag of its runs) but runs on the commit it was queued from
    (DVC_EXP_BASELINE_REV), and the collecting `dvc repro` on that commit joins the same parent.
    """
    h = hashlib.sha256(Path(params_path).read_bytes())
    h.update((os.environ.get("DVC_EXP_BASELINE_REV") or git_info(Path(params_path).parent)["commit"]).encode())
    return h.hexdigest()[:16]


def visible_devices() -> str:
    """CUDA_VISIBLE_DEVICES as this process got it ("all" when unset): the GPU set of its DVC
    queue worker when seeds train in parallel (docs/scale-out.md)."""
    return os.environ.get("CUDA_VISIBLE_DEVICES", "all")


def env_with(**values: str) -> dict:
    """This process's environment plus `values`, for a child process (a DVC queue worker)."""
    return {**os.environ, **values}


def environment() -> dict:
    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "cuda": torch.version.cuda or "none",
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "cuda_visible_devices": visible_devices(),
        "platform": platform.platform(),
    }


# --- torch.distributed: its only home (docs/architecture.md, house rule 4) -------------------------------------------

@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun) and its devices.

    `devices` are this rank's own: train.devices names rank 0's, and every other local rank gets
    the same layout shifted onto its own GPUs (rank_devices).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    devices: tuple[str, ...] = ("cpu",)
    backend: str = "none"

    @property
    def main(self) -> bool:
        return self.rank == 0


def rank_devices(devices: tuple[str, ...] | list[str], local_rank: int, cuda_count: int | None = None) -> tuple[str, ...]:
    """The devices of local rank `local_rank`, given rank 0's (train.devices).

    CPU stays CPU. CUDA devices move by local_rank x the span of rank 0's CUDA indices, so with
    the paper's two towers ([cuda:0, cuda:1], paper 3.2) rank r owns its own pair, cuda:2r and
    cuda:2r+1, and with one device rank r owns cuda:r. `cuda` alone means cuda:0. Raises
    UserError when a rank's device does not exist (cuda_count: visible GPUs; None: ask torch).
    """
    idx = [int(d.partition(":")[2] or 0) for d in devices if d.startswith("cuda")]
    if not idx:
        return tuple(devices)
    span = max(idx) - min(idx) + 1
    out = tuple("cpu" if d == "cpu" else f"cuda:{int(d.partition(':')[2] or 0) + local_rank * span}" for d in devices)
    count = torch.cuda.device_count() if cuda_count is None else cuda_count
    missing = [d for d in out if d.startswith("cuda") and int(d[5:]) >= count]
    if missing:
        from harness.errors import UserError
        raise UserError(f"train.devices: local rank {local_rank} would use {', '.join(out)} ({list(devices)} shifted "
                        f"by {span} GPU(s) per rank), but this machine shows {count} GPU(s); lower "
                        "train.nproc_per_node or use fewer devices per process")
    return out


def backend_for(devices: tuple[str, ...], cuda_backend: str = "nccl") -> str:
    """gloo for CPU tensors, NCCL for CUDA ones. A rank with a GPU gets both ("cpu:gloo,cuda:nccl"):
    its gradients are CUDA tensors, while the float64 error sums, the RNG states and the pickled
    objects of all_gather stay on the CPU, which NCCL alone rejects."""
    if any(d.startswith("cuda") for d in devices):
        return f"cpu:gloo,cuda:{cuda_backend}"
    return "gloo"


def under_torchrun() -> bool:
    """True in a process that torchrun started (it sets these for every worker)."""
    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ


def init_distributed(devices: tuple[str, ...] = ("cpu",), backend: str | None = None) -> Dist:
    """Join the torchrun job described by the environment, if any, on this rank's own devices.

    `devices` are rank 0's (train.devices); the rank's own come from LOCAL_RANK (rank_devices).
    On a GPU the rank's first device becomes the current one (torch.cuda.set_device) and is
    bound to the process group (device_id), before any collective. `backend` overrides
    backend_for (the tests use "cpu:gloo,cuda:gloo" to run the mixed form on CPUs).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else 0
    mine = rank_devices(tuple(devices), local)
    if world <= 1:
        return Dist(devices=mine)
    _die_with_launcher()
    first_cuda = next((torch.device(x) for x in mine if x.startswith("cuda")), None)
    if first_cuda is not None:
        torch.cuda.set_device(first_cuda)
    backend = backend or backend_for(mine)
    if not dist.is_initialized():
        dist.init_process_group(backend, device_id=first_cuda)
    return Dist(dist.get_rank(), dist.get_world_size(), local, mine, backend)


def _die_with_launcher() -> None:
    """Linux: end this worker when its torchrun agent dies (a SIGKILL reaches only the agent, as
    torchrun starts each worker in a session of its own); a killed stage must leave no orphan
    that keeps writing its checkpoint while the next `dvc repro` resumes from it."""
    if not os.path.exists("/proc/self"):
        return
    import ctypes
    import signal
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the agent died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)


def all_reduce_sum(values: list[float], d: Dist) -> list[float]:
    """Sums over ranks, as a CPU float64 tensor (gloo, also in the mixed backend of a GPU rank)."""
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
    """DDP averages gradients over ranks: with equal local batches that is the global-batch gradient.

    device_ids only for a module on one GPU; a CPU module and the two-tower module on two devices
    (paper 3.2) take none, as DDP requires for multi-device modules.
    """
    if d.world == 1:
        return model
    if len(d.devices) == 1 and d.devices[0].startswith("cuda"):
        index = torch.device(d.devices[0]).index
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=[index], output_device=index)
    return torch.nn.parallel.DistributedDataParallel(model)


def rng_states(d: Dist) -> dict:
    """This rank's dropout RNG: the CPU generator and, on GPUs, each of its CUDA generators."""
    cuda = [x for x in d.devices if x.startswith("cuda")]
    return {"cpu": torch.get_rng_state(), "cuda": [torch.cuda.get_rng_state(x) for x in dict.fromkeys(cuda)]}


def set_rng_states(states: dict, d: Dist) -> None:
    torch.set_rng_state(states["cpu"])
    cuda = list(dict.fromkeys(x for x in d.devices if x.startswith("cuda")))
    for dev, state in zip(cuda, states.get("cuda", [])):
        torch.cuda.set_rng_state(state, dev)


def shutdown(d: Dist) -> None:
    if d.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


# --- torchrun from the pipeline (params train.nproc_per_node, train.nnodes, launch.*) --------------

def torchrun_command(script: str, args: list[str], *, nproc: int, nnodes: int = 1, rdzv_endpoint: str | None = None,
                     rdzv_id: str = "harness", max_restarts: int = 0) -> list[str]:
    """torchrun (torch.distributed.run) running `script args` in nproc x nnodes processes.

    One node: --standalone (a private rendezvous on a free local port, so several stages can run at
    once). Several: c10d rendezvous at rdzv_endpoint; each node runs the same command, and node
    ranks are assigned by the rendezvous (or by torchrun's own PET_NODE_RANK on each machine).
    """
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", f"--max-restarts={max_restarts}"]
    if nnodes == 1:
        cmd.append("--standalone")
    else:
        cmd += [f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}", f"--rdzv-id={rdzv_id}"]
    return [*cmd, script, *args]


def exec_torchrun(cmd: list[str]) -> None:
    """Replace this process by torchrun: DVC waits on the same pid, and signals reach torchrun,
    which passes them on to its workers."""
    print(f"launching: {' '.join(cmd[1:])}", flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(cmd[0], cmd)
