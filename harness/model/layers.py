"""Layers of the paper net that need a reading of the paper: LRN within towers (paper 3.3),
overlapping pooling (3.4), the activation (3.1), dropout's scaling (4.2).
"""

from __future__ import annotations

import torch
from torch import nn

from harness.config import ModelConfig
from harness.model.lrn import local_response_norm

# LRN conventions (docs/paper.md, "Ambiguities"). "paper" is the printed formula: alpha NOT divided by
# n, which nn.LocalResponseNorm would do, so we pass alpha * n to undo its division.
LRN_CONVENTIONS = {
    "paper": dict(size=5, alpha=1e-4 * 5, beta=0.75, k=2.0),
    "cuda_convnet2": dict(size=5, alpha=1e-4, beta=0.75, k=2.0),
    "caffe": dict(size=5, alpha=1e-4, beta=0.75, k=1.0),
}


LRN_IMPLS = ("fast", "reference")


class TowerLRN(nn.Module):
    """Local response normalisation applied within each tower's channels (paper 3.3).

    In the two-GPU net each GPU normalises only over its own kernel maps, so the 5-channel
    window never crosses the tower boundary. impl (model.lrn_impl): "fast" is
    harness/model/lrn.py (shifted adds, cache-sized chunks, hand-written backward); "reference"
    is the nn.LocalResponseNorm below, which also holds the constants for both. The two agree
    to fp32 rounding, not bit for bit.
    """

    def __init__(self, towers: int, convention: str, impl: str = "fast"):
        super().__init__()
        if impl not in LRN_IMPLS:
            raise ValueError(f"LRN impl must be one of {LRN_IMPLS}, got {impl!r}")
        self.towers, self.impl = towers, impl
        self.lrn = nn.LocalResponseNorm(**LRN_CONVENTIONS[convention])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.lrn
        if self.impl == "fast":
            return local_response_norm(x, n.size, n.alpha, n.beta, n.k, self.towers)
        b, c, h, w = x.shape
        y = n(x.reshape(b * self.towers, c // self.towers, h, w))
        return y.reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return f"towers={self.towers}, impl={self.impl}"


def lrn_kernel(model: nn.Module, device: str, compiled: bool) -> str:
    """What computed the model's TowerLRN layers on `device` (harness.model.lrn.kernel_for): the
    train stage's lrn_kernel tag. Ask after training: a fall-back from the fused kernels shows
    itself at their first launch."""
    from harness.model import lrn
    impls = {m.impl for m in model.modules() if isinstance(m, TowerLRN)}
    if not impls:
        return "none (no TowerLRN in the model)"
    return "; ".join(lrn.kernel_for(torch.device(device).type, impl, compiled) for impl in sorted(impls))


def pool_layer(cfg: ModelConfig) -> nn.MaxPool2d:
    k, s = (3, 2) if cfg.pool == "overlap" else (2, 2)  # paper 3.4: z=3, s=2
    return nn.MaxPool2d(k, s)


def activation(cfg: ModelConfig) -> nn.Module:
    # in place: the same values without a second full-size tensor per layer (the layers after
    # it, LRN, pooling and the fc layers, never modify their input)
    return nn.ReLU(inplace=True) if cfg.activation == "relu" else nn.Tanh()  # paper 3.1 ablation


def norm_layer(cfg: ModelConfig, towers: int, channels: int | None = None) -> nn.Module:
    """What stands where the paper has LRN (model.norm; docs/successors.md, "Normalisation variants").

    lrn: paper 3.3 within each tower (model.lrn's convention, or none). The learned ones keep the
    towers apart too: batchnorm normalises each channel over the batch (a channel lies in one
    tower); layernorm each tower's (C/towers, H, W) per image, with a per-channel scale and shift
    (GroupNorm with one group per tower: nn.LayerNorm's per-element affine would tie the net to
    one map size); groupnorm groups of channels inside one tower (group_count). Scale 1, shift 0
    at init (torch's defaults; the paper's init rules cover conv and fc layers only).
    """
    if cfg.norm == "lrn":
        return TowerLRN(towers, cfg.lrn, cfg.lrn_impl) if cfg.lrn != "none" else nn.Identity()  # paper 3.3
    if cfg.norm == "none":
        return nn.Identity()
    if channels is None:
        raise ValueError(f"model.norm {cfg.norm} needs the channel count")
    if cfg.norm == "batchnorm":
        return nn.BatchNorm2d(channels)
    if cfg.norm == "layernorm":
        return nn.GroupNorm(towers, channels)
    return nn.GroupNorm(group_count(channels, towers), channels)


# Wu & He 2018 (Group Normalization): 32 groups by default
GROUPNORM_GROUPS = 32


def group_count(channels: int, towers: int) -> int:
    """Groups for groupnorm: the most, up to 32, that divide the channels, are a multiple of the
    towers (no group straddles the tower boundary) and keep at least 2 channels per group (1 would
    be instance norm)."""
    for g in range(min(GROUPNORM_GROUPS, channels // 2), 0, -1):
        if channels % g == 0 and g % towers == 0:
            return g
    return towers


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
