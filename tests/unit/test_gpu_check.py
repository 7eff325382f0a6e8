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
    report = tmp_path / "reports" / "gpu.json"
    proc = subprocess.run([sys.executable, "-c", LAUNCH, "--smoke", "--out", str(out), "--jpegs", str(tmp_path / "none"),
                           "--pilot-data", str(tmp_path / "no-data"), "--report", str(report)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
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
    lrn = parts["lrn agreement"]
    for name in ("lrn1 float32", "lrn2 float32"):  # the two implementations agree to fp32 rounding
        assert lrn["layers"][name]["max_rel_diff_forward"] < 1e-5 and lrn["layers"][name]["max_rel_diff_backward"] < 1e-5
    assert set(lrn["layers"]) == {f"lrn{i} {k}" for i in (1, 2) for k in ("float32", "bfloat16", "channels_last bfloat16")}
    lrn_train = parts["lrn fast vs reference, training"]["train"]
    assert len(lrn_train) == 4 and all(v > 0 for v in lrn_train.values())
    p = r["projection"]
    assert p["hours_90_epochs"] == pytest_approx(90 * 1_281_167 / p["images_per_s"] / 3600)
    assert "90 epochs of ILSVRC-2012" in proc.stdout
    # side by side in one process: the paper net, the same without LRN, torchvision's alexnet
    side = parts["side by side eager"]
    assert set(side["nets"]) == {"paper", "paper_no_lrn", "torchvision_alexnet"}
    n = side["nets"]
    assert side["lrn_vs_no_lrn"] == pytest_approx(n["paper"]["images_per_s"] / n["paper_no_lrn"]["images_per_s"])
    assert n["torchvision_alexnet"]["train_flop_per_image"] > 10 * n["paper"]["train_flop_per_image"]  # width 1 vs 1/8
    assert side["lrn_kernel"].startswith("elementwise: chunked")  # the CPU's LRN
    # the summary (reports/gpu.json on a GPU machine): the keys, and on a CPU no GPU figure
    s = json.loads(report.read_text())
    assert s["device"] == "cpu" and s["measured_on_gpu"] is False and "GPU figures are unmeasured" in s["note"]
    assert len(s["commit"]["sha"]) == 40
    assert set(s["ratios"]) >= {"lrn_vs_no_lrn", "paper_vs_torchvision_alexnet", "compiled_vs_eager",
                                "pipeline_vs_model_bound"}
    assert s["ratios"]["lrn_vs_no_lrn"] == side["lrn_vs_no_lrn"]
    assert s["ratios"]["compiled_vs_eager"] == pytest_approx(
        parts["side by side compiled"]["nets"]["paper"]["images_per_s"] / n["paper"]["images_per_s"])
    assert s["ratios"]["pipeline_vs_model_bound"] is None and "gpu_e2e" in s["unmeasured"]["ratios.pipeline_vs_model_bound"]
    assert set(s["images_per_s"]) == {"fp32_ieee", "tf32", "bf16"}
    assert s["images_per_s"]["tf32"] is None and "CUDA" in s["unmeasured"]["images_per_s.tf32"]
    assert s["images_per_s"]["fp32_ieee"] == max(v["images_per_s"] for k, v in train.items()
                                                 if v["precision"] == "fp32" and not v["compile"])
    assert all(g["met"] is None for g in s["goals"].values())  # a CPU's figures judge no GPU goal
    assert s["end_to_end"]["ok"] is None and "gpu_e2e.py" in s["end_to_end"]["reason"]
    assert s["lrn"]["max_rel_diff_float32"] < 1e-5


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


def _part(**kw):
    return {"ok": True, **kw}


def test_summary_takes_each_ratio_from_its_part_and_nulls_what_failed():
    sys.path.insert(0, str(REPO))
    from benchmarks import gpu_summary as S

    nets = lambda p, t: {"paper": {"images_per_s": p, "flop_per_s": p * 4.0},  # noqa: E731
                         "paper_no_lrn": {"images_per_s": 2 * p}, "torchvision_alexnet": {"images_per_s": t,
                                                                                          "flop_per_s": t * 2.0}}
    parts = {"side by side eager": _part(nets=nets(100.0, 400.0), lrn_vs_no_lrn=0.5,
                                         paper_vs_torchvision_alexnet_per_flop=0.5, lrn_kernel="fused: Triton"),
             "side by side compiled": {"ok": False, "error": "PartTimeout: ran past its 180 s budget"},
             "train fp32 nchw b128 eager": _part(precision="fp32", compile=False, images_per_s=9000.0, batch=128),
             "train fp32 nchw b128 compiled": _part(precision="fp32", compile="inductor", images_per_s=9999.0, batch=128),
             "train tf32 channels_last b128 eager": _part(precision="tf32", compile=False, images_per_s=11000.0,
                                                          batch=128),
             "train bf16 channels_last b128 eager": _part(precision="bf16", compile=False, images_per_s=20000.0,
                                                          batch=128),
             "stage train bf16 autocast channels_last eager": _part(images_per_s=15000.0, batch=128)}
    r = {"parts": parts, "environment": {"device": "cuda", "gpu": "NVIDIA H200", "torch": "2.14"}}
    s = S.build(r, False, "gpu_check.json", {"ok": True, "pipeline_vs_model_bound": 0.95})
    assert s["device"] == "NVIDIA H200" and s["measured_on_gpu"] and "note" not in s
    assert s["ratios"]["lrn_vs_no_lrn"] == 0.5 and s["goals"]["lrn_vs_no_lrn"]["met"] is False
    assert s["ratios"]["compiled_vs_eager"] is None and "180 s budget" in s["unmeasured"]["ratios.compiled_vs_eager"]
    assert s["goals"]["compiled_vs_eager"]["met"] is None
    assert s["ratios"]["stage_loop_vs_model_bound"] == 0.75
    assert s["ratios"]["pipeline_vs_model_bound"] == 0.95 and s["goals"]["pipeline_vs_model_bound"]["met"] is True
    assert s["images_per_s"] == {"fp32_ieee": 9000.0, "tf32": 11000.0, "bf16": 20000.0}  # eager only
    assert s["goals"]["fp32_ieee_images_per_s"]["met"] is True and s["end_to_end"]["ok"] is True
    assert s["lrn"]["kernel"] == "fused: Triton" and "did not run" in s["lrn"]["reason"]


def test_performance_section_shows_the_gpu_summary():
    from dataclasses import fields

    from harness.report import render
    from harness.report.sections import ReportInputs, performance
    from benchmarks import gpu_summary as S

    parts = {"side by side eager": _part(nets={"paper": {"images_per_s": 100.0}}, lrn_vs_no_lrn=0.9,
                                         paper_vs_torchvision_alexnet_per_flop=0.45, lrn_kernel="fused: Triton"),
             "train fp32 nchw b128 eager": _part(precision="fp32", compile=False, images_per_s=8500.0, batch=128)}
    g = S.build({"parts": parts, "environment": {"device": "cuda", "gpu": "NVIDIA H200"}}, False, "gpu_check.json")
    none = {f.name: None for f in fields(ReportInputs)}
    doc = render.Doc()
    performance(doc, ReportInputs(**none | {"gpu": g}))
    md = render.to_markdown(doc, "figures")
    assert "on NVIDIA H200" in md and "| paper net step speed with LRN | the same net with model.lrn none | 0.90x | " \
                                     ">= 0.85 x | yes |" in md
    assert "| 0.45x | >= 0.6 x | no |" in md and "8,500 | >= 8,000 | yes" in md
    assert "unmeasured: the part 'side by side compiled' did not run" in md  # no figure made up
    assert "End to end on the device: not run: python benchmarks/gpu_e2e.py" in md
    doc = render.Doc()
    performance(doc, ReportInputs(**none))
    assert "GPU figures: not measured" in render.to_markdown(doc, "figures")
