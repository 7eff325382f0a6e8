"""Ablation arms: params validation, the arm's overrides reach the model, and the
arm-vs-baseline statistics in compare.json checked against scipy/statsmodels."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as sps
from statsmodels.stats.weightstats import DescrStatsW

from harness import config as C
from harness.analysis.ablation import Series, crossing
from harness.analysis.claims import RunContext, load_claims, matching_arm, why_not_testable
from harness.analysis.compare import CompareInputs, CompareSettings, build_compare, summary_metrics
from harness.model import build_model

REPO = Path(__file__).resolve().parents[2]
CLAIMS = load_claims()
BY_ID = {c.id: c for c in CLAIMS}


def params(**ablations) -> dict:
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["ablations"].update(ablations)
    return p


def load(tmp_path, p) -> C.Config:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(p))
    return C.load_config(path)


# --------------------------------------------------------------------------- config


def test_repo_params_declare_the_paper_arms_and_are_off_by_default():
    cfg = C.load_config(REPO / "params.yaml")
    assert cfg.ablations.enabled == ()
    names = {a.name for a in cfg.ablations.arms}
    assert {"no_lrn", "nonoverlap_pool", "no_dropout", "tanh"} <= names
    assert cfg.ablations.arm("no_lrn").overrides == (("model.lrn", "none"),)


@pytest.mark.parametrize("ab, key, words", [
    ({"arms": {"x": {"model": {"lrnn": "none"}}}}, "ablations.arms.x.model.lrnn", "unknown key"),
    ({"arms": {"x": {"model": {"lrn": "fancy"}}}}, "ablations.arms.x.model.lrn", "not one of"),
    ({"arms": {"x": {"train": {"lr": "fast"}}}}, "ablations.arms.x.train.lr", "expected a number"),
    ({"arms": {"x": {"data": {"image_size": 64}}}}, "ablations.arms.x.data", "model.* and train.*"),
    ({"arms": {"x": {"train": {"seeds": [1]}}}}, "ablations.arms.x.train.seeds", "seeds of train.seeds"),
    ({"arms": {"bad-name": {}}}, "ablations.arms.bad-name", "letters, digits and _"),
    ({"arms": {"x": {"model": {"input_size": 500}}}}, "ablations.arms.x.", "larger than"),
    ({"arms": ["x"]}, "ablations.arms", "mapping"),
    ({"enabled": ["nope"]}, "ablations.enabled[0]", "no arm named 'nope'"),
    ({"enabled": True}, "ablations.enabled", "expected a list"),
    ({"seeds": [1, 2]}, "ablations.seeds", "removed: every arm trains the seeds of train.seeds"),
    ({"target_train_error": 0}, "ablations.target_train_error", "must be >"),
    ({"bogus": 1}, "ablations.bogus", "unknown key"),
])
def test_bad_ablations_name_the_key(tmp_path, ab, key, words):
    with pytest.raises(C.ConfigError) as err:
        load(tmp_path, params(**ab))
    assert key in str(err.value) and words in str(err.value), str(err.value)


def test_arm_is_not_a_params_key(tmp_path):
    p = params()
    p["arm"] = "no_lrn"
    with pytest.raises(C.ConfigError, match="arm: unknown key"):
        load(tmp_path, p)


def test_apply_arm_overrides_only_its_keys_and_changes_the_digest(tmp_path):
    cfg = load(tmp_path, params(arms={"no_lrn": {"model": {"lrn": "none"}},
                                      "slow": {"train": {"lr": 0.001, "lr_steps": [2]}},
                                      "control": {}}))
    arm = C.apply_arm(cfg, "no_lrn")
    assert arm.model.lrn == "none" and arm.arm == "no_lrn"
    assert arm.model == C.dataclasses.replace(cfg.model, lrn="none") and arm.train == cfg.train
    slow = C.apply_arm(cfg, "slow")
    assert (slow.train.lr, slow.train.lr_steps) == (0.001, (2,))
    digests = {C.training_digest(c) for c in (cfg, arm, slow, C.apply_arm(cfg, "control"))}
    assert len(digests) == 4  # even an arm with no overrides never shares the baseline's digest
    assert C.training_config(cfg).get("arm") is None and C.training_config(arm)["arm"] == "no_lrn"
    with pytest.raises(C.ConfigError, match="no arm named 'nope'"):
        C.apply_arm(cfg, "nope")


def test_an_arm_with_lrn_none_builds_a_model_without_lrn(tmp_path):
    cfg = load(tmp_path, params())
    lrn = lambda m: [x for x in m.modules() if isinstance(x, C_LRN())]  # noqa: E731
    assert lrn(build_model(cfg.model, 20))
    assert not lrn(build_model(C.apply_arm(cfg, "no_lrn").model, 20))
    pools = [x.kernel_size for x in build_model(C.apply_arm(cfg, "nonoverlap_pool").model, 20).modules()
             if isinstance(x, __import__("torch").nn.MaxPool2d)]
    assert pools and set(pools) == {2}


def C_LRN():
    import torch
    return torch.nn.LocalResponseNorm


def test_open_stage_applies_the_arm(tmp_path, monkeypatch):
    """The stage entry point (harness.stages.open_stage) hands the arm's config to the stage."""
    from harness import stages
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params()))
    ctx = stages.open_stage(path, "train_ablation@tanh-1", arm="tanh")
    assert ctx.cfg.model.activation == "tanh" and ctx.cfg.arm == "tanh" and ctx.base_tags["arm"] == "tanh"


def test_dvc_matrix_stages_follow_the_train_stage():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    tr, ev = stages["train_ablation"], stages["evaluate_ablation"]
    assert tr["matrix"] == {"arm": "${ablations.enabled}", "seed": "${train.seeds}"} == ev["matrix"]
    from import_graph import params_of
    assert set(params_of(stages["train"])) | {"ablations.arms.${item.arm}"} == set(params_of(tr))
    assert "--arm ${item.arm}" in tr["cmd"] and "--arm ${item.arm}" in ev["cmd"]
    assert "ablations" in stages["compare"]["params"]


# --------------------------------------------------------------------------- claims


def test_claims_name_their_arm():
    arms = (("no_lrn", (("model.lrn", "none"),)), ("nodrop", (("model.dropout", 0),)),
            ("tanh_lr", (("model.activation", "tanh"), ("train.lr", 0.001))))
    assert matching_arm(BY_ID["lrn-top1"], arms) == "no_lrn"
    assert matching_arm(BY_ID["dropout-convergence"], arms) == "nodrop"  # 0 == 0.0
    assert matching_arm(BY_ID["relu-speed"], arms) == "tanh_lr"  # extra overrides allowed
    assert matching_arm(BY_ID["overlap-pool-top1"], arms) is None
    assert matching_arm(BY_ID["depth-conv3-top1"], (("no_conv3", (("model.drop_conv", "conv3"),)),)) == "no_conv3"
    imagenet = RunContext("ilsvrc2012", "val", 1000, 3, ("center", "ten_patch"), True, arms=arms)
    assert why_not_testable(BY_ID["lrn-top1"], imagenet) is None
    assert "add an arm with {model.pool: nonoverlap}" in why_not_testable(BY_ID["overlap-pool-top1"], imagenet)
    assert "this run uses the ILSVRC-2012" in why_not_testable(BY_ID["relu-speed"], imagenet)  # a CIFAR-10 claim
    small = RunContext("ilsvrc2012", "val", 1000, 3, ("center",), False, arms=arms)
    assert "full paper network" in why_not_testable(BY_ID["lrn-top1"], small)
    synthetic = RunContext("synthetic", "val", 20, 3, ("center",), False, arms=arms)
    assert "this run uses the synthetic dataset" in why_not_testable(BY_ID["lrn-top5"], synthetic)


# --------------------------------------------------------------------------- step-resolution convergence


def test_crossing_interpolates_the_smoothed_series():
    # windows of 20 steps, 100 images each; error 90, 70, 50, 30, 10 %, no smoothing
    s = Series(np.array([20.0, 40, 60, 80, 100]), np.full(5, 100.0), np.array([90.0, 70, 50, 30, 10]), 20.0, smooth=1)
    # points at window midpoints 10, 30, 50, 70, 90: 60% is crossed halfway between 30 (70%) and 50 (50%)
    assert crossing(s, 60.0) == (pytest.approx(40.0), False)
    assert crossing(s, 50.0) == (pytest.approx(50.0), False)
    assert crossing(s, 5.0) == (100.0, True)  # never: censored at the steps run
    assert crossing(s, 95.0) == (pytest.approx(10.0), False)
    # 2-window smoothing: image-weighted errors 90, 80, 60, 40, 20 at span midpoints 10, 20, 40, 60, 80
    s2 = Series(s.step, s.images, s.wrong, 20.0, smooth=2)
    assert crossing(s2, 50.0)[0] == pytest.approx(40 + (60 - 50) / (60 - 40) * 20)
    with pytest.raises(ValueError):
        Series.from_windows([20, 20], [1, 1], [0, 0])


def test_epoch_curves_fall_back_to_epoch_resolution():
    s = Series.from_epochs([90, 50, 30], 10)
    assert (s.resolution, s.smooth, s.steps_run) == (10.0, 1, 30.0)
    assert crossing(s, 50.0)[0] == pytest.approx(15.0)  # the middle of epoch 2


def _linear_series(cross_at: float, steps: int = 2000, window: int = 20, start: float = 95.0, rate: float | None = None):
    """Error falling linearly through 50% at `cross_at` steps, read every `window` steps (no noise)."""
    ends = np.arange(window, steps + 1, window, dtype=float)
    mid = ends - window / 2
    slope = (start - 50.0) / cross_at if rate is None else rate
    err = np.clip(start - slope * mid, 1.0, 100.0)
    return Series.from_windows(ends, np.full(ends.size, 1000.0), err * 10.0)


# --------------------------------------------------------------------------- statistics


def _result(seed, t1, t5, n=500, dataset="synthetic", num_classes=20):
    return {"seed": seed, "dataset": dataset, "split": "val", "num_classes": num_classes, "n_images": n,
            "protocols": {"center": {"top1_error": t1, "top5_error": t5},
                          "ten_patch": {"top1_error": t1, "top5_error": t5}}}


BASE = [(40.0, 10.0), (41.5, 10.4), (39.2, 9.6), (40.6, 10.9)]
NOLRN = [(42.1, 11.5), (43.0, 11.1), (41.4, 12.3)]
CURVES_B = {1: [90, 70, 50, 40], 2: [88, 50, 45, 35], 3: [91, 75, 55, 51], 4: [89, 65, 49, 44]}
CURVES_A = {1: [85, 49, 30, 20], 2: [84, 50, 31, 22], 3: [86, 60, 45, 30]}
# with dropout (the paper's net) 50% at ~800 steps; without dropout at ~400; seed 3 of the baseline never
SERIES_B = {1: _linear_series(800), 2: _linear_series(820), 3: _linear_series(790), 4: _linear_series(810)}
SERIES_A = {1: _linear_series(400), 2: _linear_series(405), 3: _linear_series(398)}


def _build(dataset="synthetic", full=False, num_classes=20, series_b=SERIES_B, series_a=SERIES_A):
    base = [_result(i + 1, *e, dataset=dataset, num_classes=num_classes) for i, e in enumerate(BASE)]
    arm = [_result(i + 1, *e, dataset=dataset, num_classes=num_classes) for i, e in enumerate(NOLRN)]
    drop = [_result(i + 1, *e, dataset=dataset, num_classes=num_classes) for i, e in enumerate(BASE[:3])]
    arms = {"no_lrn": {"overrides": {"model.lrn": "none"}, "results": arm, "curves": CURVES_A,
                       "series": SERIES_A, "steps_per_epoch": 10},
            "no_dropout": {"overrides": {"model.dropout": 0.0}, "results": drop, "curves": CURVES_A,
                           "series": series_a, "steps_per_epoch": 10}}
    ctx = RunContext(dataset, "val", num_classes, 4, ("center", "ten_patch"), full,
                     arms=tuple((n, tuple(a["overrides"].items())) for n, a in arms.items()))
    ab = {"protocol": "center", "target_train_error": 50.0, "baseline_curves": CURVES_B, "baseline_series": series_b,
          "baseline_steps_per_epoch": 10, "arms": arms}
    return build_compare(CompareInputs(base, ablations=ab), ctx, CLAIMS, CompareSettings(n_boot=4000))


def test_ablation_effect_is_paired_on_shared_seeds_and_matches_scipy():
    out = _build()
    json.dumps(out, allow_nan=False)
    e = out["ablation_results"]["no_lrn"]["protocols"]["center"]["top1_error"]
    a, b = np.array([x[0] for x in NOLRN]), np.array([x[0] for x in BASE[:3]])  # seeds 1-3 in both
    assert e["paired"] is True and e["paired_seeds"] == [1, 2, 3]
    assert e["diff"] == pytest.approx((a - b).mean())  # arm - baseline: LRN saves this much
    assert e["p_value"] == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-10)
    lo, hi = DescrStatsW(a - b).tconfint_mean(alpha=0.05)
    assert (e["lo"], e["hi"]) == pytest.approx((lo, hi), rel=1e-10)
    allb = np.array([x[0] for x in BASE])
    assert e["mann_whitney_p"] == pytest.approx(sps.mannwhitneyu(a, allb, alternative="two-sided").pvalue)
    ref = sps.bootstrap((a, allb), lambda x, y: x.mean() - y.mean(), method="percentile", n_resamples=20000,
                        vectorized=False, random_state=1).confidence_interval
    assert e["boot_lo"] == pytest.approx(ref.low, abs=0.15) and e["boot_hi"] == pytest.approx(ref.high, abs=0.15)
    assert (e["baseline"]["n"], e["arm"]["n"]) == (4, 3)


def test_unshared_seeds_are_compared_with_welch():
    from harness.analysis.ablation import error_effect
    e = error_effect({1: 40.0, 2: 41.5, 3: 39.2}, {7: 42.1, 8: 43.0, 9: 41.4}, 0.95, 200)
    assert e["paired"] is False
    assert e["p_value"] == pytest.approx(sps.ttest_ind([42.1, 43.0, 41.4], [40.0, 41.5, 39.2], equal_var=False).pvalue)


def test_untested_claim_carries_the_measurement_on_synthetic_data():
    out = _build()
    rows = {r["id"]: r for r in out["claims"]}
    lrn = rows["lrn-top1"]
    assert not lrn["tested"] and "synthetic" in lrn["reason"] and lrn["verdict"] == "not tested"
    m = lrn["measured_on_run"]
    assert m["direction"] == "same" and m["estimate"] > 0 and m["paired"] is True
    assert "did not train" in rows["overlap-pool-top1"]["reason"]
    assert "measured_on_run" not in rows["overlap-pool-top1"]
    assert set(out["ablation_results"]["no_lrn"]["claims"]) == {"lrn-top1", "lrn-top5", "lrn-cifar10"}
    metrics = summary_metrics(out)
    assert metrics["ablation.no_lrn.center.top1_error.diff"] == pytest.approx(m["estimate"])
    assert out["counts"]["claims_tested"] == 0  # the paper's ablations were measured on ImageNet


def test_claim_is_tested_with_its_band_when_data_match():
    out = _build(dataset="ilsvrc2012", full=True, num_classes=1000)
    rows = {r["id"]: r for r in out["claims"]}
    r1 = rows["lrn-top1"]
    assert r1["tested"] and r1["paired"] and r1["n"] == 3
    base, arm = np.array([x[0] for x in BASE[:3]]), np.array([x[0] for x in NOLRN])
    d = arm - base
    # against the paper's printed 1.4 pp, one run per arm: Var = s_d^2/n + s_x^2 + s_y^2, df n - 1
    se = math.sqrt(d.var(ddof=1) / 3 + base.var(ddof=1) + arm.var(ddof=1))
    p = max(sps.t.sf((d.mean() - 0.7) / se, 2), sps.t.cdf((d.mean() - 2.1) / se, 2))
    assert r1["estimate"] == pytest.approx(d.mean()) and r1["p_reproduced"] == pytest.approx(p)
    assert r1["verdict"] in ("reproduced", "inconclusive") and r1["band"] == [0.7, 2.1]
    assert rows["relu-speed"]["tested"] is False and rows["relu-speed"]["category"] == "other data"  # CIFAR-10


def test_convergence_at_step_resolution_uses_the_claims_target():
    out = _build(dataset="ilsvrc2012", full=True, num_classes=1000)
    row = {r["id"]: r for r in out["claims"]}["dropout-convergence"]
    # no dropout / dropout, paired on seeds 1-3, each crossing 50% where the lines say
    ratio = np.exp(np.mean(np.log(np.array([400, 405, 398]) / np.array([800, 820, 790]))))
    assert row["tested"] and row["paired"] and row["estimate"] == pytest.approx(ratio, rel=1e-3)
    assert row["verdict"] == "reproduced"  # 0.5 in [0.333, 0.667], tight seeds
    conv = out["ablation_results"]["no_dropout"]["convergence"]  # arms without a claim: ablations target
    assert conv["baseline_iterations"]["1"] == pytest.approx(800, rel=1e-3) and conv["not_reached"]["arm"] == []


def test_no_speed_up_is_not_reproduced_and_censored_seeds_count_against_the_claim():
    same = {s: _linear_series(800 + 5 * s) for s in (1, 2, 3)}
    out = _build(dataset="ilsvrc2012", full=True, num_classes=1000, series_a=same)
    row = {r["id"]: r for r in out["claims"]}["dropout-convergence"]
    assert row["estimate"] == pytest.approx(1.0, abs=0.02) and row["verdict"] == "not reproduced"
    # the variant's seed 3 never reaches 50% within the run: a lower bound of the ratio, never "reproduced"
    slow = dict(SERIES_A) | {3: _linear_series(400, steps=300)}
    out = _build(dataset="ilsvrc2012", full=True, num_classes=1000, series_a=slow)
    row = {r["id"]: r for r in out["claims"]}["dropout-convergence"]
    assert row["bound"] == "lower" and row["verdict"] != "reproduced"
    assert any("never reached the target" in n for n in row["notes"])
    assert out["ablation_results"]["no_dropout"]["convergence"]["not_reached"]["arm"] == [3]


def test_no_ablations_gives_an_empty_section():
    base = [_result(i + 1, *e) for i, e in enumerate(BASE)]
    out = build_compare(CompareInputs(base), RunContext("synthetic", "val", 20, 4, ("center",), False), CLAIMS,
                        CompareSettings(n_boot=100))
    assert out["ablation_results"] == {}
    assert "did not train" in {r["id"]: r for r in out["claims"]}["lrn-top1"]["reason"]


def test_report_section_shows_the_arms_and_the_claims():
    from types import SimpleNamespace

    from harness.report.render import Doc, to_markdown
    from harness.report.sections import ablations
    for out, words in ((_build(), ["no_lrn", "model.lrn=none", "lrn-top1", "not tested", "Mann-Whitney", "paired"]),
                       (_build(dataset="ilsvrc2012", full=True, num_classes=1000), ["dropout-convergence", "reproduced"])):
        doc = Doc()
        ablations(doc, SimpleNamespace(compare=json.loads(json.dumps(out))))
        md = to_markdown(doc, "figures")
        assert all(w in md for w in words), md  # the heading and its number: sections.build
    doc = Doc()
    ablations(doc, SimpleNamespace(compare=_build() | {"ablation_results": {}}))
    assert "trained no ablation groups" in to_markdown(doc, "figures")
