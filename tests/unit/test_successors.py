"""LeNet-5, the normalisation variants and the torchvision successors (docs/successors.md): shapes,
sizes against hand arithmetic and torchvision's own metadata, the towers kept apart by the learned
norms, GoogLeNet's auxiliary loss in the training loop, and the config rules."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from scipy import stats as sps
from tiny import MODEL
from torch import nn

from harness import config as C
from harness.model import build_model, count_params, layer_table
from harness.model.layers import group_count
from harness.model.successors import AUX_LOSS_WEIGHT, lenet5_c5_kernel, main_and_aux

torch.set_num_threads(1)
SUCCESSORS = ("vgg11", "vgg16", "googlenet", "resnet18", "resnet50")


def model_cfg(**kw) -> C.ModelConfig:
    return dataclasses.replace(MODEL, **kw)


def test_lenet5_at_32px_is_the_1998_layout_and_counts():
    # LeCun et al. 1998 II.B at 32 px: S4 5x5, so C5 has 5x5 kernels; full C3 (3-channel input)
    assert lenet5_c5_kernel(32) == 5 and lenet5_c5_kernel(64) == 13
    net = build_model(model_cfg(arch="lenet5", input_size=32), 10)
    hand = (3 * 25 * 6 + 6) + (6 * 25 * 16 + 16) + (16 * 25 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert count_params(net) == hand == 62006
    rows = {r.name: r for r in layer_table(net, 32)}
    assert rows["conv1"].out_shape == (6, 28, 28) and rows["conv3"].out_shape == (120, 1, 1)
    assert rows["conv1"].mult_adds == 28 * 28 * 6 * 75


def test_lenet5_at_64px_c5_spans_s4():
    net = build_model(model_cfg(arch="lenet5", input_size=64), 20)
    assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 20)
    c5 = [m for m in net if isinstance(m, nn.Conv2d)][-1]
    assert c5.kernel_size == (13, 13) and c5.weight.shape == (120, 16, 13, 13)


@pytest.mark.parametrize("arch", SUCCESSORS)
def test_successor_sizes_at_224_match_torchvision_metadata(arch):
    """At 224 px and 1000 classes each net is torchvision's published one: its parameter count and
    multiply-adds (torchvision's _ops, in GFLOPS as its docs print them) come from the weights'
    metadata shipped in torchvision, not from this code. GoogLeNet's metadata counts the net
    without its auxiliary heads (they are dropped at test)."""
    from torchvision.models import get_model_weights
    meta = get_model_weights(arch).IMAGENET1K_V1.meta
    net = build_model(model_cfg(arch=arch, input_size=224), 1000)
    n = count_params(net)
    if arch == "googlenet":
        n -= count_params(net.aux1) + count_params(net.aux2)
    assert n == meta["num_params"]
    macs = sum(r.mult_adds for r in layer_table(net, 224)) / 1e9
    assert macs == pytest.approx(meta["_ops"], rel=0.02)


@pytest.mark.parametrize("arch", ("lenet5", *SUCCESSORS))
def test_successors_train_and_eval_shapes_at_64px(arch):
    torch.manual_seed(0)
    net = build_model(model_cfg(arch=arch), 6)
    x = torch.randn(2, 3, 64, 64)
    logits, aux = main_and_aux(net.train()(x))
    assert logits.shape == (2, 6) and len(aux) == (2 if arch == "googlenet" else 0)
    assert all(a.shape == (2, 6) for a in aux)
    with torch.no_grad():
        out = net.eval()(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 6)  # aux heads dropped at test


def test_vgg_fc6_reads_the_maps_as_they_are():
    """64 px: five 2x2 pools leave 2x2 maps, so fc6 reads 512*4 inputs, not torchvision's 7x7 copy."""
    net = build_model(model_cfg(arch="vgg11"), 6)
    assert net.classifier[0].in_features == 512 * 2 * 2
    assert net.classifier[2].p == MODEL.dropout


def test_norm_variants_stand_where_lrn_is():
    kinds = {"batchnorm": nn.BatchNorm2d, "layernorm": nn.GroupNorm, "groupnorm": nn.GroupNorm}
    for norm, kind in kinds.items():
        net = build_model(model_cfg(norm=norm), 6)
        assert isinstance(net.norm1, kind) and isinstance(net.norm2, kind)
        assert net.norm1.num_features if norm == "batchnorm" else net.norm1.num_channels == net.conv1.out_channels
        assert not hasattr(net, "norm3")
    layer = build_model(model_cfg(norm="layernorm"), 6).norm2
    assert layer.num_groups == 2  # one group per tower
    bn = build_model(model_cfg(norm="batchnorm", norm_every_conv=True), 6)
    assert [n for n, m in bn.named_children() if isinstance(m, nn.BatchNorm2d)] == \
        ["norm1", "norm2", "norm3", "norm4", "norm5"]
    assert bn(torch.randn(4, 3, 64, 64)).shape == (4, 6)
    assert isinstance(build_model(model_cfg(norm="none"), 6).norm1, nn.Identity)
    # the baseline net is unchanged: same layer names as before the switch existed
    assert [n for n, _ in build_model(MODEL, 6).named_children()][:4] == ["conv1", "act1", "norm1", "pool1"]


@pytest.mark.parametrize("norm", ["layernorm", "groupnorm"])
def test_learned_norms_never_mix_the_towers(norm):
    """paper 3.3: each tower normalises its own maps. Changing one of tower 1's maps changes
    nothing in tower 0's normalised output (and does change tower 1's other maps)."""
    layer = build_model(model_cfg(norm=norm), 6).norm2
    c = layer.num_channels
    x = torch.randn(3, c, 5, 5)
    y = x.clone()
    y[:, c - 1] += 5.0 * torch.randn(3, 5, 5)
    assert torch.allclose(layer(x)[:, :c // 2], layer(y)[:, :c // 2], atol=1e-6)
    assert not torch.allclose(layer(x)[:, c - 2], layer(y)[:, c - 2])  # same group (>= 2 channels per group)


def test_group_count():
    assert group_count(96, 2) == 32 and group_count(24, 2) == 12 and group_count(64, 2) == 32
    assert group_count(48, 1) == 24 and group_count(6, 2) == 2
    for c in (12, 24, 48, 64, 96, 256):
        g = group_count(c, 2)
        assert c % g == 0 and g % 2 == 0 and c // g >= 2


def test_googlenet_aux_loss_in_the_training_loop():
    """The loop's loss is the main head's cross-entropy plus 0.3 x each auxiliary head's
    (Szegedy et al. 2015, section 5), recomputed here with plain F.cross_entropy."""
    from torchvision.models.googlenet import GoogLeNetOutputs

    from harness.train import loop

    class ThreeHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = nn.ModuleList([nn.Linear(12, 4) for _ in range(3)])

        def forward(self, x):
            x = x.flatten(1)[:, :12]
            out = [h(x) for h in self.heads]
            return GoogLeNetOutputs(out[0], out[1], out[2]) if self.training else out[0]

    torch.manual_seed(3)
    net = ThreeHeads()
    x, y = torch.randn(8, 3, 2, 2), torch.randint(0, 4, (8,))
    with torch.no_grad():
        m, a2, a1 = net.train()(x)
        expect = F.cross_entropy(m, y) + 0.3 * (F.cross_entropy(a2, y) + F.cross_entropy(a1, y))
    assert AUX_LOSS_WEIGHT == 0.3
    seen = []
    cfg = C.TrainConfig(epochs=1, batch_size=8)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    loop.train_one_epoch(net, [(x, y)], opt, cfg, loop.TrainState(), 1,
                         loop.Hooks(on_step=lambda s, loss, lr: seen.append(loss)))
    assert seen == [pytest.approx(float(expect), rel=1e-6)]


def test_config_rules_of_the_new_keys():
    base = C.Config(model=model_cfg(), data=C.DataConfig(image_size=72))
    C._check_cross_fields(dataclasses.replace(base, model=model_cfg(norm="batchnorm", norm_every_conv=True)))
    bad = [(model_cfg(norm_every_conv=True), "model.norm_every_conv"),
           (model_cfg(arch="resnet18", norm="batchnorm"), "model.norm"),
           (model_cfg(arch="resnet18", input_size=24), "model.input_size"),
           (model_cfg(arch="vgg11", drop_conv="conv3"), "model.drop_conv")]
    for m, key in bad:
        with pytest.raises(C.ConfigError, match=key):
            C._check_cross_fields(dataclasses.replace(base, model=m))
    two = dataclasses.replace(base, model=model_cfg(norm="groupnorm"), train=C.TrainConfig(devices=("cpu", "cpu")))
    with pytest.raises(C.ConfigError, match="train.devices"):
        C._check_cross_fields(two)


def test_arms_of_params_yaml_train_on_one_device_and_keep_the_digest():
    cfg = C.load_config(Path(__file__).parents[2] / "params.yaml")
    two = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, devices=("cuda:0", "cuda:1")))
    for name in ("alexnet_bn", "norm_layernorm", "resnet18", "lenet5"):
        assert C.apply_arm(two, name).train.devices == ("cuda:0",)
    assert C.apply_arm(cfg, "alexnet_bn").train == cfg.train  # the paper net's recipe (docs/successors.md)
    # the new keys at their defaults stay out of the digest: earlier references remain comparable
    assert "norm" not in C.training_config(cfg)["model"]
    assert C.training_config(C.apply_arm(cfg, "norm_batchnorm"))["model"]["norm"] == "batchnorm"


def test_published_accuracies_match_torchvision_metadata():
    from torchvision.models import get_model_weights
    pub = yaml.safe_load((Path(__file__).parents[2] / "harness/report/published.yaml").read_text())
    for arch, row in pub["nets"].items():
        enum, name = row["weights"].split(".")
        meta = get_model_weights("alexnet" if arch == "paper" else arch)[name].meta
        assert type(get_model_weights("alexnet" if arch == "paper" else arch)[name]).__name__ == enum
        assert (row["acc1"], row["acc5"]) == (meta["_metrics"]["ImageNet-1K"]["acc@1"],
                                              meta["_metrics"]["ImageNet-1K"]["acc@5"])
        assert row["params"] == meta["num_params"] and row["gflops"] == pytest.approx(meta["_ops"], abs=0.01)


def test_error_summaries_against_scipy():
    from harness.stages.compare import error_summaries
    vals = [31.0, 35.5, 33.25]
    results = [{"protocols": {"center": {"top1_error": v, "top5_error": v / 3}}} for v in vals]
    s = error_summaries(results, "center", 0.95)["top1_error"]
    lo, hi = sps.t.interval(0.95, 2, loc=np.mean(vals), scale=sps.sem(vals))
    assert (s["mean"], s["n"]) == (pytest.approx(np.mean(vals)), 3)
    assert (s["t_lo"], s["t_hi"]) == (pytest.approx(lo), pytest.approx(hi))
