"""`dvc repro` with train.nproc_per_node: 2 trains and evaluates under torchrun (two gloo processes
on the CPU). SIGKILLed mid-epoch, the next `dvc repro` resumes it, and the weights and per-epoch
curves equal those of an uninterrupted two-process run; a checkpoint of another process count is
refused and kept. Real DVC, real torchrun, real processes."""

import copy
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from repo_utils import TINY, copy_repo, deep_update, dvc, env_for, get_params, kill_after_writes, set_params

pytestmark = pytest.mark.slow

# 144 training images, batch 16: 9 steps an epoch; checkpoints every 4 steps fall mid-epoch
PATCH = deep_update(copy.deepcopy(TINY), {"train": {"seeds": [1], "epochs": 3, "lr_steps": [3], "checkpoint_every": 4,
                                                    "nproc_per_node": 2}})


def weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def processes_in(repo: Path) -> list[str]:
    """Command lines of the processes whose working folder is in `repo` (orphaned workers)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(os.readlink(f"/proc/{pid}/cwd")).is_relative_to(repo):
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def dvc_fails(repo: Path, *args: str) -> str:
    proc = subprocess.run(["dvc", *args], cwd=repo, env=env_for(repo), capture_output=True, text=True)
    assert proc.returncode != 0, proc.stdout[-2000:]
    return proc.stdout + proc.stderr


CKPT = "artifacts/work/train/*/seed-1/checkpoint.pt"


def test_dvc_repro_under_torchrun_resumes_after_a_kill(tmp_path):
    repo = copy_repo(tmp_path / "repo", PATCH)
    dvc(repo, "repro", "prepare")
    kill_after_writes(repo, CKPT, 4, "train@1")  # the 4th checkpoint: step 16 of 27, mid-epoch 2
    deadline = time.time() + 10
    while processes_in(repo) and time.time() < deadline:  # the workers die with their torchrun agent
        time.sleep(0.2)
    assert not processes_in(repo), processes_in(repo)
    ck = next(repo.glob(CKPT))  # the work folder keyed by the training digest (nproc is not part of it)
    assert ck.exists() and not (repo / "artifacts/models/seed-1/model.pt").exists()
    made = torch.load(ck, weights_only=True)
    assert len(made["torch_rng"]) == 2 and len(made["partials"]) == 2 and made["state"]["step_in_epoch"] > 0

    params = get_params(repo)
    params["train"]["nproc_per_node"] = 1
    set_params(repo, params)
    said = dvc_fails(repo, "repro", "train@1")  # another process count: refused, the checkpoint kept
    assert "written by 2 torchrun process(es) and this run has 1" in said and "Traceback" not in said, said[-2000:]
    assert ck.exists()
    params["train"]["nproc_per_node"] = 2
    set_params(repo, params)

    out = dvc(repo, "repro", "train@1", "evaluate@1")
    assert "launching: -m torch.distributed.run --nproc-per-node=2" in out and "resuming seed 1" in out, out[-3000:]
    assert not ck.exists()
    db = sqlite3.connect(repo / "mlflow.db")
    runs = db.execute("SELECT run_uuid, status FROM runs WHERE name='train-seed1'").fetchall()
    assert len(runs) == 1 and runs[0][1] == "FINISHED"  # the killed run was reopened
    world = db.execute("SELECT value FROM params WHERE run_uuid=? AND key='world_size'", (runs[0][0],)).fetchall()
    assert world == [("2",)]
    epochs = db.execute("SELECT step FROM metrics WHERE run_uuid=? AND key='val_top1_error'", (runs[0][0],)).fetchall()
    assert sorted(e[0] for e in epochs) == [1, 2, 3]

    # the same two processes without a kill (the script hands itself to torchrun outside DVC too)
    clean = tmp_path / "clean"
    subprocess.run([sys.executable, "pipelines/train.py", "--seed", "1", "--data", "artifacts/data", "--out", str(clean),
                    "--metrics", str(clean / "m.json"), "--plots", str(clean / "p.csv")],
                   cwd=repo, env=env_for(repo), check=True, capture_output=True)
    resumed, fresh = weights(repo / "artifacts/models/seed-1/model.pt"), weights(clean / "model.pt")
    for k in fresh:
        torch.testing.assert_close(resumed[k], fresh[k], rtol=0, atol=0, msg=k)  # gloo's 2-rank sums: same order
    # the resumed epoch's training loss and errors sum every rank's own part (not rank 0's twice)
    a, b = pd.read_csv(repo / "reports/plots/train/seed-1.csv"), pd.read_csv(clean / "p.csv")
    cols = ["epoch", "train_loss", "train_top1_error", "train_top5_error", "val_loss", "val_top1_error"]
    pd.testing.assert_frame_equal(a[cols], b[cols])

    ev = json.loads((repo / "reports/metrics/evaluate/seed-1.json").read_text())
    probs = np.load(repo / "artifacts/predictions/seed-1/ten_patch.npy")
    assert ev["n_images"] == probs.shape[0] == 60 and np.allclose(probs.sum(1), 1, atol=1e-5)
    ev_run = db.execute("SELECT p.value FROM params p JOIN runs r ON p.run_uuid = r.run_uuid "
                        "WHERE r.name='evaluate-seed1' AND p.key='world_size'").fetchall()
    assert ev_run == [("2",)]
    assert "up to date" in dvc(repo, "status", "train@1", "evaluate@1")
