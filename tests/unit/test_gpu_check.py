"""The prepared GPU check stays runnable: its --smoke mode on the CPU, with the packages a bare
GPU machine lacks (PyYAML, mlflow, dvc, pandas, scipy, tqdm, matplotlib) made unimportable."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The path finder, made blind to the packages the GPU machine is not assumed to have: they
# look absent (find_spec None, import raises ModuleNotFoundError), as on that machine.
BLOCKED = ("yaml", "mlflow", "dvc", "pandas", "scipy", "tqdm", "matplotlib")
LAUNCH = f"""
import importlib.machinery as M, runpy, sys
class Hide(M.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split('.')[0] in {BLOCKED!r}:
            return None
        return M.PathFinder.find_spec(name, path, target)
sys.meta_path = [Hide if f is M.PathFinder else f for f in sys.meta_path]
sys.argv = ['gpu_check.py'] + sys.argv[1:]
runpy.run_path({str(REPO / 'benchmarks' / 'gpu_check.py')!r}, run_name='__main__')
"""


def test_gpu_check_smoke_runs_without_pipeline_packages(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, "-c", LAUNCH, "--smoke", "--out", str(out), "--jpegs", str(tmp_path / "none"),
                           "--pilot-data", str(tmp_path / "no-data")],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    parts = r["parts"]
    failed = {k: v["error"] for k, v in parts.items() if not v["ok"]}
    assert not failed, failed
    # the train stage's own loop: IEEE fp32, TF32 and bf16; NCHW and channels_last; eager and compiled
    stage = {k: v for k, v in parts.items() if k.startswith("stage train ")}
    assert len(stage) == 5 and all(v["steps"] == 6 and v["losses_finite"] and v["images_per_s"] > 0
                                   for v in stage.values())
    assert {(v["fp32_precision"], v["precision"]) for v in stage.values()} == {("ieee", "fp32"), ("tf32", "fp32"),
                                                                              ("ieee", "bf16")}
    assert {v["channels_last"] for v in stage.values()} == {True, False}
    assert {v["compile"] for v in stage.values()} == {"off", "eager"}  # --smoke compiles with the eager backend
    assert "harness.train.loop.train_one_epoch" in next(iter(stage.values()))["code"]
    assert "skipped" in parts["pilot"]  # no `harness pilot` in this checkout, or no prepared data (--pilot-data)
    ddp = parts["torchrun 2 process(es), one per CPU process"]
    assert ddp["backend"] == "gloo" and ddp["collectives_ok"] and ddp["devices"] == [["cpu"], ["cpu"]]
    assert ddp["global_batch"] == 8 and ddp["images_per_s"] > 0
    train = {k: v for k, v in parts.items() if k.startswith("train ")}
    assert {v["precision"] for v in train.values()} == {"fp32", "tf32", "bf16"}
    assert {v["channels_last"] for v in train.values()} == {True, False}
    assert {bool(v["compile"]) for v in train.values()} == {True, False}
    assert all(v["images_per_s"] > 0 and v["mfu_vs_bf16_peak"] > 0 for v in train.values())
    assert parts["jpeg decode"]["cpu_images_per_s"] > 0 and "synthetic" in parts["jpeg decode"]["source"]
    assert parts["eval ten_patch fp32 nchw"]["images_per_s"] > 0
    lrn = parts["lrn fast vs reference"]
    for name in ("lrn1 float32", "lrn2 float32"):  # the two implementations agree to fp32 rounding
        assert lrn["layers"][name]["max_rel_diff_forward"] < 1e-5 and lrn["layers"][name]["max_rel_diff_backward"] < 1e-5
    assert len(lrn["train"]) == 4 and all(v > 0 for v in lrn["train"].values())
    p = r["projection"]
    assert p["hours_90_epochs"] == pytest_approx(90 * 1_281_167 / p["images_per_s"] / 3600)
    assert "90 epochs of ILSVRC-2012" in proc.stdout


def pytest_approx(x):
    import pytest
    return pytest.approx(x, rel=1e-9)


def test_a_failing_part_is_recorded_not_fatal(tmp_path):
    sys.path.insert(0, str(REPO))
    from benchmarks import gpu_check as G

    rec = G.Recorder(tmp_path / "r.json", total_s=60)
    bad = rec.part("broken", 5, lambda: 1 / 0)
    slow = rec.part("slow", 1, lambda: [None for _ in iter(int, 1)])  # never ends: stopped by its budget
    good = rec.part("good", 5, lambda: {"images_per_s": 1.0})
    assert not bad["ok"] and "ZeroDivisionError" in bad["error"]
    assert not slow["ok"] and "budget" in slow["error"]
    assert good["ok"]
    saved = json.loads((tmp_path / "r.json").read_text())["parts"]
    assert set(saved) == {"broken", "slow", "good"}
    assert G.projection({"train a": {"ok": True, "images_per_s": 20_000.0}})["goal_met"]
    assert G.projection({"train a": {"ok": True, "images_per_s": 20_000.0}})["hours_90_epochs"] < 2
