"""`python -m benchmarks.run --quick` end to end on tiny params (no prepared data: it makes a
synthetic set), and the report's Performance section rendered from its JSON."""

import copy
import json
from dataclasses import fields

import pytest
import yaml
from repo_utils import REPO, TINY, deep_update

from benchmarks import run as bench
from harness.report import render
from harness.report.sections import ReportInputs, performance


def inputs(**given) -> ReportInputs:
    """Report inputs with only what the Performance section reads."""
    return ReportInputs(**{f.name: None for f in fields(ReportInputs)} | given)


def test_quick_benchmark_writes_figures_and_baselines(tmp_path, capsys):
    params = deep_update(yaml.safe_load((REPO / "params.yaml").read_text()), copy.deepcopy(TINY))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "benchmarks.json"
    bench.main(["--quick", "--params", str(tmp_path / "params.yaml"), "--data", str(tmp_path / "absent"),
                "--out", str(out), "--threads", "1"])
    r = json.loads(out.read_text())
    assert r["quick"] and "synthetic" in r["setup"]["data"] and r["setup"]["threads"] == 1
    t = r["train"]
    assert t["harness_images_per_s"]["median"] > 0 and t["plain_images_per_s"]["median"] > 0
    assert t["harness_images_per_s"]["n"] == t["plain_images_per_s"]["n"] == t["overhead_pct"]["n"] == 3
    assert r["flops"]["train_flop_per_image"] == 6 * r["flops"]["mult_adds_per_image"]
    assert 0 < r["mfu"]["harness_mfu"] < 1.5  # a rough peak can be beaten a little, never by far
    assert r["loader"]["headroom"] > 0 and r["eval_ten_patch"]["images_per_s"]["median"] > 0
    # the baseline did the harness's work: the same weights, bit for bit, after every round
    assert t["same_weights"] is True and t["baseline_optimizer"] == t["optimizer"] == "PaperSGD"
    fs = r["fullsize"]  # the paper net against torchvision's alexnet at 224 px, one loop for all
    assert set(fs["variants"]) == {"torchvision", "paper", "paper_reference_lrn", "paper_no_lrn",
                                   "torchvision_channels_last", "paper_channels_last"}
    v = fs["variants"]
    assert v["paper"]["mult_adds_per_image"] == 724_406_816 and v["torchvision"]["mult_adds_per_image"] > 7e8
    assert fs["ratios"]["paper_vs_torchvision_per_flop"] == pytest.approx(
        v["paper"]["flop_per_s"] / v["torchvision"]["flop_per_s"])
    assert 0 < fs["profile"]["lrn_share_pct"] < 100 and 0 < r["step_profile"]["lrn_share_pct"] < 100
    real = {"prepare_per_core", "loader_per_core"} if "real_jpegs" in r else set()
    assert set(r["verdicts"]) == {"train_overhead", "loader_headroom", "lrn_share_default_profile",
                                  "lrn_share_full_size", "paper_vs_torchvision_per_flop",
                                  "paper_vs_torchvision_per_flop_channels_last"} | real
    if real:  # the ImageNet sample: each ratio is of two speeds measured in this run
        for key, (ours, base) in {"prepare": ("harness_decode_fit_encode_img_s", "pil_open_convert_resize_crop_img_s"),
                                  "loader": ("harness_trainview_jpeg_shards_img_s", "torchvision_imagefolder_img_s")}.items():
            f = r["real_jpegs"][key]
            assert f[ours] > 0 and f[base] > 0 and abs(f["ratio"] - f[ours] / f[base]) < 0.02
        dq = r["real_jpegs"]["dct_scaling"]
        assert 0 < dq["scaled_images"] < dq["images"] and dq["scaled_psnr_db_mean"] > 30
    assert r["machine"]["cpu_count"] and r["machine"]["torch"]
    assert "plain PyTorch loop" in capsys.readouterr().out

    doc = render.Doc()
    performance(doc, inputs(benchmarks=r))
    md = render.to_markdown(doc, "figures")
    assert "plain PyTorch loop" in md and "MFU" in md and "Goals met: " in md
    assert "quick mode" in md and "Where a training step's time goes" in md and "bookkeeping" in md
    if real:
        assert "torchvision ImageFolder" in md and "Pillow open-convert-resize-crop" in md and "dct_scaling" in md
    assert "paper net GFLOP/s at 224 px" in md and "LRN share of a default-profile step" in md

    # a benchmarks.json from before model.lrn_impl and the full-size figures still renders
    old = copy.deepcopy(r)
    for key in ("fullsize", "real_jpegs", "notes"):
        old.pop(key, None)
    for key in ("lrn_share_default_profile", "lrn_share_full_size", "paper_vs_torchvision_per_flop",
                "paper_vs_torchvision_per_flop_channels_last"):
        old["verdicts"].pop(key)
    old["step_profile"]["lrn"] = {"lrn": "paper", "step_share_pct": 60.0}
    old["train"].pop("same_weights")
    doc = render.Doc()
    performance(doc, inputs(benchmarks=old))
    md = render.to_markdown(doc, "figures")
    assert "The LRN takes 60% of a step" in md and "paper net GFLOP/s" not in md and "same work" not in md


def test_performance_section_without_benchmarks():
    doc = render.Doc()
    performance(doc, inputs())
    assert "make bench" in render.to_markdown(doc, "figures")
