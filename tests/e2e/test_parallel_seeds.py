"""Seeds in parallel through DVC's experiment queue (docs/scale-out.md): `harness queue-seeds`
queues one experiment per seed and starts one queue worker per device set, each with its own
CUDA_VISIBLE_DEVICES ("0,1" and "2,3" stand in for GPU pairs; training runs on the CPU). Both
seeds train at the same time, each on its worker's set; `harness collect-seeds` brings them
into the workspace, whose `dvc repro` runs only the fan-in stages, all under one MLflow parent."""

import copy
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from repo_utils import TINY, copy_repo, deep_update, dvc, env_for, ran_stages, stale

pytestmark = pytest.mark.slow

# each seed's experiment (setup, train, evaluate) must outlast the start of the second worker
PATCH = deep_update(copy.deepcopy(TINY), {"data": {"synthetic": {"train_per_class": 100}},
                                          "train": {"seeds": [1, 2], "epochs": 6, "lr_steps": [5]}})


def harness_cli(repo: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=repo, env=env_for(repo),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def wait_for_queue(repo: Path, timeout_s: float = 600) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        status = dvc(repo, "queue", "status")
        if "Queued" not in status and "Running" not in status:
            return status
        time.sleep(2)
    raise AssertionError(f"the queue did not finish:\n{status}")


def test_seeds_train_in_parallel_on_their_workers_devices(tmp_path):
    repo = copy_repo(tmp_path / "repo", PATCH)
    dvc(repo, "repro", "prepare")
    said = harness_cli(repo, "queue-seeds", "--devices", "0,1", "2,3")
    assert "queued seed-1, seed-2" in said and "2 queue worker(s) started" in said
    status = wait_for_queue(repo)
    assert status.count("Success") == 2, status

    db = sqlite3.connect(repo / "mlflow.db")  # the queued experiments log to the workspace's store
    runs = {name: (run, start, end) for name, run, start, end in db.execute(
        "SELECT name, run_uuid, start_time, end_time FROM runs WHERE name LIKE 'train-seed%' AND status='FINISHED'")}
    assert sorted(runs) == ["train-seed1", "train-seed2"]

    def tag(run, key):
        return db.execute("SELECT value FROM tags WHERE run_uuid=? AND key=?", (run, key)).fetchone()[0]
    # each seed trained on its worker's device set (which worker took which seed is DVC's choice)
    assert {tag(r, "cuda_visible_devices") for r, _, _ in runs.values()} == {"0,1", "2,3"}
    assert {tag(r, "DVC_EXP_NAME") for r, _, _ in runs.values()} == {"seed-1", "seed-2"}
    (_, s1, e1), (_, s2, e2) = runs.values()
    assert s1 < e2 and s2 < e1, "the two seeds did not train at the same time"

    taken = harness_cli(repo, "collect-seeds", "seed-1", "seed-2")
    assert "seed-1: " in taken and "train@1" in taken and "evaluate@2" in taken
    dvc(repo, "checkout", "--allow-missing")  # ensemble and compare have not run: no hash for their outputs
    out = dvc(repo, "repro")
    # no seed retrained (validate, the params check, reruns when the merged lock lacks it)
    assert ran_stages(out) - {"validate"} == {"ensemble", "compare", "report"}
    compare = json.loads((repo / "reports/metrics/compare.json").read_text())
    assert {r["seed"] for r in compare["seeds"]} == {1, 2}
    parents = {tag(r, "mlflow.parentRunId") for (r,) in db.execute(
        "SELECT run_uuid FROM runs WHERE name IN ('train-seed1', 'train-seed2', 'evaluate-seed1', "
        "'evaluate-seed2', 'ensemble', 'compare', 'report')")}
    assert len(parents) == 1, parents  # one pipeline execution, one parent run, as with `dvc repro`
    assert stale(repo) == {}
