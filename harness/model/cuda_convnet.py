"""The authors' CIFAR-10 nets, built from cuda-convnet's example layer files (paper 3.1, 3.3).

Paper 3.3: the CIFAR-10 net "is specified precisely by the code and parameter files" of
cuda-convnet. Its example-layers/ folder holds four CIFAR-10 nets; each NETS entry below
transcribes one layers-*.cfg (layer types, sizes, padding, initW, neurons, order) and its
layer-params-*.cfg (epsW, epsB, momW, momB, wc, and the normalisation constants).
docs/cifar10.md lists the files, what each line means here, and which net serves which claim.

What the authors' code does, and where it is reproduced:
- conv: shared filters, zero padding, stride 1; biases shared per filter (sharedBiases=1).
- local: locally connected, *unshared* filters, one filter bank and bias per output position
  (LocallyConnected2d, checked against a loop in the tests).
- pool: 3x3 windows at stride 2 with cuda-convnet's output count ceil((in - 3) / 2) + 1, the
  last window clipped at the border (ceil_mode), avg dividing by the pixels inside the image.
- rnorm (same map): x / (1 + scale / size^2 * sum of x^2 over a size x size window)^pow.
- cmrnorm (across maps): x / (1 + scale / size * sum of x^2 over size adjacent maps)^pow.
  layer.py divides `scale` by size^2 (rnorm) or size (cmrnorm); the kernels add 1, not 2.
- neuron=relu after a layer; a pool layer's neuron acts after the pooling (layers-80sec pool1).
- initW: weights N(0, initW^2); biases 0 (no initB in any of these files).
- updates (weights.cuh): inc = momW * inc - wc * epsW * w - epsW * mean gradient; w += inc;
  biases with epsB, momB and no decay (train.bias_decay false). That is the paper's rule
  (PaperSGD, harness/train/recipe.py) with per-layer lr and decay: optim_groups gives each tensor lr_mult = eps / 0.001
  and decay_mult = wc / 0.004 relative to train.lr and train.weight_decay, so train.lr 0.001
  and train.weight_decay 0.004 give exactly the file's values (0 switches decay off).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.config import ModelConfig

# The bases the per-layer multipliers are relative to (train.lr, train.weight_decay): every
# layer's epsW in these files is 0.001, and 0.004 is their commonest wc.
LR_BASE = 0.001
DECAY_BASE = 0.004


# --- the layer files, as data ----------------------------------------------------------------

@dataclass(frozen=True)
class Weights:
    """[name] type=conv / local / fc: filters (or fc outputs; None = the number of classes)."""
    name: str
    kind: str  # conv | local | fc
    filters: int | None
    init_w: float
    neuron: str = "ident"  # relu | ident
    size: int = 0  # filterSize
    padding: int = 0


@dataclass(frozen=True)
class Pool:
    """[name] type=pool: sizeX 3, stride 2, start 0 in all four files."""
    name: str
    kind: str  # max | avg
    neuron: str = "ident"
    size: int = 3
    stride: int = 2


@dataclass(frozen=True)
class Norm:
    """[name] type=rnorm (same map) or cmrnorm (across maps); scale/pow from the params file."""
    name: str
    kind: str  # rnorm | cmrnorm
    size: int
    scale: float
    pow: float


@dataclass(frozen=True)
class Learn:
    """layer-params-*.cfg: per-layer learning rates, momenta and weight decay."""
    eps_w: float
    eps_b: float
    mom_w: float
    mom_b: float
    wc: float


@dataclass(frozen=True)
class Net:
    layers_file: str
    params_file: str
    layers: tuple
    learn: dict  # weight-layer name -> Learn
    input_size: int  # 32: plain CIFAR provider; 24: cifar-cropped with --crop-border=4
    summary: str


def _learn(*wc: float) -> tuple[Learn, ...]:
    return tuple(Learn(0.001, 0.002, 0.9, 0.9, w) for w in wc)


NETS = {
    # layers-80sec.cfg / layer-params-80sec.cfg: "26% error on CIFAR-10 in 80 seconds", plain
    # provider (no translations); 3 conv + fc64 hidden layers, no normalisation.
    "cuda_convnet_80sec": Net(
        "layers-80sec.cfg", "layer-params-80sec.cfg",
        (Weights("conv1", "conv", 32, 0.0001, "ident", 5, 2), Pool("pool1", "max", "relu"),
         Weights("conv2", "conv", 32, 0.01, "relu", 5, 2), Pool("pool2", "avg"),
         Weights("conv3", "conv", 64, 0.01, "relu", 5, 2), Pool("pool3", "avg"),
         Weights("fc64", "fc", 64, 0.1, "relu"), Weights("fc10", "fc", None, 0.1)),
        dict(zip(("conv1", "conv2", "conv3", "fc64", "fc10"), _learn(0.004, 0.004, 0.004, 0.03, 0.03))),
        32, "3 conv (32-32-64, 5x5) + fc64 + fc10; max/avg/avg pooling; no normalisation"),
    # layers-18pct.cfg / layer-params-18pct.cfg: "18% error in 20 minutes", plain provider.
    "cuda_convnet_18pct": Net(
        "layers-18pct.cfg", "layer-params-18pct.cfg",
        (Weights("conv1", "conv", 32, 0.0001, "ident", 5, 2), Pool("pool1", "max", "relu"),
         Norm("rnorm1", "rnorm", 3, 0.00005, 0.75),
         Weights("conv2", "conv", 32, 0.01, "relu", 5, 2), Pool("pool2", "avg"),
         Norm("rnorm2", "rnorm", 3, 0.00005, 0.75),
         Weights("conv3", "conv", 64, 0.01, "relu", 5, 2), Pool("pool3", "avg"),
         Weights("fc10", "fc", None, 0.01)),
        dict(zip(("conv1", "conv2", "conv3", "fc10"), _learn(0.004, 0.004, 0.004, 1.0))),
        32, "3 conv (32-32-64, 5x5) + fc10; same-map response normalisation (3x3) after pool1 and pool2"),
    # layers-conv-local-13pct.cfg / layer-params-conv-local-13pct.cfg: "13% error", trained on
    # random 24x24 crops with flips (the wiki's Methodology page), no normalisation.
    "cuda_convnet_13pct": Net(
        "layers-conv-local-13pct.cfg", "layer-params-conv-local-13pct.cfg",
        (Weights("conv1", "conv", 64, 0.0001, "relu", 5, 2), Pool("pool1", "max"),
         Weights("conv2", "conv", 64, 0.01, "relu", 5, 2), Pool("pool2", "max"),
         Weights("local3", "local", 32, 0.04, "relu", 3, 1),
         Weights("local4", "local", 32, 0.04, "relu", 3, 1),
         Weights("fc10", "fc", None, 0.01)),
        dict(zip(("conv1", "conv2", "local3", "local4", "fc10"), _learn(0.0, 0.0, 0.004, 0.004, 0.004))),
        24, "2 conv (64-64, 5x5) + 2 locally connected (32-32, 3x3) + fc10; no normalisation"),
    # layers-conv-local-11pct.cfg / layer-params-conv-local-11pct.cfg: "11% error", 24x24 crops
    # with flips; cross-map response normalisation (9 maps) after pool1 and after conv2.
    "cuda_convnet_11pct": Net(
        "layers-conv-local-11pct.cfg", "layer-params-conv-local-11pct.cfg",
        (Weights("conv1", "conv", 64, 0.0001, "relu", 5, 2), Pool("pool1", "max"),
         Norm("rnorm1", "cmrnorm", 9, 0.001, 0.75),
         Weights("conv2", "conv", 64, 0.01, "relu", 5, 2),
         Norm("rnorm2", "cmrnorm", 9, 0.001, 0.75), Pool("pool2", "max"),
         Weights("local3", "local", 64, 0.04, "relu", 3, 1),
         Weights("local4", "local", 32, 0.04, "relu", 3, 1),
         Weights("fc10", "fc", None, 0.01)),
        dict(zip(("conv1", "conv2", "local3", "local4", "fc10"), _learn(0.0, 0.0, 0.004, 0.004, 0.01))),
        24, "2 conv (64-64, 5x5) + 2 locally connected (64-32, 3x3) + fc10; cross-map response "
            "normalisation (9 maps) after pool1 and conv2"),
}
ARCHS = tuple(NETS)


def is_cuda_convnet(arch: str) -> bool:
    return arch in NETS


def has_normalisation(arch: str) -> bool:
    return any(isinstance(layer, Norm) for layer in NETS[arch].layers)


# --- layers ----------------------------------------------------------------------------------

class LocallyConnected2d(nn.Module):
    """cuda-convnet's type=local: a convolution whose filters are not shared across positions.

    Output position l = (i, j) has its own filter bank weight[l] [C*k*k, F] and bias[l] [F],
    applied to the zero-padded k x k patch at (i*stride, j*stride). Same function as
    cuda-convnet's layout (modules x filterPixels x filterChannels, filters) up to the order of
    the patch elements (here channel-major, as F.unfold gives them).
    """

    def __init__(self, in_channels: int, out_channels: int, in_size: int, kernel: int, padding: int,
                 stride: int = 1):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel = in_channels, out_channels, kernel
        self.padding, self.stride = padding, stride
        # modulesX = 1 + ceil((2 * padding + imgSize - filterSize) / stride) (layer.py)
        self.out_size = 1 + math.ceil((2 * padding + in_size - kernel) / stride)
        positions = self.out_size ** 2
        self.weight = nn.Parameter(torch.empty(positions, in_channels * kernel * kernel, out_channels))
        self.bias = nn.Parameter(torch.zeros(positions, out_channels))

    @property
    def in_per_output(self) -> int:
        """Multiply-adds per output value (for the layer table)."""
        return self.in_channels * self.kernel * self.kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        patches = F.unfold(x, self.kernel, padding=self.padding, stride=self.stride)  # [B, C*k*k, L]
        if patches.shape[2] != self.weight.shape[0]:
            raise ValueError(f"locally connected layer built for {self.out_size}x{self.out_size} outputs, "
                             f"input gives {patches.shape[2]} positions")
        # one matmul per position: [L, B, C*k*k] @ [L, C*k*k, F] -> [L, B, F]
        out = torch.bmm(patches.permute(2, 0, 1), self.weight) + self.bias[:, None, :]
        return out.permute(1, 2, 0).reshape(b, self.out_channels, self.out_size, self.out_size)


class SameMapResponseNorm(nn.Module):
    """cuda-convnet rnorm: x / (1 + scale / size^2 * sum_{size x size window} x^2)^pow.

    The window of pixel p spans p - size//2 .. p - size//2 + size - 1 in each direction, clipped
    at the border (zero padding); the divisor is size^2 wherever the window lies (conv_util.cu
    kCNorm_*: the loop bounds are clipped, addScale = scale / size^2 from layer.py).
    """

    def __init__(self, size: int, scale: float, power: float):
        super().__init__()
        self.size, self.scale, self.power = size, scale, power

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.size
        sq = F.pad(x * x, (n // 2, (n - 1) // 2, n // 2, (n - 1) // 2))
        window = F.avg_pool2d(sq, n, stride=1) * (n * n)  # the window sum
        return x * (1.0 + self.scale / (n * n) * window).pow(-self.power)


class CrossMapResponseNorm(nn.Module):
    """cuda-convnet cmrnorm: x_f / (1 + scale / size * sum_{f'} x_{f'}^2)^pow.

    f' runs over f - size//2 .. f - size//2 + size - 1, clipped to the existing maps
    (conv_util.cu kFCNorm, blocked=0); addScale = scale / size (layer.py). This equals
    nn.LocalResponseNorm(size, alpha=scale, beta=pow, k=1): k is 1 here, not the paper's 2.
    """

    def __init__(self, size: int, scale: float, power: float):
        super().__init__()
        self.size, self.scale, self.power = size, scale, power

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = self.size, x.shape[1]
        # window sums as differences of a running sum over the maps: about 3x faster on a CPU
        # than avg_pool3d (a step of the 11% net spends most of its time here otherwise); the
        # running sum of squares never decreases, so no window comes out negative
        sq = F.pad(x * x, (0, 0, 0, 0, n // 2 + 1, (n - 1) // 2)).cumsum(1)
        window = sq[:, n:n + c] - sq[:, :c]
        return x * (1.0 + self.scale / n * window).pow(-self.power)


def _neuron(kind: str, activation: str) -> nn.Module | None:
    if kind == "ident":
        return None
    return nn.ReLU() if activation == "relu" else nn.Tanh()  # paper 3.1: ReLU vs f(x) = tanh(x)


def _pool(p: Pool) -> nn.Module:
    # ceil_mode: cuda-convnet's outputsX = ceil((in - sizeX) / stride) + 1 (layer.py)
    cls = nn.MaxPool2d if p.kind == "max" else nn.AvgPool2d
    return cls(p.size, p.stride, ceil_mode=True)


def _norm(n: Norm) -> nn.Module:
    cls = SameMapResponseNorm if n.kind == "rnorm" else CrossMapResponseNorm
    return cls(n.size, n.scale, n.pow)


def _pooled(size: int, p: Pool) -> int:
    return math.ceil((size - p.size) / p.stride) + 1


# --- the net ---------------------------------------------------------------------------------

class CudaConvNet(nn.Module):
    """One of NETS, layer by layer as its layer file lists them.

    Switches: model.activation (every neuron=relu becomes tanh with `tanh`, paper 3.1) and
    model.lrn (`cuda_convnet`: the file's rnorm/cmrnorm layers; `none`: dropped, paper 3.3).
    model.input_size is the side of the input crop (the file's provider: 32 or 24).
    """

    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__()
        if cfg.arch not in NETS:
            raise ValueError(f"CudaConvNet builds {', '.join(NETS)}, not {cfg.arch!r}")
        self.cfg, self.net = cfg, NETS[cfg.arch]
        mods: OrderedDict[str, nn.Module] = OrderedDict()
        channels, size = 3, cfg.input_size
        flat = False
        for spec in self.net.layers:
            if isinstance(spec, Norm):
                if cfg.lrn != "none":
                    mods[spec.name] = _norm(spec)
                continue
            if isinstance(spec, Pool):
                mods[spec.name] = _pool(spec)
                size = _pooled(size, spec)
            elif spec.kind == "fc":
                if not flat:
                    mods["flatten"] = nn.Flatten()
                    channels, flat = channels * size * size, True
                out = spec.filters or num_classes
                mods[spec.name] = nn.Linear(channels, out)
                channels = out
            elif spec.kind == "conv":
                mods[spec.name] = nn.Conv2d(channels, spec.filters, spec.size, padding=spec.padding)
                size = size + 2 * spec.padding - spec.size + 1
                channels = spec.filters
            else:
                layer = LocallyConnected2d(channels, spec.filters, size, spec.size, spec.padding)
                mods[spec.name] = layer
                size, channels = layer.out_size, spec.filters
            neuron = _neuron(spec.neuron, cfg.activation)
            if neuron is not None:
                mods[f"{spec.name}_neuron"] = neuron
        self.layers = nn.Sequential(mods)
        self.num_classes = num_classes
        self.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def weight_layers(self) -> list[tuple[str, nn.Module]]:
        return [(s.name, getattr(self.layers, s.name)) for s in self.net.layers if isinstance(s, Weights)]

    def reset_parameters(self) -> None:
        """initW * randn for the weights (layer.py make_weights), biases 0 (initB default)."""
        specs = {s.name: s for s in self.net.layers if isinstance(s, Weights)}
        for name, layer in self.weight_layers():
            nn.init.normal_(layer.weight, 0.0, specs[name].init_w)
            nn.init.zeros_(layer.bias)

    def optim_groups(self) -> list[dict]:
        """One optimizer group per tensor with the layer-params file's epsW/epsB and wc, as
        multipliers of train.lr (base 0.001) and train.weight_decay (base 0.004). A bias carries
        its layer's decay here; recipe.param_groups sets it to 0 unless train.bias_decay, which is
        the layer files' behaviour (the bias Weights are built with wc = 0 in layer.cu)."""
        groups = []
        for name, layer in self.weight_layers():
            learn = self.net.learn[name]
            groups.append({"params": [layer.weight], "name": f"{name}.weight",
                           "lr_mult": learn.eps_w / LR_BASE, "decay_mult": learn.wc / DECAY_BASE})
            groups.append({"params": [layer.bias], "name": f"{name}.bias",
                           "lr_mult": learn.eps_b / LR_BASE, "decay_mult": learn.wc / DECAY_BASE})
        return groups

    def table_names(self) -> dict[nn.Module, str]:
        """Module -> layer-file name (conv1, pool1, rnorm1, local3, fc10, ...) for layer_table."""
        return {m: n for n, m in self.layers.named_children() if not n.endswith("_neuron") and n != "flatten"}
