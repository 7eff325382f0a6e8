"""The paper's AlexNet checked against the paper's arithmetic (docs/paper.md, "Size and cost")."""

import pytest
import torch
from torch import nn

from harness.config import ModelConfig
from harness.model import TowerLRN, build_model, count_params, layer_table
from harness.model.layers import PaperDropout

PAPER_SHAPES = [(96, 55, 55), (96, 27, 27), (256, 27, 27), (256, 13, 13), (384, 13, 13),
                (384, 13, 13), (256, 13, 13), (256, 6, 6), (4096,), (4096,), (1000,)]
PAPER_LAYER_PARAMS = [34944, 307456, 885120, 663936, 442624, 37752832, 16781312, 4097000]


@pytest.mark.parametrize("size, pad", [(224, 2), (227, 0)])
def test_shapes_and_parameter_count(size, pad):
    cfg = ModelConfig(input_size=size, conv1_padding=pad)
    model = build_model(cfg, 1000)
    rows = layer_table(model, size)
    assert [r.out_shape for r in rows] == PAPER_SHAPES
    assert [r.params for r in rows if r.params] == PAPER_LAYER_PARAMS
    assert count_params(model) == 60_965_224
    neurons = sum(torch.Size(r.out_shape).numel() for r in rows if not r.name.startswith("pool"))
    assert neurons == 659_272  # docs/paper.md: 290,400 + 186,624 + ... + 1000


def test_multiply_adds_match_paper():
    rows = layer_table(build_model(ModelConfig(), 1000), 224)
    assert sum(r.mult_adds for r in rows) == 724_406_816  # "about 724M" (docs/paper.md, "The architecture")


def _counted_flops(model: nn.Module, size: int) -> tuple[int, dict[str, int]]:
    """torch's own count of one forward (torch.utils.flop_counter): the total and the flops per
    top-level module, a multiply-add counting 2 (convolutions, matrix products, the local layers'
    batched products)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    model.eval()
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    return counter.get_total_flops(), {name.split(".", 1)[1]: sum(ops.values())
                                       for name, ops in counter.get_flop_counts().items() if name.count(".") == 1}


def test_layer_table_multiply_adds_match_torch_flop_counter_per_layer():
    model = build_model(ModelConfig(), 1000)  # the paper's net: its layers are named as in the table
    rows = layer_table(model, 224)
    total, flops = _counted_flops(model, 224)
    assert total == sum(flops.values())
    assert {r.name: 2 * r.mult_adds for r in rows if r.mult_adds} == flops
    assert flops["conv2"] == 2 * 223_948_800  # two towers: each output sees 48 input channels


@pytest.mark.parametrize("arch, size", [("one_tower", 224), ("torchvision", 224), ("resnet18", 64),
                                        ("googlenet", 96), ("cuda_convnet_11pct", 32), ("cuda_convnet_80sec", 32)])
def test_layer_table_multiply_adds_match_torch_flop_counter(arch, size):
    """Every net's total: grouped, residual and inception nets, and cuda-convnet's locally
    connected layers (one filter bank per position, harness/model/cuda_convnet.py)."""
    model = build_model(ModelConfig(arch=arch, input_size=size), 10)
    rows = layer_table(model, size)
    assert 2 * sum(r.mult_adds for r in rows) == _counted_flops(model, size)[0] > 0


def test_ungrouped_count():
    assert count_params(build_model(ModelConfig(towers=1), 1000)) == 62_378_344


def test_paper_lrn_is_the_printed_formula():
    """b = a / (k + alpha * sum a^2)^beta with k=2, n=5, alpha=1e-4 NOT divided by n."""
    torch.manual_seed(0)
    x = torch.randn(2, 96, 4, 4) * 30
    got = TowerLRN(2, "paper")(x)
    want = torch.empty_like(x)
    for tower in range(2):
        a = x[:, tower * 48:(tower + 1) * 48]
        for i in range(48):
            lo, hi = max(0, i - 2), min(47, i + 2)
            s = (a[:, lo:hi + 1] ** 2).sum(1)
            want[:, tower * 48 + i] = a[:, i] / (2 + 1e-4 * s) ** 0.75
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_lrn_does_not_cross_the_tower_boundary():
    x = torch.zeros(1, 96, 1, 1)
    x[0, 48] = 100.0  # first channel of tower 2
    y = TowerLRN(2, "paper")(x)
    assert y[0, 47].item() == 0.0 and y[0, 46].item() == 0.0
    # within a tower the neighbour sees it: channel 49 is normalised by 100^2
    x[0, 49] = 1.0
    y = TowerLRN(2, "paper")(x)
    assert y[0, 49].item() == pytest.approx(1 / (2 + 1e-4 * (100**2 + 1)) ** 0.75)


def test_caffe_and_cuda_convnet2_conventions():
    x = torch.full((1, 5, 1, 1), 10.0)
    centre = lambda conv: TowerLRN(1, conv)(x)[0, 2].item()
    assert centre("cuda_convnet2") == pytest.approx(10 / (2 + 1e-4 / 5 * 500) ** 0.75)
    assert centre("caffe") == pytest.approx(10 / (1 + 1e-4 / 5 * 500) ** 0.75)


def test_paper_init():
    torch.manual_seed(0)
    model = build_model(ModelConfig(), 1000)
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
        layer = getattr(model, name)
        assert abs(layer.weight.std().item() - 0.01) < 5e-4, name
        bias = 1.0 if name in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0
        assert torch.all(layer.bias == bias), name


def test_structure_switches():
    m = build_model(ModelConfig(activation="tanh", lrn="none", pool="nonoverlap", dropout=0.0), 10)
    kinds = {type(x) for x in m.modules()}
    assert nn.Tanh in kinds and nn.ReLU not in kinds and TowerLRN not in kinds
    assert all(p.kernel_size == 2 for p in m.modules() if isinstance(p, nn.MaxPool2d))
    # dropout sits after fc6 and fc7 (paper 4.2), not before fc6 as in torchvision's variant
    names = [n for n, _ in m.named_children()]
    assert names[names.index("fc6"):] == ["fc6", "act6", "drop6", "fc7", "act7", "drop7", "fc8"]
    assert isinstance(m.drop6, PaperDropout) and isinstance(m.drop7, PaperDropout)
    inverted = build_model(ModelConfig(dropout_scaling="inverted"), 10)
    assert isinstance(inverted.drop6, nn.Dropout) and isinstance(inverted.drop7, nn.Dropout)


def test_each_layer_is_registered_once_under_its_paper_name():
    """One named Sequential: the state dict names each tensor once (conv1.weight, never also
    features.0.weight), in the order of the forward pass, and older checkpoints with the aliases load."""
    m = build_model(ModelConfig(), 10)
    keys = list(m.state_dict())
    assert len({m.state_dict()[k].data_ptr() for k in keys}) == len(keys)
    assert [k.split(".")[0] for k in keys][::2] == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    assert str(m).count("Conv2d(") == 5 and str(m).count("Linear(") == 3
    legacy = dict(m.state_dict()) | {"features.0.weight": m.conv1.weight, "classifier.0.bias": m.fc6.bias}
    fresh = build_model(ModelConfig(), 10)
    fresh.load_state_dict(legacy)
    assert torch.equal(fresh.fc8.weight, m.fc8.weight)


def test_small_profile_keeps_6x6_into_fc6():
    cfg = ModelConfig(width=0.25, input_size=64, init="kaiming")
    rows = layer_table(build_model(cfg, 20), 64)
    fc6 = next(r for r in rows if r.name == "fc6")
    assert fc6.params == 64 * 36 * 1024 + 1024
    assert build_model(cfg, 20)(torch.zeros(2, 3, 64, 64)).shape == (2, 20)
