"""Control networks: torchvision's 2014 alexnet (not the 2012 net)."""

from __future__ import annotations

from torch import nn

from harness.config import ModelConfig


def torchvision_alexnet(cfg: ModelConfig, num_classes: int) -> nn.Module:
    """Control: torchvision's alexnet, the 2014 "one weird trick" variant, NOT the 2012 net.

    docs/paper.md, "The architecture": 64-192-384-256-256 kernels, no LRN, no groups, dropout before fc6 and
    fc7, 61,100,840 parameters at 1000 classes. Built with weights=None (never downloads) and
    torchvision's default init; of the model switches only `dropout` applies (its own
    argument), `input_size` works through its AdaptiveAvgPool2d(6); activation, lrn, pool,
    towers, conv1_padding and init describe the paper net and are ignored here.
    """
    if cfg.width != 1.0:
        raise ValueError(f"model.width: arch 'torchvision' is a fixed control and needs width 1.0, "
                         f"got {cfg.width}")
    from torchvision.models import alexnet  # only this control needs torchvision
    return alexnet(weights=None, num_classes=num_classes, dropout=cfg.dropout)
