"""Ablation arms: params validation, the arm's overrides reach the model, and the
arm-vs-baseline statistics in compare.json checked against scipy/statsmodels."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as sps
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from harness import config as C
from harness.analysis import ablation
from harness.analysis.claims import RunContext, load_claims, matching_arm, why_not_testable
from harness.analysis.compare import CompareSettings, build_compare, summary_metrics
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
    assert set(stages["train"]["params"]) | {"ablations.arms.${item.arm}"} == set(tr["params"])
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
    assert matching_arm(BY_ID["depth-top1"], arms) is None
    imagenet = RunContext("ilsvrc2012", "val", 1000, 3, ("center",), True, arms=arms)
    assert why_not_testable(BY_ID["lrn-top1"], imagenet) is None
    assert "add an arm with {model.pool: nonoverlap}" in why_not_testable(BY_ID["overlap-pool-top1"], imagenet)
    assert "4-layer CNN" in why_not_testable(BY_ID["relu-speed"], imagenet)
    small = RunContext("ilsvrc2012", "val", 1000, 3, ("center",), False, arms=arms)
    assert "full paper network" in why_not_testable(BY_ID["lrn-top1"], small)
    synthetic = RunContext("synthetic", "val", 20, 3, ("center",), False, arms=arms)
    assert "this run uses the synthetic dataset" in why_not_testable(BY_ID["lrn-top5"], synthetic)


# --------------------------------------------------------------------------- statistics


def _result(seed, t1, t5, n=500, dataset="synthetic", num_classes=20):
    return {"seed": seed, "dataset": dataset, "split": "val", "num_classes": num_classes, "n_images": n,
            "protocols": {"center": {"top1_error": t1, "top5_error": t5}}}


BASE = [(40.0, 10.0), (41.5, 10.4), (39.2, 9.6), (40.6, 10.9)]
NOLRN = [(42.1, 11.5), (43.0, 11.1), (41.4, 12.3)]
# training top-1 error per epoch; baseline reaches 50% in 3 epochs, the no-dropout arm in 2
CURVES_B = {1: [90, 70, 50, 40], 2: [88, 50, 45, 35], 3: [91, 75, 55, 51], 4: [89, 65, 49, 44]}
CURVES_A = {1: [85, 49, 30, 20], 2: [84, 50, 31, 22], 3: [86, 60, 45, 30]}


def _build(dataset="synthetic", full=False, num_classes=20):
    base = [_result(i + 1, *e, dataset=dataset, num_classes=num_classes) for i, e in enumerate(BASE)]
    arm = [_result(i + 1, *e, dataset=dataset, num_classes=num_classes) for i, e in enumerate(NOLRN)]
    drop = [_result(i + 1, *e, dataset=dataset, num_classes=num_classes) for i, e in enumerate(BASE[:3])]
    arms = {"no_lrn": {"overrides": {"model.lrn": "none"}, "results": arm, "curves": CURVES_A,
                       "steps_per_epoch": 10},
            "no_dropout": {"overrides": {"model.dropout": 0.0}, "results": drop, "curves": CURVES_A,
                           "steps_per_epoch": 10}}
    ctx = RunContext(dataset, "val", num_classes, 4, ("center",), full,
                     arms=tuple((n, tuple(a["overrides"].items())) for n, a in arms.items()))
    ab = {"protocol": "center", "target_train_error": 50.0, "baseline_curves": CURVES_B,
          "baseline_steps_per_epoch": 10, "arms": arms}
    return build_compare(base, ctx, CLAIMS, CompareSettings(margin_pp=2.0, n_boot=4000), ablations=ab)


def test_ablation_effect_matches_scipy_and_statsmodels():
    out = _build()
    json.dumps(out, allow_nan=False)
    e = out["ablation_results"]["no_lrn"]["protocols"]["center"]["top1_error"]
    a, b = np.array([x[0] for x in NOLRN]), np.array([x[0] for x in BASE])
    assert e["diff"] == pytest.approx(a.mean() - b.mean())  # arm - baseline: LRN saves this much
    assert e["p_value"] == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-10)
    lo, hi = CompareMeans(DescrStatsW(a), DescrStatsW(b)).tconfint_diff(alpha=0.05, usevar="unequal")
    assert (e["lo"], e["hi"]) == pytest.approx((lo, hi), rel=1e-10)
    assert e["mann_whitney_p"] == pytest.approx(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    # percentile bootstrap of the difference: scipy's (its own RNG) agrees to Monte-Carlo precision
    ref = sps.bootstrap((a, b), lambda x, y: x.mean() - y.mean(), method="percentile", n_resamples=20000,
                        vectorized=False, random_state=1).confidence_interval
    assert e["boot_lo"] == pytest.approx(ref.low, abs=0.15) and e["boot_hi"] == pytest.approx(ref.high, abs=0.15)
    assert (e["baseline"]["mean"], e["baseline"]["n"], e["arm"]["n"]) == (pytest.approx(b.mean()), 4, 3)


def test_untested_claim_carries_the_measurement_on_synthetic_data():
    out = _build()
    rows = {r["id"]: r for r in out["claims"]}
    lrn = rows["lrn-top1"]
    assert not lrn["tested"] and "synthetic" in lrn["reason"] and "ablation_results.no_lrn" in lrn["reason"]
    m = lrn["measured_on_run"]
    assert m["arm"] == "no_lrn" and m["agrees_with_paper_direction"] is True and m["ours_mean"] > 0
    assert "did not train" in rows["overlap-pool-top1"]["reason"]
    assert "measured_on_run" not in rows["overlap-pool-top1"]
    assert set(out["ablation_results"]["no_lrn"]["claims"]) == {"lrn-top1", "lrn-top5", "lrn-cifar10"}
    metrics = summary_metrics(out)
    assert metrics["ablation.no_lrn.center.top1_error.diff"] == pytest.approx(lrn["measured_on_run"]["ours_mean"])
    assert out["counts"]["claims_tested"] == 0  # the paper's ablations were measured on ImageNet


def test_claim_is_tested_with_a_verdict_when_data_match():
    out = _build(dataset="ilsvrc2012", full=True, num_classes=1000)
    rows = {r["id"]: r for r in out["claims"]}
    r1, r5 = rows["lrn-top1"], rows["lrn-top5"]
    assert r1["tested"] and r1["method"] == "ablation" and r1["arm"] == "no_lrn"
    a, b = np.array([x[0] for x in NOLRN]), np.array([x[0] for x in BASE])
    d = a.mean() - b.mean()                      # 2.07 pp measured vs 1.4 claimed, margin 2
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se, df = np.sqrt(va + vb), (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    tost = max(sps.t.sf((d - 1.4 + 2.0) / se, df), sps.t.cdf((d - 1.4 - 2.0) / se, df))
    assert r1["tost_p"] == pytest.approx(tost, rel=1e-9)
    assert r1["verdict"] == ("reproduced" if tost < 0.05 else "inconclusive")
    assert r5["verdict"] in ("reproduced", "smaller", "larger", "inconclusive")
    assert rows["relu-speed"]["tested"] is False  # needs a 4-layer CNN on CIFAR-10


def test_convergence_iterations_and_test():
    out = _build(dataset="ilsvrc2012", full=True, num_classes=1000)
    conv = out["ablation_results"]["no_dropout"]["claims"]["dropout-convergence"]
    # to 50%: baseline epochs 3, 2, None (never), 3; arm epochs 2, 2, 3  -> x 10 steps
    assert conv["baseline_iterations"] == {"1": 30, "2": 20, "3": None, "4": 30}
    assert conv["arm_iterations"] == {"1": 20, "2": 20, "3": 30}
    assert conv["not_reached"] == {"baseline": [3], "arm": []}
    slow, fast = np.array([30, 20, 30]), np.array([20, 20, 30])
    olympic = lambda x: np.sort(x)[1:-1].mean()  # noqa: E731 -- drop best and worst, MLPerf
    assert conv["ratio"] == pytest.approx(olympic(slow) / olympic(fast)) == 1.5
    assert conv["p_faster"] == pytest.approx(
        sps.ttest_ind(fast, slow, equal_var=False, alternative="less").pvalue, rel=1e-9)
    assert conv["agrees_with_paper_direction"] is True
    row = {r["id"]: r for r in out["claims"]}["dropout-convergence"]
    assert row["tested"] and row["method"] == "convergence"


def test_convergence_not_reached_says_why():
    conv = ablation.convergence_effect({1: [90, 80]}, {1: [85, 70]}, 25.0, 10, 10, "baseline", 0.05, 0.95, 100)
    assert conv["tested"] is False and "reached 25% training error within 2 epochs" in conv["reason"]
    assert ablation.iterations_to_target([90, 25.0, 10], 25.0, 7) == 14


def test_no_ablations_gives_an_empty_section():
    base = [_result(i + 1, *e) for i, e in enumerate(BASE)]
    out = build_compare(base, RunContext("synthetic", "val", 20, 4, ("center",), False), CLAIMS,
                        CompareSettings(n_boot=100))
    assert out["ablation_results"] == {}
    assert "did not train" in {r["id"]: r for r in out["claims"]}["lrn-top1"]["reason"]


def test_report_section_shows_the_arms_and_the_claims():
    from types import SimpleNamespace

    from harness.report.render import Doc, to_markdown
    from harness.report.sections import ablations
    for out, words in ((_build(), ["no_lrn", "model.lrn=none", "lrn-top1", "not tested", "Mann-Whitney"]),
                       (_build(dataset="ilsvrc2012", full=True, num_classes=1000), ["dropout-convergence"])):
        doc = Doc()
        ablations(doc, SimpleNamespace(compare=json.loads(json.dumps(out))))
        md = to_markdown(doc, "figures")
        assert "9. Ablations" in md and all(w in md for w in words), md
    doc = Doc()
    ablations(doc, SimpleNamespace(compare=_build() | {"ablation_results": {}}))
    assert "trained no ablation groups" in to_markdown(doc, "figures")


def test_ratio_interval_matches_scipy_bootstrap():
    slow, fast = np.array([300.0, 420, 360, 390, 330]), np.array([100.0, 90, 120, 80, 110])
    olympic = lambda x, axis=-1: np.sort(x, axis=axis)[..., 1:-1].mean(axis=axis)  # noqa: E731
    lo, hi = ablation.ratio_interval(slow, fast, 20000, 0.95)
    ref = sps.bootstrap((slow, fast), lambda a, b, axis=-1: olympic(a, axis) / olympic(b, axis),
                        method="percentile", n_resamples=20000, random_state=3).confidence_interval
    assert lo == pytest.approx(ref.low, rel=0.03) and hi == pytest.approx(ref.high, rel=0.03)
