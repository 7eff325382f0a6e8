"""Model variants: the one-GPU net (paper 3.2), torchvision's control, and two devices.

Parameter counts are computed here by hand from the layer sizes (docs/architecture.md, house rule 9), and the
two-device net is checked against the single-device grouped net it must equal (same
weights -> same logits and same gradients), on two CPU "devices".
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import harness.model as M
from harness.config import ModelConfig
from harness.model import AlexNet, TowerLRN, TwoDeviceAlexNet, build_model, count_params, layer_table, two_device

CPU2 = ("cpu", "cpu")
LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")


def conv_params(cin, cout, k, groups=1):
    return cout * (cin // groups) * k * k + cout


def fc_params(fin, fout):
    return fin * fout + fout


# --- one_tower: paper 3.2's one-GPU net ---------------------------------------------------

def test_one_tower_shapes_and_parameter_count():
    """Half the kernels in conv1-4 (48-128-192-192), conv5 and FC full size (paper 3.2 fn. 2)."""
    model = build_model(ModelConfig(arch="one_tower"), 1000)
    rows = layer_table(model, 224)
    assert [r.out_shape for r in rows] == [
        (48, 55, 55), (48, 27, 27), (128, 27, 27), (128, 13, 13), (192, 13, 13),
        (192, 13, 13), (256, 13, 13), (256, 6, 6), (4096,), (4096,), (1000,)]
    by_hand = [conv_params(3, 48, 11), conv_params(48, 128, 5), conv_params(128, 192, 3),
               conv_params(192, 192, 3), conv_params(192, 256, 3), fc_params(256 * 36, 4096),
               fc_params(4096, 4096), fc_params(4096, 1000)]
    assert [r.params for r in rows if r.params] == by_hand
    assert count_params(model) == sum(by_hand) == 59_798_312


def test_one_tower_has_no_groups_and_normalises_all_channels():
    model = build_model(ModelConfig(arch="one_tower", towers=2), 10)  # towers is moot here
    assert all(m.groups == 1 for m in model.modules() if isinstance(m, nn.Conv2d))
    assert all(m.towers == 1 for m in model.modules() if isinstance(m, TowerLRN))


def test_one_tower_small_width():
    cfg = ModelConfig(arch="one_tower", width=0.25, input_size=64, init="kaiming")
    model = build_model(cfg, 20)
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)] == [12, 32, 48, 48, 64]
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 20)


# --- torchvision: the 2014 "one weird trick" control ---------------------------------------

def test_torchvision_control_parameter_count_and_table():
    model = build_model(ModelConfig(arch="torchvision"), 1000)
    by_hand = [conv_params(3, 64, 11), conv_params(64, 192, 5), conv_params(192, 384, 3),
               conv_params(384, 256, 3), conv_params(256, 256, 3), fc_params(256 * 36, 4096),
               fc_params(4096, 4096), fc_params(4096, 1000)]
    assert count_params(model) == sum(by_hand) == 61_100_840  # docs/paper.md, "The architecture"
    rows = layer_table(model, 224)
    assert [r.name for r in rows if r.params] == list(LAYERS)
    assert [r.params for r in rows if r.params] == by_hand
    assert not any(isinstance(m, (nn.LocalResponseNorm, TowerLRN)) for m in model.modules())


def test_torchvision_keeps_its_own_init_and_any_input_size():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="torchvision", init="paper", input_size=64), 7)
    conv2 = [m for m in model.modules() if isinstance(m, nn.Conv2d)][1]
    assert not torch.all(conv2.bias == 1.0)  # paper init would set bias 1
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 7)


def test_torchvision_rejects_width():
    with pytest.raises(ValueError, match="width"):
        build_model(ModelConfig(arch="torchvision", width=0.5), 10)


# --- two devices: one tower each ------------------------------------------------------------

def small(**kw):
    # width 0.25 at 224: real 6x6 maps into fc6 (no adaptive-pool replication hiding order bugs)
    return ModelConfig(width=0.25, input_size=224, init="kaiming", **kw)


def towers_to_grouped(two: TwoDeviceAlexNet, attr: str) -> dict:
    """By hand: tower t holds output rows [t*C/2, (t+1)*C/2) of each grouped layer; fc8 whole."""
    out = {}
    for layer in LAYERS:
        for kind in ("weight", "bias"):
            if layer == "fc8":
                t = getattr(getattr(two.fc8, kind), attr)
            else:
                t = torch.cat([getattr(getattr(getattr(tw, layer), kind), attr) for tw in two.towers])
            out[f"{layer}.{kind}"] = t.detach()
    return out


def test_two_device_parameter_count_matches_paper():
    assert count_params(build_model(ModelConfig(), 1000, CPU2)) == 60_965_224


@pytest.mark.parametrize("extra", [{}, {"activation": "tanh", "pool": "nonoverlap", "lrn": "caffe"}])
def test_two_device_forward_and_backward_equal_grouped(extra):
    torch.manual_seed(1)
    grouped = AlexNet(small(dropout=0.0, **extra), 10).double()
    two = TwoDeviceAlexNet.from_grouped(grouped, CPU2)
    x = torch.randn(3, 3, 224, 224, dtype=torch.float64) * 50
    y = torch.tensor([1, 4, 9])
    out_g, out_t = grouped(x), two(x)
    torch.testing.assert_close(out_t, out_g, rtol=1e-10, atol=1e-10)
    F.cross_entropy(out_g, y).backward()
    F.cross_entropy(out_t, y).backward()
    grads = towers_to_grouped(two, "grad")
    for name, p in grouped.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-9, atol=1e-12, msg=name)


def test_two_device_eval_equals_grouped_in_float32_with_dropout():
    torch.manual_seed(2)
    grouped = build_model(small(), 10).eval()  # eval: dropout off in both
    two = TwoDeviceAlexNet.from_grouped(grouped, CPU2).eval()
    x = torch.randn(2, 3, 224, 224) * 50
    with torch.no_grad():
        torch.testing.assert_close(two(x), grouped(x), rtol=1e-4, atol=1e-5)


def test_same_seed_same_initial_weights_on_one_or_two_devices():
    torch.manual_seed(3)
    one = build_model(small(), 10)
    rng_one = torch.get_rng_state()
    torch.manual_seed(3)
    two = build_model(small(), 10, CPU2)
    assert torch.equal(torch.get_rng_state(), rng_one)  # later draws (data order) agree too
    weights = towers_to_grouped(two, "data")
    for name, p in one.named_parameters():
        assert torch.equal(weights[name], p), name


def test_checkpoint_round_trip_through_grouped_layout():
    torch.manual_seed(4)
    two = build_model(small(), 10, CPU2)
    state = two.grouped_state_dict()
    one = build_model(small(), 10)
    one.load_state_dict(state)  # strict: the single-device format exactly
    assert all(torch.equal(a, b) for a, b in zip(state.values(), two.to_grouped().state_dict().values()))
    back = build_model(small(), 10, CPU2)
    back.load_grouped_state_dict(one.state_dict())
    for (n, a), (_, b) in zip(two.named_parameters(), back.named_parameters()):
        assert torch.equal(a, b), n
    tensors = dict(two.named_parameters())
    assert all(torch.equal(M.split_towers(M.merge_towers(tensors), CPU2)[n], t) for n, t in tensors.items())


def test_tensors_cross_devices_only_into_conv3_fc6_fc7_fc8(monkeypatch):
    cfg = small()
    two = build_model(cfg, 10, CPU2).eval()
    seen, real = [], M.gather

    def spy(parts, device):
        seen.append([tuple(p.shape) for p in parts])
        return real(parts, device)

    monkeypatch.setattr(two_device, "gather", spy)
    with torch.no_grad():
        two(torch.zeros(1, 3, 224, 224))
    c2, c5, f = M.conv_channels(cfg)[1] // 2, M.conv_channels(cfg)[4] // 2, M.fc_width(cfg) // 2
    conv3_in, fc6_in, fc7_in = [(1, c2, 13, 13)] * 2, [(1, c5 * 36)] * 2, [(1, f)] * 2
    assert seen == [conv3_in, conv3_in, fc6_in, fc6_in, fc7_in, fc7_in, fc7_in]  # last: into fc8


def test_towers_live_on_their_devices_and_lrn_stays_within_a_tower():
    two = build_model(ModelConfig(width=0.25, input_size=64), 10, CPU2)
    for tower, device in zip(two.towers, two.devices):
        assert {p.device for p in tower.parameters()} == {torch.device(device)}
        assert tower.norm.towers == 1 and tower.conv1.out_channels == 12  # 24 split in two
    assert two(torch.zeros(2, 3, 64, 64)).shape == (2, 10)
    assert [r.params for r in layer_table(two, 64)] == [
        r.params for r in layer_table(two.to_grouped(), 64)]


@pytest.mark.parametrize("cfg, devices", [
    (ModelConfig(arch="one_tower"), CPU2), (ModelConfig(towers=1), CPU2),
    (ModelConfig(arch="torchvision"), CPU2), (ModelConfig(), ("cpu", "cpu", "cpu"))])
def test_two_devices_need_the_two_tower_paper_net(cfg, devices):
    with pytest.raises(ValueError):
        build_model(cfg, 10, devices)
