"""torch.distributed on GPUs, checked on CPUs: each rank's devices from LOCAL_RANK (the paper's two
towers: rank r owns its own pair), the backend that follows the devices, and the collectives the
train and evaluate stages use, in real torchrun jobs of 2 and 4 gloo processes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import runtime
from harness.errors import UserError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("devices,local_rank,expected", [
    (("cpu",), 3, ("cpu",)),
    (("cpu", "cpu"), 1, ("cpu", "cpu")),
    (("cuda:0",), 0, ("cuda:0",)),
    (("cuda",), 5, ("cuda:5",)),  # `cuda` is cuda:0 of rank 0
    (("cuda:0",), 7, ("cuda:7",)),
    (("cuda:0", "cuda:1"), 0, ("cuda:0", "cuda:1")),  # paper 3.2: one tower per GPU
    (("cuda:0", "cuda:1"), 1, ("cuda:2", "cuda:3")),
    (("cuda:0", "cuda:1"), 3, ("cuda:6", "cuda:7")),
    (("cuda:1", "cuda:0"), 2, ("cuda:5", "cuda:4")),  # tower order kept
    (("cuda:2",), 1, ("cuda:3",)),
    (("cuda:0", "cuda:2"), 1, ("cuda:3", "cuda:5")),  # span 3: never a GPU of another rank
    (("cpu", "cuda:0"), 2, ("cpu", "cuda:2")),
])
def test_rank_devices(devices, local_rank, expected):
    assert runtime.rank_devices(devices, local_rank, cuda_count=8) == expected


def test_ranks_of_a_machine_never_share_a_gpu():
    for devices in (("cuda:0",), ("cuda:0", "cuda:1"), ("cuda:1", "cuda:0"), ("cuda:0", "cuda:3")):
        n = 16 // (max(int(x[5:]) for x in devices) + 1)
        owned = [g for r in range(n) for g in runtime.rank_devices(devices, r, cuda_count=16)]
        assert len(owned) == len(set(owned)) == n * len(devices), devices


def test_a_rank_beyond_the_machine_names_the_params():
    with pytest.raises(UserError, match=r"local rank 4 would use cuda:8, cuda:9.*4 GPU|8 GPU") as e:
        runtime.rank_devices(("cuda:0", "cuda:1"), 4, cuda_count=8)
    assert "train.nproc_per_node" in str(e.value) and "train.devices" in str(e.value)
    with pytest.raises(UserError, match="shows 0 GPU"):
        runtime.rank_devices(("cuda:0",), 0, cuda_count=0)


@pytest.mark.parametrize("devices,backend", [
    (("cpu",), "gloo"), (("cpu", "cpu"), "gloo"),
    (("cuda:0",), "cpu:gloo,cuda:nccl"), (("cuda:2", "cuda:3"), "cpu:gloo,cuda:nccl"),
    (("cpu", "cuda:0"), "cpu:gloo,cuda:nccl"),
])
def test_backend_follows_the_devices(devices, backend):
    assert runtime.backend_for(devices) == backend


def test_torchrun_command():
    one = runtime.torchrun_command("pipelines/train.py", ["--seed", "1"], nproc=8)
    assert one[1:4] == ["-m", "torch.distributed.run", "--nproc-per-node=8"] and "--standalone" in one
    assert one[-3:] == ["pipelines/train.py", "--seed", "1"]
    many = runtime.torchrun_command("t.py", [], nproc=4, nnodes=2, rdzv_endpoint="node0:29400", rdzv_id="train-1",
                                    max_restarts=3)
    assert {"--nnodes=2", "--rdzv-backend=c10d", "--rdzv-endpoint=node0:29400", "--rdzv-id=train-1",
            "--max-restarts=3"} <= set(many) and "--standalone" not in many


def torchrun(tmp_path: Path, procs: int, devices: str, backend: str | None = None) -> list[dict]:
    out = tmp_path / f"{procs}-{devices}"
    out.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}",
           str(REPO / "tests" / "dist_worker.py"), str(out), devices, *([backend] if backend else [])]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [json.loads((out / f"rank-{r}.json").read_text()) for r in range(procs)]


@pytest.mark.parametrize("procs,devices,backend,expected_backend", [
    (2, "cpu", None, "gloo"),
    # the GPU form, device-mapped: CPU tensors and objects through the cpu: entry (gloo stands in
    # for NCCL on the cuda: entry, which a CPU machine lacks)
    (4, "cpu,cpu", "cpu:gloo,cuda:gloo", "cpu:gloo,cuda:gloo"),
])
def test_collectives_in_a_real_torchrun_job(tmp_path, procs, devices, backend, expected_backend):
    ranks = torchrun(tmp_path, procs, devices, backend)
    for r, rec in enumerate(ranks):
        assert (rec["rank"], rec["world"], rec["local_rank"]) == (r, procs, r)
        assert rec["devices"] == devices.split(",") and rec["backend"] == expected_backend
        assert rec["object_collective_device"] == "cpu"
        total = procs + 1e-12 * procs * (procs + 1) / 2  # float64 keeps the 1e-12 parts
        assert rec["sums"][0] == pytest.approx(total, abs=1e-15) and rec["sums"][0] != float(procs)
        assert rec["sums"][1] == sum(range(procs))
        assert rec["gathered_ranks"] == list(range(procs)) and rec["gathered_partials"] == [10 * i for i in range(procs)]
        assert rec["own_rng_roundtrip"] and rec["rngs_differ"]
        # DDP's gradient is the mean of the ranks' own gradients (float32 reduction order aside)
        assert rec["grad_max"] > 1e-3 and rec["grad_max_diff"] < 1e-5 * max(1.0, rec["grad_max"])


def test_launch_params_are_validated_and_stay_out_of_the_digest():
    from harness import config as C
    base = C.from_dict({"train": {"batch_size": 128}})
    eight = C.from_dict({"train": {"batch_size": 128, "nproc_per_node": 8}})
    assert eight.train.world_size == 8
    # how many processes train is not what is trained: same digest, so a reference still compares and a
    # checkpoint is refused by its process count (with a message), not ignored as "other params"
    assert C.training_digest(eight) == C.training_digest(base)
    assert C.training_digest(C.from_dict({"train": {"lr": 0.02}})) != C.training_digest(base)
    with pytest.raises(C.ConfigError, match=r"train.batch_size: 128 does not split evenly .* 3 processes"):
        C._check_cross_fields(C.from_dict({"train": {"batch_size": 128, "nproc_per_node": 3}}))
    with pytest.raises(C.ConfigError, match=r"launch.rdzv_endpoint: train.nnodes 2 needs the host:port"):
        C._check_cross_fields(C.from_dict({"train": {"nnodes": 2}}))
    C._check_cross_fields(C.from_dict({"train": {"nnodes": 2}, "launch": {"rdzv_endpoint": "node0:29400"}}))
    with pytest.raises(C.ConfigError, match="train.nproc_per_node: must be >= 1"):
        C.from_dict({"train": {"nproc_per_node": 0}})
    with pytest.raises(C.ConfigError, match="launch.rdzv_endpont: unknown key"):
        C.from_dict({"launch": {"rdzv_endpont": "x:1"}})
