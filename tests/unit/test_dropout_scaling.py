"""Dropout scaling (paper 4.2, docs/fidelity.md): the paper's form against torch's inverted one.

A toy net with the paper's classifier shape (fc6 -> ReLU -> dropout -> fc7 -> ReLU -> dropout
-> fc8), built from the harness's own dropout layers, trained with SGD in float64. The review's
finding, checked here independently of the harness's code: inverted dropout equals the
paper's form exactly when the paper-form net starts with fc7/fc8 weights twice as large and
gives those weights 4x the learning rate and 1/4 of the weight decay; dropping any one of the
three changes the trajectory. Both forms draw the same masks from the same generator, so the
comparison is exact, not in distribution.
"""

import pytest
import torch
from torch import nn

from harness.config import ModelConfig
from harness.model import build_model
from harness.model.layers import PaperDropout, dropout_layer
from harness.train.recipe import PaperSGD

P = 0.5


class Toy(nn.Module):
    def __init__(self, scaling: str, p: float = P):
        super().__init__()
        cfg = ModelConfig(dropout=p, dropout_scaling=scaling)
        self.fc6, self.fc7, self.fc8 = nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 4)
        self.drop6, self.drop7 = dropout_layer(cfg), dropout_layer(cfg)

    def forward(self, x):
        x = self.drop6(torch.relu(self.fc6(x)))
        return self.fc8(self.drop7(torch.relu(self.fc7(x))))


def pair(init_x2: bool):
    """An inverted-dropout toy net and a paper-form copy (fc7/fc8 weights x2 when init_x2)."""
    torch.manual_seed(0)
    inv = Toy("inverted").double()
    for p in inv.parameters():
        nn.init.normal_(p, 0.0, 0.3)
    pap = Toy("paper").double()
    pap.load_state_dict(inv.state_dict())
    if init_x2:
        with torch.no_grad():
            pap.fc7.weight.mul_(2)
            pap.fc8.weight.mul_(2)
    return inv, pap


def optimizer(model, rule: str, lr: float, wd: float, lr_x: float = 1.0, wd_x: float = 1.0):
    """SGD, momentum 0.9; fc7/fc8 weights get lr * lr_x and weight decay * wd_x."""
    special = [model.fc7.weight, model.fc8.weight]
    rest = [p for p in model.parameters() if all(p is not s for s in special)]
    groups = [{"params": rest, "lr": lr, "weight_decay": wd},
              {"params": special, "lr": lr * lr_x, "weight_decay": wd * wd_x}]
    if rule == "paper":
        return PaperSGD(groups, lr, 0.9, wd)
    return torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=wd)


def train(model, opt, steps: int = 6):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(32, 8, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (32,), generator=gen)
    torch.manual_seed(2)  # the dropout masks: the same draws for both nets
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    return model(x).detach()


def test_same_masks_and_the_paper_forms_test_time_scale():
    x = torch.rand(64, 1000, dtype=torch.float64) + 0.5
    torch.manual_seed(5)
    inverted = nn.Dropout(P).train()(x)
    torch.manual_seed(5)
    paper = PaperDropout(P).train()(x)
    assert torch.equal(paper * 2, inverted)  # same mask, the paper's form unscaled
    assert torch.equal(PaperDropout(P).eval()(x), x * (1 - P))  # paper 4.2: "multiply their outputs by 0.5"
    # the test-time output is the expectation of the training output
    torch.manual_seed(6)
    mean = torch.stack([PaperDropout(0.3).train()(x) for _ in range(400)]).mean(0)
    assert (mean / (x * 0.7)).mean().item() == pytest.approx(1.0, abs=3e-3)
    assert torch.equal(PaperDropout(0.0).train()(x), x)


def test_same_function_at_fixed_weights_with_fc7_fc8_doubled():
    inv, pap = pair(init_x2=True)
    x = torch.randn(16, 8, dtype=torch.float64)
    torch.manual_seed(3)
    a = inv.train()(x)
    torch.manual_seed(3)
    b = pap.train()(x)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(inv.eval()(x), pap.eval()(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rule", ["paper", "torch"])
def test_identical_under_sgd_with_init_x2_lr_x4_decay_quarter(rule):
    inv, pap = pair(init_x2=True)
    out_inv = train(inv, optimizer(inv, rule, 0.05, 0.01))
    out_pap = train(pap, optimizer(pap, rule, 0.05, 0.01, lr_x=4.0, wd_x=0.25))
    torch.testing.assert_close(out_inv, out_pap, rtol=1e-10, atol=1e-10)  # eval outputs match
    torch.testing.assert_close(pap.fc7.weight, 2 * inv.fc7.weight, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(pap.fc8.weight, 2 * inv.fc8.weight, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(pap.fc6.weight, inv.fc6.weight, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(pap.fc8.bias, inv.fc8.bias, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("init_x2, lr_x, wd_x", [
    (False, 1.0, 1.0),  # the same net, optimizer and init: the forms differ under SGD
    (True, 1.0, 1.0),   # equal function at the start, but the gradients are scaled
    (True, 4.0, 1.0),   # lr x4 without the decay /4
    (True, 1.0, 0.25),  # decay /4 without the lr x4
    (False, 4.0, 0.25),  # lr and decay scaled, init not
])
def test_differs_under_sgd_otherwise(init_x2, lr_x, wd_x):
    inv, pap = pair(init_x2)
    out_inv = train(inv, optimizer(inv, "paper", 0.05, 0.01))
    out_pap = train(pap, optimizer(pap, "paper", 0.05, 0.01, lr_x=lr_x, wd_x=wd_x))
    assert (out_inv - out_pap).abs().max().item() > 1e-6


def test_the_paper_net_uses_the_configured_scaling():
    """Both one-device and the tower modules build the layer model.dropout_scaling names."""
    paper = build_model(ModelConfig(width=0.125, input_size=64), 10)
    assert sum(isinstance(m, PaperDropout) for m in paper.modules()) == 2
    inverted = build_model(ModelConfig(width=0.125, input_size=64, dropout_scaling="inverted"), 10)
    assert sum(isinstance(m, PaperDropout) for m in inverted.modules()) == 0
    two = build_model(ModelConfig(width=0.125, input_size=64), 10, ("cpu", "cpu"))
    assert all(isinstance(t.drop, PaperDropout) for t in two.towers)
