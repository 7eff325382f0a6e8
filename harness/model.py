"""The paper's AlexNet (Krizhevsky et al. 2012, section 3) with switches for its ambiguities.

The two "GPU" towers are expressed as grouped convolutions (groups=2) on one device: the
towers communicate only into conv3, fc6, fc7 and fc8 (paper Fig. 2), which is exactly what a
grouped conv2/conv4/conv5 and full conv3/fc layers compute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from harness.config import ModelConfig

# Paper 3.5 / Fig. 2: kernels per layer (both towers together) and the FC widths.
PAPER_CONV_CHANNELS = (96, 256, 384, 384, 256)
PAPER_FC_WIDTH = 4096

# LRN conventions (PAPER.md section 3). "paper" is the printed formula: alpha NOT divided by
# n, which nn.LocalResponseNorm would do, so we pass alpha * n to undo its division.
LRN_CONVENTIONS = {
    "paper": dict(size=5, alpha=1e-4 * 5, beta=0.75, k=2.0),
    "cuda_convnet2": dict(size=5, alpha=1e-4, beta=0.75, k=2.0),
    "caffe": dict(size=5, alpha=1e-4, beta=0.75, k=1.0),
}


class TowerLRN(nn.Module):
    """Local response normalisation applied within each tower's channels (paper 3.3).

    In the two-GPU net each GPU normalises only over its own kernel maps, so the 5-channel
    window never crosses the tower boundary.
    """

    def __init__(self, towers: int, convention: str):
        super().__init__()
        self.towers = towers
        self.lrn = nn.LocalResponseNorm(**LRN_CONVENTIONS[convention])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.lrn(x.reshape(b * self.towers, c // self.towers, h, w))
        return y.reshape(b, c, h, w)


@dataclass(frozen=True)
class LayerInfo:
    name: str
    out_shape: tuple[int, ...]
    params: int
    mult_adds: int


def conv_channels(cfg: ModelConfig) -> tuple[int, ...]:
    """Conv widths after the width multiplier, rounded to keep both towers equal."""
    return tuple(max(2, 2 * round(c * cfg.width / 2)) for c in PAPER_CONV_CHANNELS)


def fc_width(cfg: ModelConfig) -> int:
    return max(2, 2 * round(PAPER_FC_WIDTH * cfg.width / 2))


class AlexNet(nn.Module):
    """Paper AlexNet: conv1-5, fc6-8, ReLU, tower LRN after conv1/conv2, overlapping pools."""

    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__()
        self.cfg = cfg
        c1, c2, c3, c4, c5 = conv_channels(cfg)
        g = 2 if cfg.towers == 2 else 1
        pool_k, pool_s = (3, 2) if cfg.pool == "overlap" else (2, 2)  # paper 3.4: z=3, s=2
        act = nn.ReLU if cfg.activation == "relu" else nn.Tanh  # paper 3.1 ablation
        self.conv1 = nn.Conv2d(3, c1, 11, stride=4, padding=cfg.conv1_padding)
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=2, groups=g)  # own tower only
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)  # both towers
        self.conv4 = nn.Conv2d(c3, c4, 3, padding=1, groups=g)
        self.conv5 = nn.Conv2d(c4, c5, 3, padding=1, groups=g)
        norm = (lambda: TowerLRN(g, cfg.lrn)) if cfg.lrn != "none" else nn.Identity
        self.features = nn.Sequential(
            self.conv1, act(), norm(), nn.MaxPool2d(pool_k, pool_s),
            self.conv2, act(), norm(), nn.MaxPool2d(pool_k, pool_s),
            self.conv3, act(), self.conv4, act(), self.conv5, act(),
            nn.MaxPool2d(pool_k, pool_s),
        )
        # Departure for small inputs (report lists it): keeps fc6's input at 6x6 maps. At the
        # paper's 224/227 the maps are already 6x6 and this is the identity.
        self.pool6 = nn.AdaptiveAvgPool2d(6)
        f = fc_width(cfg)
        self.fc6 = nn.Linear(c5 * 36, f)
        self.fc7 = nn.Linear(f, f)
        self.fc8 = nn.Linear(f, num_classes)
        # paper 4.2: dropout 0.5 on the outputs of fc6 and fc7.
        self.classifier = nn.Sequential(
            self.fc6, act(), nn.Dropout(cfg.dropout),
            self.fc7, act(), nn.Dropout(cfg.dropout),
            self.fc8,
        )
        init_weights(self, cfg.init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool6(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def init_weights(model: AlexNet, scheme: str) -> None:
    """paper 5: weights N(0, 0.01); bias 1 in conv2, conv4, conv5, fc6, fc7, else 0.

    "kaiming" (a listed departure for the small default profile) keeps zero biases and uses
    He-normal weights, because the paper's init stays at chance on small CPU budgets.
    """
    ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
        layer = getattr(model, name)
        if scheme == "paper":
            nn.init.normal_(layer.weight, 0.0, 0.01)
            nn.init.constant_(layer.bias, 1.0 if name in ones else 0.0)
        else:
            nonlin = "relu" if model.cfg.activation == "relu" else "tanh"
            nn.init.kaiming_normal_(layer.weight, nonlinearity=nonlin)
            if name == "fc8":
                nn.init.normal_(layer.weight, 0.0, 0.01)
            nn.init.zeros_(layer.bias)


def build_model(cfg: ModelConfig, num_classes: int) -> AlexNet:
    return AlexNet(cfg, num_classes)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def layer_table(model: AlexNet, input_size: int) -> list[LayerInfo]:
    """Per-layer output shape, parameters and multiply-adds for one image (forward hooks)."""
    rows: list[LayerInfo] = []
    named = {m: n for n, m in model.named_modules() if n in
             ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")}
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]

    def hook(module, _inp, out):
        shape = tuple(out.shape[1:])
        params = sum(p.numel() for p in module.parameters())
        if isinstance(module, nn.Conv2d):
            k = module.weight[0].numel()  # in/groups * kh * kw
            macs = math.prod(shape) * k
            rows.append(LayerInfo(named[module], shape, params, macs))
        elif isinstance(module, nn.Linear):
            rows.append(LayerInfo(named[module], shape, params, module.in_features * module.out_features))
        else:
            rows.append(LayerInfo(f"pool{pools.index(module) + 1}", shape, 0, 0))

    handles = [m.register_forward_hook(hook) for m in list(named) + pools]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, input_size, input_size))
    model.train(was_training)
    for h in handles:
        h.remove()
    return rows
