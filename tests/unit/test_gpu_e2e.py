"""The prepared end-to-end device run (benchmarks/gpu_e2e.py, docs/performance.md) stays runnable: its
--smoke mode on the CPU with mlflow and dvc made unimportable in every process, as on the GPU
machine; and the tracking switch it relies on (HARNESS_TRACKING=off)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import imagenet_fixtures as fx
import pytest
import torch

from harness import runtime, tracking
from harness.errors import UserError

REPO = Path(__file__).resolve().parents[2]

# Imported by every Python process that has this folder on PYTHONPATH (the script and each stage
# it starts): the path finder made blind to mlflow and dvc, so importing them fails as on the device.
BLOCKER = """
import importlib.machinery as M, sys
class Hide(M.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split('.')[0] in HIDDEN:
            return None
        return M.PathFinder.find_spec(name, path, target)
sys.meta_path = [Hide if f is M.PathFinder else f for f in sys.meta_path]
"""


def blocked_env(tmp_path: Path, hidden=("mlflow", "dvc")) -> dict:
    site = tmp_path / "blocker"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"HIDDEN = {tuple(hidden)!r}" + BLOCKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "HARNESS_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])
    return env


def test_gpu_e2e_smoke_runs_every_stage_without_mlflow_or_dvc(tmp_path):
    env = blocked_env(tmp_path)
    probe = subprocess.run([sys.executable, "-c", "import mlflow"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'mlflow'" in probe.stderr  # the blocker works
    work, out = tmp_path / "work", tmp_path / "out" / "gpu_e2e.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_e2e.py"), "--smoke", "--work", str(work),
                           "--out", str(out), "--jpegs", str(fx.sample_dir())],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["ok"] and r["environment"]["mlflow_importable"] is False and r["environment"]["dvc_importable"] is False
    parts = r["parts"]
    assert parts["dataset"]["images"] == 4 * (8 + 3)
    stages = parts["stages"]
    # dvc.yaml's order, each seed of the matrix stages
    assert stages["order"] == ["validate", "list_data", "prepare", "train@1", "train@2", "evaluate@1", "evaluate@2", "ensemble", "compare",
                               "report"]
    assert all(run["rc"] == 0 for run in stages["runs"].values()) and stages["found"]["missing"] == []
    for s in (1, 2):  # 10-patch evaluation of 4 classes x 3 validation images: errors are multiples of 1/12
        ev = stages["found"][f"seed-{s}"]
        assert ev["n_images"] == 12 and set(ev) == {"center", "ten_patch", "n_images"}
        assert round(ev["ten_patch"] * 12 / 100, 6).is_integer()
    assert (work / "reports" / "report.html").stat().st_size > 1000
    assert json.loads((work / "artifacts/data/manifest.json").read_text())["source"] == "imagefolder"
    assert not (work / "mlflow.db").exists() and not (work / ".mlflow-buffer.jsonl").exists()  # tracking off
    kill = parts["kill and resume"]
    assert kill["killed_rc"] == -9 and kill["checkpoint_left"]  # SIGKILL after the mid-epoch checkpoint
    assert "epoch 1, step 2" in kill["resumed_message"]  # resumed inside the first epoch
    assert kill["bitwise_equal"] and kill["tensors"] == 16 and kill["ok"]
    # the check itself: the resumed weights are a separate file from train@1's
    a = torch.load(work / "artifacts/models/seed-1/model.pt", weights_only=True)["state_dict"]
    b = torch.load(work / "artifacts/e2e-resume/models/seed-1/model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    towers = parts["two towers on one device"]
    assert towers["devices"] == ["cpu"] and towers["max_rel_diff_logits"] < 1e-5 and towers["ok"]
    s = json.loads((out.parent / "gpu.smoke.json").read_text())  # folded in as gpu_summary's end_to_end
    assert s["end_to_end"]["ok"] is True and s["measured_on_gpu"] is False
    assert set(s["end_to_end"]["parts"]) == set(parts) and len(s["end_to_end"]["commit"]["sha"]) == 40


def test_tracking_off_logs_nothing_and_passes_stage_errors_through(monkeypatch):
    monkeypatch.setenv(runtime.TRACKING_ENV, "off")
    assert runtime.tracking_off()
    assert tracking.ensure_experiment(tracking.OFF, "x", Path("/nonexistent")) == ""
    assert tracking.parent_run(tracking.OFF, "", "key", {}, Path("/nonexistent")) is None
    with tracking.child_run(tracking.OFF, "", None, "train-seed1", {}, {}) as run_id:
        assert run_id is None
        tracking.log_metrics(tracking.OFF, run_id, {"a": 1.0})
        assert tracking.logged_steps(tracking.OFF, run_id, ["a"]) == {"a": set()}
    with pytest.raises(RuntimeError, match="stage failed"):
        with tracking.child_run(tracking.OFF, "", None, "train-seed1", {}, {}):
            raise RuntimeError("stage failed")
    monkeypatch.setenv(runtime.TRACKING_ENV, "of")
    with pytest.raises(UserError, match="HARNESS_TRACKING='of'"):
        runtime.tracking_off()
    monkeypatch.delenv(runtime.TRACKING_ENV)
    assert not runtime.tracking_off()


def test_gpu_e2e_names_missing_packages_and_records_why_it_did_not_run(tmp_path):
    """A device without a package the stages import: it stops at once, names it, and the summary's
    end_to_end says so (not a silent null)."""
    env = blocked_env(tmp_path, hidden=("mlflow", "dvc", "pandas", "statsmodels"))
    out = tmp_path / "gpu_e2e.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_e2e.py"), "--smoke", "--out", str(out),
                           "--work", str(tmp_path / "work"), "--jpegs", str(tmp_path)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "missing packages the stages import: pandas, statsmodels" in proc.stderr
    assert not (tmp_path / "work").exists()  # nothing started
    e2e = json.loads((tmp_path / "gpu.smoke.json").read_text())["end_to_end"]
    assert e2e["ok"] is False and "pandas, statsmodels" in e2e["reason"] and e2e["parts"] == {}
    from harness.report.gpu import _e2e
    assert _e2e(e2e) == "failed: missing packages the stages import: pandas, statsmodels"  # the report says why
    assert _e2e({"ok": False, "parts": {"stages": {"ok": False}, "dataset": {"ok": True}}}) == "failed: stages"
