"""Every deliberate departure from the paper in the resolved config (house rule 8).

The config dataclasses' defaults ARE the paper's recipe (PAPER.md sections 2-3), so a
departure is any resolved value that differs from its default, plus the dataset itself.
"""

from __future__ import annotations

from harness import config as C

# Why each switch exists and where it acts in code.
WHERE = {
    "data.source": ("the dataset", "harness/prepare/writer.py, harness/prepare/synthetic.py"),
    "data.image_size": ("stored image side (paper 2: 256x256)", "harness/prepare/writer.py"),
    "data.resize": ("whole image warped to a square instead of the centre crop (paper 2)", "harness/data/imaging.py fit"),
    "model.width": ("kernels per layer scaled (paper 3.5: 96-256-384-384-256, fc 4096)", "harness/model/alexnet.py conv_channels/fc_width"),
    "model.arch": ("another network: paper 3.2's one-GPU net (one_tower), torchvision's 2014 variant (a control) or one of "
                   "the authors' CIFAR-10 nets (paper 3.1, 3.3; docs/cifar10.md, report section 9a)", "harness/model/build.py build_model"),
    "model.towers": ("no grouping: one full-width tower instead of two", "harness/model/alexnet.py AlexNet"),
    "model.input_size": ("crop side (paper 4.1: 224)", "harness/data/transforms.py; harness/model/alexnet.py pool6 keeps fc6 at 6x6"),
    "model.conv1_padding": ("conv1 padding (224 needs 2, 227 needs 0)", "harness/model/alexnet.py"),
    "model.activation": ("tanh instead of ReLU (paper 3.1 ablation)", "harness/model/alexnet.py"),
    "model.lrn": ("LRN convention (paper 3.3: k=2, n=5, alpha=1e-4, beta=0.75)", "harness/model/layers.py LRN_CONVENTIONS"),
    "model.pool": ("non-overlapping pooling (paper 3.4 ablation)", "harness/model/alexnet.py"),
    "model.dropout": ("dropout rate (paper 4.2: 0.5)", "harness/model/alexnet.py"),
    "model.init": ("initialisation (paper 5: N(0, 0.01), biases 1 in conv2/4/5, fc6/7)", "harness/model/alexnet.py init_weights"),
    "model.input_scale": ("input scale (paper 2: raw 0-255 minus mean)", "harness/data/transforms.py Normaliser"),
    "train.epochs": ("training length (paper 5: about 90 epochs)", "harness/train/loop.py fit"),
    "train.batch_size": ("batch size (paper 5: 128)", "harness/train/loop.py"),
    "train.lr": ("learning rate (paper 5: 0.01)", "harness/train/recipe.py lr_at"),
    "train.momentum": ("momentum (paper 5: 0.9)", "harness/train/recipe.py make_optimizer"),
    "train.weight_decay": ("weight decay (paper 5: 0.0005)", "harness/train/recipe.py make_optimizer"),
    "train.warmup_epochs": ("linear learning-rate warm-up (not in the paper)", "harness/train/recipe.py lr_at"),
    "train.schedule": ("fixed lr steps instead of drops when validation error stops improving (paper 5)", "harness/train/recipe.py lr_at, update_plateau"),
    "train.lr_steps": ("epochs of the fixed lr drops", "harness/train/recipe.py lr_at"),
    "train.patience": ("epochs without improvement before an lr drop (paper: by hand)", "harness/train/recipe.py update_plateau"),
    "train.max_drops": ("number of lr drops (paper 5: 3)", "harness/train/recipe.py update_plateau"),
    "train.update_rule": ("torch.optim.SGD instead of the paper's update (velocity in parameter units)", "harness/train/recipe.py make_optimizer, PaperSGD"),
    "train.pca_colour": ("PCA colour augmentation (paper 4.1)", "harness/data/transforms.py pca_shift"),
    "train.pca_std": ("PCA colour alpha sd (paper 4.1: 0.1)", "harness/data/transforms.py"),
    "train.pca_mode": ("PCA eigenvalue scale (paper ambiguous)", "harness/data/transforms.py pca_shift"),
    "train.precision": ("bf16 autocast in the forward pass and loss (paper 5: fp32 arithmetic on GTX 580s); "
                        "weights and updates stay fp32", "harness/train/loop.py train_one_epoch, harness/accel.py autocast"),
}

# Departures that hold in every configuration of this version.
ALWAYS = [
    {"key": "lr schedule", "paper": "divided by 10 by hand when validation error stopped improving",
     "ours": "a rule: train.schedule (plateau: patience epochs without a new best) or fixed steps",
     "why": "a human decision cannot be replayed", "where": "harness/train/recipe.py update_plateau"},
]

# The paper evaluates ILSVRC-2010 on its test set and ILSVRC-2012 on validation (PAPER.md 1).
SPLIT_ROW = {"key": "evaluation split", "paper": "test set (ILSVRC-2010) or validation (ILSVRC-2012)",
             "why": "only ILSVRC-2010 has a labelled test set", "where": "harness/stages/evaluate.py run_evaluate"}


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
    paper_split = {"ilsvrc2010": "test", "ilsvrc2012": "val"}.get(cfg.data.source)
    if cfg.evaluate.split != paper_split:
        rows.append({**SPLIT_ROW, "ours": f"the {cfg.evaluate.split} split, which the lr schedule "
                                          "does not see" if cfg.evaluate.split == "val" else cfg.evaluate.split})
    return rows + ALWAYS
