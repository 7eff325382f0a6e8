"""Describing a network: parameters and per-layer shapes and multiply-adds."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from harness.model.two_device import TwoDeviceAlexNet


@dataclass(frozen=True)
class LayerInfo:
    name: str
    out_shape: tuple[int, ...]
    params: int
    mult_adds: int


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _table_names(model: nn.Module) -> dict[nn.Module, str]:
    """conv1.., pool1.., fc<after the convs>.. in registration order (= paper order here).

    A layer the model holds under a paper name (conv1..conv5, fc6..fc8) keeps it, so a net
    without a middle conv layer (model.drop_conv) lists conv4 as conv4, not as conv3.
    """
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    fcs = [m for m in model.modules() if isinstance(m, nn.Linear)]
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    names = {m: f"conv{i + 1}" for i, m in enumerate(convs)}
    names.update({m: f"pool{i + 1}" for i, m in enumerate(pools)})
    names.update({m: f"fc{len(convs) + i + 1}" for i, m in enumerate(fcs)})
    paper = {getattr(model, n, None): n for n in ("conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "fc6", "fc7", "fc8")}
    names.update({m: n for m, n in paper.items() if m is not None and m in names})
    return names


def layer_table(model: nn.Module, input_size: int) -> list[LayerInfo]:
    """Per-layer output shape, parameters and multiply-adds for one image (forward hooks).

    Works for every arch; a TwoDeviceAlexNet is described as its grouped equivalent.
    """
    if isinstance(model, TwoDeviceAlexNet):
        return layer_table(model.to_grouped(), input_size)
    rows: list[LayerInfo] = []
    names = model.table_names() if hasattr(model, "table_names") else _table_names(model)  # cuda_convnet.py

    def hook(module, _inp, out):
        shape = tuple(out.shape[1:])
        params = sum(p.numel() for p in module.parameters())
        if isinstance(module, nn.Conv2d):
            macs = math.prod(shape) * module.weight[0].numel()  # in/groups * kh * kw per output
        elif isinstance(module, nn.Linear):
            macs = module.in_features * module.out_features
        elif hasattr(module, "in_per_output"):  # locally connected: one filter bank per position
            macs = math.prod(shape) * module.in_per_output
        else:
            macs = 0
        rows.append(LayerInfo(names[module], shape, params, macs))

    handles = [m.register_forward_hook(hook) for m in names]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        model(torch.zeros(1, 3, input_size, input_size, device=device))
    model.train(was_training)
    for h in handles:
        h.remove()
    return rows
