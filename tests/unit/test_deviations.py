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


def test_every_key_a_preset_or_a_user_sets_away_from_the_paper_is_a_departure(tmp_path):
    """cifar10's train.stop_at_train_error and lr_select_factors were in the
    ImageNet params and not in the report. Each key that shapes training, set away from the
    paper, is a row; a key without a note of its own too (the catch-all)."""
    paper = dataclasses.replace(C.Config(), data=C.DataConfig(source="ilsvrc2012", root="/x"))
    leaked = dataclasses.replace(paper, train=dataclasses.replace(paper.train, stop_at_train_error=25.0,
                                                                  lr_select_factors=(0.5, 1.0), lr_select_steps=40))
    keys = {r["key"]: r for r in D.deviations(leaked)}
    assert {"train.stop_at_train_error", "train.lr_select_factors", "train.lr_select_steps"} <= keys.keys()
    assert keys["train.stop_at_train_error"]["ours"] == 25.0 and keys["train.stop_at_train_error"]["paper"] is None
    # every key of the config is either listed when it differs, or declared as never a departure
    flat = C.flatten(C.to_dict(C.Config()))
    assert all(any(n == k or n.startswith(k + ".") for n in flat) for k in D.NOT_RECIPE), "stale NOT_RECIPE key"


def test_each_preset_s_departures_are_listed(tmp_path):
    """Every key of every preset's params that differs from the paper is a row, or never a departure."""
    from harness import presets
    for name in ("cifar10", "cifar10-quick", "ilsvrc2012"):
        params = tmp_path / "params.yaml"
        params.write_text((REPO / "params.yaml").read_text())
        presets.apply_preset(name, REPO / "presets", params, str(tmp_path))
        cfg = C.load_config(params)
        ours, paper = C.flatten(C.to_dict(cfg)), C.flatten(C.to_dict(C.Config()))
        listed = {r["key"] for r in D.deviations(cfg)}
        for key, value in ours.items():
            if value != paper.get(key) and not D._not_recipe(key) and key != "data.source":
                assert key in listed, (name, key)
        assert ("train.stop_at_train_error" in listed) == name.startswith("cifar10")
