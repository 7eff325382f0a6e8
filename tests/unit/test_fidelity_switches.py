"""The fidelity switches against hand computations: bias weight decay, precision flags, the plateau
rule's threshold and held-out slice, crop/flip off, the bias of the hidden layers, the nets
without a middle conv layer, and the config checks that refuse a silent stretch to 6x6."""


import numpy as np
import pytest
import tiny
import torch
from torch import nn

from harness import accel
from harness import config as C
from harness.data import shards, transforms
from harness.model import build_model, count_params, layer_table
from harness.train import loop, recipe

# --- weight decay on biases ---------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["paper", "torch"])
@pytest.mark.parametrize("bias_decay", [False, True])
def test_bias_decay_by_hand(rule, bias_decay):
    """Zero gradients: one step leaves only the decay. Paper rule: v = -wd lr w; torch: the
    same at the first step (buffer = wd w, w -= lr buffer). Biases decay only with bias_decay."""
    lin = nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.fill_(2.0)
        lin.bias.fill_(1.0)
    cfg = C.TrainConfig(update_rule=rule, bias_decay=bias_decay, lr=0.1, weight_decay=0.5)
    opt = recipe.make_optimizer(lin, cfg)
    (lin.weight.sum() * 0 + lin.bias.sum() * 0).backward()  # gradients exist and are zero
    opt.step()
    assert torch.allclose(lin.weight, torch.full_like(lin.weight, 2.0 - 0.1 * 0.5 * 2.0))
    want_bias = 1.0 - 0.1 * 0.5 * 1.0 if bias_decay else 1.0
    assert torch.allclose(lin.bias, torch.full_like(lin.bias, want_bias))


def test_bias_groups_cover_every_parameter_once():
    model = build_model(tiny.MODEL, 4)
    groups = recipe.param_groups(model, C.TrainConfig(bias_decay=False))
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert groups[1]["weight_decay"] == 0.0 and all(p.dim() == 1 for p in groups[1]["params"])
    assert len(recipe.param_groups(model, C.TrainConfig(bias_decay=True))) == 1


# --- precision ----------------------------------------------------------------------------------------

def test_precision_sets_the_fp32_backend_flags():
    try:
        assert accel.configure_precision("fp32")["cudnn_conv_fp32_precision"] == "ieee"
        assert accel.backend_flags()["matmul_fp32_precision"] == "ieee"
        flags = accel.configure_precision("tf32")
        assert (flags["matmul_fp32_precision"], flags["cudnn_conv_fp32_precision"]) == ("tf32", "tf32")
        flags = accel.configure_precision("bf16")  # ops outside autocast stay IEEE fp32
        assert (flags["matmul_fp32_precision"], flags["cudnn_conv_fp32_precision"]) == ("ieee", "ieee")
        assert isinstance(accel.autocast("cpu", "tf32"), type(accel.autocast("cpu", "fp32")))
        with pytest.raises(ValueError):
            accel.configure_precision("fp16")
    finally:
        accel.configure_precision("fp32")


def test_the_model_exports_after_the_precision_is_set():
    """torch 2.14's torch.export reads the legacy cuDNN flag, which raises after configure_precision;
    export_safe_flags lets the MLflow pt2 export run and puts the precisions back."""
    model = build_model(tiny.MODEL, 4).eval()
    example = torch.zeros(2, 3, tiny.MODEL.input_size, tiny.MODEL.input_size)
    for precision, mode in (("fp32", "ieee"), ("tf32", "tf32")):
        try:
            accel.configure_precision(precision)
            with pytest.raises(RuntimeError, match="TF32"):  # the torch behaviour the helper exists for
                torch.export.export(model, (example,))
            with accel.export_safe_flags():
                program = torch.export.export(model, (example,))
            assert torch.equal(program.module()(example), model(example))
            flags = accel.backend_flags()
            assert (flags["matmul_fp32_precision"], flags["cudnn_conv_fp32_precision"]) == (mode, mode)
        finally:
            accel.configure_precision("fp32")


# --- the plateau rule ------------------------------------------------------------------------------------

def test_plateau_threshold_by_hand():
    """A new best must beat the best by 0.2 pp; 3 epochs without one drop the lr."""
    cfg = C.TrainConfig(schedule="plateau", patience=3, plateau_threshold=0.2, max_drops=2)
    st = loop.TrainState()
    errors = [50.0, 49.0, 48.9, 48.85, 48.81, 48.0, 47.9, 47.9, 47.9, 47.0]
    drops = []
    for e in errors:
        drops.append(recipe.update_plateau(cfg, st, e))
        st.epoch += 1
    # 49.0 beats 50 by 1; 48.9, 48.85, 48.81 are within 0.2 of 49.0 (not new bests): drop after
    # epoch 5; 48.0 is a new best; 47.9 x3 within 0.2 of 48.0: drop after epoch 9; 47.0 new best
    assert drops == [False, False, False, False, True, False, False, False, True, False]
    assert st.lr_drops == [5, 9] and st.drops == 2 and st.best_val == 47.0
    # without a threshold 48.9, 48.85, 48.81 are each a new best, and nothing drops
    st0, cfg0 = loop.TrainState(), C.TrainConfig(schedule="plateau", patience=3, plateau_threshold=0.0)
    assert not any(recipe.update_plateau(cfg0, st0, e) for e in errors[:6])


def test_holdout_indices_are_deterministic_and_excluded():
    held = shards.holdout_indices(100, 25)
    assert held.tolist() == [24, 49, 74, 99]
    with pytest.raises(C.UserError, match="holdout_every"):
        shards.holdout_split(_FakeSplit(10), 25)
    train, hold = shards.holdout_split(_FakeSplit(100), 25)
    assert len(train) == 96 and len(hold) == 4
    assert set(train.labels.tolist()).isdisjoint(hold.labels.tolist())  # labels = indices here
    assert hold.images(np.array([0, 3])).tolist() == [24, 99]


class _FakeSplit:
    def __init__(self, n):
        self.labels = np.arange(n)
        self.size = 8

    def __len__(self):
        return len(self.labels)

    def images(self, idx):
        return np.asarray(idx)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return tiny.prepared(tmp_path_factory, 10, 3)


def test_holdout_drives_the_plateau_rule(prepared):
    """schedule_split holdout: the training view leaves the slice out, fit reads its error."""
    torch.set_num_threads(1)
    cfg = C.Config(data=tiny.DATA, model=tiny.MODEL,
                   train=C.TrainConfig(epochs=3, batch_size=8, schedule="plateau", schedule_split="holdout",
                                       holdout_every=5, patience=1, plateau_threshold=0.0, threads=1))
    view, val, norm = transforms.build_views(cfg, prepared, seed=1)
    held = transforms.schedule_split(cfg, prepared)
    assert len(view) == 32 and len(held) == 8  # 40 training images, every 5th held out
    torch.manual_seed(1)
    model = build_model(tiny.MODEL, 4)
    loader = lambda split: transforms.batch_loader(  # noqa: E731
        transforms.EvalView(split, norm, 64, "center"), transforms.eval_batches(len(split), 16), 0)
    state = loop.TrainState()
    hist = loop.fit(model, recipe.make_optimizer(model, cfg.train), view, lambda b: transforms.batch_loader(view, b, 0),
                    loader(val), cfg.train, 1, state, schedule_loader=loader(held))
    held_errors = [h.holdout_top1_error for h in hist]
    assert all(e is not None for e in held_errors)
    assert state.best_val == min(held_errors)  # the rule read the held-out slice, not val
    assert transforms.schedule_split(C.Config(data=tiny.DATA), prepared) is None


def test_holdout_needs_the_plateau_schedule(tmp_path):
    with pytest.raises(C.ConfigError, match="train.schedule_split"):
        C._check_cross_fields(C.Config(train=C.TrainConfig(schedule="steps", schedule_split="holdout")))


# --- crop and flip off (paper 4.1 ablation) -----------------------------------------------------

def test_crop_flip_off_is_the_centre_crop_with_the_same_colour_draws():
    on = transforms.epoch_draws(50, 72, 64, seed=3, epoch=2, pca_std=0.1)
    off = transforms.epoch_draws(50, 72, 64, seed=3, epoch=2, pca_std=0.1, crop_flip=False)
    assert (off.ys == 4).all() and (off.xs == 4).all() and not off.flip.any()
    assert np.array_equal(on.alpha, off.alpha) and on.flip.any() and len(set(on.ys.tolist())) > 1


def test_crop_flip_off_in_the_training_view(prepared):
    mean, pca = shards.load_stats(prepared)
    norm = transforms.Normaliser(mean, 1.0)
    split = shards.load_split(prepared, "train")
    view = transforms.TrainView(split, norm, None, 64, 1, 0.1, crop_flip=False)
    x, _ = view[np.arange(4)]
    centre, _ = transforms.EvalView(split, norm, 64, "center")[np.arange(4)]
    assert torch.equal(x, centre)
    # and by hand: the stored 72 px images cut at (72 - 64) / 2 = 4, less the mean image there
    off = (split.size - 64) // 2
    want = split.images(np.arange(4))[:, off:off + 64, off:off + 64].astype(np.float32) \
        - mean[off:off + 64, off:off + 64]
    assert off == 4 and torch.equal(x, transforms.to_tensor(want))


# --- the bias of the hidden layers, the nets without a middle conv layer ---------------------------

@pytest.mark.parametrize("init", ["paper", "kaiming"])
def test_hidden_bias(init):
    model = build_model(C.ModelConfig(init=init, hidden_bias=0.25, width=0.125, input_size=64), 10)
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
        want = 0.25 if name in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0
        assert torch.all(getattr(model, name).bias == want), name


def conv(cin, cout, k, groups=1):
    return cout * (cin // groups) * k * k + cout


@pytest.mark.parametrize("drop, middle, fc6_in", [
    # no conv3: conv4 reads conv2's 256 maps from both towers (conv3's connectivity), 384 kernels
    ("conv3", [("conv4", conv(256, 384, 3)), ("conv5", conv(384, 256, 3, 2))], 256),
    # no conv4: conv5 reads conv3's 384 maps, own tower only, as before
    ("conv4", [("conv3", conv(256, 384, 3)), ("conv5", conv(384, 256, 3, 2))], 256),
    # no conv5: pool5 follows conv4; fc6 reads its 384 maps
    ("conv5", [("conv3", conv(256, 384, 3)), ("conv4", conv(384, 384, 3, 2))], 384),
])
def test_nets_without_a_middle_conv_layer(drop, middle, fc6_in):
    model = build_model(C.ModelConfig(drop_conv=drop), 1000)
    rows = {r.name: r for r in layer_table(model, 224)}
    assert drop not in rows and getattr(model, drop, None) is None
    for name, params in middle:
        assert rows[name].params == params, name
        assert rows[name].out_shape[1:] == (13, 13)
    assert rows["fc6"].params == fc6_in * 36 * 4096 + 4096
    # conv1, conv2, fc7, fc8 as in the paper (docs/paper.md: 34,944 / 307,456 / 16,781,312 / 4,097,000)
    assert count_params(model) == 34_944 + 307_456 + sum(p for _, p in middle) + rows["fc6"].params \
        + 16_781_312 + 4_097_000
    assert model(torch.zeros(2, 3, 224, 224)).shape == (2, 1000)


def test_drop_conv_trains_on_one_device():
    with pytest.raises(C.ConfigError, match="train.devices"):
        C._check_cross_fields(C.Config(model=C.ModelConfig(drop_conv="conv3"),
                                       train=C.TrainConfig(devices=("cuda:0", "cuda:1"))))
    arms = C.AblationsConfig(arms=(C.ArmConfig("no_conv3", (("model.drop_conv", "conv3"),)),))
    cfg = C.Config(data=C.DataConfig(source="synthetic"), train=C.TrainConfig(devices=("cuda:0", "cuda:1")),
                   ablations=arms)
    assert C.apply_arm(cfg, "no_conv3").train.devices == ("cuda:0",)


# --- 224 without padding: refused, never stretched silently ---------------------------------------

@pytest.mark.parametrize("size, pad, ok", [(224, 2, True), (227, 0, True), (224, 0, False), (256, 2, False),
                                           (64, 2, True)])
def test_fc6_input_is_6x6_at_the_papers_scale(size, pad, ok):
    cfg = C.Config(model=C.ModelConfig(input_size=size, conv1_padding=pad), data=C.DataConfig(image_size=256))
    if ok:
        C._check_cross_fields(cfg)
    else:
        with pytest.raises(C.ConfigError, match=r"model.conv1_padding: .* (5x5|7x7)"):
            C._check_cross_fields(cfg)


def test_pool5_side_by_hand():
    """(224 - 11) // 4 + 1 = 54 -> (54 - 3) // 2 + 1 = 26 -> 12 -> 5; with padding 2: 55 -> 27 -> 13 -> 6."""
    assert C.final_map_size(C.ModelConfig(input_size=224, conv1_padding=0)) == 5
    assert C.final_map_size(C.ModelConfig(input_size=224, conv1_padding=2)) == 6


# --- the arms of the new claim rows, as declared in params.yaml -----------------------------------

NEW_ARMS = {"no_weight_decay": ("train.weight_decay", 0.0), "no_crop_flip": ("train.crop_flip", False),
            "bias_zero": ("model.hidden_bias", 0.0), "no_conv3": ("model.drop_conv", "conv3"),
            "no_conv4": ("model.drop_conv", "conv4"), "no_conv5": ("model.drop_conv", "conv5")}


def test_new_arms_are_declared_off_and_build():
    from pathlib import Path
    cfg = C.load_config(Path(__file__).resolve().parents[2] / "params.yaml")
    assert cfg.ablations.enabled == ()
    declared = {a.name: a.overrides for a in cfg.ablations.arms}
    for name, (key, value) in NEW_ARMS.items():
        assert declared[name] == ((key, value),), name
        arm = C.apply_arm(cfg, name)
        section, sub = key.split(".")
        assert getattr(getattr(arm, section), sub) == value
        model = build_model(arm.model, 20)
        assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 20), name


def test_model_info_shows_an_arms_network():
    import json
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-m", "harness.cli", "model-info", "--params", "params.yaml", "--paper",
                          "--arm", "no_conv3", "--json"], cwd=repo, capture_output=True, text=True, check=True)
    info = json.loads(run.stdout)
    names = [r["name"] for r in info["layers"]]
    assert "conv3" not in names and names.count("conv4") == 1 and info["drop_conv"] == "conv3"
    assert info["total_params"] == 60_965_224 - 885_120 - 663_936 + 885_120  # conv4 now reads 256 maps, ungrouped
    listed = subprocess.run([sys.executable, "-m", "harness.cli", "model-info", "--params", "params.yaml", "--list-arms"],
                            cwd=repo, capture_output=True, text=True, check=True).stdout
    assert all(name in listed for name in NEW_ARMS)
