"""Layers of the paper net that need a reading of the paper: LRN within towers (paper 3.3),
overlapping pooling (3.4), the activation (3.1), dropout's scaling (4.2).
"""

from __future__ import annotations

import torch
from torch import nn

from harness.config import ModelConfig

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


def pool_layer(cfg: ModelConfig) -> nn.MaxPool2d:
    k, s = (3, 2) if cfg.pool == "overlap" else (2, 2)  # paper 3.4: z=3, s=2
    return nn.MaxPool2d(k, s)


def activation(cfg: ModelConfig) -> nn.Module:
    return nn.ReLU() if cfg.activation == "relu" else nn.Tanh()  # paper 3.1 ablation


def norm_layer(cfg: ModelConfig, towers: int) -> nn.Module:
    return TowerLRN(towers, cfg.lrn) if cfg.lrn != "none" else nn.Identity()  # paper 3.3


class PaperDropout(nn.Module):
    """paper 4.2: in training each unit's output is set to zero with probability p and left
    unscaled; at test every unit is kept and its output multiplied by (1 - p) (paper: 0.5).

    The mask is drawn as nn.Dropout draws it (bernoulli_(1 - p) from the same generator), so a
    seed gives the same masks under either scaling and only the scale differs. Under SGD this
    is not torch's inverted dropout (docs/fidelity.md, "Dropout scaling").
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0:
            return x
        if self.training:
            return x * torch.empty_like(x).bernoulli_(1.0 - self.p)
        return x * (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}, scaling=paper"


def dropout_layer(cfg: ModelConfig) -> nn.Module:
    """model.dropout_scaling: the paper's form, or torch's inverted nn.Dropout."""
    return PaperDropout(cfg.dropout) if cfg.dropout_scaling == "paper" else nn.Dropout(cfg.dropout)
