"""The report's interpretations (every ambiguity, every run) and departures (harness/report/deviations.py)."""

import dataclasses
from pathlib import Path

import pytest

from harness import config as C
from harness.report import deviations as D

REPO = Path(__file__).resolve().parents[2]
# Every ambiguity docs/paper.md names, each a row whatever the config.
NAMED = ("LRN constants", "PCA colour scale", "Dropout scaling", "Weight decay on biases", "Arithmetic precision",
         "Input size and conv1 padding", "Mean subtraction", "Resize", "lr schedule stand-in", "Update rule",
         "Bias initialisation")


@pytest.mark.parametrize("cfg", [C.Config(), C.load_config(REPO / "params.yaml")], ids=["paper", "default profile"])
def test_every_interpretation_is_listed_at_its_default_too(cfg):
    rows = {r["ambiguity"]: r for r in D.interpretations(cfg)}
    assert set(NAMED) <= rows.keys()
    for r in rows.values():
        assert r["ours"] and r["paper"] and r["where"].startswith("harness/")
    switched = [r for r in rows.values() if r["switch"] != "–"]
    assert all(r["alternatives"] != "–" for r in switched)


def test_the_paper_recipe_has_no_departures_but_the_rule():
    cfg = dataclasses.replace(C.Config(), data=C.DataConfig(source="ilsvrc2012", root="/x"))
    assert [r["key"] for r in D.deviations(cfg)] == ["lr schedule"]
    rows = {r["ambiguity"]: r for r in D.interpretations(cfg)}
    assert rows["Dropout scaling"]["ours"].startswith("paper:") and rows["Weight decay on biases"]["ours"].startswith("false")
    assert "at least 0.2 pp below the best" in rows["lr schedule stand-in"]["ours"] and "val split" in rows["lr schedule stand-in"]["ours"]


def test_readings_of_the_default_profile():
    cfg = C.load_config(REPO / "params.yaml")
    keys = {r["key"]: r for r in D.deviations(cfg)}
    # departures where the paper states the value; bias decay and the threshold are readings, not departures
    assert {"model.dropout_scaling", "model.hidden_bias", "model.init", "fc6 input"} <= keys.keys()
    assert not {"train.bias_decay", "train.plateau_threshold", "train.patience", "train.pca_mode"} & keys.keys()
    assert keys["fc6 input"]["ours"].startswith("1x1 maps at 64 px")
    rows = {r["ambiguity"]: r for r in D.interpretations(cfg)}
    assert rows["Dropout scaling"]["ours"].startswith("inverted") and rows["Weight decay on biases"]["ours"].startswith("true")


def test_the_evaluation_split_sentence_says_who_reads_val():
    base = C.load_config(REPO / "params.yaml")  # synthetic data, fixed steps
    split = lambda cfg: next(r for r in D.deviations(cfg) if r["key"] == "evaluation split")["ours"]  # noqa: E731
    assert "which the lr schedule does not see" not in split(base)
    assert split(base).startswith("the val split; the lr schedule reads no split")
    plateau = dataclasses.replace(base, train=dataclasses.replace(base.train, schedule="plateau"))
    assert split(plateau) == "the val split, which also drives the lr schedule (plateau rule on val)"
    held = dataclasses.replace(base, train=dataclasses.replace(base.train, schedule="plateau", schedule_split="holdout"))
    assert "held-out slice of the training set" in split(held)
    assert any(r["key"] == "training images" for r in D.deviations(held))


def test_precision_and_lrn_departures():
    cfg = dataclasses.replace(C.Config(), train=C.TrainConfig(precision="tf32"), model=C.ModelConfig(lrn="caffe"))
    keys = {r["key"]: r for r in D.deviations(cfg)}
    assert keys["train.precision"]["ours"] == "tf32" and keys["model.lrn"]["ours"] == "caffe"
    rows = {r["ambiguity"]: r for r in D.interpretations(cfg)}
    assert rows["Arithmetic precision"]["ours"].startswith("tf32") and "fp32: IEEE" in rows["Arithmetic precision"]["alternatives"]
