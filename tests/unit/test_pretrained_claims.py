"""The pre-trained claims of paper 6 (harness/analysis/pretrained.py): decided by the same verdict
rules as every other claim when the pre-training data and network are the paper's, and otherwise
"not tested" with each missing piece named and the measured value kept. The mixed ensembles
(harness/analysis/ensemble.mixed_ensembles) are checked against a hand-made example."""

from __future__ import annotations

import numpy as np
import pytest

from harness import config as C
from harness.analysis import claims as CL
from harness.analysis import ensemble, pretrained, verdict

CLAIMS = {c.id: c for c in CL.load_claims()}
SETTINGS = verdict.from_config(C.CompareConfig())
PAPER_FACTS = {"source": "fall2011", "release": "fall2011", "n_classes": 21_841,
               "counts": {"train": 14_140_334, "val": 56_788}, "split": "holdout", "n_excluded": 412,
               "excluded_against": "/data/ILSVRC2012"}


def _row(claim, pre):
    """The claim's finished row, as compare's _claim_rows makes it (verdict.finalize: the decision)."""
    return verdict.finalize([pretrained.assessment(claim, _context(), pre, SETTINGS)], SETTINGS)[0]


def _context(**kw):
    return CL.RunContext(dataset="ilsvrc2012", split="val", num_classes=1000, n_models_available=5,
                         protocols=("center", "ten_patch"), full_paper_model=True, **kw)


def _pre(top5, top1, mix_top5, mix_top1, facts=PAPER_FACTS, full=True):
    finetuned = [{"seed": s, "n_images": 50_000, "protocols": {
        "ten_patch": {"top1_error": a, "top5_error": b}, "center": {"top1_error": a + 1, "top5_error": b + 1}}}
        for s, (a, b) in enumerate(zip(top1, top5), 1)]
    mix = {"k": 7, "n_pretrained": 2, "groups": [{"base": [1, 2, 3, 4, 5], "pretrained": [1, 2]}],
           "top1_error": [mix_top1], "top5_error": [mix_top5]}
    return {"base_seeds": [1, 2, 3, 4, 5], "pretrained_seeds": [1, 2], "pretraining": facts,
            "finetuned": finetuned, "protocols": {"ten_patch": {"5+2": mix}}, "full_paper_model": full,
            "base_singles": {"ten_patch": {"top1_error": [40.7, 40.9, 40.5, 41.0, 40.8],
                                           "top5_error": [18.2, 18.4, 18.1, 18.3, 18.2]}}}


def test_single_pretrained_cnn_goes_through_the_same_verdict_as_any_claim():
    claim = CLAIMS["t2-1cnn-pre-top5-val"]
    pre = _pre(top5=[16.5, 16.7], top1=[39.0, 39.1], mix_top5=15.4, mix_top1=36.7)
    row = _row(claim, pre)
    assert row["verdict"] != "not tested" and row["pretraining"] == "fall2011"
    # the same numbers straight through verdict.assess: the same row
    ev = verdict.Evidence((16.5, 16.7), n_images=50_000, same_test_set=True)
    same = verdict.finalize([verdict.assess(claim, ev, SETTINGS)], SETTINGS)[0]
    assert row["estimate"] == pytest.approx(16.6) and row["estimate"] == same["estimate"]
    assert row["verdict"] == same["verdict"] and (row["lo"], row["hi"]) == (same["lo"], same["hi"])
    far = _row(claim, _pre([24.0, 24.2], [45.0, 45.1], 20.0, 42.0))
    assert far["verdict"] == "not reproduced"


def test_seven_cnn_claim_reads_the_five_plus_two_ensemble():
    claim = CLAIMS["t2-7cnn-pre-top1-val"]
    row = _row(claim, _pre([16.6, 16.6], [39.0, 39.0], 15.4, 36.7))
    assert row["verdict"] != "not tested" and row["estimate"] == pytest.approx(36.7)
    assert "5+2" in row["source"]
    few = _pre([16.6], [39.0], 15.4, 36.7)
    few["pretrained_seeds"] = [1]
    row = _row(claim, few)
    assert row["verdict"] == "not tested" and row["category"] == "too few seeds"


def test_other_pretraining_data_is_not_tested_and_says_what_is_missing():
    tiny = {**PAPER_FACTS, "n_classes": 8, "counts": {"train": 24, "val": 8}, "excluded_against": None}
    claim = CLAIMS["t2-1cnn-pre-top5-val"]
    row = _row(claim, _pre([16.6, 16.7], [39.0, 39.1], 15.4, 36.7, tiny))
    assert row["verdict"] == "not tested" and row["category"] == "other data"
    assert "8 synsets, the entire release 21,841" in row["reason"] and "32 images" in row["reason"]
    assert "not excluded" in row["reason"]
    assert row["measured_on_run"]["estimate"] == pytest.approx(16.65)  # measured, though not decided
    small = _row(claim, _pre([16.6, 16.7], [39.0, 39.1], 15.4, 36.7, full=False))
    assert small["category"] == "scaled-down network"


def test_mixed_ensembles_by_hand():
    labels = np.array([0, 1])
    # two base models and one pre-trained model, 2 images, 2 classes
    base = [np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([[0.2, 0.8], [0.6, 0.4]])]
    pre = [np.array([[0.3, 0.7], [0.1, 0.9]])]
    out = ensemble.mixed_ensembles(base, pre, [1, 2], [7], labels)
    # 1+1: base seed 1 with pre 7: [[0.6, 0.4], [0.35, 0.65]] -> both right: 0% top-1
    assert out["1+1"]["groups"] == [{"base": [1], "pretrained": [7]}] and out["1+1"]["top1_error"] == [0.0]
    # 2+1: mean of all three: image 0 [0.4667, 0.5333] wrong, image 1 [0.4333, 0.5667] right: 50%
    assert out["2+1"]["top1_error"] == [50.0] and out["2+1"]["top5_error"] == [0.0]
    # 0+1: the pre-trained model alone: image 0 wrong, image 1 right
    assert out["0+1"]["top1_error"] == [50.0] and out["0+1"]["k"] == 1


# ------------------------------------------------------------------ Fall 2009 (paper 6: 67.4 / 40.9)

FALL2009_FACTS = {"source": "fall2011", "release": "fall2009", "n_classes": 10_184,
                  "counts": {"train": 4_450_000, "val": 4_450_000}, "split": "half", "n_excluded": 0,
                  "excluded_against": None}


def _pre2009(top1, top5, facts=FALL2009_FACTS, full=True):
    pre = _pre([16.6, 16.6], [39.0, 39.0], 15.4, 36.7, facts=facts, full=full)
    pre["pretrain_evaluated"] = [{"seed": s, "n_images": 4_450_000, "protocols": {
        "ten_patch": {"top1_error": a, "top5_error": b}, "center": {"top1_error": a + 2, "top5_error": b + 2}}}
        for s, (a, b) in enumerate(zip(top1, top5), 1)]
    return pre


def _row2009(claim_id, pre):
    claim = CLAIMS[claim_id]
    return verdict.finalize([pretrained.fall2009_assessment(claim, _context(), pre, SETTINGS)], SETTINGS)[0]


def test_fall2009_near_values_reproduced_through_verdict_assess():
    pre = _pre2009(top1=[67.39, 67.41], top5=[40.89, 40.92])
    for cid, vals in (("fall2009-top1", (67.39, 67.41)), ("fall2009-top5", (40.89, 40.92))):
        row = _row2009(cid, pre)
        assert row["verdict"] == "reproduced", row
        assert row["estimate"] == pytest.approx(np.mean(vals)) and "ten_patch" in row["source"]
        ev = verdict.Evidence(vals, n_images=4_450_000, same_test_set=False)
        same = verdict.finalize([verdict.assess(CLAIMS[cid], ev, SETTINGS)], SETTINGS)[0]
        assert (row["lo"], row["hi"]) == (same["lo"], same["hi"]) and row["pretraining"] == "fall2009"


def test_fall2009_far_value_not_reproduced():
    row = _row2009("fall2009-top5", _pre2009(top1=[75.0, 75.2], top5=[50.0, 50.3]))
    assert row["verdict"] == "not reproduced"


def test_fall2009_wrong_release_is_not_tested_and_names_what_differs():
    facts = {**FALL2009_FACTS, "n_classes": 3, "counts": {"train": 12, "val": 12}, "release": "fall2011"}
    row = _row2009("fall2009-top1", _pre2009([67.4, 67.4], [40.9, 40.9], facts=facts))
    assert row["verdict"] == "not tested" and row["category"] == "other data"
    assert "3 classes, not Fall-2009's 10,184" in row["reason"]
    assert "release declared 'fall2011'" in row["reason"] and "24 images" in row["reason"]
    assert "split" not in row["reason"] and row["measured_on_run"]["estimate"] == pytest.approx(67.4)
    holdout = _row2009("fall2009-top5", _pre2009([67.4, 67.4], [40.9, 40.9], facts={**FALL2009_FACTS, "split": "holdout"}))
    assert holdout["verdict"] == "not tested" and "split 'holdout'" in holdout["reason"]
    assert "classes" not in holdout["reason"]


def test_fall2009_without_pretraining_says_what_it_needs():
    row = verdict.finalize([pretrained.fall2009_off(CLAIMS["fall2009-top1"], _context())], SETTINGS)[0]
    assert row["verdict"] == "not tested" and "Fall 2009" in row["reason"] and "split half" in row["reason"]
