"""SIGKILL the train stage mid-run; `dvc repro` resumes it and ends with the same weights as an
uninterrupted run (CPU, same threads and workers). Real processes, real DVC, real files."""

import copy
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from repo_utils import TINY, copy_repo, deep_update, dvc, env_for, kill_after_writes

PATCH = deep_update(copy.deepcopy(TINY),
                    {"train": {"seeds": [1], "epochs": 3, "checkpoint_every": 2, "schedule": "plateau",
                               "patience": 1, "update_rule": "paper"}})


def weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def checkpoint_of(repo: Path, seed: int = 1) -> Path | None:
    """The seed's resume checkpoint in the work folder (keyed by the training digest), if any."""
    return next(repo.glob(f"artifacts/work/train/*/seed-{seed}/checkpoint.pt"), None)


def kill_after_checkpoints(repo: Path, n: int) -> None:
    """Start `dvc repro train@1`, SIGKILL its whole process group after n checkpoint writes."""
    kill_after_writes(repo, "artifacts/work/train/*/seed-1/checkpoint.pt", n, "train@1")


@pytest.mark.slow
def test_sigkill_then_repro_resumes_bitwise(tmp_path):
    repo = copy_repo(tmp_path / "repo", PATCH)
    dvc(repo, "repro", "prepare")
    kill_after_checkpoints(repo, 3)
    ck = checkpoint_of(repo)
    assert ck is not None and ck.exists() and not (repo / "artifacts/models/seed-1/model.pt").exists()
    out = dvc(repo, "repro", "train@1")
    assert "resuming seed 1" in out, out[-3000:]
    assert not ck.exists()  # removed once the final weights exist
    db = sqlite3.connect(repo / "mlflow.db")
    runs = db.execute("SELECT run_uuid, status FROM runs WHERE name='train-seed1'").fetchall()
    assert len(runs) == 1 and runs[0][1] == "FINISHED"  # the killed run was reopened, not duplicated
    epochs = db.execute("SELECT step FROM metrics WHERE run_uuid=? AND key='val_top1_error'",
                        (runs[0][0],)).fetchall()
    assert sorted(e[0] for e in epochs) == [1, 2, 3]  # one point per epoch: nothing lost or doubled

    clean = tmp_path / "clean"
    subprocess.run([sys.executable, "pipelines/train.py", "--seed", "1", "--data", "artifacts/data",
                    "--out", str(clean), "--metrics", str(tmp_path / "m.json"), "--plots", str(tmp_path / "p.csv"),
                    "--steps", str(tmp_path / "s.csv")],
                   cwd=repo, env=env_for(repo), check=True, capture_output=True)
    resumed, fresh = weights(repo / "artifacts/models/seed-1/model.pt"), weights(clean / "model.pt")
    assert resumed.keys() == fresh.keys()
    for k in fresh:
        assert torch.equal(resumed[k], fresh[k]), k
    # the training error every 20 steps (convergence claims) survives the kill: the same file
    assert (repo / "reports/plots/train/seed-1.steps.csv").read_text() == (tmp_path / "s.csv").read_text()


@pytest.mark.slow
def test_checkpoint_of_other_params_is_kept_apart_and_resumed_when_they_return(tmp_path):
    """A checkpoint belongs to the params that made it (its folder is keyed by the training digest):
    other params start afresh and leave it alone; the original params resume from it."""
    repo = copy_repo(tmp_path / "repo", PATCH)
    dvc(repo, "repro", "prepare")
    kill_after_checkpoints(repo, 2)
    old = checkpoint_of(repo)
    three = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(three.replace("epochs: 3", "epochs: 2"))
    out = dvc(repo, "repro", "train@1")
    assert "resuming" not in out and old.exists(), out[-2000:]
    (repo / "params.yaml").write_text(three)
    out = dvc(repo, "repro", "train@1")
    assert "resuming seed 1" in out and not old.exists(), out[-2000:]


@pytest.mark.slow
def test_sigkill_of_a_batchnorm_arm_resumes_bitwise(tmp_path):
    """An ablation arm resumes like the baseline, BatchNorm's running statistics included (AlexNet-BN,
    docs/successors.md): killed mid-run, `dvc repro` of its stage ends with an uninterrupted run's
    weights and buffers."""
    repo = copy_repo(tmp_path / "repo", deep_update(copy.deepcopy(PATCH), {"ablations": {"enabled": ["alexnet_bn"]}}))
    dvc(repo, "repro", "prepare")
    stage = "train_ablation@alexnet_bn-1"
    kill_after_writes(repo, "artifacts/work/train/*/seed-1/checkpoint.pt", 3, stage)
    final = repo / "artifacts/ablations/alexnet_bn/models/seed-1/model.pt"
    assert checkpoint_of(repo) is not None and not final.exists()
    out = dvc(repo, "repro", stage)
    assert "resuming seed 1" in out, out[-3000:]
    clean = tmp_path / "clean"
    subprocess.run([sys.executable, "pipelines/train.py", "--arm", "alexnet_bn", "--seed", "1", "--data",
                    "artifacts/data", "--out", str(clean), "--metrics", str(tmp_path / "m.json"),
                    "--plots", str(tmp_path / "p.csv"), "--steps", str(tmp_path / "s.csv")],
                   cwd=repo, env=env_for(repo), check=True, capture_output=True)
    resumed, fresh = weights(final), weights(clean / "model.pt")
    assert any(k.endswith("running_var") for k in fresh) and resumed.keys() == fresh.keys()
    for k in fresh:
        assert torch.equal(resumed[k], fresh[k]), k
