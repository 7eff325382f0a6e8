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
                                    threads=t.threads, num_workers=t.num_workers, decode_device=t.decode_device)
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


NAMES = ["cifar10", "cifar10-quick", "fall2011", "ilsvrc2010", "ilsvrc2012"]


def _apply(tmp_path, params, name):
    root = str(tmp_path)
    if name == "fall2011":
        return presets.apply_preset(name, REPO / "presets", params, root, root)
    return presets.apply_preset(name, REPO / "presets", params, root)


@pytest.mark.parametrize("first", NAMES)
@pytest.mark.parametrize("then", NAMES)
def test_a_preset_gives_the_same_params_whatever_was_applied_before(tmp_path, first, then):
    """cifar10 then ilsvrc2012 left train.stop_at_train_error 25 and
    train.lr_select_factors in the ImageNet params. Every preset after every other must give
    exactly what it gives on the pristine params.yaml."""
    pristine = tmp_path / "pristine.yaml"
    pristine.write_text((REPO / "params.yaml").read_text())
    want = _apply(tmp_path, pristine, then)
    chained = tmp_path / "params.yaml"
    chained.write_text((REPO / "params.yaml").read_text())
    _apply(tmp_path, chained, first)
    got = _apply(tmp_path, chained, then)
    assert got == want, {k: (v, C.flatten(want).get(k)) for k, v in C.flatten(got).items()
                         if C.flatten(want).get(k) != v}
    assert yaml.safe_load(chained.read_text()) == yaml.safe_load(pristine.read_text())


def test_imagenet_after_cifar10_has_no_cifar10_stopping_rule(tmp_path):
    """The defect as reported, and the CLI names what went back to the paper's value."""
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    presets.apply_preset("cifar10", REPO / "presets", params, str(tmp_path))
    harness = [sys.executable, "-m", "harness.cli", "preset", "ilsvrc2012", "--root", str(tmp_path),
               "--params", str(params)]
    run = subprocess.run(harness, cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    t = C.load_config(params).train
    assert t.stop_at_train_error is None and t.lr_select_factors == ()
    assert "train.stop_at_train_error" in run.stdout and "train.lr_select_factors" in run.stdout


def test_owned_keys_cover_every_preset_key_and_exist_in_the_config():
    """Every key a preset sets is one the config knows (a typo would never be reset)."""
    known = set(C.flatten(C.to_dict(C.Config())))
    for key in presets.owned_keys(REPO / "presets"):
        assert key in known or key == "ablations.arms", key


@pytest.mark.parametrize("name", ["cifar10", "cifar10-quick"])
def test_cifar10_presets_do_not_decay_biases(tmp_path, name):
    """params.yaml's bias_decay true won over the preset, while the authors'
    layer files build every bias with wc = 0 (harness/model/cuda_convnet.py, docs/cifar10.md).
    On the pristine params.yaml, the Figure 1 net and every arm: each bias group of the optimizer
    decays with multiplier 0, the weights with their layer file's wc."""
    from harness.model.build import build_model
    from harness.train import recipe
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    presets.apply_preset(name, REPO / "presets", params, str(tmp_path))
    cfg = C.load_config(params)
    for arm in [None, *(a.name for a in cfg.ablations.arms)]:
        run = cfg if arm is None else C.apply_arm(cfg, arm)
        assert run.train.bias_decay is False, arm
        groups = recipe.param_groups(build_model(run.model, 10), run.train)
        biases = [g for g in groups if g["name"].endswith("bias")]
        assert biases and all(g["decay_mult"] == 0.0 for g in biases), arm
        if run.model.arch == "cuda_convnet_11pct":  # the file's wc: 0.004 on the local layers
            assert any(g["decay_mult"] > 0 for g in groups if g["name"].endswith("weight"))


@pytest.mark.parametrize("name", ["ilsvrc2012", "ilsvrc2010"])
def test_imagenet_presets_decode_their_jpeg_shards_on_the_gpu(tmp_path, name):
    """The ImageNet presets train on GPUs from JPEG shards: one CPU process decodes too few images
    a second to feed a GPU (docs/performance.md), so they decode on the first train GPU; the
    CPU-only presets (cifar10 after an ImageNet one) go back to the CPU decoder."""
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    presets.apply_preset(name, REPO / "presets", params, str(tmp_path))
    cfg = C.load_config(params)
    assert (cfg.data.encoding, cfg.train.decode_device, cfg.train.devices[0]) == ("jpeg", "cuda", "cuda:0")
    presets.apply_preset("cifar10", REPO / "presets", params, str(tmp_path))
    assert C.load_config(params).train.decode_device == "cpu"
