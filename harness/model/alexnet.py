"""The paper's AlexNet (Krizhevsky et al. 2012, section 3) with switches for its ambiguities.

The two "GPU" towers are expressed as grouped convolutions (groups=2) on one device: the
towers communicate only into conv3, fc6, fc7 and fc8 (paper Fig. 2), which is exactly what a
grouped conv2/conv4/conv5 and full conv3/fc layers compute.

Also here: the one-GPU net of paper 3.2 ("one_tower", the two-gpu ablation), torchvision's
2014 alexnet as a control ("torchvision"), and TwoDeviceAlexNet, the same grouped net with
each tower on its own device as the paper trained it (paper 3.2).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from harness.config import ModelConfig
from harness.model.layers import activation, dropout_layer, norm_layer, pool_layer

# Paper 3.5 / Fig. 2: kernels per layer (both towers together) and the FC widths.
PAPER_CONV_CHANNELS = (96, 256, 384, 384, 256)
PAPER_FC_WIDTH = 4096
# torchvision.models.alexnet (Krizhevsky 2014, "One weird trick"; docs/paper.md, "The architecture").
TORCHVISION_CONV_CHANNELS = (64, 192, 384, 256, 256)


def conv_channels(cfg: ModelConfig) -> tuple[int, ...]:
    """Conv widths of the net `cfg.arch` names, after the width multiplier.

    The paper's counts are rounded to even numbers so that both towers stay equal. The
    one-GPU net (paper 3.2) halves conv1-conv4 and keeps conv5 at the two-tower count
    (paper 3.2, footnote 2).
    """
    if cfg.arch == "torchvision":
        return TORCHVISION_CONV_CHANNELS  # width must be 1 (torchvision_alexnet)
    paper = tuple(max(2, 2 * round(c * cfg.width / 2)) for c in PAPER_CONV_CHANNELS)
    if cfg.arch == "one_tower":
        return tuple(c // 2 for c in paper[:4]) + paper[4:]
    return paper


def fc_width(cfg: ModelConfig) -> int:
    """fc6/fc7 units; full size in every arch (paper 3.2 footnote 2 keeps them for one_tower)."""
    return max(2, 2 * round(PAPER_FC_WIDTH * cfg.width / 2))


def _groups(cfg: ModelConfig) -> int:
    """Conv groups of conv2/conv4/conv5: 2 for the two-tower paper net, 1 for one tower."""
    return 2 if cfg.arch == "paper" and cfg.towers == 2 else 1


class AlexNet(nn.Sequential):
    """Paper AlexNet: conv1-5, fc6-8, ReLU, tower LRN after conv1/conv2, overlapping pools.

    Builds arch "paper" (two towers as groups=2, or ungrouped with towers=1) and arch
    "one_tower", the one-GPU net of paper 3.2: "a net with half as many kernels in each
    convolutional layer trained on one GPU" (48-128-192-192 kernels), except that "the
    one-GPU net actually has the same number of kernels as the two-GPU net in the final
    convolutional layer" (256) and the fully-connected layers that follow are not halved
    (paper 3.2, footnote 2). With a single tower there are no groups and LRN runs over all
    channels. At width 1 and 1000 classes it has 59,798,312 parameters.
    """

    def __init__(self, cfg: ModelConfig, num_classes: int):
        if cfg.arch not in ("paper", "one_tower"):
            raise ValueError(f"AlexNet builds arch 'paper' or 'one_tower', not {cfg.arch!r}; use build_model")
        # One named Sequential: each layer is registered once, under its paper name (conv1..fc8),
        # so print(model), named_parameters and the state dict show it once.
        super().__init__(OrderedDict(_layers(cfg, num_classes)))
        self.cfg = cfg
        init_weights(self, cfg.init)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Also loads checkpoints of earlier versions, which registered every conv and fc layer a
        second time under features.N / classifier.N (same tensors): those aliases are dropped."""
        state = {k: v for k, v in state_dict.items() if not k.startswith(("features.", "classifier."))}
        return super().load_state_dict(state, strict=strict, assign=assign)


def _layers(cfg: ModelConfig, num_classes: int) -> list[tuple[str, nn.Module]]:
    """(name, layer) in the order of the forward pass (paper Fig. 2)."""
    c1, c2, c3, c4, c5 = conv_channels(cfg)
    g = _groups(cfg)
    middle = _middle_convs(cfg, c2, (c3, c4, c5), g)
    layers = [("conv1", nn.Conv2d(3, c1, 11, stride=4, padding=cfg.conv1_padding)), ("act1", activation(cfg)),
              ("norm1", norm_layer(cfg, g, c1)), ("pool1", pool_layer(cfg)),
              ("conv2", nn.Conv2d(c1, c2, 5, padding=2, groups=g)),  # own tower only
              ("act2", activation(cfg)), ("norm2", norm_layer(cfg, g, c2)), ("pool2", pool_layer(cfg))]
    for name, conv in middle:
        layers += [(name, conv), (f"act{name[-1]}", activation(cfg))]
        if cfg.norm_every_conv:  # "AlexNet-BN": the norm after every conv's ReLU (docs/successors.md)
            layers.append((f"norm{name[-1]}", norm_layer(cfg, g, conv.out_channels)))
    f = fc_width(cfg)
    # Departure for small inputs (report lists it): pool6 keeps fc6's input at 6x6 maps. At the
    # paper's 224/227 the maps are already 6x6 and this is the identity (config refuses any other
    # map size at that scale).
    layers += [("pool5", pool_layer(cfg))]
    fc_in, side = middle[-1][1].out_channels, 6
    if cfg.conv6:
        layers += conv6_layers(cfg, fc_in, g)
        fc_in = conv6_channels(cfg)
        side = 2 if cfg.conv6_pool else 6  # pool 3/2 over the 6x6 map at the paper's size
    layers += [("pool6", nn.AdaptiveAvgPool2d(side)), ("flatten", nn.Flatten(1)),
               # paper 4.2: dropout 0.5 on the outputs of fc6 and fc7.
               ("fc6", nn.Linear(fc_in * side * side, f)), ("act6", activation(cfg)),
               ("drop6", dropout_layer(cfg)),
               ("fc7", nn.Linear(f, f)), ("act7", activation(cfg)), ("drop7", dropout_layer(cfg)),
               ("fc8", nn.Linear(f, num_classes))]
    return layers


def _middle_convs(cfg: ModelConfig, c2: int, widths: tuple[int, int, int], g: int) -> list[tuple[str, nn.Conv2d]]:
    """conv3 (both towers), conv4 and conv5 (own tower), minus model.drop_conv (paper 7).

    Without a layer, the next one reads the output of the one before it: its kernel count stays
    the paper's, its input channels become that output's, and it inherits the removed layer's
    cross-tower connectivity (without conv3, conv4 reads both towers), so the towers still meet
    once between conv2 and pool5 (docs/fidelity.md, "Removing a middle conv layer").
    """
    out, cin, both = [], c2, False
    for name, cout in zip(("conv3", "conv4", "conv5"), widths):
        if name == cfg.drop_conv:
            both = both or name == "conv3"
            continue
        groups = 1 if (name == "conv3" or both) else g
        out.append((name, nn.Conv2d(cin, cout, 3, padding=1, groups=groups)))
        cin, both = cout, False
    return out


def conv6_channels(cfg: ModelConfig) -> int:
    """conv6 kernels after the width multiplier, even so that both towers stay equal."""
    return max(2, 2 * round(cfg.conv6_kernels * cfg.width / 2))


def conv6_layers(cfg: ModelConfig, cin: int, g: int) -> list[tuple[str, nn.Module]]:
    """paper 6: "an extra sixth convolutional layer over the last pooling layer" (pool5), then its
    ReLU and, with model.conv6_pool, a pool of the paper's kind. Kernels, size, padding and tower
    wiring are switches (docs/paper.md, "The sixth conv layer")."""
    groups = g if cfg.conv6_towers == "own" else 1
    out = [("conv6", nn.Conv2d(cin, conv6_channels(cfg), cfg.conv6_size, padding=cfg.conv6_padding, groups=groups)),
           ("act_conv6", activation(cfg))]
    if cfg.conv6_pool:
        out.append(("pool_conv6", pool_layer(cfg)))
    return out


# paper 5: the hidden layers whose bias starts at 1 (model.hidden_bias); the others start at 0
HIDDEN_BIAS_LAYERS = ("conv2", "conv4", "conv5", "fc6", "fc7")


def init_weights(model: AlexNet, scheme: str) -> None:
    """paper 5: weights N(0, 0.01); bias model.hidden_bias (paper: 1) in conv2, conv4, conv5,
    fc6, fc7, else 0.

    "kaiming" (a listed departure for the small default profile) uses He-normal weights (fc8
    N(0, 0.01)); the biases follow the same rule, and that profile sets hidden_bias 0.
    """
    bias = model.cfg.hidden_bias
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "fc6", "fc7", "fc8"):
        layer = getattr(model, name, None)
        if layer is None:  # model.drop_conv removed it
            continue
        if scheme == "paper":
            nn.init.normal_(layer.weight, 0.0, 0.01)
        else:
            nonlin = "relu" if model.cfg.activation == "relu" else "tanh"
            nn.init.kaiming_normal_(layer.weight, nonlinearity=nonlin)
            if name == "fc8":
                nn.init.normal_(layer.weight, 0.0, 0.01)
        nn.init.constant_(layer.bias, bias if name in HIDDEN_BIAS_LAYERS else 0.0)
