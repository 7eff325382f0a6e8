"""`harness pilot` and the costed plan: the loss rule, the projection and the plan's arithmetic by hand,
and a real pilot in process on tiny prepared data (the paper's init sits flat)."""

import dataclasses
import math

import numpy as np
import pytest
import tiny

from harness import config as C
from harness import pilot
from harness.report import plan


def test_loss_rule():
    ln20 = math.log(20)
    rng = np.random.default_rng(0)
    falling = list(ln20 - np.linspace(0, 0.5, 200) + rng.normal(0, 0.05, 200))
    r = pilot._loss_verdict(falling, 20)
    assert r["verdict"] == "decreasing" and r["drop_nats"] == pytest.approx(0.475, abs=0.03)
    flat = list(ln20 + rng.normal(0, 0.05, 200))
    r = pilot._loss_verdict(flat, 20)
    assert r["verdict"] == "flat" and r["message"].startswith("FLAT LOSS")
    # below ln C by less than 1% of it: still flat, however many steps shrink the SE
    assert pilot._loss_verdict([ln20 - 0.02] * 300, 20)["verdict"] == "flat"
    assert pilot._loss_verdict(falling[:100] + [float("nan")] * 10, 20)["verdict"] == "diverged"


def test_projection_by_hand():
    """1000 training and 100 val images, 2 epochs, 3 seeds; 100 / 200 / 20 images/s (train, centre, 10-patch):
    per seed 2*1000/100 + 2*100/200 + (100/200 + 100/20) = 20 + 1 + 5.5 = 26.5 s."""
    arms = C.AblationsConfig(enabled=("no_dropout",), arms=(C.ArmConfig("no_dropout", (("model.dropout", 0.0),)),))
    cfg = C.Config(data=tiny.DATA, model=tiny.MODEL, train=C.TrainConfig(epochs=2, seeds=(1, 2, 3)), ablations=arms)
    rates = {"train_images_per_s": 100.0, "eval_center_images_per_s": 200.0, "eval_ten_patch_images_per_s": 20.0}
    p = pilot.project(cfg, {"counts": {"train": 1000, "val": 100}}, rates, 4)
    base, arm = p["groups"]
    assert base["total_s"] == pytest.approx(26.5) and base["seeds"] == 3
    assert arm["scale"] == 1.0 and arm["seeds"] == 3  # dropout costs no multiply-adds; arms train train.seeds
    assert p["wall_s"] == pytest.approx(6 * 26.5) and p["device_hours"] == pytest.approx(6 * 26.5 / 3600)
    held = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, schedule="plateau", schedule_split="holdout",
                                                              holdout_every=10))
    g = pilot.project(held, {"counts": {"train": 1000, "val": 100}}, rates, 4)["groups"][0]
    assert g["train_s"] == pytest.approx(2 * 900 / 100) and g["validate_s"] == pytest.approx(2 * 200 / 200)


def test_unit_costs_scale_by_multiply_adds_unless_the_paper_net_ran():
    rates = {"train_images_per_s": 1000.0, "eval_center_images_per_s": 2000.0, "eval_ten_patch_images_per_s": 200.0}
    small = pilot.unit_costs(C.Config(model=tiny.MODEL), rates, 1_000_000)
    assert small["train_device_s_per_image"] == pytest.approx(pilot.PAPER_MULT_ADDS / 1e6 / 1000)
    paper = pilot.unit_costs(C.Config(train=C.TrainConfig(devices=("cuda:0", "cuda:1"))), rates, pilot.PAPER_MULT_ADDS)
    assert paper["basis"] == "measured on the paper net" and paper["train_device_s_per_image"] == pytest.approx(2 / 1000)
    assert pilot.mult_adds(C.ModelConfig(), 1000) == pilot.PAPER_MULT_ADDS


COSTS = {"unit_costs": {"devices": ["cuda:0"], "basis": "measured", "train_device_s_per_image": 0.01,
                        "eval_center_device_s_per_image": 0.002, "eval_ten_patch_device_s_per_image": 0.02}}


def test_plan_by_hand():
    claims = [
        {"id": "a", "tested": False, "dataset": "ilsvrc2012", "kind": "headline", "n_models": 1, "reason": "wrong data"},
        {"id": "b", "tested": False, "dataset": "imagenet-unspecified", "kind": "ablation", "n_models": 1,
         "arm": {"model.lrn": "none"}, "reason": "no arm"},
        {"id": "c", "tested": True, "verdict": "reproduced", "dataset": "any"},
        {"id": "d", "tested": True, "verdict": "inconclusive", "dataset": "ilsvrc2012", "n_models": 1, "seeds_needed": 8},
        {"id": "e", "tested": False, "dataset": "fall2009", "reason": "needs ImageNet Fall-2009 and a sixth conv layer"},
        {"id": "f", "tested": False, "decidable": False, "dataset": "ilsvrc2012", "reason": "competes"},
        {"id": "g", "tested": False, "dataset": "ilsvrc2010", "kind": "ablation", "n_models": 1,
         "reason": "needs a group: add an arm with {model.pool: nonoverlap} to ablations.enabled"},
    ]
    built = plan.build({"claims": claims}, COSTS)
    runs = {r["run"]: r for r in built["runs"]}
    r1, r2 = runs["R1"], runs["R2"]
    assert r1["claims"] == ["a", "b", "d"] and r1["seeds"] == 8 and r1["arms"] == ["model.lrn: none"]
    # one seed of ILSVRC-2012: 90 * (1,281,167 * 0.01 + 50,000 * 0.002) + 50,000 * (0.002 + 0.02) s
    one = 90 * (1_281_167 * 0.01 + 50_000 * 0.002) + 50_000 * 0.022
    assert r1["device_hours"] == pytest.approx(8 * 2 * one / 3600)
    assert r2["claims"] == ["g"] and r2["arms"] == ["model.pool: nonoverlap"] and r2["seeds"] == 5
    one10 = 90 * (1_261_406 * 0.01 + 50_000 * 0.002) + 150_000 * 0.022  # evaluated on its 150,000 test images
    assert r2["device_hours"] == pytest.approx(5 * 2 * one10 / 3600)
    assert built["total_device_hours"] == pytest.approx(r1["device_hours"] + r2["device_hours"])
    none = {c["id"]: c for c in built["claims"] if c["run"] is None}
    assert set(none) == {"e", "f"} and "c" not in {c["id"] for c in built["claims"]}
    assert plan.build({"claims": claims}, None)["total_device_hours"] is None  # no pilot: not costed


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return tiny.prepared(tmp_path_factory, 20, 5)


def test_pilot_in_process_sees_the_papers_init_sit_flat(prepared):
    """The paper's N(0, 0.01) init at lr 0.01: the input-dependent part of the logits is tiny and
    the loss does not leave ln C in 40 steps; the pilot says so, with its figures."""
    model = dataclasses.replace(tiny.MODEL, init="paper", input_scale=1.0, hidden_bias=1.0, dropout_scaling="paper")
    cfg = C.Config(data=tiny.DATA, model=model, evaluate=C.EvaluateConfig(batch_size=16),
                   train=C.TrainConfig(batch_size=8, threads=1, seeds=(1,), epochs=3))
    r = pilot.run_pilot(cfg, prepared, steps=40, eval_images=16)
    assert r["loss"]["verdict"] == "flat" and r["loss"]["init_logit_sd"] < 1e-3
    assert len(r["loss"]["per_step"]) == 40 and r["timed_steps"] == 40 - r["warmup_steps"]
    assert r["throughput"]["train_images_per_s"] > 0 and r["memory"]["cpu"]["peak_bytes"] > 0
    assert r["training_digest"] == C.training_digest(cfg) and r["projection"]["device_hours"] > 0
    assert r["backend"]["matmul_fp32_precision"] == "ieee"
