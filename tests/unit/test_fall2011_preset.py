"""`harness preset fall2011` (the whole paper-6 path in one command) and the pilot's projection
of its cost. The projection is checked against hand arithmetic from fixed rates."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import config as C
from harness import pilot, presets
from harness.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def _apply(tmp_path, **roots):
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    presets.apply_preset("fall2011", REPO / "presets", params, **roots)
    return C.load_config(params)


def test_preset_sets_both_roots_and_the_paper_recipe(tmp_path):
    (tmp_path / "f11").mkdir(), (tmp_path / "il").mkdir()
    cfg = _apply(tmp_path, root=str(tmp_path / "f11"), ilsvrc2012_root=str(tmp_path / "il"))
    assert cfg.data.source == "ilsvrc2012" and cfg.data.root == str((tmp_path / "il").resolve())
    p = cfg.pretrain
    assert p.enabled == ("fall2011",) and p.seeds == (1, 2)
    assert p.data.source == "fall2011" and p.data.root == str((tmp_path / "f11").resolve())
    assert p.data.fall2011.exclude_root == cfg.data.root and p.data.fall2011.release == "fall2011"
    assert cfg.model == C.ModelConfig() and len(cfg.train.seeds) == 5  # the 5 ILSVRC-only CNNs: the paper net
    pre = C.apply_phase(cfg, "pretrain")
    assert pre.model.conv6 and pre.train.devices == ("cuda:0",)  # the six-conv net on one device (a departure)


def test_preset_needs_both_roots(tmp_path):
    (tmp_path / "f11").mkdir()
    with pytest.raises(UserError, match="--ilsvrc2012-root"):
        _apply(tmp_path, root=str(tmp_path / "f11"))
    with pytest.raises(UserError, match="only the fall2011 preset"):
        presets.apply_preset("ilsvrc2012", REPO / "presets", tmp_path / "params.yaml", str(tmp_path),
                             ilsvrc2012_root=str(tmp_path))


def test_pilot_projects_pre_training_from_the_entire_release(tmp_path):
    (tmp_path / "f11").mkdir(), (tmp_path / "il").mkdir()
    cfg = _apply(tmp_path, root=str(tmp_path / "f11"), ilsvrc2012_root=str(tmp_path / "il"))
    rates = {"train_images_per_s": 1000.0, "eval_center_images_per_s": 4000.0, "eval_ten_patch_images_per_s": 400.0}
    manifest = {"counts": {"train": 1_281_167, "val": 50_000}}
    proj = pilot.project(cfg, manifest, rates, 1000)
    pre, fine = proj["groups"][-2:]
    # 14,197,122 images, every 250th held out: 56,788 val, 14,140,334 train; 20 epochs; the net with conv6
    # and a 21,841-way fc8 costs its multiply-adds over the five-conv 1000-way net's, and runs on one of
    # the two devices the rates were measured on (x2)
    scale = 2 * pilot.mult_adds(C.apply_phase(cfg, "pretrain").model, 21_841) / pilot.mult_adds(cfg.model, 1000)
    assert pre["scale"] == pytest.approx(scale) and scale > 2.2
    assert pre["train_s"] == pytest.approx(20 * 14_140_334 / 1000.0 * scale)
    assert pre["validate_s"] == pytest.approx(20 * 56_788 / 4000.0 * scale)
    assert (pre["seeds"], pre["devices"], fine["seeds"]) == (2, 1, 2)
    assert fine["train_s"] == pytest.approx(20 * 1_281_167 / 1000.0 * fine["scale"])
    # the pre-training dominates each pre-trained CNN's cost: over twice an ILSVRC-only CNN's device-hours
    base = proj["groups"][0]
    assert pre["total_s"] * pre["devices"] > 2 * base["total_s"] * base["devices"]
    assert pre["total_s"] > 10 * fine["total_s"]
    lines = pilot.summary_lines({"throughput": {**rates, "train_images_per_s_per_device": 1000.0}, "projection": proj,
                                 "loss": {"verdict": "decreasing", "message": "", "init_logit_sd": 1.0},
                                 "steps": 1, "profile": "p", "dataset": "d", "num_classes": 1000, "devices": ["cuda:0"],
                                 "recipe": {"batch_size": 128}, "memory": {}})
    assert any(line.startswith("pre-trained CNNs (paper 6):") for line in lines)
