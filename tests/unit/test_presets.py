"""`harness preset`: one command switches params.yaml to the paper's recipe for ImageNet."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness import config as C
from harness import presets
from harness.errors import UserError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name,source,split", [("ilsvrc2012", "ilsvrc2012", "val"), ("ilsvrc2010", "ilsvrc2010", "test")])
def test_preset_gives_the_paper_recipe(tmp_path, name, source, split):
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    presets.apply_preset(name, REPO / "presets", params, str(tmp_path))
    cfg = C.load_config(params)
    paper = C.Config()
    assert cfg.data.source == source and cfg.data.root == str(tmp_path.resolve())
    assert cfg.data.image_size == 256 and cfg.model == paper.model  # 224 crops, full width, paper init
    assert cfg.train.epochs == 90 and len(cfg.train.seeds) == 5 and cfg.train.batch_size == 128
    assert cfg.train.devices == ("cuda:0", "cuda:1") and cfg.evaluate.split == split
    # the readings of the paper (docs/fidelity.md): unscaled dropout, biases not decayed, IEEE fp32,
    # a plateau rule with a noise floor on val; no synthetic-profile convergence target
    t = cfg.train
    assert cfg.model.dropout_scaling == "paper" and cfg.model.hidden_bias == 1.0 and not t.bias_decay
    assert (t.precision, t.schedule, t.schedule_split, t.patience, t.plateau_threshold) == ("fp32", "plateau", "val", 3, 0.2)
    assert t == dataclasses.replace(paper.train, seeds=t.seeds, devices=t.devices, checkpoint_every=t.checkpoint_every,
                                    threads=t.threads, num_workers=t.num_workers)
    assert cfg.ablations.target_train_error != 80.0
    assert cfg.tracking == C.load_config(REPO / "params.yaml").tracking  # unset keys are kept
    assert (tmp_path / "params.yaml.bak").read_text() == (REPO / "params.yaml").read_text()


def test_preset_needs_a_root_and_a_known_name(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    with pytest.raises(UserError, match="--root"):
        presets.apply_preset("ilsvrc2012", REPO / "presets", params, None)
    with pytest.raises(UserError, match="available: cifar10, cifar10-quick, fall2011, ilsvrc2010, ilsvrc2012"):
        presets.apply_preset("imagenet", REPO / "presets", params, str(tmp_path))
    with pytest.raises(UserError, match="no such file"):
        presets.apply_preset("ilsvrc2012", REPO / "presets", params, str(tmp_path / "nope"))
    assert params.read_text() == (REPO / "params.yaml").read_text()  # untouched on error


def test_cli_lists_and_applies(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    harness = [sys.executable, "-m", "harness.cli", "preset"]
    out = subprocess.run(harness + ["--list"], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["cifar10", "cifar10-quick", "fall2011", "ilsvrc2010", "ilsvrc2012"]
    run = subprocess.run(harness + ["ilsvrc2012", "--root", str(tmp_path), "--params", str(params)],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0 and "dvc repro" in run.stdout
    assert yaml.safe_load(params.read_text())["data"]["source"] == "ilsvrc2012"


@pytest.mark.parametrize("name", ["ilsvrc2012", "ilsvrc2010"])
def test_imagenet_presets_replace_the_arms_so_cifar_arms_do_not_stay(tmp_path, name):
    """cifar10 then an ImageNet preset: the arms are the paper net's (those of params.yaml),
    none of the CIFAR-10 nets' arms is left, and no arm is enabled."""
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    presets.apply_preset("cifar10", REPO / "presets", params, str(tmp_path))
    assert C.load_config(params).ablations.arm("lrn").overrides  # the CIFAR-10 arms are in
    presets.apply_preset(name, REPO / "presets", params, str(tmp_path))
    cfg, default = C.load_config(params), C.load_config(REPO / "params.yaml")
    assert cfg.ablations.arms == default.ablations.arms and cfg.ablations.enabled == ()
    assert not any(C.apply_arm(cfg, a.name).model.arch in C.CUDA_CONVNET_ARCHS for a in cfg.ablations.arms)
    preset = yaml.safe_load((REPO / "presets" / f"{name}.yaml").read_text())
    assert preset["replace"] == ["ablations.arms"]
