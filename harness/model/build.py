"""The one factory: the net `model.arch` names, on one device or two."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from harness.config import SUCCESSOR_ARCHS, ModelConfig
from harness.model.alexnet import AlexNet
from harness.model.controls import torchvision_alexnet
from harness.model.cuda_convnet import CudaConvNet, is_cuda_convnet
from harness.model.successors import build_successor
from harness.model.two_device import TwoDeviceAlexNet

# --- building and describing ---------------------------------------------------------------

def build_model(cfg: ModelConfig, num_classes: int,
                devices: Sequence[str | torch.device] = ("cpu",)) -> nn.Module:
    """The net `cfg.arch` names. One device: the whole net there (both towers as groups=2).

    Two devices (arch 'paper', two towers only): a TwoDeviceAlexNet with tower t on
    devices[t] and the same initial weights as the one-device net for the same seed.
    """
    devices = tuple(devices)
    if len(devices) == 2:
        return TwoDeviceAlexNet(cfg, num_classes, devices)
    if len(devices) != 1:
        raise ValueError(f"give one device (both towers) or two (one tower each), got {list(devices)}")
    if cfg.arch in SUCCESSOR_ARCHS:  # LeNet-5, VGG, GoogLeNet, ResNet (docs/successors.md)
        return build_successor(cfg, num_classes).to(devices[0])
    if is_cuda_convnet(cfg.arch):  # the authors' CIFAR-10 nets (paper 3.1, 3.3)
        model = CudaConvNet(cfg, num_classes)
    elif cfg.arch == "torchvision":
        model = torchvision_alexnet(cfg, num_classes)
    else:
        model = AlexNet(cfg, num_classes)
    return model.to(devices[0])
