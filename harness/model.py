"""The paper's AlexNet (Krizhevsky et al. 2012, section 3) with switches for its ambiguities.

The two "GPU" towers are expressed as grouped convolutions (groups=2) on one device: the
towers communicate only into conv3, fc6, fc7 and fc8 (paper Fig. 2), which is exactly what a
grouped conv2/conv4/conv5 and full conv3/fc layers compute.

Also here: the one-GPU net of paper 3.2 ("one_tower", the two-gpu ablation), torchvision's
2014 alexnet as a control ("torchvision"), and TwoDeviceAlexNet, the same grouped net with
each tower on its own device as the paper trained it (paper 3.2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from harness.config import ModelConfig

# Paper 3.5 / Fig. 2: kernels per layer (both towers together) and the FC widths.
PAPER_CONV_CHANNELS = (96, 256, 384, 384, 256)
PAPER_FC_WIDTH = 4096
# torchvision.models.alexnet (Krizhevsky 2014, "One weird trick"; PAPER.md section 3).
TORCHVISION_CONV_CHANNELS = (64, 192, 384, 256, 256)

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


def _pool(cfg: ModelConfig) -> nn.MaxPool2d:
    k, s = (3, 2) if cfg.pool == "overlap" else (2, 2)  # paper 3.4: z=3, s=2
    return nn.MaxPool2d(k, s)


def _activation(cfg: ModelConfig) -> nn.Module:
    return nn.ReLU() if cfg.activation == "relu" else nn.Tanh()  # paper 3.1 ablation


def _norm(cfg: ModelConfig, towers: int) -> nn.Module:
    return TowerLRN(towers, cfg.lrn) if cfg.lrn != "none" else nn.Identity()  # paper 3.3


class AlexNet(nn.Module):
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
        super().__init__()
        if cfg.arch not in ("paper", "one_tower"):
            raise ValueError(f"AlexNet builds arch 'paper' or 'one_tower', not {cfg.arch!r}; use build_model")
        self.cfg = cfg
        c1, c2, c3, c4, c5 = conv_channels(cfg)
        g = _groups(cfg)
        act = lambda: _activation(cfg)  # noqa: E731
        self.conv1 = nn.Conv2d(3, c1, 11, stride=4, padding=cfg.conv1_padding)
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=2, groups=g)  # own tower only
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)  # both towers
        self.conv4 = nn.Conv2d(c3, c4, 3, padding=1, groups=g)
        self.conv5 = nn.Conv2d(c4, c5, 3, padding=1, groups=g)
        self.features = nn.Sequential(
            self.conv1, act(), _norm(cfg, g), _pool(cfg),
            self.conv2, act(), _norm(cfg, g), _pool(cfg),
            self.conv3, act(), self.conv4, act(), self.conv5, act(),
            _pool(cfg),
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


def torchvision_alexnet(cfg: ModelConfig, num_classes: int) -> nn.Module:
    """Control: torchvision's alexnet, the 2014 "one weird trick" variant, NOT the 2012 net.

    PAPER.md section 3: 64-192-384-256-256 kernels, no LRN, no groups, dropout before fc6 and
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


# --- the paper's two GPUs: one tower per device ------------------------------------------

# Layers split between the towers by output units (paper Fig. 2); fc8 is not split.
TOWER_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")


class Tower(nn.Module):
    """One GPU's half of the paper net: half the kernels / units of conv1-conv5, fc6, fc7.

    conv3, fc6 and fc7 read both towers' outputs (their input is the concatenation, in the
    grouped channel order); the other layers read their own tower only (paper 3.2, Fig. 2).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        full = conv_channels(cfg)
        c1, c2, c3, c4, c5 = (c // 2 for c in full)
        f = fc_width(cfg)
        self.conv1 = nn.Conv2d(3, c1, 11, stride=4, padding=cfg.conv1_padding)
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=2)
        self.conv3 = nn.Conv2d(full[1], c3, 3, padding=1)  # both towers' conv2 maps
        self.conv4 = nn.Conv2d(c3, c4, 3, padding=1)
        self.conv5 = nn.Conv2d(c4, c5, 3, padding=1)
        self.fc6 = nn.Linear(full[4] * 36, f // 2)  # both towers' pooled conv5 maps
        self.fc7 = nn.Linear(f, f // 2)  # both towers' fc6 units
        self.act, self.pool, self.pool6 = _activation(cfg), _pool(cfg), nn.AdaptiveAvgPool2d(6)
        self.norm = _norm(cfg, 1)  # paper 3.3: LRN within this tower's maps only
        self.drop = nn.Dropout(cfg.dropout)  # paper 4.2, on this tower's fc6/fc7 units

    def front(self, x: torch.Tensor) -> torch.Tensor:
        """conv1 -> pool2 on the whole image (every tower sees all of it)."""
        x = self.pool(self.norm(self.act(self.conv1(x))))
        return self.pool(self.norm(self.act(self.conv2(x))))

    def back(self, both: torch.Tensor) -> torch.Tensor:
        """conv3 (from both towers' maps) -> conv5 -> pool, flattened channel-major."""
        x = self.act(self.conv4(self.act(self.conv3(both))))
        x = self.pool6(self.pool(self.act(self.conv5(x))))
        return torch.flatten(x, 1)

    def dense(self, layer: nn.Linear, both: torch.Tensor) -> torch.Tensor:
        """fc6 or fc7 on the concatenated units of both towers."""
        return self.drop(self.act(layer(both)))


def gather(parts: Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
    """Both towers' outputs, concatenated on `device` along dim 1 (channels or units).

    The only place tensors cross devices (besides the input image and the output): into
    conv3, fc6, fc7 and fc8, where the paper's GPUs communicate (paper 3.2).
    """
    return torch.cat([p.to(device) for p in parts], dim=1)


class TwoDeviceAlexNet(nn.Module):
    """The two-tower paper net with tower t on devices[t], as trained on two GPUs (paper 3.2).

    Computes the same function as the grouped AlexNet: every layer up to fc7 is split by
    output units, so tower t holds rows [t*C/2, (t+1)*C/2) of the grouped weight. fc8 (not
    split) lives on devices[0] and reads the concatenated fc7 units, so the logits come out
    on devices[0]. LRN normalises within each tower (paper 3.3). Dropout draws its own masks
    per tower, so in training mode the masks differ from the grouped model's for the same
    seed (the distribution is the same). Checkpoints go through grouped_state_dict /
    load_grouped_state_dict so that they load into the single-device model and back.
    Do not call .to()/.cuda() on it: that would put both towers on one device.
    """

    def __init__(self, cfg: ModelConfig, num_classes: int, devices: Sequence[str | torch.device],
                 *, weights_from: AlexNet | None = None):
        super().__init__()
        _check_two_devices(cfg, devices)
        self.cfg, self.num_classes = cfg, num_classes
        self.devices = tuple(torch.device(d) for d in devices)
        # The weights are drawn by a grouped AlexNet, so a seed gives the same initial net on
        # one device or two; the towers are built on "meta" (no RNG draws, no memory).
        grouped = weights_from if weights_from is not None else AlexNet(cfg, num_classes)
        with torch.device("meta"):
            self.towers = nn.ModuleList([Tower(cfg), Tower(cfg)])
            self.fc8 = nn.Linear(fc_width(cfg), num_classes)
        dtype = grouped.fc8.weight.dtype
        for tower, device in zip(self.towers, self.devices):
            tower.to_empty(device=device).to(dtype)
        self.fc8.to_empty(device=self.devices[0]).to(dtype)
        self.load_grouped_state_dict(grouped.state_dict())

    @classmethod
    def from_grouped(cls, grouped: AlexNet, devices: Sequence[str | torch.device]) -> TwoDeviceAlexNet:
        """Exact copy of a single-device grouped AlexNet, split over `devices`."""
        return cls(grouped.cfg, grouped.fc8.out_features, devices, weights_from=grouped)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.devices
        t = list(self.towers)
        a = [t[i].front(x.to(d[i])) for i in (0, 1)]
        a = [t[i].back(gather(a, d[i])) for i in (0, 1)]  # into conv3
        a = [t[i].dense(t[i].fc6, gather(a, d[i])) for i in (0, 1)]  # into fc6
        a = [t[i].dense(t[i].fc7, gather(a, d[i])) for i in (0, 1)]  # into fc7
        return self.fc8(gather(a, d[0]))  # into fc8

    def to_grouped(self, device: str | torch.device = "cpu") -> AlexNet:
        """The single-device grouped AlexNet with these weights, on `device`."""
        with torch.device("meta"):
            grouped = AlexNet(self.cfg, self.num_classes)
        grouped.to_empty(device=device).to(self.fc8.weight.dtype)
        _copy_into(grouped, merge_towers(dict(self.named_parameters()), device))
        return grouped.train(self.training)

    def grouped_state_dict(self) -> dict[str, torch.Tensor]:
        """state_dict in the single-device AlexNet's layout (on CPU), for checkpoints."""
        return self.to_grouped("cpu").state_dict()

    def load_grouped_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load weights saved from a single-device grouped AlexNet (or grouped_state_dict)."""
        _copy_into(self, split_towers(state, self.devices))


def _check_two_devices(cfg: ModelConfig, devices: Sequence) -> None:
    if len(devices) != 2:
        raise ValueError(f"TwoDeviceAlexNet needs two devices, got {list(devices)}")
    if cfg.arch != "paper" or cfg.towers != 2:
        raise ValueError("two devices hold the two towers of the paper net: needs model.arch 'paper' "
                         f"and model.towers 2, got arch {cfg.arch!r}, towers {cfg.towers}")


def merge_towers(towered: Mapping[str, torch.Tensor],
                 device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """TwoDeviceAlexNet-named tensors -> grouped AlexNet names ('conv1.weight', ...) on `device`.

    Works for anything shaped like the parameters: weights, gradients, momentum buffers.
    """
    out = {}
    with torch.no_grad():
        for layer in TOWER_LAYERS:
            for kind in ("weight", "bias"):
                halves = [towered[f"towers.{t}.{layer}.{kind}"].to(device) for t in (0, 1)]
                out[f"{layer}.{kind}"] = torch.cat(halves, dim=0)
        for kind in ("weight", "bias"):
            out[f"fc8.{kind}"] = towered[f"fc8.{kind}"].to(device)
    return out


def split_towers(grouped: Mapping[str, torch.Tensor],
                 devices: Sequence[str | torch.device]) -> dict[str, torch.Tensor]:
    """Grouped AlexNet-named tensors -> TwoDeviceAlexNet names, each half on its tower's device.

    Tower t takes output rows [t*C/2, (t+1)*C/2): for groups=2 layers those rows read input
    group t only, which is exactly the tower's own input (paper 3.2).
    """
    out = {}
    with torch.no_grad():
        for layer in TOWER_LAYERS:
            for kind in ("weight", "bias"):
                halves = grouped[f"{layer}.{kind}"].chunk(2, dim=0)
                for t, device in enumerate(devices):
                    out[f"towers.{t}.{layer}.{kind}"] = halves[t].to(device)
        for kind in ("weight", "bias"):
            out[f"fc8.{kind}"] = grouped[f"fc8.{kind}"].to(devices[0])
    return out


def _copy_into(model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    """Copy named tensors into `model`'s parameters, refusing any shape mismatch (no broadcast)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name not in tensors:
                raise KeyError(f"no tensor for parameter {name!r}")
            if tensors[name].shape != p.shape:
                raise ValueError(f"{name}: shape {tuple(tensors[name].shape)} does not fit {tuple(p.shape)}")
            p.copy_(tensors[name])


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
    model = torchvision_alexnet(cfg, num_classes) if cfg.arch == "torchvision" else AlexNet(cfg, num_classes)
    return model.to(devices[0])


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _table_names(model: nn.Module) -> dict[nn.Module, str]:
    """conv1.., pool1.., fc<after the convs>.. in registration order (= paper order here)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    fcs = [m for m in model.modules() if isinstance(m, nn.Linear)]
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    names = {m: f"conv{i + 1}" for i, m in enumerate(convs)}
    names.update({m: f"pool{i + 1}" for i, m in enumerate(pools)})
    names.update({m: f"fc{len(convs) + i + 1}" for i, m in enumerate(fcs)})
    return names


def layer_table(model: nn.Module, input_size: int) -> list[LayerInfo]:
    """Per-layer output shape, parameters and multiply-adds for one image (forward hooks).

    Works for every arch; a TwoDeviceAlexNet is described as its grouped equivalent.
    """
    if isinstance(model, TwoDeviceAlexNet):
        return layer_table(model.to_grouped(), input_size)
    rows: list[LayerInfo] = []
    names = _table_names(model)

    def hook(module, _inp, out):
        shape = tuple(out.shape[1:])
        params = sum(p.numel() for p in module.parameters())
        if isinstance(module, nn.Conv2d):
            macs = math.prod(shape) * module.weight[0].numel()  # in/groups * kh * kw per output
        elif isinstance(module, nn.Linear):
            macs = module.in_features * module.out_features
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
