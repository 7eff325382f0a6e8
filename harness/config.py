"""params.yaml -> frozen, validated config objects.

The only module (with runtime) that reads params.yaml. Every field declares its type and
allowed range; an unknown key, a wrong type or a bad value raises ConfigError naming the
dotted key, before any stage does work.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.errors import UserError


class ConfigError(UserError):
    """params.yaml is wrong; the message names the key."""


def rule(default, *, lo=None, hi=None, choices=None, lo_open=False):
    """A dataclass field with validation metadata (bounds inclusive unless lo_open)."""
    meta = dict(lo=lo, hi=hi, choices=choices, lo_open=lo_open)
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for frozen defaults")
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class SyntheticConfig:
    num_classes: int = rule(20, lo=2, hi=1000)
    train_per_class: int = rule(200, lo=1)
    val_per_class: int = rule(50, lo=1)
    seed: int = rule(2012, lo=0)
    clutter: int = rule(6, lo=0, hi=50)  # distractor shapes per image
    noise: float = rule(12.0, lo=0.0, hi=128.0)  # pixel noise sd on 0-255


SOURCES = ("synthetic", "imagefolder", "cifar10", "ilsvrc2012", "ilsvrc2010", "fall2011")


@dataclass(frozen=True)
class Fall2011Config:
    """ImageNet Fall 2011 (ImageNet-21k) as a source (paper 6: the pre-training data; paper 6 and
    Table 2 footnote: Fall 2009's half/half protocol). docs/paper.md, "The Fall-2011 path"."""
    # holdout: every val_every-th image of each synset (in name order) is held out as a small
    # validation split for the pre-training's lr schedule (the paper does not say what drove it);
    # half: the Fall-2009 protocol, "half of the images for training and half for testing"
    # (paper 6), alternate images of each synset in name order
    split: str = rule("holdout", choices=("holdout", "half"))
    # which release data.root holds, as the user declares it (the layouts are the same): the
    # claims of paper 6 need fall2011 (pre-training) or fall2009 with split half (Table 2 note)
    release: str = rule("fall2011", choices=("fall2011", "fall2009", "winter21", "other"))
    val_every: int = rule(50, lo=2)
    # ILSVRC-2012 root (archives or extracted, as data.source ilsvrc2012): its validation images
    # are never trained on. null: no exclusion (reported as such in the manifest)
    exclude_root: str | None = rule(None)
    # also exclude images whose decoded pixels, fitted to data.image_size, equal a val image's
    # (catches re-encoded containers and stripped metadata); false: file bytes only
    exclude_pixels: bool = rule(True)
    # also exclude images whose perceptual hash (harness/prepare/phash.py) lies within this many
    # of 64 bits of a val image's: resized, re-compressed, brightened copies (not crops). 8 catches
    # every such copy of the sample JPEGs while no two distinct ones come closer than 16
    # (benchmarks/near_duplicates.py); null: off. It decodes every image once more.
    exclude_near: int | None = rule(8, lo=0, hi=32)
    # a documented list of keys ("<wnid>/<file>", one per line) to exclude as well, or null
    exclude_list: str | None = rule(None)


@dataclass(frozen=True)
class DataConfig:
    source: str = rule("synthetic", choices=SOURCES)
    root: str | None = rule(None)  # folder (or archives) of a real source; never downloaded
    image_size: int = rule(256, lo=16, hi=512)  # stored side; paper 256
    # paper 2: shorter side to 256, then the central 256x256 patch; "warp": whole image squashed
    resize: str = rule("crop", choices=("crop", "warp"))
    # JPEGs decoded at 1/2, 1/4 or 1/8 scale in libjpeg-turbo's DCT domain when the shorter side
    # stays >= image_size, before the antialiased resize: faster on large images, pixels differ
    # a little (paper 2 does not say how it down-sampled; harness/data/imaging.py)
    dct_scaling: bool = rule(False)
    # raw pixels (small data) or JPEG (ImageNet: 1.2M x 196 KB raw would be 250 GB);
    # auto: raw up to 2 GiB of pixels
    encoding: str = rule("auto", choices=("auto", "raw", "jpeg"))
    jpeg_quality: int = rule(90, lo=50, hi=100)
    shard_size: int = rule(4096, lo=1)  # images per shard file
    # unusable input files (corrupt, truncated, not images) are skipped and listed in the
    # manifest; above this fraction the stage fails and names them (0: fail on any)
    max_bad_fraction: float = rule(0.001, lo=0.0, hi=1.0)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    fall2011: Fall2011Config = field(default_factory=Fall2011Config)


# Architectures before and after the paper net (harness/model/successors.py, docs/successors.md):
# each trains with the harness's data pipeline, loop and recipe as an ablation arm.
SUCCESSOR_ARCHS = ("lenet5", "vgg11", "vgg16", "googlenet", "resnet18", "resnet50")
# The nets of harness/model/cuda_convnet.py (NETS there has the same names; a test checks).
CUDA_CONVNET_ARCHS = ("cuda_convnet_80sec", "cuda_convnet_18pct", "cuda_convnet_13pct", "cuda_convnet_11pct")


@dataclass(frozen=True)
class ModelConfig:
    # paper: two-tower grouped net; one_tower: paper 3.2's one-GPU net (half the kernels per
    # conv layer, last conv and FC layers full size); torchvision: the 2014 "one weird trick"
    # variant, a control only (docs/paper.md, "The architecture").
    # Successor and predecessor arms (docs/successors.md): lenet5 (LeCun et al. 1998, built here),
    # vgg11/vgg16, googlenet, resnet18/resnet50 (torchvision.models, weights=None, never downloaded).
    # cuda_convnet_*: the authors' CIFAR-10 nets from cuda-convnet's example layer files
    # (paper 3.1, 3.3; harness/model/cuda_convnet.py, docs/cifar10.md).
    arch: str = rule("paper", choices=("paper", "one_tower", "torchvision", *SUCCESSOR_ARCHS, *CUDA_CONVNET_ARCHS))
    width: float = rule(1.0, lo=0.0, hi=4.0, lo_open=True)  # 1.0 = paper's kernel counts
    towers: int = rule(2, choices=(1, 2))  # grouped two-tower net (paper 3.2)
    input_size: int = rule(224, lo=16, hi=512)  # crop side; paper 224 (pad 2) or 227 (pad 0)
    conv1_padding: int = rule(2, lo=0, hi=5)
    activation: str = rule("relu", choices=("relu", "tanh"))
    # cuda_convnet: the rnorm/cmrnorm layers of a cuda_convnet_* net's own layer files
    lrn: str = rule("paper", choices=("paper", "cuda_convnet2", "caffe", "cuda_convnet", "none"))
    # how LRN is computed, not what: fast (harness/model/lrn.py) or reference
    # (nn.LocalResponseNorm, built on avg_pool3d); equal to fp32 rounding, not bit for bit
    lrn_impl: str = rule("fast", choices=("fast", "reference"))
    pool: str = rule("overlap", choices=("overlap", "nonoverlap"))
    # What stands where the paper has LRN (after the ReLUs of conv1 and conv2, paper 3.3): lrn
    # (model.lrn's convention), or what replaced it: batchnorm, layernorm (each tower's maps per
    # image), groupnorm (groups within a tower), none (docs/successors.md, "Normalisation variants")
    norm: str = rule("lrn", choices=("lrn", "batchnorm", "layernorm", "groupnorm", "none"))
    # also after the ReLUs of conv3-conv5, as the common "AlexNet-BN" does (model.norm not lrn)
    norm_every_conv: bool = rule(False)
    dropout: float = rule(0.5, lo=0.0, hi=0.99)
    # paper 4.2: activations unscaled in training, multiplied by (1 - p) at test ("paper");
    # "inverted" is torch's nn.Dropout (x / (1 - p) in training): the same function at fixed
    # weights, not the same under SGD (docs/fidelity.md, "Dropout scaling")
    dropout_scaling: str = rule("paper", choices=("paper", "inverted"))
    init: str = rule("paper", choices=("paper", "kaiming"))
    # paper 5: bias of conv2, conv4, conv5, fc6 and fc7 (the others start at 0), under either init
    hidden_bias: float = rule(1.0, lo=0.0, hi=10.0)
    # paper 7 ablation: the net without one middle conv layer; the next layer reads the output
    # of the one before it (docs/fidelity.md, "Removing a middle conv layer")
    drop_conv: str = rule("none", choices=("none", "conv3", "conv4", "conv5"))
    # Multiplies mean-subtracted 0-255 pixels; paper: 1.0 (raw values).
    input_scale: float = rule(1.0, lo=0.0, lo_open=True, hi=1.0)
    # paper 6: the pre-trained CNNs have "an extra sixth convolutional layer over the last pooling
    # layer". Everything else about it is unstated; each choice is a switch, the reading is the
    # default (docs/paper.md, "The sixth conv layer"). The pre-train and fine-tune phases turn it
    # on (pretrain.*); off, the net and its training digest are exactly the five-conv net's.
    conv6: bool = rule(False)
    conv6_kernels: int = rule(256, lo=2)  # reading: conv5's 256 (both towers together)
    conv6_size: int = rule(3, lo=1, hi=7)  # reading: 3x3 as conv3-conv5
    conv6_padding: int = rule(1, lo=0, hi=3)  # reading: 1, keeps pool5's 6x6 map, so fc6 is unchanged
    # reading: own (each tower reads its own half, as conv4 and conv5); both: as conv3
    conv6_towers: str = rule("own", choices=("own", "both"))
    conv6_pool: bool = rule(False)  # reading: no pool after it (6x6 -> 2x2 would shrink fc6 9x)


@dataclass(frozen=True)
class TrainConfig:
    seeds: tuple[int, ...] = rule((1, 2, 3))
    epochs: int = rule(90, lo=1)
    batch_size: int = rule(128, lo=1)
    lr: float = rule(0.01, lo=0.0, lo_open=True, hi=10.0)
    momentum: float = rule(0.9, lo=0.0, hi=0.999)
    weight_decay: float = rule(5e-4, lo=0.0, hi=1.0)
    # Not stated in the paper; the authors' cuda-convnet code decays weights only, not biases
    # (docs/fidelity.md, "Weight decay on biases"). Applies to both update rules.
    bias_decay: bool = rule(False)
    warmup_epochs: float = rule(0.0, lo=0.0)
    lr_steps: tuple[int, ...] = rule(())  # epochs at which lr /= 10 (paper: 3 manual drops)
    pca_colour: bool = rule(True)  # paper 4.1 colour augmentation
    # paper 4.1: random crops and horizontal reflections; false: the centre crop, never flipped
    crop_flip: bool = rule(True)
    pca_std: float = rule(0.1, lo=0.0)  # paper 4.1: alpha_i ~ N(0, 0.1)
    pca_mode: str = rule("eigenvalue_01", choices=("eigenvalue_01", "sqrt_eigenvalue"))
    # paper 5: lr divided by 10 when validation error stops improving, 3 times. "plateau" is
    # that rule made deterministic (patience epochs without improvement, at most max_drops);
    # "steps" drops at the fixed epochs in lr_steps.
    schedule: str = rule("plateau", choices=("plateau", "steps"))
    patience: int = rule(3, lo=1)
    # plateau: an epoch is a new best only when its top-1 error is at least this many
    # percentage points below the best so far (a noise floor: on 50k images the binomial SE
    # is about 0.2 pp; docs/fidelity.md, "The plateau rule", and benchmarks/plateau_sim.py)
    plateau_threshold: float = rule(0.2, lo=0.0, hi=100.0)
    max_drops: int = rule(3, lo=0, hi=10)
    # which centre-crop error the plateau rule reads: "val" (the paper: the set it reports
    # on) or "holdout", every holdout_every-th training image (by index), left out of training
    schedule_split: str = rule("val", choices=("val", "holdout"))
    holdout_every: int = rule(25, lo=2)
    # paper: v <- 0.9 v - 0.0005 lr w - lr grad (velocity in parameter units);
    # torch: torch.optim.SGD (buffer in gradient units; differs right after an lr drop).
    update_rule: str = rule("paper", choices=("paper", "torch"))
    checkpoint_every: int = rule(0, lo=0)  # steps between checkpoints; 0: end of each epoch only
    devices: tuple[str, ...] = rule(("cpu",))  # one device: both towers; two: one tower each
    threads: int = rule(2, lo=1, hi=256)  # CPU threads: the bits depend on it
    num_workers: int = rule(0, lo=0, hi=64)  # DataLoader workers: logged for determinism
    # The GPU path (docs/architecture.md, "Determinism"). The defaults are today's fp32, bitwise-reproducible training.
    # fp32: IEEE fp32, TF32 off for matmuls and cuDNN convolutions (paper 5: GTX 580s, no
    # TF32); tf32: TF32 tensor cores for both (torch's default for cuDNN convolutions on
    # Ampere and later); bf16: autocast around forward and loss, weights and optimizer stay
    # fp32, the ops outside autocast IEEE fp32 (harness/accel.py configure_precision)
    precision: str = rule("fp32", choices=("fp32", "tf32", "bf16"))
    channels_last: bool = rule(False)  # NHWC model and batches: same function, other kernels
    compile: bool = rule(False)  # torch.compile; falls back to eager with a warning if it fails
    # false: cuDNN autotuning and non-deterministic algorithms: faster on GPUs, but the same
    # seed no longer gives bitwise-identical weights (docs/architecture.md, "Determinism")
    deterministic: bool = rule(True)
    # where JPEG shards are decoded and augmented; cuda: torchvision.io.decode_jpeg on the
    # first train device (decoders may differ from the CPU one by a unit per pixel)
    decode_device: str = rule("cpu", choices=("cpu", "cuda"))
    # Stop after the first epoch whose training top-1 error (percent) is at or below this: a
    # convergence run (paper 3.1) needs its series up to the crossing, not beyond. None: never.
    stop_at_train_error: float | None = rule(None, lo=0.0, hi=100.0)
    # Learning-rate selection (paper 3.1: "chosen independently to make training as fast as
    # possible"): before training, each factor runs the first lr_select_steps steps at
    # lr * factor from the run's own initial weights; the lowest training error over those
    # steps wins and the run trains at lr * that factor (harness/train/lr_select.py). (): off.
    lr_select_factors: tuple[float, ...] = rule(())
    lr_select_steps: int = rule(200, lo=1)
    # While the winner is the grid's largest (smallest) factor, the search tries the next one
    # beyond it at the grid's spacing, never a factor above this or below its inverse; a winner
    # still at an edge is recorded as at the limit, and Figure 1's claim is not decided on it
    # (docs/cifar10.md). None: the declared grid only (its edges are the limit).
    lr_select_limit: float | None = rule(None, lo=1.0)
    # torchrun from the pipeline (docs/scale-out.md): processes per machine and machines. 1 x 1 runs
    # plain python; more runs the stage under torchrun, one process per GPU (or per tower pair)
    # with the same layout as `devices` shifted onto each rank's own GPUs. train.batch_size
    # stays the global batch (paper 5: 128), split evenly over the processes. Not part of the
    # training digest (LAUNCH_KEYS): the result equals one process's within numerical tolerance.
    nproc_per_node: int = rule(1, lo=1, hi=1024)
    nnodes: int = rule(1, lo=1, hi=4096)

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes

    def __post_init__(self):
        if self.decode_device == "cuda" and not self.devices[0].startswith("cuda"):
            raise ConfigError(f"train.decode_device: cuda decodes on the first train device, but "
                              f"train.devices is {list(self.devices)}; use cpu or a cuda device")
        limit = self.lr_select_limit
        if limit is not None and self.lr_select_factors and not (
                1.0 / limit <= min(self.lr_select_factors) and max(self.lr_select_factors) <= limit):
            raise ConfigError(f"train.lr_select_limit: {limit:g} bounds the factors to [1/{limit:g}, {limit:g}], but "
                              f"train.lr_select_factors is {list(self.lr_select_factors)}; raise the limit or "
                              "narrow the grid")


@dataclass(frozen=True)
class EvaluateConfig:
    protocols: tuple[str, ...] = rule(("center", "ten_patch"))
    batch_size: int = rule(256, lo=1)
    # the split evaluated, ensembled and compared; "test" exists for ilsvrc2010 only (the
    # paper's 17.0% / 37.5% are on the ILSVRC-2010 test set, docs/paper.md "Headline results")
    split: str = rule("val", choices=("val", "test"))


@dataclass(frozen=True)
class EnsembleConfig:
    max_subsets: int = rule(50, lo=1)  # per ensemble size; all subsets when fewer
    subset_seed: int = rule(0, lo=0)


@dataclass(frozen=True)
class CompareConfig:
    """How claims are decided (docs/statistics.md). What "reproduced" means for each claim (its
    band) is declared in harness/analysis/claims.yaml, not here: one margin for every claim would
    let a zero effect reproduce a small one."""
    conf: float = rule(0.95, lo=0.5, hi=0.999)  # descriptive intervals (per run, across seeds)
    # decision level: reproduced iff the (1 - 2 alpha) interval lies inside the band, not
    # reproduced iff the (1 - alpha) interval lies outside it
    alpha: float = rule(0.05, lo=0.001, hi=0.25)
    power: float = rule(0.8, lo=0.5, hi=0.99)  # what `seeds needed` aims for
    multiplicity: str = rule("holm", choices=("holm", "none"))  # across the claims of one report
    # equivalence margin against the reference runs (same code and profile, other seeds), pp
    reference_margin_pp: float = rule(2.0, lo=0.0, lo_open=True)
    n_boot: int = rule(2000, lo=100)
    reference: str | None = rule("reports/reference/default.json")


@dataclass(frozen=True)
class ArmConfig:
    """One ablation arm: a name and the model.*/train.* values it changes (paper 3.1-4.2).

    overrides: ((dotted key, value), ...), e.g. (("model.lrn", "none"),); validated against
    ModelConfig/TrainConfig by apply_arm when the params are loaded.
    """
    name: str
    overrides: tuple[tuple[str, typing.Any], ...] = ()
    # The arm this one is compared with (`base:` in params), e.g. a net without LRN against the
    # same net with it; None: the baseline seeds (train.seeds). Only the comparison: the arm's
    # own overrides say everything it trains with, so DVC's params of its stages
    # (ablations.arms.<arm>) cover its whole config.
    base: str | None = None

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.overrides}


@dataclass(frozen=True)
class AblationsConfig:
    # Arms to train and evaluate (the dvc.yaml matrix iterates this list): [] = off, so the
    # default `dvc repro` trains no ablation group. A list, not true/false: DVC's matrix has
    # no conditionals, so the switch must be the list itself.
    enabled: tuple[str, ...] = rule(())
    # Convergence claims: epochs/iterations until the training top-1 error (percent, augmented
    # batches, dropout on) first falls to this value. Paper Fig. 1: 25% on CIFAR-10.
    target_train_error: float = rule(25.0, lo=0.0, lo_open=True, hi=100.0)
    arms: tuple[ArmConfig, ...] = rule(())

    def arm(self, name: str) -> ArmConfig:
        for a in self.arms:
            if a.name == name:
                return a
        raise ConfigError(f"ablations.arms: no arm named {name!r} (defined: "
                          f"{', '.join(a.name for a in self.arms) or 'none'})")


# The two training phases of paper 6's pre-trained CNNs; stages pass them where an arm goes
# (harness/stages open_stage), and apply_phase builds their config.
PHASES = ("pretrain", "finetune")


@dataclass(frozen=True)
class PretrainConfig:
    """paper 6: CNNs with a sixth conv layer trained "to classify the entire ImageNet Fall 2011
    release" and then "fine-tuned" on ILSVRC-2012 (docs/paper.md, "The Fall-2011 path"). The
    schedules of both phases and what fine-tuning re-initialises are unstated: switches here, the
    readings declared in every report. Every other train.* and model.* key is the baseline's."""
    # [] off; [fall2011] on. A list, as ablations.enabled: the DVC matrix of the pretrain,
    # finetune, evaluate_finetune and ensemble_finetune stages iterates it.
    enabled: tuple[str, ...] = rule((), choices=("fall2011",))
    seeds: tuple[int, ...] = rule((1, 2))  # paper 6: two such CNNs
    data: DataConfig = field(default_factory=lambda: DataConfig(source="fall2011"))
    epochs: int = rule(90, lo=1)  # pre-training epochs over Fall 2011 (unstated)
    lr: float = rule(0.01, lo=0.0, lo_open=True, hi=10.0)  # reading: the paper's initial lr (paper 5)
    lr_steps: tuple[int, ...] = rule(())  # with train.schedule steps
    finetune_epochs: int = rule(30, lo=1)  # unstated
    finetune_lr: float = rule(0.001, lo=0.0, lo_open=True, hi=10.0)  # reading: a tenth of the initial lr
    finetune_lr_steps: tuple[int, ...] = rule(())
    # re-initialised for fine-tuning, from this layer up (paper init, model.init); fc8 is always
    # new (22k -> 1000 classes). Reading: fc8 only, the smallest change that gives a new head.
    reinit: str = rule("fc8", choices=("fc8", "fc7", "fc6"))


@dataclass(frozen=True)
class TrackingConfig:
    uri: str | None = rule(None)  # None: SQLite store at the repository root
    experiment: str | None = rule(None)  # None: "<dataset>-<profile>"
    # Each seed's final weights also as an MLflow model (pt2, loads without pickle): the UI's
    # Models column and the registry. Off only to save the seconds and the copy (tests).
    log_models: bool = rule(True)


@dataclass(frozen=True)
class LaunchConfig:
    """Where the torchrun processes of train.nnodes > 1 meet. No stage depends on these keys (like
    tracking.*): they change where a seed trains, not what it trains, so changing them retrains
    nothing and a checkpoint stays resumable."""
    rdzv_endpoint: str | None = rule(None)  # host:port reachable from every node (train.nnodes > 1)
    # torchrun restarts all workers after one fails, up to this many times; each restart resumes
    # from the last checkpoint (train.checkpoint_every)
    max_restarts: int = rule(0, lo=0, hi=100)


@dataclass(frozen=True)
class Config:
    profile: str = rule("default")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    ablations: AblationsConfig = field(default_factory=AblationsConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    # Set by apply_arm only (never a params key): the ablation arm this config trains.
    arm: str | None = field(default=None, metadata={"internal": True})


def load_config(path: str | Path = "params.yaml") -> Config:
    """Read and validate params.yaml; raises ConfigError naming the offending key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    cfg = from_dict(raw)
    _check_cross_fields(cfg)
    _check_ablations(cfg)
    return cfg


# Keys that earlier versions accepted, with what to do instead.
REMOVED = {
    "ablations.seeds": "removed: every arm trains the seeds of train.seeds (the dvc.yaml matrix reads them "
                       "directly); delete this key",
}


def from_dict(raw: dict, cls: type = Config, prefix: str = "", base: typing.Any = None) -> typing.Any:
    """Build dataclass `cls` from a mapping, validating each key. Keys the mapping leaves out take
    their value from `base` when given (the enclosing field's default, e.g. pretrain.data's
    source fall2011), else from `cls`'s own defaults."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'params'}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if f"{prefix}{key}" in REMOVED:
            raise ConfigError(f"{prefix}{key}: {REMOVED[prefix + key]}")
        if key not in fields:
            near = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean {prefix}{near[0]}?)" if near else ""
            raise ConfigError(f"{prefix}{key}: unknown key{hint}")
    values = {}
    for name, f in fields.items():
        if name in raw:
            values[name] = _coerce(raw[name], hints[name], f.metadata, prefix + name, _field_default(f))
    return dataclasses.replace(base, **values) if base is not None else cls(**values)


def _field_default(f: dataclasses.Field) -> typing.Any:
    """The value a field takes when params leave it out (None when it has no default)."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _coerce(value, hint, meta, key, default=None):
    if dataclasses.is_dataclass(hint):
        # a partial mapping keeps the field's own default for what it leaves out: pretrain.data
        # given only a root must stay source fall2011, not DataConfig's synthetic
        return from_dict(value, hint, key + ".", default if dataclasses.is_dataclass(default) else None)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        return _coerce(value, hint, meta, key)
    if origin is tuple and args[0] is ArmConfig:
        return _parse_arms(value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        items = tuple(_coerce(v, args[0], {}, f"{key}[{i}]") for i, v in enumerate(value))
        _check_items(items, meta, key)
        return items
    value = _scalar(value, hint, key)
    _check_range(value, meta, key)
    return value


def _scalar(value, hint, key):
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {hint} for {key}")


def _check_range(value, meta, key):
    choices, lo, hi = meta.get("choices"), meta.get("lo"), meta.get("hi")
    if choices is not None and value not in choices:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        op = ">" if meta.get("lo_open") else ">="
        raise ConfigError(f"{key}: must be {op} {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise ConfigError(f"{key}: must be <= {hi}, got {value!r}")


def _check_items(items, meta, key):
    if key.endswith("seeds"):
        if not items:
            raise ConfigError(f"{key}: needs at least one seed")
        if len(set(items)) != len(items):
            raise ConfigError(f"{key}: duplicate seeds {sorted(items)}")
        if min(items) < 0:
            raise ConfigError(f"{key}: seeds must be >= 0")
    if key.endswith("devices"):
        if len(items) not in (1, 2):
            raise ConfigError(f"{key}: give one device (both towers) or two (one tower each), got {list(items)}")
        bad = [d for d in items if not (d == "cpu" or d == "cuda" or d.startswith("cuda:"))]
        if bad:
            raise ConfigError(f"{key}: unknown device {bad[0]!r} (use cpu, cuda or cuda:N)")
    if key.endswith("lr_select_factors"):
        if any(f <= 0 for f in items) or len(set(items)) != len(items):
            raise ConfigError(f"{key}: distinct positive multipliers of train.lr, got {list(items)}")
    if key.endswith("protocols"):
        bad = [p for p in items if p not in ("center", "ten_patch")]
        if bad or not items:
            raise ConfigError(f"{key}: protocols must be a non-empty list of center, ten_patch; got {list(items)}")


_ARM_NAME = re.compile(r"^[A-Za-z0-9_]+$")  # part of DVC stage names and of paths


def _parse_arms(raw, key: str) -> tuple[ArmConfig, ...]:
    """{name: {model: {...}, train: {...}}} -> ArmConfigs; the values are checked by apply_arm."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{key}: expected a mapping of arm name -> overrides, got {raw!r}")
    arms = []
    for name, body in raw.items():
        k = f"{key}.{name}"
        if not isinstance(name, str) or not _ARM_NAME.match(name):
            raise ConfigError(f"{k}: arm names may use letters, digits and _ only")
        body = {} if body is None else body
        if not isinstance(body, dict):
            raise ConfigError(f"{k}: expected a mapping like {{model: {{lrn: none}}}}, got {body!r}")
        base = body.get("base")
        if base is not None and (not isinstance(base, str) or base == name):
            raise ConfigError(f"{k}.base: the name of another arm, got {base!r}")
        overrides = []
        for section, values in body.items():
            if section == "base":
                continue
            if section not in ("model", "train"):
                raise ConfigError(f"{k}.{section}: an arm overrides model.* and train.* keys only (and may "
                                  "name a `base` arm)")
            if not isinstance(values, dict):
                raise ConfigError(f"{k}.{section}: expected a mapping, got {values!r}")
            for sub, v in values.items():
                if section == "train" and sub == "seeds":
                    raise ConfigError(f"{k}.train.seeds: every arm trains the seeds of train.seeds")
                overrides.append((f"{section}.{sub}", tuple(v) if isinstance(v, list) else v))
        arms.append(ArmConfig(name, tuple(overrides), base))
    return tuple(arms)


def apply_phase(cfg: Config, phase: str) -> Config:
    """The config of a pre-training phase (paper 6): the six-conv net (model.conv6 on) trained on
    pretrain.data with pretrain.epochs/lr/lr_steps ("pretrain"), or fine-tuned on data.* with the
    finetune_* schedule ("finetune"). The result carries arm = phase, so its training digest (and
    checkpoint folder) is its own; the fine-tune digest also holds the pre-training's."""
    p = cfg.pretrain
    model = dataclasses.replace(cfg.model, conv6=True)
    if phase == "pretrain":
        train = _one_device(dataclasses.replace(cfg.train, epochs=p.epochs, lr=p.lr, lr_steps=p.lr_steps))
        out = dataclasses.replace(cfg, data=p.data, model=model, train=train, arm=phase)
    elif phase == "finetune":
        train = _one_device(dataclasses.replace(cfg.train, epochs=p.finetune_epochs, lr=p.finetune_lr,
                                                lr_steps=p.finetune_lr_steps))
        out = dataclasses.replace(cfg, model=model, train=train, arm=phase)
    else:
        raise ConfigError(f"unknown training phase {phase!r}: expected one of {', '.join(PHASES)}")
    try:
        _check_cross_fields(out)
    except ConfigError as exc:
        raise ConfigError(f"pretrain.*: in the {phase} phase, {exc}") from None
    return out


def _check_bases(ab: AblationsConfig) -> None:
    """Every `base:` names a defined arm, and following bases ends at the baseline."""
    names = [a.name for a in ab.arms]
    for arm in ab.arms:
        chain = [arm.name]
        while arm.base is not None:
            if arm.base not in names:
                raise ConfigError(f"ablations.arms.{chain[0]}.base: no arm named {arm.base!r} "
                                  f"(defined: {', '.join(names)})")
            if arm.base in chain:
                raise ConfigError(f"ablations.arms.{chain[0]}.base: the bases form a cycle "
                                  f"({' -> '.join(chain)} -> {arm.base})")
            chain.append(arm.base)
            arm = ab.arm(arm.base)


def apply_arm(cfg: Config, name: str) -> Config:
    """The config of ablation arm `name`: cfg with the arm's model.*/train.* overrides applied.

    The one place an arm changes the config; every stage of the arm (train, evaluate) goes
    through it. The result carries `arm`, so training_digest differs from the baseline's.
    """
    overrides = cfg.ablations.arm(name).overrides
    d = to_dict(cfg)
    sections = {"model": d["model"], "train": d["train"]}
    for dotted, value in overrides:
        section, sub = dotted.split(".", 1)
        sections[section][sub] = list(value) if isinstance(value, tuple) else value
    one_device = sections["model"]["arch"] != "paper" or sections["model"].get("drop_conv", "none") != "none" \
        or sections["model"].get("norm", "lrn") not in ("lrn", "none")
    if one_device and len(sections["train"]["devices"]) == 2 \
            and not any(k == "train.devices" for k, _ in overrides):
        # paper 3.2's one-GPU net, the controls and the nets without a middle conv layer run on
        # one device: the first of the two
        sections["train"]["devices"] = sections["train"]["devices"][:1]
    prefix = f"ablations.arms.{name}."
    out = dataclasses.replace(cfg, model=from_dict(sections["model"], ModelConfig, prefix + "model."),
                              train=from_dict(sections["train"], TrainConfig, prefix + "train."), arm=name)
    try:
        _check_cross_fields(out)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}*: with this arm's overrides, {exc}") from None
    return out


def _check_ablations(cfg: Config) -> None:
    ab = cfg.ablations
    names = [a.name for a in ab.arms]
    for i, name in enumerate(ab.enabled):
        if name not in names:
            raise ConfigError(f"ablations.enabled[{i}]: no arm named {name!r} in ablations.arms "
                              f"(defined: {', '.join(names) or 'none'})")
    if len(set(ab.enabled)) != len(ab.enabled):
        raise ConfigError(f"ablations.enabled: an arm is listed twice: {list(ab.enabled)}")
    _check_bases(ab)
    for name in ab.enabled:
        base = ab.arm(name).base
        if base is not None and base not in ab.enabled:
            raise ConfigError(f"ablations.enabled: arm {name!r} is compared with its base arm {base!r}, "
                              f"which is not enabled; add {base} to ablations.enabled")
    for arm in ab.arms:  # every arm, enabled or not: a typo fails now, not hours later
        if arm.name in PHASES:
            raise ConfigError(f"ablations.arms.{arm.name}: the name of a pre-training phase (pretrain.*); rename the arm")
        apply_arm(cfg, arm.name)
    for i, name in enumerate(cfg.pretrain.enabled):
        if name != "fall2011":
            raise ConfigError(f"pretrain.enabled[{i}]: {name!r} is not a pre-training source (expected fall2011)")
    if len(set(cfg.pretrain.enabled)) != len(cfg.pretrain.enabled):
        raise ConfigError("pretrain.enabled: fall2011 is listed twice")
    if cfg.pretrain.enabled and cfg.pretrain.data.source != "fall2011":
        raise ConfigError(f"pretrain.data.source: the pre-training data is ImageNet Fall 2011 (fall2011), "
                          f"not {cfg.pretrain.data.source!r}")
    if cfg.pretrain.enabled:  # both phases checked now, not after days of pre-training
        for phase in PHASES:
            apply_phase(cfg, phase)


def arm_config(cfg: Config, name: str) -> Config:
    """The config an arm-like stage argument names: a pre-training phase or an ablation arm."""
    return apply_phase(cfg, name) if name in PHASES else apply_arm(cfg, name)


def final_map_size(m: ModelConfig, size: int | None = None) -> int:
    """Side of the conv5 output after pool3 (paper 3.5: 6 at 224 with padding 2)."""
    k, st = (3, 2) if m.pool == "overlap" else (2, 2)
    s = (size or m.input_size) + 2 * m.conv1_padding
    s = (s - 11) // 4 + 1
    for _ in range(3):
        s = (s - k) // st + 1 if s >= k else 0
    return s


# paper 3.5 / Fig. 2: fc6 reads 6x6 maps of conv5. From this input size on the net is at the
# paper's scale, and any other map size means a wrong input/padding pair (224 without padding
# gives 5x5), which AdaptiveAvgPool2d would otherwise stretch to 6x6 without a word.
PAPER_SCALE_INPUT = 224


def _check_fc6_input(m: ModelConfig) -> None:
    if m.arch == "torchvision" or m.arch in SUCCESSOR_ARCHS or m.input_size < PAPER_SCALE_INPUT:
        return  # the control pools its own way; small profiles: a reported departure
    side = final_map_size(m)
    if side != 6:
        raise ConfigError(
            f"model.conv1_padding: at input {m.input_size} with padding {m.conv1_padding}, conv5's pooled maps "
            f"are {side}x{side}, not the paper's 6x6 (fc6 would read resampled maps); use 224 with padding 2 "
            "or 227 with padding 0 (docs/paper.md, ambiguities)")


def conv6_map_size(m: ModelConfig) -> int:
    """Side of conv6's output over the pooled conv5 map (paper 6), before its optional pool."""
    return final_map_size(m) + 2 * m.conv6_padding - m.conv6_size + 1


def _check_conv6(cfg: Config) -> None:
    m = cfg.model
    if not m.conv6:
        return
    if m.arch != "paper" or m.drop_conv != "none":
        raise ConfigError(f"model.conv6: the sixth conv layer extends the paper net (arch paper, drop_conv none), "
                          f"not arch {m.arch!r} with drop_conv {m.drop_conv!r}")
    side = conv6_map_size(m)
    need = 3 if m.conv6_pool else 1
    if side < need:
        raise ConfigError(f"model.conv6_size: a {m.conv6_size}x{m.conv6_size} kernel with padding {m.conv6_padding} "
                          f"over the {final_map_size(m)}x{final_map_size(m)} pool5 map leaves {side}x{side}"
                          + (", too small for model.conv6_pool (3/2)" if m.conv6_pool else "")
                          + "; use a larger model.input_size or model.conv6_padding")
    if m.input_size >= PAPER_SCALE_INPUT and side != 6 and not m.conv6_pool:
        raise ConfigError(f"model.conv6_padding: conv6 gives {side}x{side} maps, not pool5's 6x6; fc6 would read "
                          "resampled maps (use padding (conv6_size - 1) / 2)")
    if len(cfg.train.devices) == 2:
        raise ConfigError("train.devices: the six-conv net trains on one device (its two-device tower layout is "
                          "not built); use one device per process (train.nproc_per_node for more)")


def _one_device(train: TrainConfig) -> TrainConfig:
    # Departure (docs/paper.md, "The sixth conv layer"): the six-conv net's two-device tower layout is not
    # built; on [cuda:0, cuda:1] its phases hold both towers as grouped convolutions on the first device.
    return dataclasses.replace(train, devices=train.devices[:1]) if len(train.devices) == 2 else train


# Smallest crop each successor takes: VGG, GoogLeNet and ResNet downsample by 32 (a 1x1 final map
# at 32 px); LeNet-5's C5 kernel covers the whole S4 map, which needs S4 >= 1 (docs/successors.md).
SUCCESSOR_MIN_INPUT = {"lenet5": 16, "vgg11": 32, "vgg16": 32, "googlenet": 32, "resnet18": 32, "resnet50": 32}


def _check_successor(cfg: Config) -> None:
    m = cfg.model
    if m.arch in SUCCESSOR_ARCHS and m.input_size < SUCCESSOR_MIN_INPUT[m.arch]:
        raise ConfigError(f"model.input_size: model.arch {m.arch} needs crops of at least "
                          f"{SUCCESSOR_MIN_INPUT[m.arch]} px, got {m.input_size}")
    if m.norm != "lrn" and m.arch not in ("paper", "one_tower"):
        raise ConfigError(f"model.norm: replaces the LRN of the paper net (arch paper or one_tower), "
                          f"not of model.arch {m.arch}")
    if m.norm_every_conv and m.norm == "lrn":
        raise ConfigError("model.norm_every_conv: puts model.norm after every conv layer; with model.norm lrn "
                          "choose batchnorm, layernorm or groupnorm")
    if len(cfg.train.devices) == 2 and m.norm not in ("lrn", "none"):
        raise ConfigError(f"train.devices: two devices hold the towers of the paper net with LRN or none; "
                          f"model.norm {m.norm} (learned per-channel parameters) trains on one device")


def min_input_size(m: ModelConfig) -> int:
    return next(s for s in range(11, 1024) if final_map_size(m, s) >= 1)


def _check_cross_fields(cfg: Config) -> None:
    if cfg.data.source != "synthetic" and not cfg.data.root:
        raise ConfigError(f"data.root: data.source {cfg.data.source!r} needs the folder that holds it")
    if cfg.evaluate.split == "test" and cfg.data.source != "ilsvrc2010":
        raise ConfigError(f"evaluate.split: only ilsvrc2010 has a labelled test split, "
                          f"not data.source {cfg.data.source!r}; use val")
    if cfg.model.input_size > cfg.data.image_size:
        raise ConfigError(
            f"model.input_size: crop {cfg.model.input_size} is larger than the stored "
            f"data.image_size {cfg.data.image_size}")
    if cfg.model.arch in CUDA_CONVNET_ARCHS:
        _check_cuda_convnet(cfg)
        _check_train(cfg)
        return
    if cfg.model.lrn == "cuda_convnet":
        raise ConfigError(f"model.lrn: cuda_convnet is the normalisation of the cuda_convnet_* nets' layer "
                          f"files; model.arch {cfg.model.arch!r} takes paper, cuda_convnet2, caffe or none")
    if cfg.model.arch not in SUCCESSOR_ARCHS and final_map_size(cfg.model) < 1:
        raise ConfigError(
            f"model.input_size: {cfg.model.input_size} px is too small for conv1 (11/4) and three "
            f"{'3/2' if cfg.model.pool == 'overlap' else '2/2'} poolings; use at least "
            f"{min_input_size(cfg.model)}")
    if cfg.model.towers == 2 and cfg.model.width * 96 < 2:
        raise ConfigError("model.width: too small for two towers")
    _check_train(cfg)


# What a cuda_convnet_* net takes from its layer files, as the ModelConfig key holding the same
# thing for the paper net: key -> (the only value that describes the file, why).
_CUDA_CONVNET_FIXED = {
    "width": (1.0, "the nets are built at their layer files' sizes"),
    "towers": (1, "the layer files describe one-tower nets"),
    "pool": ("overlap", "the layer files pool 3x3 at stride 2"),
    "dropout": (0.0, "the layer files have no dropout"),
    "init": ("paper", "`paper` means the layer files' initW here"),
    "conv1_padding": (2, "the layer files pad conv1 by 2"),
    "hidden_bias": (0.0, "every bias starts at its layer file's initB, 0"),
    "drop_conv": ("none", "the layer files' nets are built whole"),
}


def _check_cuda_convnet(cfg: Config) -> None:
    """The cuda-convnet CIFAR nets: the paper net's switches that they do not have stay at the value
    their layer files imply, so nothing is silently ignored (docs/cifar10.md)."""
    m = cfg.model
    for key, (value, why) in _CUDA_CONVNET_FIXED.items():
        if getattr(m, key) != value:
            raise ConfigError(f"model.{key}: {m.arch} needs {value!r} ({why}), got {getattr(m, key)!r}")
    if m.lrn not in ("cuda_convnet", "none"):
        raise ConfigError(f"model.lrn: {m.arch} takes cuda_convnet (its layer files' response normalisation) "
                          f"or none, not {m.lrn!r}")
    if cfg.train.update_rule != "paper":
        raise ConfigError(f"train.update_rule: {m.arch} uses per-layer learning rates and weight decay, "
                          "which the paper rule (cuda-convnet's own update) carries; set paper")


def _check_train(cfg: Config) -> None:
    if len(cfg.train.devices) == 2 and cfg.model.arch != "paper":
        raise ConfigError("train.devices: two devices hold the two towers of model.arch 'paper' only")
    if cfg.train.batch_size % cfg.train.world_size:
        raise ConfigError(f"train.batch_size: {cfg.train.batch_size} does not split evenly over train.nproc_per_node "
                          f"x train.nnodes = {cfg.train.world_size} processes")
    if cfg.train.nnodes > 1 and not re.fullmatch(r"[^\s:]+:\d+", cfg.launch.rdzv_endpoint or ""):
        raise ConfigError(f"launch.rdzv_endpoint: train.nnodes {cfg.train.nnodes} needs the host:port where the "
                          f"nodes meet (torchrun's c10d rendezvous), got {cfg.launch.rdzv_endpoint!r}")
    if len(cfg.train.devices) == 2 and cfg.model.drop_conv != "none":
        raise ConfigError(f"train.devices: two devices hold the towers of the full paper net; "
                          f"model.drop_conv {cfg.model.drop_conv} trains on one device")
    if cfg.model.drop_conv != "none" and cfg.model.arch not in ("paper", "one_tower"):
        raise ConfigError("model.drop_conv: removes a layer of the paper net (arch paper or one_tower), "
                          f"not of model.arch {cfg.model.arch}")
    _check_fc6_input(cfg.model)
    _check_conv6(cfg)
    _check_successor(cfg)
    if cfg.train.schedule_split == "holdout" and cfg.train.schedule != "plateau":
        raise ConfigError("train.schedule_split: holdout drives the plateau schedule only; with "
                          f"train.schedule {cfg.train.schedule} it would take images from training for nothing")
    if any(s < 1 for s in cfg.train.lr_steps):
        raise ConfigError(f"train.lr_steps: each step is an epoch number >= 1, got {list(cfg.train.lr_steps)}")


def lr_steps_note(cfg: Config) -> str | None:
    """What a shortened run does with its fixed lr drops, or None when every drop happens.

    train.lr_steps are epoch numbers (the recipe drops the lr once the epoch counter reaches a
    step, harness/train/recipe.py lr_at), so a step at or past train.epochs lies where the run
    has already ended: such a run is the longer schedule stopped early, as the paper's run would
    be if stopped before its plateaus (paper 5). Accepted, not refused, so `dvc exp run -S
    train.epochs=N` works for any N; the note says so. The schedule that follows training at any
    length is the paper's own rule, train.schedule plateau."""
    t = cfg.train
    late = [s for s in t.lr_steps if s >= t.epochs]
    if t.schedule != "steps" or not late:
        return None
    kept = [s for s in t.lr_steps if s < t.epochs]
    drops = f"lowers the lr after epoch(s) {', '.join(map(str, kept))} only" if kept else "never lowers the lr"
    room = f"set train.lr_steps to epochs in 1..{t.epochs - 1}, or" if t.epochs > 1 else "a one-epoch run has no room; use"
    return (f"note: train.lr_steps {', '.join(map(str, late))} lie at or past train.epochs ({t.epochs}), where the "
            f"run has ended: this run {drops}. To drop it within the run, {room} train.schedule plateau "
            "(paper 5: lr / 10 when the validation error stops improving, at any run length)")


def notes(cfg: Config) -> list[str]:
    """What the validated params will do that a user may not expect (today: fixed lr drops past the
    end of a shortened run), for the baseline, every enabled arm and every enabled training phase."""
    runs = [("", cfg)] + [(f"ablations.arms.{a}: ", apply_arm(cfg, a)) for a in cfg.ablations.enabled]
    if cfg.pretrain.enabled:
        runs += [(f"pretrain ({phase} phase): ", apply_phase(cfg, phase)) for phase in PHASES]
    return [prefix + note for prefix, run in runs if (note := lr_steps_note(run))]


def evaluated_split(cfg: Config) -> str:
    """The evaluated split in the paper's terms. CIFAR-10 has no validation set: the harness
    prepares its official test batch as `val` (harness/prepare/sources.py CIFAR_SPLITS), so what
    is evaluated there is the paper's CIFAR-10 test error (paper 3.3)."""
    if cfg.data.source == "cifar10" and cfg.evaluate.split == "val":
        return "test"
    return cfg.evaluate.split


def to_dict(cfg) -> dict:
    """Plain nested dict (lists instead of tuples) for logging and JSON."""
    def conv(v):
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v
    return conv(dataclasses.asdict(cfg))


def flatten(d: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1} for MLflow params."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def training_digest(cfg: Config) -> str:
    """Digest of everything that shapes one seed's result (data, model, train minus seeds).

    A reference distribution is comparable with a run only when the digests agree.
    """
    import hashlib
    import json
    return hashlib.sha256(json.dumps(training_config(cfg), sort_keys=True).encode()).hexdigest()[:16]


# train.* keys that say how many processes train, not what: left out of the training digest, so a
# checkpoint of the same run resumes (or is refused by its process count, with a message), and a
# reference distribution stays comparable. They are still DVC params of the train stage.
LAUNCH_KEYS = ("nproc_per_node", "nnodes")
# model.* keys added after the committed reference runs and checkpoints: at their default (the
# paper's net, unchanged) they are left out of the digest, so those stay comparable and resumable.
DIGEST_QUIET_DEFAULTS = {"norm": "lrn", "norm_every_conv": False}
# train.* keys of the same kind (the learning-rate search's limit, null: the grid alone, as before it existed)
TRAIN_DIGEST_QUIET_DEFAULTS = {"lr_select_limit": None}


def training_config(cfg: Config) -> dict:
    """The params that shape one seed's weights: data, model and train without the seed list
    and the process counts (LAUNCH_KEYS)."""
    d = to_dict(cfg)
    for key in ("seeds", *LAUNCH_KEYS):
        d["train"].pop(key)
    for key, default in DIGEST_QUIET_DEFAULTS.items():
        if d["model"].get(key) == default:
            d["model"].pop(key)
    for key, default in TRAIN_DIGEST_QUIET_DEFAULTS.items():
        if key in d["train"] and d["train"][key] == default:
            d["train"].pop(key)
    out = {k: d[k] for k in ("data", "model", "train")}
    if not cfg.model.conv6:  # the five-conv net keeps the digest it had before these keys existed
        out["model"] = {k: v for k, v in out["model"].items() if not k.startswith("conv6")}
    if cfg.data.source != "fall2011":  # the same for the data of every other source
        out["data"] = {k: v for k, v in out["data"].items() if k != "fall2011"}
    if cfg.arm == "finetune":  # fine-tuned weights depend on the pre-trained ones and what is re-initialised
        out["pretrain"] = training_config(apply_phase(cfg, "pretrain"))
        out["reinit"] = cfg.pretrain.reinit
    if cfg.arm is not None:  # an arm never shares a digest (or reference runs) with the baseline
        out["arm"] = cfg.arm
    return out
