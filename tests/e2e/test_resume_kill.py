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


def kill_after_checkpoints(repo: Path, n: int) -> None:
    """Start `dvc repro train@1`, SIGKILL its whole process group after n checkpoint writes."""
    kill_after_writes(repo, repo / "artifacts/models/seed-1/checkpoint.pt", n, "train@1")


@pytest.mark.slow
def test_sigkill_then_repro_resumes_bitwise(tmp_path):
    repo = copy_repo(tmp_path / "repo", PATCH)
    dvc(repo, "repro", "prepare")
    kill_after_checkpoints(repo, 3)
    ck = repo / "artifacts/models/seed-1/checkpoint.pt"
    assert ck.exists() and not (repo / "artifacts/models/seed-1/model.pt").exists()
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
                    "--out", str(clean), "--metrics", str(tmp_path / "m.json"), "--plots", str(tmp_path / "p.csv")],
                   cwd=repo, env=env_for(repo), check=True, capture_output=True)
    resumed, fresh = weights(repo / "artifacts/models/seed-1/model.pt"), weights(clean / "model.pt")
    assert resumed.keys() == fresh.keys()
    for k in fresh:
        assert torch.equal(resumed[k], fresh[k]), k


@pytest.mark.slow
def test_checkpoint_of_other_params_is_ignored(tmp_path):
    repo = copy_repo(tmp_path / "repo", PATCH)
    dvc(repo, "repro", "prepare")
    kill_after_checkpoints(repo, 2)
    params = (repo / "params.yaml").read_text().replace("epochs: 3", "epochs: 2")
    (repo / "params.yaml").write_text(params)
    out = dvc(repo, "repro", "train@1")
    assert "made with other params" in out and "resuming" not in out
