"""End to end: the real pipeline through `dvc repro` in a temporary copy of the repository.

Tiny profile (a few seconds of training per seed). Checks the outputs, the MLflow store, and
what DVC users expect: a second repro does nothing, a new seed runs only its own stages and
the fan-in stages, an evaluation-only param does not retrain.
"""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TINY = {
    "data": {"image_size": 72, "shard_size": 64,
             "synthetic": {"num_classes": 6, "train_per_class": 24, "val_per_class": 10}},
    "model": {"width": 0.125, "input_size": 64},
    "train": {"seeds": [1, 2], "epochs": 2, "batch_size": 16, "lr_steps": [2], "threads": 1},
    "ensemble": {"max_subsets": 10},
    "compare": {"n_boot": 200},
}


def deep_update(d: dict, patch: dict) -> dict:
    for k, v in patch.items():
        if isinstance(v, dict):
            deep_update(d[k], v)
        else:
            d[k] = v
    return d


def dvc(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "DVC_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(repo)  # the copy's harness, not the installed one
    proc = subprocess.run(["dvc", *args], cwd=repo, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout


def ran_stages(out: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", out))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("repo")
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file() and not f.startswith(("reports/", "dvc.lock")):
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dst / f)
    (dst / "reports" / "reference").mkdir(parents=True)
    params = deep_update(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dst, check=True)
    return dst


@pytest.fixture(scope="module")
def first_run(repo):
    return dvc(repo, "repro")


@pytest.mark.slow
def test_full_pipeline_outputs(repo, first_run):
    assert {"prepare", "train@1", "train@2", "evaluate@1", "evaluate@2", "ensemble", "compare",
            "report"} <= ran_stages(first_run)
    labels = np.load(repo / "artifacts/data/val/labels.npy")
    for seed in (1, 2):
        for proto in ("center", "ten_patch"):
            probs = np.load(repo / f"artifacts/predictions/seed-{seed}/{proto}.npy")
            assert probs.shape == (60, 6) and probs.dtype == np.float32
            np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
        ev = json.loads((repo / f"reports/metrics/evaluate/seed-{seed}.json").read_text())
        # recompute the stored error from the saved predictions
        probs = np.load(repo / f"artifacts/predictions/seed-{seed}/center.npy")
        assert ev["protocols"]["center"]["top1_error"] == pytest.approx(100 * (probs.argmax(1) != labels).mean())
    compare = json.loads((repo / "reports/metrics/compare.json").read_text())
    untested = [c for c in compare["claims"] if not c["tested"]]
    assert untested and all(c["reason"] for c in untested)
    assert "synthetic" in next(c for c in compare["claims"] if c["id"].startswith("t1-cnn"))["reason"]
    assert compare["reference"]["tested"] is False and "reference" in compare["reference"]["reason"]
    html = (repo / "reports/report.html").read_text()
    assert "data:image/png;base64," in html and "http://" not in html.replace("http://127.0.0.1:5000", "")
    assert "<script" not in html


@pytest.mark.slow
def test_mlflow_store_has_parent_and_children(repo, first_run):
    db = sqlite3.connect(repo / "mlflow.db")
    runs = db.execute("SELECT run_uuid, name, status FROM runs").fetchall()
    names = {r[1] for r in runs}
    assert {"prepare", "train-seed1", "train-seed2", "evaluate-seed1", "evaluate-seed2", "ensemble",
            "compare", "report"} <= names
    parents = db.execute("SELECT value FROM tags WHERE key='mlflow.parentRunId'").fetchall()
    assert len({p[0] for p in parents}) == 1 and len(parents) == len(runs) - 1
    metrics = {r[0] for r in db.execute("SELECT DISTINCT key FROM metrics")}
    assert {"val_top1_error", "train_loss", "lr", "images_per_s", "step_loss"} <= metrics
    epochs = db.execute("SELECT COUNT(*) FROM metrics m JOIN runs r ON m.run_uuid=r.run_uuid "
                        "WHERE r.name='train-seed1' AND m.key='val_top1_error'").fetchone()[0]
    assert epochs == 2
    train = json.loads((repo / "reports/metrics/train/seed-1.json").read_text())
    assert train["mlflow_run_id"] in {r[0] for r in runs}


@pytest.mark.slow
def test_second_repro_does_nothing(repo, first_run):
    out = dvc(repo, "repro")
    assert ran_stages(out) == set(), out


@pytest.mark.slow
def test_adding_a_seed_runs_only_that_seed(repo, first_run):
    before = (repo / "artifacts/models/seed-1/model.pt").read_bytes()
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["seeds"] = [1, 2, 3]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = dvc(repo, "repro")
    assert ran_stages(out) == {"train@3", "evaluate@3", "ensemble", "compare", "report"}, out
    assert (repo / "artifacts/models/seed-1/model.pt").read_bytes() == before


@pytest.mark.slow
def test_evaluation_param_does_not_retrain(repo, first_run):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["evaluate"]["batch_size"] = 7
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = dvc(repo, "repro")
    assert not any(s.startswith(("train", "prepare")) for s in ran_stages(out)), out
    assert any(s.startswith("evaluate") for s in ran_stages(out))
