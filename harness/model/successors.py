"""The nets before and after the paper's, on the same data, loop and statistics (docs/successors.md).

- lenet5: LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998), the network the paper extends, built here.
- vgg11, vgg16 (Simonyan & Zisserman 2014), googlenet (Szegedy et al. 2015), resnet18, resnet50
  (He et al. 2016): torchvision.models, built with weights=None (never downloaded) and
  torchvision's own initialisation, sized for the data's classes and the crop (input-size rules
  below and in docs/successors.md).

Every successor is built at its published widths (model.width scales the paper net only) and
keeps its ImageNet stem: the default profile scales the input, not the nets.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.config import ModelConfig

# GoogLeNet (Szegedy et al. 2015, section 5): each auxiliary classifier's loss is added to the
# total loss "with a discount weight" of 0.3; at test the auxiliary heads are discarded.
AUX_LOSS_WEIGHT = 0.3


def main_and_aux(out) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(main logits, auxiliary logits) of a forward pass: GoogLeNet in training mode returns its
    two auxiliary heads as well (torchvision's GoogLeNetOutputs); every other net a tensor."""
    if isinstance(out, torch.Tensor):
        return out, []
    return out[0], [a for a in out[1:] if a is not None]


class LeCunTanh(nn.Module):
    """LeNet-5's squashing function f(a) = 1.7159 tanh(2a/3) (LeCun et al. 1998, appendix A)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


def lenet5_c5_kernel(input_size: int) -> int:
    """Side of S4's maps, which C5's kernel covers whole (LeCun et al. 1998, II.B: at 32 px S4
    is 5x5 and C5 has 5x5 kernels, so each C5 unit sees all of S4). C1 and C3 are 5x5 valid
    convolutions, S2 and S4 halve the side."""
    s = input_size - 4  # C1
    s //= 2  # S2
    s -= 4  # C3
    return s // 2  # S4


def lenet5(cfg: ModelConfig, num_classes: int) -> nn.Sequential:
    """LeNet-5 sized to the crop as its principles allow: 6-16-120 maps with 5x5 kernels, 2x2
    subsampling, C5's kernel spanning the whole S4 map (so C5 stays "fully connected" to S4 at
    any input), F6 with 84 units. Departures from the 1998 net, stated in docs/successors.md:
    colour input (3 channels), C3 connected to all of S2 (the original's sparse table
    dropped), S2/S4 plain 2x2 averages (the original multiplies the sum by a trained coefficient
    and adds a bias), and a linear output layer under the harness's cross-entropy instead of the
    Euclidean RBF units. torch's default initialisation, U(+-1/sqrt(fan_in)) (the original:
    U(+-2.4/fan_in))."""
    k5 = lenet5_c5_kernel(cfg.input_size)
    return nn.Sequential(
        nn.Conv2d(3, 6, 5), LeCunTanh(), nn.AvgPool2d(2),  # C1, S2
        nn.Conv2d(6, 16, 5), LeCunTanh(), nn.AvgPool2d(2),  # C3, S4
        nn.Conv2d(16, 120, k5), LeCunTanh(), nn.Flatten(1),  # C5: 1x1 maps at any input
        nn.Linear(120, 84), LeCunTanh(),  # F6
        nn.Linear(84, num_classes))


def vgg_final_side(input_size: int) -> int:
    """VGG's five 2x2/2 max-pools: the side of the last conv maps (7 at 224, 2 at 64)."""
    s = input_size
    for _ in range(5):
        s //= 2
    return s


def vgg(cfg: ModelConfig, num_classes: int, depth: int) -> nn.Module:
    """torchvision's VGG-11 (config A) or VGG-16 (config D), without BatchNorm as published.

    Input-size rule: fc6 reads the last conv maps as they are (512 x s x s, s = input/32),
    instead of torchvision's AdaptiveAvgPool2d(7), which would copy a 2x2 map at 64 px into 7x7
    and give fc6 25088 inputs of 4 distinct values each; at 224 px both are the same net.
    Dropout: model.dropout (VGG's 0.5 is the paper's). torchvision's init: He-normal convs,
    fc N(0, 0.01), biases 0.
    """
    from torchvision.models import vgg11, vgg16  # only the successor arms need torchvision
    net = (vgg11 if depth == 11 else vgg16)(weights=None, num_classes=num_classes, dropout=cfg.dropout)
    s = vgg_final_side(cfg.input_size)
    width = net.classifier[0].out_features
    net.avgpool = nn.Identity()
    net.classifier[0] = nn.Linear(512 * s * s, width)
    nn.init.normal_(net.classifier[0].weight, 0.0, 0.01)  # torchvision's rule for VGG's fc layers
    nn.init.zeros_(net.classifier[0].bias)
    return net


def googlenet(cfg: ModelConfig, num_classes: int) -> nn.Module:
    """torchvision's GoogLeNet (Inception v1) with both auxiliary classifiers, trained with their
    losses weighted by AUX_LOSS_WEIGHT (harness/train/loop.py) and dropped at test (eval mode
    returns the main logits only). Input-size rule: the aux heads pool to 4x4 and the main head
    to 1x1 adaptively (at 64 px the 4a/4d maps are already 4x4), so any crop of 32 px or more
    works unchanged. transform_input off (it re-normalises for torchvision's weights only);
    torchvision's own dropouts (0.2 main, 0.7 aux) and truncated-normal init."""
    from torchvision.models import googlenet as build
    return build(weights=None, num_classes=num_classes, aux_logits=True, init_weights=True, transform_input=False)


def resnet(cfg: ModelConfig, num_classes: int, depth: int) -> nn.Module:
    """torchvision's ResNet-18 or ResNet-50 with the ImageNet stem (7x7/2 conv, 3x3/2 pool);
    input-size rule: the global average pool takes any final map (2x2 at 64 px, 7x7 at 224)."""
    from torchvision.models import resnet18, resnet50
    return (resnet18 if depth == 18 else resnet50)(weights=None, num_classes=num_classes)


def build_successor(cfg: ModelConfig, num_classes: int) -> nn.Module:
    """The net of a successor or predecessor arch (harness/config.py SUCCESSOR_ARCHS)."""
    builders = {"lenet5": lambda: lenet5(cfg, num_classes), "vgg11": lambda: vgg(cfg, num_classes, 11),
                "vgg16": lambda: vgg(cfg, num_classes, 16), "googlenet": lambda: googlenet(cfg, num_classes),
                "resnet18": lambda: resnet(cfg, num_classes, 18), "resnet50": lambda: resnet(cfg, num_classes, 50)}
    if cfg.arch not in builders:
        raise ValueError(f"not a successor arch: {cfg.arch!r}")
    return builders[cfg.arch]()
