"""The six-conv net of paper 6 (model.conv6*) and the pre-training phases' config
(pretrain.*, config.apply_phase). Parameter counts are hand arithmetic from the layer shapes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from harness import config as C
from harness.model import build_model, count_params, layer_table

PAPER_PARAMS = 60_965_224  # the five-conv net (docs/usage.md, docs/paper.md)
# conv6 over pool5: 256 kernels of 3x3 over 128 channels (own tower, groups 2), plus 256 biases
CONV6_OWN = 256 * 128 * 9 + 256
CONV6_BOTH = 256 * 256 * 9 + 256


def _net(classes=1000, **kw):
    torch.manual_seed(0)
    return build_model(C.ModelConfig(conv6=True, **kw), classes, ("cpu",))


def test_conv6_adds_one_grouped_3x3_layer_and_keeps_fc6():
    assert count_params(_net()) == PAPER_PARAMS + CONV6_OWN
    assert count_params(_net(conv6_towers="both")) == PAPER_PARAMS + CONV6_BOTH
    rows = {r.name: r for r in layer_table(_net(), 224)}
    assert rows["conv6"].out_shape == (256, 6, 6) and rows["conv6"].mult_adds == 256 * 36 * 128 * 9
    assert rows["fc6"].params == 256 * 36 * 4096 + 4096  # unchanged: conv6 keeps the 6x6 map


def test_fall2011_head_and_pool_switch():
    # 21841 classes (ImageNet Fall 2011): fc8 4096 x 21841 + 21841 instead of 4096 x 1000 + 1000
    assert count_params(_net(21841)) == PAPER_PARAMS + CONV6_OWN + 4097 * (21841 - 1000)
    pooled = _net(conv6_pool=True)  # 6x6 -> 2x2: fc6 reads 256 x 4
    assert pooled.fc6.in_features == 256 * 4
    assert pooled(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


def test_off_is_the_five_conv_net_and_its_digest():
    cfg = C.Config()
    on = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, conv6_kernels=512))
    assert C.training_digest(on) == C.training_digest(cfg)  # conv6 off: its switches do not matter
    six = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, conv6=True))
    assert C.training_digest(six) != C.training_digest(cfg)


def _paper_cfg(**pre):
    return C.from_dict({"data": {"source": "ilsvrc2012", "root": "/ilsvrc"},
                        "pretrain": {"enabled": ["fall2011"], "data": {"source": "fall2011", "root": "/f11"}, **pre}})


def test_phases_switch_data_model_and_schedule():
    cfg = _paper_cfg(epochs=7, lr=0.02, finetune_epochs=3, finetune_lr=0.002)
    C._check_ablations(cfg)
    pre, fine = C.apply_phase(cfg, "pretrain"), C.apply_phase(cfg, "finetune")
    assert (pre.data.source, pre.train.epochs, pre.train.lr, pre.model.conv6) == ("fall2011", 7, 0.02, True)
    assert (fine.data.source, fine.train.epochs, fine.train.lr, fine.model.conv6) == ("ilsvrc2012", 3, 0.002, True)
    # the fine-tune digest holds the pre-training's: other pre-training, other checkpoint folder
    other = C.apply_phase(_paper_cfg(epochs=8, lr=0.02, finetune_epochs=3, finetune_lr=0.002), "finetune")
    assert C.training_digest(other) != C.training_digest(fine)
    assert C.training_config(fine)["pretrain"]["data"]["source"] == "fall2011"


@pytest.mark.parametrize("raw, match", [
    ({"pretrain": {"enabled": ["fall2012"]}}, r"pretrain.enabled\[0\]"),
    ({"pretrain": {"enabled": ["fall2011"], "data": {"root": "/f", "source": "ilsvrc2012"}}}, "pretrain.data.source"),
    ({"pretrain": {"enabled": ["fall2011"], "data": {"source": "fall2011", "root": "/f"}, "finetune_epochs": 2, "finetune_lr_steps": [0]}}, "finetune phase"),
    ({"model": {"conv6": True, "conv6_padding": 0}}, "model.conv6_padding"),
    ({"model": {"conv6": True, "arch": "one_tower"}}, "model.conv6"),
])
def test_bad_pretrain_params_name_the_key(raw, match, tmp_path):
    import yaml
    raw = {"data": {"source": "ilsvrc2012", "root": "/x"}, **raw}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(C.ConfigError, match=match):
        C.load_config(path)
