"""The paper's two GPUs: one tower per device (paper 3.2, Figure 2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from harness.config import ModelConfig
from harness.model.alexnet import AlexNet, conv_channels, fc_width
from harness.model.layers import activation, dropout_layer, norm_layer, pool_layer

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
        self.act, self.pool, self.pool6 = activation(cfg), pool_layer(cfg), nn.AdaptiveAvgPool2d(6)
        self.norm = norm_layer(cfg, 1)  # paper 3.3: LRN within this tower's maps only
        self.drop = dropout_layer(cfg)  # paper 4.2, on this tower's fc6/fc7 units

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
    if cfg.arch != "paper" or cfg.towers != 2 or cfg.drop_conv != "none" or cfg.norm not in ("lrn", "none"):
        # the learned norms (model.norm) have per-channel parameters that split_towers does not carry
        raise ValueError("two devices hold the two towers of the full paper net: needs model.arch 'paper', "
                         f"model.towers 2, model.drop_conv none and model.norm lrn or none, got arch {cfg.arch!r}, "
                         f"towers {cfg.towers}, drop_conv {cfg.drop_conv!r}, norm {cfg.norm!r}")


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
