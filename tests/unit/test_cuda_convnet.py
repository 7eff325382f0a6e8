"""The authors' CIFAR-10 nets (harness/model/cuda_convnet.py) against the layer files' arithmetic,
done by hand here, and their layers against loop-based references written from the formulas of
cuda-convnet's kernels (docs/cifar10.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness import config as C
from harness.model import build_model, count_params, layer_table
from harness.model.cuda_convnet import (
    NETS,
    CrossMapResponseNorm,
    LocallyConnected2d,
    Norm,
    SameMapResponseNorm,
    Weights,
)
from harness.train.recipe import PaperSGD, make_optimizer


def model_cfg(arch: str, **kw) -> C.ModelConfig:
    size = 32 if arch in ("cuda_convnet_80sec", "cuda_convnet_18pct") else 24
    return C.ModelConfig(**{"arch": arch, "towers": 1, "dropout": 0.0, "lrn": "cuda_convnet", "input_size": size,
                            "hidden_bias": 0.0, **kw})


def conv(c_in, c_out, k):  # shared filters, one bias per filter (sharedBiases=1)
    return c_out * c_in * k * k + c_out


def local(c_in, c_out, k, side):  # one filter bank and bias per output position
    return side * side * (c_out * c_in * k * k + c_out)


def fc(n_in, n_out):
    return n_in * n_out + n_out


# Per layer, from the .cfg files: 5x5 convs with padding 2 keep the side; 3/2 pools give
# ceil((s - 3) / 2) + 1 (32 -> 16 -> 8 -> 4, 24 -> 12 -> 6); 3x3 locals with padding 1 keep it.
HAND = {
    "cuda_convnet_80sec": {"conv1": conv(3, 32, 5), "conv2": conv(32, 32, 5), "conv3": conv(32, 64, 5),
                           "fc64": fc(64 * 4 * 4, 64), "fc10": fc(64, 10)},
    "cuda_convnet_18pct": {"conv1": conv(3, 32, 5), "conv2": conv(32, 32, 5), "conv3": conv(32, 64, 5),
                           "fc10": fc(64 * 4 * 4, 10)},
    "cuda_convnet_13pct": {"conv1": conv(3, 64, 5), "conv2": conv(64, 64, 5), "local3": local(64, 32, 3, 6),
                           "local4": local(32, 32, 3, 6), "fc10": fc(32 * 6 * 6, 10)},
    "cuda_convnet_11pct": {"conv1": conv(3, 64, 5), "conv2": conv(64, 64, 5), "local3": local(64, 64, 3, 6),
                           "local4": local(64, 32, 3, 6), "fc10": fc(32 * 6 * 6, 10)},
}
TOTALS = {"cuda_convnet_80sec": 145_578, "cuda_convnet_18pct": 89_578, "cuda_convnet_13pct": 1_116_490,
          "cuda_convnet_11pct": 2_112_970}
SHAPES = {
    "cuda_convnet_80sec": {"conv1": (32, 32, 32), "pool1": (32, 16, 16), "conv2": (32, 16, 16), "pool2": (32, 8, 8),
                           "conv3": (64, 8, 8), "pool3": (64, 4, 4), "fc64": (64,), "fc10": (10,)},
    "cuda_convnet_11pct": {"conv1": (64, 24, 24), "pool1": (64, 12, 12), "rnorm1": (64, 12, 12),
                           "conv2": (64, 12, 12), "rnorm2": (64, 12, 12), "pool2": (64, 6, 6),
                           "local3": (64, 6, 6), "local4": (32, 6, 6), "fc10": (10,)},
}


def test_arch_names_agree_with_config():
    assert tuple(NETS) == C.CUDA_CONVNET_ARCHS


@pytest.mark.parametrize("arch", list(HAND))
def test_parameter_counts_match_the_layer_files(arch):
    net = build_model(model_cfg(arch), 10)
    rows = {r.name: r for r in layer_table(net, model_cfg(arch).input_size)}
    assert {n: rows[n].params for n in HAND[arch]} == HAND[arch]
    assert count_params(net) == sum(HAND[arch].values()) == TOTALS[arch]


@pytest.mark.parametrize("arch", list(SHAPES))
def test_layer_shapes_follow_cuda_convnet_arithmetic(arch):
    rows = layer_table(build_model(model_cfg(arch), 10), model_cfg(arch).input_size)
    assert {r.name: r.out_shape for r in rows} == SHAPES[arch]
    macs = {r.name: r.mult_adds for r in rows}
    if arch == "cuda_convnet_11pct":  # local3: 6x6 positions x 64 filters x (3x3x64) inputs each
        assert macs["local3"] == 36 * 64 * 576 and macs["conv2"] == 12 * 12 * 64 * 5 * 5 * 64


def test_layer_order_and_neurons_as_in_the_files():
    names = [n for n, _ in build_model(model_cfg("cuda_convnet_80sec"), 10).layers.named_children()]
    # conv1 has no neuron; pool1 carries neuron=relu, applied after the max pooling
    assert names == ["conv1", "pool1", "pool1_neuron", "conv2", "conv2_neuron", "pool2", "conv3", "conv3_neuron",
                     "pool3", "flatten", "fc64", "fc64_neuron", "fc10"]
    names = [n for n, _ in build_model(model_cfg("cuda_convnet_11pct"), 10).layers.named_children()]
    assert names == ["conv1", "conv1_neuron", "pool1", "rnorm1", "conv2", "conv2_neuron", "rnorm2", "pool2",
                     "local3", "local3_neuron", "local4", "local4_neuron", "flatten", "fc10"]


def test_switches_activation_and_normalisation():
    tanh = build_model(model_cfg("cuda_convnet_11pct", activation="tanh"), 10)
    kinds = {type(m) for m in tanh.modules()}
    assert nn.Tanh in kinds and nn.ReLU not in kinds
    plain = build_model(model_cfg("cuda_convnet_11pct", lrn="none"), 10)
    assert not any(isinstance(m, (CrossMapResponseNorm, SameMapResponseNorm)) for m in plain.modules())
    assert count_params(plain) == TOTALS["cuda_convnet_11pct"]  # normalisation has no parameters
    norms = [m for m in build_model(model_cfg("cuda_convnet_18pct"), 10).modules() if isinstance(m, SameMapResponseNorm)]
    assert [(m.size, m.scale, m.power) for m in norms] == [(3, 5e-5, 0.75)] * 2  # layer-params-18pct.cfg
    norms = [m for m in build_model(model_cfg("cuda_convnet_11pct"), 10).modules() if isinstance(m, CrossMapResponseNorm)]
    assert [(m.size, m.scale, m.power) for m in norms] == [(9, 1e-3, 0.75)] * 2  # layer-params-conv-local-11pct.cfg


def test_init_is_initw_times_randn_biases_zero():
    torch.manual_seed(0)
    net = build_model(model_cfg("cuda_convnet_11pct"), 10)
    init_w = {"conv1": 1e-4, "conv2": 0.01, "local3": 0.04, "local4": 0.04, "fc10": 0.01}  # the .cfg's initW
    for name, layer in net.weight_layers():
        w = layer.weight.detach().double()
        assert abs(w.std().item() / init_w[name] - 1) < 0.05, name  # >= 4800 draws: sd within 5%
        assert abs(w.mean().item()) < 4 * init_w[name] / math.sqrt(w.numel())
        assert torch.count_nonzero(layer.bias) == 0


# --- layers against loop references ----------------------------------------------------------

def local_loop(x, weight, bias, k, pad, stride):
    """Locally connected layer, one output position at a time."""
    b, h = x.shape[0], x.shape[2]
    xp = F.pad(x, (pad, pad, pad, pad))
    side = 1 + math.ceil((2 * pad + h - k) / stride)
    out = torch.zeros(b, weight.shape[2], side, side, dtype=x.dtype)
    for i in range(side):
        for j in range(side):
            patch = xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k].reshape(b, -1)  # C, kh, kw order
            out[:, :, i, j] = patch @ weight[i * side + j] + bias[i * side + j]
    return out


@pytest.mark.parametrize("size,k,pad,stride", [(6, 3, 1, 1), (7, 3, 0, 2), (5, 2, 1, 1)])
def test_locally_connected_against_a_loop(size, k, pad, stride):
    torch.manual_seed(1)
    layer = LocallyConnected2d(4, 5, size, k, pad, stride).double()
    nn.init.normal_(layer.weight)
    nn.init.normal_(layer.bias)
    x = torch.randn(3, 4, size, size, dtype=torch.float64)
    ref = local_loop(x, layer.weight.detach(), layer.bias.detach(), k, pad, stride)
    assert layer(x).shape == ref.shape
    torch.testing.assert_close(layer(x), ref, rtol=1e-12, atol=1e-12)


def test_locally_connected_with_shared_filters_is_a_convolution():
    """cuda-convnet's --conv-to-local tiles one conv filter bank over every position."""
    torch.manual_seed(2)
    conv2d = nn.Conv2d(4, 6, 3, padding=1).double()
    layer = LocallyConnected2d(4, 6, 5, 3, 1).double()
    with torch.no_grad():
        layer.weight.copy_(conv2d.weight.reshape(6, -1).T.expand(25, -1, -1))
        layer.bias.copy_(conv2d.bias.expand(25, -1))
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(layer(x), conv2d(x), rtol=1e-12, atol=1e-12)


def rnorm_loop(x, size, scale, power):
    """Same-map: 1 + scale/size^2 * sum of squares over the clipped size x size window."""
    h, w = x.shape[2:]
    out = torch.empty_like(x)
    for y in range(h):
        for z in range(w):
            y0, z0 = y - size // 2, z - size // 2
            win = x[:, :, max(0, y0):min(h, y0 + size), max(0, z0):min(w, z0 + size)]
            denom = 1 + scale / size**2 * (win**2).sum((2, 3))
            out[:, :, y, z] = x[:, :, y, z] * denom ** -power
    return out


def cmrnorm_loop(x, size, scale, power):
    """Across maps: 1 + scale/size * sum of squares over maps f - size//2 .. f - size//2 + size - 1."""
    out = torch.empty_like(x)
    c = x.shape[1]
    for f in range(c):
        f0 = f - size // 2
        denom = 1 + scale / size * (x[:, max(0, f0):min(c, f0 + size)] ** 2).sum(1)
        out[:, f] = x[:, f] * denom ** -power
    return out


@pytest.mark.parametrize("size", [3, 4])
def test_same_map_response_norm_against_the_formula(size):
    torch.manual_seed(3)
    x = 30 * torch.randn(2, 3, 7, 6, dtype=torch.float64)
    torch.testing.assert_close(SameMapResponseNorm(size, 0.5, 0.75)(x), rnorm_loop(x, size, 0.5, 0.75))


@pytest.mark.parametrize("size", [9, 4])
def test_cross_map_response_norm_against_the_formula(size):
    torch.manual_seed(4)
    x = 20 * torch.randn(2, 16, 3, 3, dtype=torch.float64)
    got = CrossMapResponseNorm(size, 1e-3, 0.75)(x)
    torch.testing.assert_close(got, cmrnorm_loop(x, size, 1e-3, 0.75))
    # k = 1 and alpha = scale in PyTorch's convention (it divides alpha by n, as layer.py does)
    torch.testing.assert_close(got, nn.LocalResponseNorm(size, alpha=1e-3, beta=0.75, k=1.0)(x))


def test_pooling_counts_outputs_and_divides_like_cuda_convnet():
    """32 -> 16: the last 3x3 window starts at 30 and holds 2 columns; avg divides by the 4 or 6
    pixels inside the image (kLocalPool's regionSize), max takes the pixels inside."""
    net = build_model(model_cfg("cuda_convnet_80sec"), 10)
    avg, mx = net.layers.pool2, net.layers.pool1
    x = torch.arange(2 * 32 * 32, dtype=torch.float64).reshape(1, 2, 32, 32)
    out = avg(x)
    assert out.shape == (1, 2, 16, 16) and mx(x).shape == (1, 2, 16, 16)
    assert out[0, 0, 15, 15] == x[0, 0, 30:, 30:].mean()  # 2 x 2 pixels inside
    assert out[0, 1, 15, 3] == x[0, 1, 30:, 6:9].mean()  # 2 x 3
    assert mx(x)[0, 0, 15, 15] == x[0, 0, 31, 31]


# --- learning rates, momenta and decay of the layer-params files -----------------------------

PARAMS_FILES = {  # (epsW, epsB, momW, momB, wc) per weight layer, copied from layer-params-*.cfg
    "cuda_convnet_80sec": {"conv1": (.001, .002, .9, .9, .004), "conv2": (.001, .002, .9, .9, .004),
                           "conv3": (.001, .002, .9, .9, .004), "fc64": (.001, .002, .9, .9, .03),
                           "fc10": (.001, .002, .9, .9, .03)},
    "cuda_convnet_18pct": {"conv1": (.001, .002, .9, .9, .004), "conv2": (.001, .002, .9, .9, .004),
                           "conv3": (.001, .002, .9, .9, .004), "fc10": (.001, .002, .9, .9, 1.0)},
    "cuda_convnet_13pct": {"conv1": (.001, .002, .9, .9, 0.0), "conv2": (.001, .002, .9, .9, 0.0),
                           "local3": (.001, .002, .9, .9, .004), "local4": (.001, .002, .9, .9, .004),
                           "fc10": (.001, .002, .9, .9, .004)},
    "cuda_convnet_11pct": {"conv1": (.001, .002, .9, .9, 0.0), "conv2": (.001, .002, .9, .9, 0.0),
                           "local3": (.001, .002, .9, .9, .004), "local4": (.001, .002, .9, .9, .004),
                           "fc10": (.001, .002, .9, .9, .01)},
}


@pytest.mark.parametrize("arch", list(PARAMS_FILES))
def test_optimizer_groups_give_the_files_values(arch):
    net = build_model(model_cfg(arch), 10)
    opt = make_optimizer(net, C.TrainConfig(lr=0.001, weight_decay=0.004, momentum=0.9))
    got = {g["name"]: (g["lr"] * g["lr_mult"], g["weight_decay"] * g["decay_mult"], g["momentum"])
           for g in opt.param_groups}
    for layer, (eps_w, eps_b, mom_w, mom_b, wc) in PARAMS_FILES[arch].items():
        assert got[f"{layer}.weight"] == pytest.approx((eps_w, wc, mom_w), rel=1e-12)
        assert got[f"{layer}.bias"] == pytest.approx((eps_b, 0.0, mom_b), rel=1e-12)  # biases: no decay
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(net.parameters()))


def test_paper_sgd_step_is_cuda_convnets_update():
    """weights.cuh: inc = momW inc - wc epsW w - epsW grad; w += inc (grad = the batch mean)."""
    w0 = torch.tensor([1.0, -2.0], dtype=torch.float64)
    p = nn.Parameter(w0.clone())
    opt = PaperSGD([{"params": [p], "lr_mult": 2.0, "decay_mult": 7.5}], lr=0.001, momentum=0.9, weight_decay=0.004)
    eps, wc, inc = 0.002, 0.03, torch.zeros(2, dtype=torch.float64)
    w = w0.clone()
    for g in ([0.5, 0.25], [-1.0, 3.0]):
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        inc = 0.9 * inc - wc * eps * w - eps * torch.tensor(g, dtype=torch.float64)
        w = w + inc
    torch.testing.assert_close(p.detach(), w, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("bias_decay", [False, True])
def test_bias_decay_composes_with_the_per_layer_multipliers(bias_decay):
    """Zero gradients, one paper-rule step from w = 2, b = 1 at lr 0.01, decay 0.5: each tensor
    moves by -decay * decay_mult * lr * lr_mult * itself. layers-80sec (layer-params-80sec.cfg):
    conv1 epsW .001 epsB .002 wc .004, so lr_mult 1 / 2 and decay_mult 1; fc64 wc .03, so
    decay_mult 7.5. Biases decay (at their layer's wc) only with train.bias_decay."""
    net = build_model(model_cfg("cuda_convnet_80sec"), 10)
    with torch.no_grad():
        for _, layer in net.weight_layers():
            layer.weight.fill_(2.0)
            layer.bias.fill_(1.0)
    opt = make_optimizer(net, C.TrainConfig(lr=0.01, weight_decay=0.5, bias_decay=bias_decay))
    sum(p.sum() * 0 for p in net.parameters()).backward()
    opt.step()
    layers = dict(net.weight_layers())
    want = {"conv1": (2.0 - 0.5 * 1.0 * 0.01 * 1.0 * 2.0, 1.0 - 0.5 * 1.0 * 0.01 * 2.0 * 1.0),
            "fc64": (2.0 - 0.5 * 7.5 * 0.01 * 1.0 * 2.0, 1.0 - 0.5 * 7.5 * 0.01 * 2.0 * 1.0)}
    for name, (w, b) in want.items():
        assert torch.allclose(layers[name].weight, torch.full_like(layers[name].weight, w), rtol=0, atol=1e-7)
        b = b if bias_decay else 1.0
        assert torch.allclose(layers[name].bias, torch.full_like(layers[name].bias, b), rtol=0, atol=1e-7)


def test_per_layer_rates_need_the_paper_rule():
    net = build_model(model_cfg("cuda_convnet_80sec"), 10)
    with pytest.raises(ValueError, match="update_rule"):
        make_optimizer(net, C.TrainConfig(update_rule="torch"))


def test_specs_transcribe_every_weight_layer_once():
    for arch, net in NETS.items():
        weights = [s.name for s in net.layers if isinstance(s, Weights)]
        assert weights == list(net.learn) == list(PARAMS_FILES[arch])
        assert all(n.size in (3, 9) for n in net.layers if isinstance(n, Norm))


# --- config --------------------------------------------------------------------------------

def cifar_params(**model) -> dict:
    return {"data": {"source": "cifar10", "root": "/nonexistent", "image_size": 32},
            "model": {"arch": "cuda_convnet_80sec", "towers": 1, "dropout": 0.0, "lrn": "cuda_convnet",
                      "input_size": 32, "hidden_bias": 0.0, **model}}


def check(raw: dict) -> C.Config:
    cfg = C.from_dict(raw)
    C._check_cross_fields(cfg)
    return cfg


@pytest.mark.parametrize("key,value", [("towers", 2), ("width", 0.5), ("dropout", 0.5), ("pool", "nonoverlap"),
                                       ("init", "kaiming"), ("conv1_padding", 0), ("lrn", "paper"),
                                       ("hidden_bias", 1.0), ("drop_conv", "conv3")])
def test_switches_the_nets_do_not_have_are_refused_by_name(key, value):
    check(cifar_params())
    with pytest.raises(C.ConfigError, match=f"model.{key}"):
        check(cifar_params(**{key: value}))


def test_paper_net_refuses_the_cuda_convnet_normalisation_and_cuda_convnet_needs_paper_rule():
    with pytest.raises(C.ConfigError, match="model.lrn"):
        check({"model": {"lrn": "cuda_convnet"}})
    raw = cifar_params()
    raw["train"] = {"update_rule": "torch"}
    with pytest.raises(C.ConfigError, match="train.update_rule"):
        check(raw)


def test_lr_select_factors_validated():
    with pytest.raises(C.ConfigError, match="train.lr_select_factors"):
        C.from_dict({"train": {"lr_select_factors": [1.0, 1.0]}})
    with pytest.raises(C.ConfigError, match="train.lr_select_factors"):
        C.from_dict({"train": {"lr_select_factors": [0.0, 2.0]}})
    assert C.from_dict({"train": {"lr_select_factors": [0.5, 2]}}).train.lr_select_factors == (0.5, 2.0)


def test_evaluated_split_of_cifar10_is_its_test_batch():
    assert C.evaluated_split(check(cifar_params())) == "test"
    assert C.evaluated_split(C.Config()) == "val"


def test_nets_are_finite_on_cifar_scale_inputs():  # float32, raw pixels minus the mean (scale ~60)
    for arch in NETS:
        net = build_model(model_cfg(arch), 10)
        x = torch.from_numpy(np.random.default_rng(0).normal(0, 60, (2, 3, model_cfg(arch).input_size,
                                                                       model_cfg(arch).input_size)).astype(np.float32))
        assert torch.isfinite(net(x)).all()
