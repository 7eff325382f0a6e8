"""Seeds on separate machines, collected into one comparison (docs/scale-out.md), on one CPU:
two clones share a git remote and a local-folder DVC remote, each trains one seed and pushes,
and a third clone merges their dvc.lock entries, pulls, and runs only the fan-in stages."""

import copy
import json
import subprocess
from pathlib import Path

import pytest
from repo_utils import TINY, UNTRACKED, copy_repo, deep_update, dvc, env_for, ran_stages, stale

from harness.collect import merge_locks
from harness.errors import UserError

PATCH = deep_update(copy.deepcopy(TINY), {"train": {"seeds": [1, 2], "epochs": 1, "lr_steps": [1]}})


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=repo,
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def harness_cli(repo: Path, *args: str) -> str:
    import sys
    proc = subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=repo, env=env_for(repo),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.slow
def test_merge_locks_unions_stages_and_refuses_conflicts():
    prep = {"cmd": "prepare", "outs": [{"path": "artifacts/data", "md5": "a"}]}
    one = {"schema": "2.0", "stages": {"prepare": prep, "train@1": {"cmd": "t1"}}}
    two = {"schema": "2.0", "stages": {"prepare": prep, "train@2": {"cmd": "t2"}}}
    base = {"schema": "2.0", "stages": {"train@1": {"cmd": "old"}, "compare": {"cmd": "c"}}}
    merged, taken = merge_locks(base, {"seed-1": one, "seed-2": two})
    assert merged["stages"] == {"prepare": prep, "train@1": {"cmd": "t1"}, "train@2": {"cmd": "t2"},
                                "compare": {"cmd": "c"}}  # a branch's entry replaces the collector's
    assert taken == {"seed-1": ["prepare", "train@1"], "seed-2": ["train@2"]}
    other = {"schema": "2.0", "stages": {"prepare": {**prep, "outs": [{"path": "artifacts/data", "md5": "b"}]}}}
    with pytest.raises(UserError, match="stage prepare differs between seed-1 and seed-3"):
        merge_locks(None, {"seed-1": one, "seed-3": other})


@pytest.mark.slow
def test_seeds_on_two_machines_collected_into_one_comparison(tmp_path):
    base = copy_repo(tmp_path / "base", PATCH, tracking=False)
    for folder in ("reports/reference", "reports/metrics/ablations", "reports/plots/ablations",
                   "reports/metrics/finetune"):
        (base / folder).mkdir(parents=True, exist_ok=True)  # empty folders that stages depend on
        (base / folder / ".gitkeep").touch()
    dvc(base, "remote", "add", "-d", "team", str(tmp_path / "dvc-remote"))  # a shared folder (or s3://...)
    git(base, "add", "-A")
    git(base, "commit", "-qm", "team remote")
    git(tmp_path, "init", "-q", "--bare", "origin.git")
    git(base, "push", "-q", str(tmp_path / "origin.git"), "HEAD:main")

    for seed in (1, 2):  # each "machine": its own clone, one seed
        m = tmp_path / f"machine-{seed}"
        git(tmp_path, "clone", "-q", "-b", "main", "origin.git", m.name)
        UNTRACKED.add(m.resolve())  # the stages run untracked (HARNESS_TRACKING=off): DVC's remote is the subject
        out = dvc(m, "repro", f"evaluate@{seed}")
        assert ran_stages(out) == {"validate", "prepare", f"train@{seed}", f"evaluate@{seed}"}
        dvc(m, "push")
        git(m, "checkout", "-q", "-b", f"seed-{seed}")
        git(m, "add", "dvc.lock", "reports")
        git(m, "commit", "-qm", f"seed {seed}")
        git(m, "push", "-q", "origin", f"seed-{seed}")

    c = tmp_path / "collector"
    git(tmp_path, "clone", "-q", "-b", "main", "origin.git", c.name)
    UNTRACKED.add(c.resolve())
    said = harness_cli(c, "collect-seeds", "origin/seed-1", "origin/seed-2")
    assert "origin/seed-2: train@2, evaluate@2" in said
    dvc(c, "pull", "--allow-missing")  # ensemble and compare have not run: no hash for their outputs
    out = dvc(c, "repro")
    # no seed retrained, no data re-prepared (validate, the params check, reruns when the merged lock lacks it)
    assert ran_stages(out) - {"validate"} == {"ensemble", "compare", "report"}
    compare = json.loads((c / "reports/metrics/compare.json").read_text())
    assert {r["seed"] for r in compare["seeds"]} == {1, 2}
    assert all(v["n"] == 2 for ms in compare["summary"].values() for v in ms.values())
    assert stale(c) == {}
