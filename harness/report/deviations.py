"""Every interpretation of the paper's ambiguities, and every departure from it (docs/architecture.md, house rules 8
and 14, docs/architecture.md).

Two lists, both from the resolved config alone:

- interpretations(cfg): every place where the paper can be read more than one way (docs/paper.md,
  "Ambiguities"; docs/fidelity.md), on every run, at its default too: what the paper says, the
  reading this run uses, the alternatives, the switch and where in the code it acts.
- deviations(cfg): the departures, i.e. values where this run does something other than what
  the paper states. The config dataclasses' defaults ARE the paper's recipe (docs/paper.md),
  so a departure is a resolved value that differs from its default on a key where the paper
  states the value (keys where it is silent are interpretations, never departures), plus what
  holds in every run (a rule instead of manual lr drops), the dataset and the evaluation split.
"""

from __future__ import annotations

from harness import config as C

# --- departures: keys where the paper states the value (docs/paper.md, "The recipe as printed")

# Why each switch exists and where it acts in code.
WHERE = {
    "data.source": ("the dataset", "harness/prepare/writer.py, harness/prepare/synthetic.py"),
    "data.image_size": ("stored image side (paper 2: 256x256)", "harness/prepare/writer.py"),
    "data.resize": ("whole image warped to a square instead of the centre crop (paper 2)", "harness/data/imaging.py fit"),
    "data.dct_scaling": ("large JPEGs decoded at 1/2-1/8 scale in the DCT domain before the resize (paper 2 does not "
                         "say how it down-sampled)", "harness/data/imaging.py dct_factor"),
    "model.width": ("kernels per layer scaled (paper 3.5: 96-256-384-384-256, fc 4096)", "harness/model/alexnet.py conv_channels/fc_width"),
    "model.arch": ("another network: paper 3.2's one-GPU net (one_tower), torchvision's 2014 variant (a control), "
                   "a predecessor/successor (lenet5, vgg11/16, googlenet, resnet18/50; docs/successors.md) or one of "
                   "the authors' CIFAR-10 nets (paper 3.1, 3.3; docs/cifar10.md, the report's CIFAR-10 section)",
                   "harness/model/build.py build_model, harness/model/successors.py, harness/model/cuda_convnet.py"),
    "model.towers": ("no grouping: one full-width tower instead of two", "harness/model/alexnet.py AlexNet"),
    "model.input_size": ("crop side (paper 4.1: 224)", "harness/data/transforms.py; harness/model/alexnet.py pool6 keeps fc6 at 6x6"),
    "model.conv1_padding": ("conv1 padding (224 needs 2, 227 needs 0)", "harness/model/alexnet.py"),
    "model.activation": ("tanh instead of ReLU (paper 3.1 ablation)", "harness/model/alexnet.py"),
    "model.lrn": ("LRN convention (paper 3.3: k=2, n=5, alpha=1e-4, beta=0.75)", "harness/model/layers.py LRN_CONVENTIONS"),
    "model.pool": ("non-overlapping pooling (paper 3.4 ablation)", "harness/model/alexnet.py"),
    "model.dropout": ("dropout rate (paper 4.2: 0.5)", "harness/model/alexnet.py"),
    "model.dropout_scaling": ("torch's inverted dropout (x / (1 - p) in training) instead of the paper's unscaled "
                              "training and x (1 - p) at test (paper 4.2): the same function at fixed weights, not "
                              "under SGD (equal to the paper's with fc7/fc8 init sd x2, their lr x4 and weight decay "
                              "/4; docs/fidelity.md)", "harness/model/layers.py dropout_layer"),
    "model.init": ("initialisation (paper 5: N(0, 0.01))", "harness/model/alexnet.py init_weights"),
    "model.hidden_bias": ("bias of conv2/4/5 and fc6/7 at init (paper 5: 1)", "harness/model/alexnet.py init_weights"),
    "model.norm": ("what stands where the paper has LRN (paper 3.3): batchnorm, layernorm, groupnorm or none "
                   "(docs/successors.md)", "harness/model/layers.py norm_layer"),
    "model.norm_every_conv": ("the norm after every conv layer, not only conv1/conv2 (\"AlexNet-BN\")",
                              "harness/model/alexnet.py _layers"),
    "model.drop_conv": ("a middle conv layer removed (paper 7 ablation)", "harness/model/alexnet.py _middle_convs"),
    "model.input_scale": ("input scale (paper 2: raw 0-255 minus mean)", "harness/data/transforms.py Normaliser"),
    "train.epochs": ("training length (paper 5: about 90 epochs)", "harness/train/loop.py fit"),
    "train.batch_size": ("batch size (paper 5: 128)", "harness/train/loop.py"),
    "train.lr": ("learning rate (paper 5: 0.01)", "harness/train/recipe.py lr_at"),
    "train.momentum": ("momentum (paper 5: 0.9)", "harness/train/recipe.py make_optimizer"),
    "train.weight_decay": ("weight decay (paper 5: 0.0005)", "harness/train/recipe.py make_optimizer"),
    "train.warmup_epochs": ("linear learning-rate warm-up (not in the paper)", "harness/train/recipe.py lr_at"),
    "train.schedule": ("fixed lr steps instead of drops when validation error stops improving (paper 5)", "harness/train/recipe.py lr_at, update_plateau"),
    "train.lr_steps": ("epochs of the fixed lr drops", "harness/train/recipe.py lr_at"),
    "train.max_drops": ("number of lr drops (paper 5: 3)", "harness/train/recipe.py update_plateau"),
    "train.schedule_split": ("the plateau rule reads a held-out slice of the training set, left out of training, "
                             "instead of the validation set the paper decided on (paper 5); val then stays "
                             "untouched by training decisions", "harness/data/shards.py holdout_split, "
                             "harness/train/loop.py fit"),
    "train.update_rule": ("torch.optim.SGD instead of the paper's update (velocity in parameter units)", "harness/train/recipe.py make_optimizer, PaperSGD"),
    "train.pca_colour": ("PCA colour augmentation (paper 4.1)", "harness/data/transforms.py pca_shift"),
    "train.pca_std": ("PCA colour alpha sd (paper 4.1: 0.1)", "harness/data/transforms.py"),
    "train.crop_flip": ("centre crop, never flipped, instead of random crops and reflections (paper 4.1 ablation)",
                        "harness/data/transforms.py epoch_draws"),
    "train.stop_at_train_error": ("training stops at the first epoch at or below this training top-1 error (paper 3.1, "
                                  "Figure 1: the CIFAR-10 nets to 25%); the ImageNet recipe trains all its epochs "
                                  "(paper 5)", "harness/stages/train.py"),
    "train.lr_select_factors": ("the learning rate chosen among these multiples before training (paper 3.1: each "
                                "CIFAR-10 net at its own best lr); the ImageNet recipe uses 0.01 (paper 5)",
                                "harness/train/lr_select.py, harness/stages/train.py"),
    "evaluate.protocols": ("the evaluation protocols run (paper 4.1 and 6: the 10-patch average, and one patch in "
                           "Table 1's footnote); a claim on a protocol not run is not tested",
                           "harness/stages/evaluate.py"),
    "train.precision": ("fp32 arithmetic on GTX 580s in the paper (paper 5); tf32: TF32 tensor cores for matmuls "
                        "and cuDNN convolutions (10-bit mantissa inputs); bf16: autocast in the forward pass and "
                        "loss, weights and updates fp32", "harness/accel.py configure_precision, autocast"),
}

# Keys that never count as a departure, and why: how and where a run executes, how claims are
# decided and reported, the ablation and pre-training experiments (listed with their own rows),
# and readings of what the paper leaves unstated (interpretations). A key under none of WHERE and
# these is still listed when it differs from the paper (_other_rows): a key a preset or a user
# sets away from the paper always shows, a new key included.
NOT_RECIPE = {
    "profile": "a label", "arm": "set by the stages, never a params key",
    "data.root": "where the data lies", "data.encoding": "how prepared images are stored (the paper does not say)",
    "data.jpeg_quality": "how prepared images are stored (the paper does not say)",
    "data.shard_size": "storage", "data.max_bad_fraction": "a gate on unreadable files (listed in the manifest)",
    "data.synthetic": "only with data.source synthetic, itself a departure row",
    "data.fall2011": "the pre-training data (interpretation rows of paper 6)",
    "model.lrn_impl": "the same function, another kernel", "model.conv6": "paper 6's sixth conv layer "
    "(interpretation rows)", "model.conv6_kernels": "interpretation rows of paper 6",
    "model.conv6_size": "interpretation rows of paper 6", "model.conv6_padding": "interpretation rows of paper 6",
    "model.conv6_towers": "interpretation rows of paper 6", "model.conv6_pool": "interpretation rows of paper 6",
    "train.seeds": "how many runs, not how each trains", "train.devices": "where the towers run (the same function)",
    "train.patience": "the plateau rule's reading (interpretations)",
    "train.plateau_threshold": "the plateau rule's reading (interpretations)",
    "train.holdout_every": "listed with train.schedule_split", "train.checkpoint_every": "resumption only",
    "train.threads": "execution", "train.num_workers": "execution", "train.channels_last": "the same function",
    "train.compile": "the same function", "train.deterministic": "execution (bitwise reproducibility)",
    "train.decode_device": "execution", "train.nproc_per_node": "execution (the global batch is kept)",
    "train.nnodes": "execution (the global batch is kept)",
    "evaluate.batch_size": "execution", "evaluate.split": "its own row (evaluation split)",
    "ensemble": "analysis", "compare": "how claims are decided (docs/statistics.md)", "tracking": "logging",
    "launch": "execution", "ablations": "the ablation experiments, each arm in its own section",
    "pretrain": "paper 6's pre-training (interpretation rows)",
}


def _not_recipe(key: str) -> bool:
    """Never a departure: NOT_RECIPE, or a key whose readings the interpretations list."""
    return key in {k for _, k, *_ in AMBIGUITIES if k} or any(key == k or key.startswith(k + ".") for k in NOT_RECIPE)


def _other_rows(paper: dict, ours: dict) -> list[dict]:
    """Keys without a note of their own that differ from the paper (set by a preset or by hand)."""
    return [{"key": key, "paper": paper.get(key), "ours": value,
             "why": "set away from the paper's recipe (by a preset or in params.yaml)", "where": "params.yaml"}
            for key, value in ours.items()
            if key not in WHERE and not _not_recipe(key) and value != paper.get(key)]


# Departures that hold in every configuration of this version.
ALWAYS = [
    {"key": "lr schedule", "paper": "divided by 10 by hand when validation error stopped improving",
     "ours": "a rule: train.schedule (plateau: patience epochs without a new best by train.plateau_threshold) "
             "or fixed steps",
     "why": "a human decision cannot be replayed", "where": "harness/train/recipe.py update_plateau"},
]

# The paper evaluates ILSVRC-2010 on its test set and ILSVRC-2012 on validation (docs/paper.md).
SPLIT_ROW = {"key": "evaluation split", "paper": "test set (ILSVRC-2010) or validation (ILSVRC-2012)",
             "why": "only ILSVRC-2010 has a labelled test set", "where": "harness/stages/evaluate.py run_evaluate"}


def schedule_reads(cfg: C.Config) -> str:
    """Which split the lr schedule reads, in words (the report states it in every run)."""
    t = cfg.train
    if t.schedule == "steps":
        return f"no split: fixed lr drops after epochs {list(t.lr_steps) or 'none'}"
    if t.schedule_split == "holdout":
        return (f"a held-out slice of the training set (every {t.holdout_every}th training image by index, "
                "left out of training), not val")
    return "the val split (as in the paper, which decided on the validation set it reports on)"


def _split_row(cfg: C.Config) -> dict | None:
    paper_split = {"ilsvrc2010": "test", "ilsvrc2012": "val"}.get(cfg.data.source)
    if cfg.evaluate.split == paper_split:
        return None
    ours = cfg.evaluate.split
    if ours == "val":
        sees = cfg.train.schedule == "plateau" and cfg.train.schedule_split == "val"
        ours = ("the val split, which also drives the lr schedule (plateau rule on val)" if sees
                else f"the val split; the lr schedule reads {schedule_reads(cfg)}")
    return {**SPLIT_ROW, "ours": ours}


def _fc6_row(m: C.ModelConfig) -> dict | None:
    """Small profiles: conv5's pooled maps are resampled to 6x6 before fc6 (never silently)."""
    if m.arch == "torchvision":
        return None
    side = C.final_map_size(m)
    if side == 6:
        return None
    return {"key": "fc6 input", "paper": "6x6 maps of conv5 after pool5 (paper 3.5, Fig. 2)",
            "ours": f"{side}x{side} maps at {m.input_size} px, resampled to 6x6 by AdaptiveAvgPool2d",
            "why": "keeps fc6 at the paper's shape for crops smaller than 224 (refused at 224 and above)",
            "where": "harness/model/alexnet.py pool6; harness/config.py _check_fc6_input"}


def deviations(cfg: C.Config) -> list[dict]:
    """Rows {key, paper, ours, why, where} for every departure of `cfg` from the paper."""
    paper = C.flatten(C.to_dict(C.Config()))
    ours = C.flatten(C.to_dict(cfg))
    rows = []
    for key, why_where in WHERE.items():
        if key == "data.source" and ours[key] in ("ilsvrc2010", "ilsvrc2012"):
            continue
        if key == "data.source":
            rows.append({"key": key, "paper": "ILSVRC-2010 / ILSVRC-2012", "ours": ours[key],
                         "why": why_where[0], "where": why_where[1]})
        elif ours.get(key) != paper.get(key):
            rows.append({"key": key, "paper": paper.get(key), "ours": ours.get(key),
                         "why": why_where[0], "where": why_where[1]})
    rows += _other_rows(paper, ours)
    if cfg.train.schedule_split == "holdout":
        rows.append({"key": "training images", "paper": "all of the training set",
                     "ours": f"all but every {cfg.train.holdout_every}th (held out for the lr schedule)",
                     "why": "the held-out slice must not be trained on", "where": "harness/data/shards.py holdout_split"})
    rows += [r for r in (_fc6_row(cfg.model), _split_row(cfg)) if r]
    if cfg.pretrain.enabled and len(cfg.train.devices) == 2:
        rows.append({"key": "pre-trained CNNs' devices", "paper": "two GPUs (paper 3.2)",
                     "ours": f"one device ({cfg.train.devices[0]}), both towers as grouped convolutions",
                     "why": "the six-conv net's two-device tower layout is not built (the same function)",
                     "where": "harness/config.py apply_phase, _one_device"})
    return rows + ALWAYS


# --- interpretations: every ambiguity, on every run (docs/paper.md, "Ambiguities"; docs/fidelity.md)

# key (None: no switch, one reading in code), what the paper says, {value: reading}, where.
AMBIGUITIES = [
    ("LRN constants", "model.lrn",
     "b = a / (k + alpha * sum of a^2 over n=5 neighbours)^beta, k=2, alpha=1e-4, beta=0.75 (paper 3.3)",
     {"paper": "alpha as printed, not divided by n (LocalResponseNorm(5, alpha=5e-4, k=2))",
      "cuda_convnet2": "alpha / n (effectively 2e-5) with k=2: the authors' later cuda-convnet2 configs",
      "caffe": "alpha / n with k=1: Caffe's bvlc_alexnet",
      "cuda_convnet": "the cuda-convnet CIFAR-10 nets' own rnorm / cmrnorm (their layer files' size and scale, "
                      "k=1; harness/model/cuda_convnet.py)",
      "none": "no LRN (the paper 3.3 ablation)"},
     "harness/model/layers.py LRN_CONVENTIONS"),
    ("LRN across towers", None,
     "each GPU normalises its own kernel maps (paper 3.2-3.3)",
     {"fixed": "within each tower's channels; conv, ReLU, LRN, pool (CaffeNet pools before LRN)"},
     "harness/model/layers.py TowerLRN"),
    ("PCA colour scale", "train.pca_mode",
     "add [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T, l the eigenvalues of the RGB covariance, a ~ N(0, 0.1) (paper 4.1); "
     "the pixel scale of l is not stated",
     {"eigenvalue_01": "l on 0-1 pixels, the shift rescaled to 0-255 (fb.resnet.torch and most reproductions)",
      "sqrt_eigenvalue": "sqrt(l) on 0-255 pixels (a standard deviation)"},
     "harness/data/transforms.py pca_shift"),
    ("Dropout scaling", "model.dropout_scaling",
     "outputs of dropped units set to 0 in training; at test all units, outputs multiplied by 0.5 (paper 4.2)",
     {"paper": "unscaled in training, x (1 - p) at test, as printed",
      "inverted": "torch's nn.Dropout: x / (1 - p) in training, identity at test; equal at fixed weights, "
                  "not under SGD (= the paper's form with fc7/fc8 init sd x2, lr x4, weight decay /4)"},
     "harness/model/layers.py PaperDropout, dropout_layer"),
    ("Weight decay on biases", "train.bias_decay",
     "weight decay 0.0005 in the update of the weights w (paper 5); biases not mentioned",
     {False: "weights only, biases not decayed: the authors' cuda-convnet code",
      True: "every parameter decayed, biases too (torch's default when all parameters share one group)"},
     "harness/train/recipe.py param_groups"),
    ("The authors' later ImageNet configs", None,
     "the net of section 3.5 (Figure 2) and the recipe of section 5",
     {"fixed": "the paper's as printed, not cuda-convnet2's layers-223 ImageNet configs, which differ: LRN on "
               "conv1's output before its ReLU (applied after pool1), init sd 0.03 for conv3-conv5, biases at "
               "twice the weights' lr, fc8 bias -7, an exponentially decaying lr, PCA noise followed by a "
               "rescaling of the image; their dropout2 layers are the paper's unscaled form (x0.5 at test), "
               "their plain dropout layer the inverted one (docs/fidelity.md)"},
     "harness/model/alexnet.py, harness/train/recipe.py"),
    ("Bias learning rate", None, "one learning rate for all layers (paper 5)",
     {"fixed": "the weights' lr for the biases too; cuda-convnet and Caffe gave biases twice the lr "
               "(no switch in this version)"},
     "harness/train/recipe.py make_optimizer"),
    ("Arithmetic precision", "train.precision",
     "trained on two GTX 580 GPUs, IEEE fp32 (paper 3.2, 5)",
     {"fp32": "IEEE fp32: TF32 off for cuBLAS matmuls and cuDNN convolutions (torch's default runs cuDNN "
              "convolutions in TF32 on Ampere and later)",
      "tf32": "TF32 tensor cores for matmuls and cuDNN convolutions (a departure)",
      "bf16": "bf16 autocast in forward and loss, weights and updates fp32, other ops IEEE fp32 (a departure)"},
     "harness/accel.py configure_precision"),
    ("Input size and conv1 padding", "model.input_size",
     "224x224x3 input, conv1 11x11 stride 4, 55x55 output (paper 3.5, Fig. 2): inconsistent as printed",
     {"224/2": "224 px with padding 2 (torchvision)", "227/0": "227 px with padding 0 (Caffe)"},
     "harness/model/alexnet.py; harness/config.py _check_fc6_input"),
    ("Conv output size in the authors' code", None,
     "224x224x3 input, conv1 11x11 stride 4, 55x55 output (paper 3.5, Fig. 2)",
     {"fixed": "symmetric padding (224/2 or 227/0, above). cuda-convnet's layer.py sizes a conv output as 1 + "
               "ceil((2 padding + size - filter) / stride): 224 px with padding 0 gives 55, the last window "
               "running 3 px past the right and bottom edges (zeros there): the same 55x55 maps, every window "
               "2 px to the right of and below ours; no switch (docs/fidelity.md)"},
     "harness/model/alexnet.py"),
    ("Mean subtraction", None, "subtract the mean activity over the training set from each pixel (paper 2)",
     {"fixed": "a per-pixel mean image of the training set, taken at each crop's own position; the authors' "
               "data providers (cuda-convnet and cuda-convnet2 convdata.py) subtract the mean image's centre "
               "crop from every crop; a per-channel mean is the other alternative; no switch (docs/fidelity.md)"},
     "harness/prepare/writer.py (mean.npy), harness/data/transforms.py Normaliser"),
    ("Resize", "data.resize", "shorter side to 256, then the central 256x256 patch (paper 2)",
     {"crop": "as printed: shorter side to the stored size, central square", "warp": "whole image squashed (Caffe)"},
     "harness/data/imaging.py fit"),
    ("lr schedule stand-in", "train.schedule",
     "lr divided by 10 by hand when the validation error stopped improving, three times (paper 5)",
     None, "harness/train/recipe.py update_plateau, lr_at"),
    ("Update rule", "train.update_rule", "v <- 0.9 v - 0.0005 lr w - lr grad; w <- w + v (paper 5)",
     {"paper": "as printed: velocity in parameter units (PaperSGD)",
      "torch": "torch.optim.SGD: buffer in gradient units, the same at constant lr, not right after an lr drop"},
     "harness/train/recipe.py PaperSGD, make_optimizer"),
    ("Bias initialisation", "model.hidden_bias",
     "biases 1 in conv2, conv4, conv5 and the fully-connected hidden layers, 0 elsewhere (paper 5)",
     None, "harness/model/alexnet.py init_weights"),
    ("One patch", None, "a single patch vs the average over 10 patches (paper 6, Table 1 footnote)",
     {"fixed": "the centre 224 crop of the 256 image (evaluate.protocols center)"},
     "harness/data/transforms.py EvalView"),
    ("Without crop and flip", "train.crop_flip",
     "without the random 224 patches and their reflections the net overfits substantially (paper 4.1)",
     {True: "random crops and horizontal reflections (the paper's scheme)",
      False: "the ablation: the centre crop of every image, never flipped (PCA colour unchanged)"},
     "harness/data/transforms.py epoch_draws"),
    ("Removing a middle conv layer", "model.drop_conv",
     "removing any of the middle layers costs about 2% top-1 (paper 7); how the rest is wired is not said",
     {"none": "all five conv layers",
      "conv3": "no conv3: conv4 reads conv2's maps and takes over conv3's cross-tower connectivity",
      "conv4": "no conv4: conv5 reads conv3's maps, own tower only as before",
      "conv5": "no conv5: pool5 follows conv4, fc6 reads conv4's maps"},
     "harness/model/alexnet.py _middle_convs"),
    ("Tower specialisation", None,
     "one tower's kernels largely colour-agnostic, the other's largely colour-specific (paper 6.1, Fig. 3)",
     {"fixed": "colour-selectivity index per tower: chromatic share of conv1 kernel energy; separated when the "
               "towers differ by >= 0.2 and Mann-Whitney p < 0.01 (docs/fidelity.md)"},
     "harness/train/towers.py"),
]


def _reading(key: str | None, readings: dict | None, cfg: C.Config, default: C.Config) -> tuple[str, str, str]:
    """(this run's reading, the paper recipe's reading, the alternatives) of one ambiguity."""
    if key is None:
        return readings["fixed"], readings["fixed"], "–"
    ours, paper = C.flatten(C.to_dict(cfg))[key], C.flatten(C.to_dict(default))[key]
    if key == "model.input_size" and cfg.model.arch in C.CUDA_CONVNET_ARCHS:
        return (f"{cfg.model.input_size} px into {cfg.model.arch} (a CIFAR-10 net of its layer files, docs/cifar10.md)",
                "224 px with padding 2", "227 px with padding 0 (Caffe)")
    if key == "model.input_size":
        m = cfg.model
        side = C.final_map_size(m)
        ours_text = f"{m.input_size} px with padding {m.conv1_padding}" + (
            "" if side == 6 else f" (a scaled-down profile: {side}x{side} pooled conv5 maps, resampled to 6x6)")
        return ours_text, "224 px with padding 2", "227 px with padding 0 (Caffe)"
    if key == "train.schedule":
        t = cfg.train
        if t.schedule == "plateau":
            ours_text = (f"plateau: lr / 10 after {t.patience} epochs without a new best centre-crop top-1 "
                         f"at least {t.plateau_threshold:g} pp below the best so far, at most {t.max_drops} drops; "
                         f"reads {schedule_reads(cfg)}")
        else:
            ours_text = f"fixed steps: lr / 10 after epochs {list(t.lr_steps)}"
        return (ours_text, f"plateau, patience {default.train.patience}, threshold "
                           f"{default.train.plateau_threshold:g} pp, on val",
                "fixed steps (train.schedule steps); a held-out training slice instead of val "
                "(train.schedule_split holdout); other patience/threshold")
    if key == "model.hidden_bias":
        alt = "0.1 (Caffe found 1 gave a flat loss); 0 (the bias_zero arm)"
        return f"{ours:g}", f"{paper:g} (as printed)", alt
    text = lambda v: f"{str(v).lower() if isinstance(v, bool) else v}: {readings[v]}"  # noqa: E731
    if cfg.model.arch == "torchvision" and key == "model.dropout_scaling":
        return "inverted: the torchvision control uses its own nn.Dropout", text(paper), text("paper")
    alts = "; ".join(text(v) for v in readings if v != ours)
    return text(ours), text(paper), alts


def _pretrain_rows(cfg: C.Config) -> list[dict]:
    """paper 6's pre-trained CNNs: every unstated choice, on every run (docs/paper.md, "The Fall-2011 path")."""
    d = C.Config()
    m, dm, p, dp = cfg.model, d.model, cfg.pretrain, d.pretrain
    f, df = p.data.fall2011, dp.data.fall2011
    conv6 = lambda x: (f"{x.conv6_kernels} kernels {x.conv6_size}x{x.conv6_size}, padding {x.conv6_padding}, "  # noqa: E731
                       f"{'own tower' if x.conv6_towers == 'own' else 'both towers'}, "
                       f"{'a 3/2 pool after it' if x.conv6_pool else 'no pool after it'}")
    sched = lambda x: (f"pre-train {x.epochs} epochs at lr {x.lr:g} (steps {list(x.lr_steps)}), fine-tune "  # noqa: E731
                       f"{x.finetune_epochs} epochs at lr {x.finetune_lr:g} (steps {list(x.finetune_lr_steps)}), "
                       f"re-initialised from {x.reinit} up; train.schedule and the other train.* as the baseline")
    excl = lambda x: ((f"excluded: ILSVRC-2012 val images by file sha256" + (", fitted-pixel sha256" if  # noqa: E731
                       x.exclude_pixels else "") + (f", perceptual hash within {x.exclude_near} bits"
                                                    if x.exclude_near is not None else "")
                       if x.exclude_root else "no ILSVRC-2012 val exclusion configured")
                      + (f", plus the list {x.exclude_list}" if x.exclude_list else ""))
    split = lambda x: ("all but every {}th image of each synset (a holdout for the lr schedule)".format(x.val_every)  # noqa: E731
                       if x.split == "holdout" else "half/half per synset (the Fall-2009 protocol); the test half is "
                       "also the held-out split the pre-training's plateau rule reads, so the Fall-2009 errors are "
                       "on images that drove its lr drops")
    return [
        {"ambiguity": "Sixth conv layer", "paper": "\"an extra sixth convolutional layer over the last pooling layer\" "
         "(paper 6); its kernels, size, padding, towers and any pool are not stated",
         "ours": conv6(m), "paper_recipe": conv6(dm),
         "alternatives": "512 kernels; 5x5; both towers (as conv3); a pool after it (6x6 -> 2x2, fc6 9x smaller)",
         "switch": "model.conv6_kernels, conv6_size, conv6_padding, conv6_towers, conv6_pool",
         "where": "harness/model/alexnet.py conv6_layers"},
        {"ambiguity": "Pre-training and fine-tuning schedule", "paper": "trained on Fall 2011, then \"fine-tuned\" "
         "on ILSVRC-2012 (paper 6); epochs, learning rates and which layers are re-initialised are not stated",
         "ours": sched(p), "paper_recipe": sched(dp),
         "alternatives": "re-initialise fc7/fc6 too (pretrain.reinit); other epochs and lr",
         "switch": "pretrain.epochs, lr, lr_steps, finetune_epochs, finetune_lr, finetune_lr_steps, reinit",
         "where": "harness/config.py apply_phase; harness/stages/train.py init_fine_tune"},
        {"ambiguity": "Fall 2011 images also in ILSVRC-2012 val", "paper": "not discussed (paper 6)",
         "ours": excl(f), "paper_recipe": excl(df) + " (the preset sets exclude_root)",
         "alternatives": "file bytes only; another radius, or none, for near-duplicates; a documented list "
         "(data.fall2011.exclude_list)",
         "switch": "data.fall2011.exclude_root, exclude_pixels, exclude_near, exclude_list",
         "where": "harness/prepare/fall2011.py, harness/prepare/phash.py"},
        {"ambiguity": "Fall 2011 split", "paper": "the entire release for pre-training; Fall 2009: \"half of the "
         "images for training and half for testing\" (paper 6)", "ours": split(f), "paper_recipe": split(df),
         "alternatives": "half (the Fall-2009 protocol, data.fall2011.split half)",
         "switch": "data.fall2011.split, val_every", "where": "harness/prepare/fall2011.py split_of"},
    ]


def interpretations(cfg: C.Config) -> list[dict]:
    """Rows {ambiguity, paper, ours, paper_recipe, alternatives, switch, where} for every
    ambiguity of the paper, whatever this run's values (docs/architecture.md, house rule 14)."""
    default = C.Config()
    rows = []
    for topic, key, says, readings, where in AMBIGUITIES:
        ours, recipe, alts = _reading(key, readings, cfg, default)
        switch = "–" if key is None else (key if key != "model.input_size" else "model.input_size, model.conv1_padding")
        if key == "train.schedule":
            switch = "train.schedule, patience, plateau_threshold, schedule_split, max_drops"
        rows.append({"ambiguity": topic, "paper": says, "ours": ours, "paper_recipe": recipe,
                     "alternatives": alts, "switch": switch, "where": where})
    return rows + _pretrain_rows(cfg)
