"""harness.compare: structure of compare.json, untested reasons, and the tested-claim path
checked against hand-computed expectations."""

import json
import math
import re

import numpy as np
import pytest
from scipy import stats as sps

from harness.analysis.claims import RunContext, load_claims
from harness.analysis.compare import CompareSettings, build_compare, summary_metrics

CLAIMS = load_claims()
TOP = ["settings", "context", "seeds", "summary", "reference", "claims", "ensemble", "ablation_results",
       "counts"]


def _seed_result(seed, n_images, errors, dataset="synthetic", split="val", num_classes=20):
    """errors: protocol -> (top1 %, top5 %); wrong counts derived from them."""
    protocols = {
        proto: {"top1_error": t1, "top5_error": t5,
                "top1_wrong": round(t1 * n_images / 100), "top5_wrong": round(t5 * n_images / 100)}
        for proto, (t1, t5) in errors.items()
    }
    return {"seed": seed, "dataset": dataset, "split": split, "num_classes": num_classes,
            "n_images": n_images, "protocols": protocols, "mlflow_run_id": f"run{seed}"}


def _correct_rows(rng, wrong_counts, n_images):
    rows = []
    for w in wrong_counts:
        row = np.ones(n_images, bool)
        row[rng.choice(n_images, w, replace=False)] = False
        rows.append(row)
    return np.array(rows)


# --------------------------------------------------------------------------- synthetic run


@pytest.fixture(scope="module")
def synthetic():
    n = 200
    errs = {1: {"center": (31.0, 5.0), "ten_patch": (29.5, 4.5)},
            2: {"center": (33.0, 6.0), "ten_patch": (31.0, 5.5)},
            3: {"center": (32.0, 5.5), "ten_patch": (30.0, 5.0)}}
    results = [_seed_result(s, n, e) for s, e in errs.items()]
    rng = np.random.default_rng(0)
    correctness = {
        proto: {metric: _correct_rows(rng, [r["protocols"][proto][metric.replace("_error", "_wrong")]
                                            for r in results], n)
                for metric in ("top1_error", "top5_error")}
        for proto in ("center", "ten_patch")
    }
    ensemble = {"center": {"sizes": [{"k": 1, "n_subsets": 3, "top1_error_mean": 32.0, "top1_error_sd": 1.0,
                                      "top5_error_mean": 5.5, "top5_error_sd": 0.5},
                                     {"k": 3, "n_subsets": 1, "top1_error_mean": 29.0, "top1_error_sd": None,
                                      "top5_error_mean": 4.0, "top5_error_sd": None}],
                           "mcnemar_full_vs_single": {"b": 3, "c": 9, "p": 0.146}}}
    reference = {"profile": "default", "dataset": "synthetic", "protocol": "center", "seeds": [101, 102, 103],
                 "top1_error": [32.5, 31.5, 32.0], "top5_error": [5.5, 5.0, 6.0]}
    ctx = RunContext("synthetic", "val", 20, 3, ("center", "ten_patch"), full_paper_model=False)
    settings = CompareSettings(margin_pp=2.0, n_boot=500)
    out = build_compare(results, ctx, CLAIMS, settings, correctness, ensemble, reference)
    return results, ctx, settings, out


def test_structure_and_json(synthetic):
    results, ctx, settings, out = synthetic
    assert list(out) == TOP
    text = json.dumps(out, allow_nan=False)  # plain JSON: no NaN, no numpy types
    assert json.loads(text) == out
    assert out["settings"]["margin_pp"] == 2.0 and out["context"]["dataset"] == "synthetic"
    assert out["context"]["protocols"] == ["center", "ten_patch"]
    assert len(out["seeds"]) == 3 * 2 * 2
    row = next(r for r in out["seeds"] if (r["seed"], r["protocol"], r["metric"]) == (2, "center", "top1_error"))
    assert row["error"] == 33.0 and row["n_images"] == 200 and row["mlflow_run_id"] == "run2"
    assert row["wilson_lo"] < 33.0 < row["wilson_hi"]
    assert out["ensemble"]["center"]["mcnemar_full_vs_single"]["p"] == 0.146  # passed through


def test_summary_matches_hand_computation(synthetic):
    _, _, _, out = synthetic
    s = out["summary"]["center"]["top1_error"]
    x = np.array([31.0, 33.0, 32.0])
    half = sps.t.ppf(0.975, 2) * x.std(ddof=1) / math.sqrt(3)
    assert (s["mean"], s["sd"], s["n"]) == pytest.approx((32.0, 1.0, 3))
    assert (s["t_lo"], s["t_hi"]) == pytest.approx((32.0 - half, 32.0 + half))
    assert s["boot_lo"] < 32.0 < s["boot_hi"]
    assert set(out["summary"]) == {"center", "ten_patch"}


def test_untested_claims_say_why(synthetic):
    _, _, _, out = synthetic
    assert out["counts"]["claims_total"] == len(CLAIMS) == len(out["claims"])
    assert out["counts"]["claims_tested"] == 0
    assert out["counts"]["claims_untested"] == len(CLAIMS)
    for row in out["claims"]:
        assert row["tested"] is False and row["reason"]
        if row["kind"] == "headline":
            assert "synthetic" in row["reason"], row["id"]
    t1 = next(r for r in out["claims"] if r["id"] == "t1-cnn-top5")
    assert t1["paper_value"] == 17.0 and "ILSVRC-2010 test" in t1["reason"]


def test_reference_section(synthetic):
    _, _, _, out = synthetic
    ref = out["reference"]
    assert ref["tested"] is True and ref["protocol"] == "center" and ref["overlapping_seeds"] == []
    m = ref["metrics"]["top1_error"]
    assert m["ours"] == {"mean": 32.0, "sd": 1.0, "n": 3}
    assert m["reference"]["mean"] == pytest.approx(32.0)
    assert m["diff"] == pytest.approx(0.0, abs=1e-12)
    assert m["verdict"] in ("consistent", "differs", "inconclusive")
    assert m["welch_p"] == pytest.approx(sps.ttest_ind([31, 33, 32], [32.5, 31.5, 32.0], equal_var=False).pvalue)


def _ref_verdict(ours, ref, margin):
    results = [_seed_result(i + 1, 1000, {"center": (v, 5.0)}) for i, v in enumerate(ours)]
    ctx = RunContext("synthetic", "val", 20, len(ours), ("center",), False)
    reference = {"profile": "default", "dataset": "synthetic", "protocol": "center",
                 "seeds": list(range(100, 100 + len(ref))), "top1_error": ref}
    out = build_compare(results, ctx, CLAIMS, CompareSettings(margin_pp=margin, n_boot=200),
                        reference=reference)
    return out["reference"]["metrics"]["top1_error"]["verdict"]


def test_reference_verdicts_hand_cases():
    # Welch TOST: diff 0, se = sqrt(0.04/3 + 0.01/3) = 0.129, df ~ 2.9; t = 1/0.129 = 7.7 -> p ~ 0.003
    assert _ref_verdict([31.0, 31.2, 30.8], [31.1, 30.9, 31.0], 1.0) == "consistent"
    # 4 pp apart with sd ~0.15: Welch p << 0.05, far outside a 1 pp margin
    assert _ref_verdict([31.0, 31.2, 30.8], [35.0, 35.2, 34.9], 1.0) == "differs"
    # one reference run: no variance, no test
    assert _ref_verdict([31.0, 31.2, 30.8], [31.0], 1.0) == "inconclusive"


def test_reference_missing_or_mismatched(synthetic):
    results, ctx, settings, _ = synthetic
    out = build_compare(results, ctx, CLAIMS, settings)
    assert out["reference"] == {"tested": False, "reason": "no reference distribution of earlier runs was given"}
    other = {"profile": "default", "dataset": "cifar10", "protocol": "center", "seeds": [1], "top1_error": [1.0]}
    out = build_compare(results, ctx, CLAIMS, settings, reference=other)
    assert out["reference"]["tested"] is False and "cifar10" in out["reference"]["reason"]


def test_summary_metrics_names_and_values(synthetic):
    _, _, _, out = synthetic
    flat = summary_metrics(out)
    assert flat["center.top1_error.mean"] == 32.0
    assert flat["center.top1_error.sd"] == 1.0
    assert "center.top1_error.t_lo" in flat and "ten_patch.top5_error.boot_hi" in flat
    assert flat["claims.total"] == len(CLAIMS)
    for name, value in flat.items():
        assert re.fullmatch(r"[A-Za-z0-9_.\-/ ]+", name), name
        assert type(value) is float and math.isfinite(value)


def test_input_validation(synthetic):
    results, ctx, settings, _ = synthetic
    bad = {"center": {"top1_error": np.ones((3, 200), bool)}}  # says 0 wrong, results say 62
    with pytest.raises(ValueError, match="seed 1"):
        build_compare(results, ctx, CLAIMS, settings, correctness=bad)
    with pytest.raises(ValueError, match="duplicate seeds"):
        build_compare(results + results[:1], ctx, CLAIMS, settings)
    with pytest.raises(ValueError, match="dataset"):
        build_compare(results, RunContext("cifar10", "val", 10, 3, ("center",), False), CLAIMS, settings)
    with pytest.raises(ValueError):
        CompareSettings(margin_pp=0.0)


# --------------------------------------------------------------------------- tested path


N12 = 50_000
TOP1 = [42.6, 42.8, 42.7, 42.5, 42.9]   # ~2 pp worse than the paper's 40.7
TOP5 = [18.1, 18.3, 18.2, 18.0, 18.4]   # right on the paper's 18.2
MARGIN = 0.5


@pytest.fixture(scope="module")
def imagenet():
    results = [_seed_result(i + 1, N12, {"ten_patch": (t1, t5), "center": (t1 + 1.5, t5 + 1.2)},
                            dataset="ilsvrc2012", num_classes=1000)
               for i, (t1, t5) in enumerate(zip(TOP1, TOP5))]
    ensemble = {"ten_patch": {"sizes": [{"k": 5, "n_subsets": 1, "top1_error_mean": 38.2, "top1_error_sd": None,
                                         "top5_error_mean": 14.0, "top5_error_sd": None}]}}
    ctx = RunContext("ilsvrc2012", "val", 1000, 5, ("center", "ten_patch"), full_paper_model=True)
    out = build_compare(results, ctx, CLAIMS, CompareSettings(margin_pp=MARGIN), ensemble=ensemble,
                        measured={"n_parameters": 60_965_224, "n_neurons": 659_272})
    json.dumps(out, allow_nan=False)
    return {r["id"]: r for r in out["claims"]}, out


def _hand(mean, var_seed, df_seed, paper, n_paper, n_ours, margin):
    """PAPER.md 5 noise model written out: seed variance + both binomial variances."""
    v = var_seed + paper * (100 - paper) / n_paper + mean * (100 - mean) / n_ours
    se = math.sqrt(v)
    df = v**2 / (var_seed**2 / df_seed)
    half = sps.t.ppf(0.975, df) * se
    d = mean - paper
    tost = max(sps.t.sf((d + margin) / se, df), sps.t.cdf((d - margin) / se, df))
    return {"lo": mean - half, "hi": mean + half, "p": 2 * sps.t.sf(abs(d) / se, df), "tost": tost, "df": df}


def test_which_claims_get_tested(imagenet):
    rows, out = imagenet
    tested = {cid for cid, r in rows.items() if r["tested"]}
    assert tested == {"t2-1cnn-top1-val", "t2-1cnn-top5-val", "t2-5cnn-top1-val", "t2-5cnn-top5-val",
                      "params", "neurons"}
    assert out["counts"]["claims_tested"] == 6
    assert "val split" in rows["t2-5cnn-top5-test"]["reason"]
    assert "epochs" in rows["epochs"]["reason"]  # not measured in this fake run


def test_single_model_top5_is_reproduced(imagenet):
    rows, _ = imagenet
    r = rows["t2-1cnn-top5-val"]
    exp = _hand(18.2, np.var(TOP5, ddof=1) / 5, 4, 18.2, N12, N12, MARGIN)
    assert (r["ours_mean"], r["sd"], r["n"]) == pytest.approx((18.2, np.std(TOP5, ddof=1), 5))
    assert (r["lo"], r["hi"], r["p_value"], r["tost_p"]) == pytest.approx(
        (exp["lo"], exp["hi"], exp["p"], exp["tost"]))
    assert r["tost_p"] < 0.05 and r["verdict"] == "reproduced"
    # 0.5 pp margin at power 0.8 needs (0.5/2.80)^2 = 0.0319 pp^2, but the two test sets'
    # binomial noise alone is 2 * 18.2 * 81.8 / 50,000 = 0.0595 pp^2: no seed count suffices.
    assert r["seeds_needed"] is None and "no number of seeds" in r["seeds_needed_note"]


def test_single_model_top1_is_worse(imagenet):
    rows, _ = imagenet
    r = rows["t2-1cnn-top1-val"]
    exp = _hand(42.7, np.var(TOP1, ddof=1) / 5, 4, 40.7, N12, N12, MARGIN)
    assert (r["lo"], r["hi"]) == pytest.approx((exp["lo"], exp["hi"]))
    assert r["lo"] > 40.7 + MARGIN and r["verdict"] == "worse"
    assert r["p_value"] == pytest.approx(exp["p"]) and r["p_value"] < 1e-4


def test_ensemble_claims(imagenet):
    rows, _ = imagenet
    var_one_ensemble = np.var(TOP5, ddof=1) / 5  # single-model variance / k, k = 5
    r5 = rows["t2-5cnn-top5-val"]
    exp = _hand(14.0, var_one_ensemble, 4, 16.4, N12, N12, MARGIN)
    assert r5["method"] == "ensemble" and r5["ours_mean"] == 14.0
    assert (r5["lo"], r5["hi"]) == pytest.approx((exp["lo"], exp["hi"]))
    assert r5["hi"] < 16.4 - MARGIN and r5["verdict"] == "better"
    r1 = rows["t2-5cnn-top1-val"]
    exp = _hand(38.2, np.var(TOP1, ddof=1) / 5, 4, 38.1, N12, N12, MARGIN)
    assert (r1["lo"], r1["hi"], r1["tost_p"]) == pytest.approx((exp["lo"], exp["hi"], exp["tost"]))
    assert r1["tost_p"] > 0.05 and r1["verdict"] == "inconclusive"


def test_size_claims_in_compare(imagenet):
    rows, _ = imagenet
    assert rows["params"]["verdict"] == "reproduced" and rows["params"]["measured"] == 60_965_224


def test_missing_ensemble_size_and_single_seed_do_not_crash():
    results = [_seed_result(1, N12, {"ten_patch": (40.9, 18.4)}, dataset="ilsvrc2012", num_classes=1000)]
    ctx = RunContext("ilsvrc2012", "val", 1000, 5, ("ten_patch",), full_paper_model=True)
    out = build_compare(results, ctx, CLAIMS, CompareSettings(margin_pp=MARGIN))
    json.dumps(out, allow_nan=False)
    rows = {r["id"]: r for r in out["claims"]}
    one = rows["t2-1cnn-top5-val"]
    assert one["tested"] is True and one["sd"] is None and one["lo"] is None
    assert one["verdict"] == "inconclusive" and one["seeds_needed"] is None
    assert "5-model ensemble" in rows["t2-5cnn-top5-val"]["reason"]
    assert out["summary"]["ten_patch"]["top1_error"]["t_lo"] is None


def test_ensemble_stage_dict_with_protocols_key_is_accepted():
    results = [_seed_result(i + 1, N12, {"ten_patch": (t1, t5)}, dataset="ilsvrc2012", num_classes=1000)
               for i, (t1, t5) in enumerate(zip(TOP1, TOP5))]
    stage = {"seeds": [1, 2, 3, 4, 5], "mlflow_run_id": "e1",
             "protocols": {"ten_patch": {"sizes": [{"k": 5, "n_subsets": 1, "top1_error_mean": 38.2,
                                                    "top5_error_mean": 14.0}]}}}
    ctx = RunContext("ilsvrc2012", "val", 1000, 5, ("ten_patch",), full_paper_model=True)
    out = build_compare(results, ctx, CLAIMS, CompareSettings(margin_pp=MARGIN), ensemble=stage)
    rows = {r["id"]: r for r in out["claims"]}
    assert rows["t2-5cnn-top5-val"]["verdict"] == "better"
    assert out["ensemble"] == stage
