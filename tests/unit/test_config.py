"""params.yaml validation: every error names the key, before any work."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from harness import config as C

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path, data) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def repo_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_repo_params_load_and_are_frozen():
    cfg = C.load_config(REPO / "params.yaml")
    assert cfg.train.seeds == (1, 2, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.lr = 1.0


def test_defaults_are_the_papers_recipe():
    """Config defaults encode docs/paper.md, "The recipe as printed" (deviations are computed against them)."""
    t, m = C.TrainConfig(), C.ModelConfig()
    assert (t.batch_size, t.lr, t.momentum, t.weight_decay, t.epochs) == (128, 0.01, 0.9, 5e-4, 90)
    assert (m.width, m.towers, m.input_size, m.lrn, m.pool, m.dropout, m.init) == (
        1.0, 2, 224, "paper", "overlap", 0.5, "paper")
    assert C.DataConfig().image_size == 256


@pytest.mark.parametrize("patch, key, words", [
    ({"train": {"lrr": 0.1}}, "train.lrr", "did you mean train.lr"),
    ({"bogus": 1}, "bogus", "unknown key"),
    ({"train": {"lr": -0.01}}, "train.lr", "must be >"),
    ({"train": {"lr": "fast"}}, "train.lr", "expected a number"),
    ({"train": {"epochs": 2.5}}, "train.epochs", "expected an integer"),
    ({"train": {"seeds": []}}, "train.seeds", "at least one seed"),
    ({"train": {"seeds": [1, 1]}}, "train.seeds", "duplicate"),
    ({"train": {"seeds": 3}}, "train.seeds", "expected a list"),
    ({"model": {"lrn": "fancy"}}, "model.lrn", "not one of"),
    ({"model": {"input_size": 300}}, "model.input_size", "larger than"),
    ({"model": {"input_size": 40}}, "model.input_size", "at least 63"),
    ({"train": {"pca_colour": "yes"}}, "train.pca_colour", "true/false"),
    ({"data": {"synthetic": {"num_classes": 1}}}, "data.synthetic.num_classes", ">= 2"),
    ({"evaluate": {"protocols": ["center", "twelve"]}}, "evaluate.protocols", "protocols must be"),
    ({"train": {"lr_steps": [0]}}, "train.lr_steps", "epoch number >= 1"),
    ({"data": "synthetic"}, "data", "expected a mapping"),
])
def test_bad_values_name_the_key(tmp_path, patch, key, words):
    params = repo_params()
    for section, value in patch.items():
        if isinstance(value, dict) and isinstance(params.get(section), dict):
            for k, v in value.items():
                if isinstance(v, dict):
                    params[section][k].update(v)
                else:
                    params[section][k] = v
        else:
            params[section] = value
    with pytest.raises(C.ConfigError) as err:
        C.load_config(write(tmp_path, params))
    assert key in str(err.value) and words in str(err.value)


def test_final_map_size_is_6_at_paper_sizes():
    assert C.final_map_size(C.ModelConfig()) == 6
    assert C.final_map_size(C.ModelConfig(input_size=227, conv1_padding=0)) == 6
    # docs/paper.md, "Ambiguities": 224 without padding gives 54 after conv1, hence 5x5 after pool3 (wrong)
    assert C.final_map_size(C.ModelConfig(input_size=224, conv1_padding=0)) == 5


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(C.ConfigError, match="not found"):
        C.load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(C.ConfigError, match="not valid YAML"):
        C.load_config(bad)


def test_a_partial_nested_mapping_keeps_the_fields_own_default(tmp_path):
    # pretrain.data defaults to source fall2011 (not DataConfig's synthetic): a params file that
    # names only its root must not turn the Fall-2011 path into the synthetic set
    assert C.PretrainConfig().data.source == "fall2011"
    cfg = C.load_config(write(tmp_path, {"pretrain": {"data": {"root": "/data/fall11"}}}))
    assert (cfg.pretrain.data.source, cfg.pretrain.data.root) == ("fall2011", "/data/fall11")
    # a key given still wins over the field's default, and nothing else moves
    cfg = C.load_config(write(tmp_path, {"pretrain": {"data": {"source": "synthetic"}}}))
    assert cfg.pretrain.data == C.DataConfig(source="synthetic")
    assert C.load_config(write(tmp_path, {"pretrain": {"epochs": 5}})).pretrain.data == C.PretrainConfig().data
    # bad keys inside such a mapping are still named
    with pytest.raises(C.ConfigError, match=r"pretrain\.data\.sorce: unknown key \(did you mean pretrain\.data\.source"):
        C.load_config(write(tmp_path, {"pretrain": {"data": {"sorce": "fall2011"}}}))


def test_training_digest_ignores_seeds_but_not_recipe(tmp_path):
    params = repo_params()
    base = C.training_digest(C.load_config(write(tmp_path, params)))
    params["train"]["seeds"] = [7, 8]
    assert C.training_digest(C.load_config(write(tmp_path, params))) == base
    params["train"]["lr"] = 0.02
    assert C.training_digest(C.load_config(write(tmp_path, params))) != base


def test_dvc_train_stage_lists_every_train_param_but_seeds():
    """Adding a seed must not retrain the others: train@N depends on train.* minus seeds."""
    from import_graph import params_of
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train"]
    listed = set(params_of(stage))
    expected = {f"train.{f.name}" for f in dataclasses.fields(C.TrainConfig) if f.name != "seeds"}
    assert expected <= listed and "train.seeds" not in listed and "train" not in listed


@pytest.mark.parametrize("compare, words", [
    ({"margin_pp": 2.0}, "compare.margin_pp: unknown key (did you mean compare.reference_margin_pp?)"),
    ({"multiplicity": "bonferroni"}, "compare.multiplicity: 'bonferroni' is not one of holm, none"),
    ({"alpha": 0.3}, "compare.alpha: must be <= 0.25"),
    ({"power": 1.0}, "compare.power: must be <= 0.99"),
])
def test_compare_settings_are_validated(tmp_path, compare, words):
    """One margin for every claim is gone: each claim's band lives in claims.yaml (docs/statistics.md)."""
    p = repo_params()
    p["compare"].update(compare)
    with pytest.raises(C.ConfigError) as err:
        C.load_config(write(tmp_path, p))
    assert words in str(err.value)
    cfg = C.load_config(REPO / "params.yaml").compare
    assert (cfg.alpha, cfg.power, cfg.multiplicity, cfg.reference_margin_pp) == (0.05, 0.8, "holm", 2.0)


def test_lr_steps_past_a_shortened_run_are_accepted_with_a_note(tmp_path):
    """`dvc exp run -S train.epochs=2` with the default lr_steps [10, 13]: accepted (it was refused
    after DVC had removed outputs), the drops past the end never fire, and the note says so."""
    from harness.train.recipe import lr_at
    params = repo_params()
    assert C.notes(C.load_config(write(tmp_path, params))) == []  # the default profile: every drop happens
    params["train"]["epochs"] = 2
    cfg = C.load_config(write(tmp_path, params))
    assert cfg.train.lr_steps == (10, 13)  # what the user wrote; the training digest keeps it
    [note] = C.notes(cfg)
    assert "train.lr_steps 10, 13" in note and "never lowers the lr" in note and "1..1" in note
    # independent: the recipe's lr over the whole 2-epoch run equals the run with no steps at all
    none = dataclasses.replace(cfg.train, lr_steps=())
    for e in (0.5, 1.0, 1.5, 1.999):
        assert lr_at(cfg.train, None, e) == lr_at(none, None, e)
    params["train"]["epochs"] = 11
    [note] = C.notes(C.load_config(write(tmp_path, params)))
    assert "train.lr_steps 13 lie" in note and "after epoch(s) 10 only" in note
    params["train"]["epochs"] = 1
    [note] = C.notes(C.load_config(write(tmp_path, params)))
    assert "a one-epoch run has no room" in note
    params["train"]["schedule"] = "plateau"  # the paper's rule: no fixed drops, nothing to say
    assert C.notes(C.load_config(write(tmp_path, params))) == []
