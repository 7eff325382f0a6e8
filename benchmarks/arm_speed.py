"""`python -m benchmarks.arm_speed`: the training speed of the "What came after" arms against the
paper net, measured in one process (docs/successors.md, "Cost and sizes").

The report's img/s column comes from each net's own training runs, which may have run in other
sessions and under other load. This benchmark times the same work for every net in one run: the
train stage's own step (harness.train.loop.train_one_epoch, the harness's optimizer) on the same
in-memory augmented batches at the profile's batch size and crop, the paper net and one arm in
alternating rounds (ABBA, benchmarks/timing.py), so that drift in machine load hits both alike. The
figure per arm is the median over rounds of (arm seconds / paper-net seconds in the same round).

  python -m benchmarks.arm_speed                 # every successor arm of params.yaml (minutes)
  python -m benchmarks.arm_speed --arms lenet5 resnet18
  python -m benchmarks.arm_speed --quick         # a smoke run (not for reporting)

Writes the key "arms" of reports/benchmarks.json and keeps the file's other keys
(python -m benchmarks.run keeps this one in turn); the report's section 17 shows it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks import measure as M
from benchmarks.timing import paired_rounds, summary
from harness import config as C
from harness import runtime
from harness.io import atomic_write_json
from harness.model import build_model
from harness.stages.compare import net_cost
from harness.train import recipe

# The arms of section 17 (docs/successors.md): the normalisation variants, the successors, LeNet-5.
SUCCESSOR_ARMS = ("norm_batchnorm", "norm_layernorm", "norm_groupnorm", "alexnet_bn", "alexnet_bn_no_dropout",
                  "lenet5", "vgg11", "vgg16", "googlenet", "resnet18", "resnet50")


@dataclass(frozen=True)
class Sizes:
    rounds: int = 5  # paired rounds per arm (median of the per-round ratios reported)
    steps: int = 4  # train steps per round (VGG-16 takes about 1.5 s a step at 64 px on 2 cores)


QUICK = Sizes(rounds=2, steps=2)


def parse_args(argv=None) -> argparse.Namespace:
    p = M.base_parser(__doc__)
    p.add_argument("--arms", nargs="+", default=list(SUCCESSOR_ARMS), help="arms of params.yaml ablations.arms")
    return p.parse_args(argv)


def _net(cfg: C.Config, num_classes: int):
    """(model, optimizer) as the train stage builds them (fixed seed: the same weights every run)."""
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes)
    return model, recipe.make_optimizer(model, cfg.train)


def measure(cfg: C.Config, data_dir: Path, arms: list[str], sizes: Sizes) -> dict:
    """{"nets": {"paper": {...}, arm: {..., "time_vs_paper": median ratio}}} for every arm."""
    known = [a.name for a in cfg.ablations.arms]
    unknown = [a for a in arms if a not in known]
    if unknown:
        raise SystemExit(f"--arms: {', '.join(unknown)} not in params.yaml ablations.arms (known: {', '.join(known)})")
    manifest = json.loads((data_dir / "manifest.json").read_text())
    num_classes, n_train = len(manifest["classes"]), int(manifest["counts"]["train"])
    # one seed's steps on this data (harness/train/loop.py epoch_batches drops the last partial batch)
    steps_per_seed = cfg.train.epochs * (n_train // cfg.train.batch_size)
    batches = M.in_memory_batches(cfg, data_dir, sizes.steps)
    paper = _net(cfg, num_classes)
    M.harness_epoch(*paper, cfg.train, batches[:1])  # warm-up: allocator, optimizer state
    paper_s: list[float] = []
    nets = {}
    for name in arms:
        arm_cfg = C.apply_arm(cfg, name)
        arm = _net(arm_cfg, num_classes)
        M.harness_epoch(*arm, arm_cfg.train, batches[:1])
        tp, ta = paired_rounds(lambda: M.harness_epoch(*paper, cfg.train, batches),
                               lambda: M.harness_epoch(*arm, arm_cfg.train, batches), sizes.rounds)
        paper_s += tp
        step = [t / sizes.steps for t in ta]
        nets[name] = {**net_cost(arm_cfg, num_classes), "step_s": summary(step),
                      "est_train_s_per_seed": steps_per_seed * statistics.median(step),
                      "images_per_s": cfg.train.batch_size / statistics.median(step),
                      "time_vs_paper": statistics.median(a / p for a, p in zip(ta, tp))}
        print(f"{name:24s} {1000 * statistics.median(step):8.1f} ms/step  "
              f"{nets[name]['time_vs_paper']:6.2f}x the paper net's step time", flush=True)
    step = [t / sizes.steps for t in paper_s]
    return {"nets": {"paper": {**net_cost(cfg, num_classes), "step_s": summary(step),
                               "est_train_s_per_seed": steps_per_seed * statistics.median(step),
                               "images_per_s": cfg.train.batch_size / statistics.median(step),
                               "time_vs_paper": 1.0}, **nets},
            "batch_size": cfg.train.batch_size, "input_size": cfg.model.input_size, "train_images": n_train,
            "epochs": cfg.train.epochs,
            "rounds": sizes.rounds, "steps_per_round": sizes.steps}


def merge_into(path: Path, key: str, value: dict) -> None:
    """Write `key` of the JSON at path, keeping its other keys (a missing file starts empty)."""
    res = json.loads(path.read_text()) if path.is_file() else {}
    res[key] = value
    atomic_write_json(path, res)


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = C.load_config(args.params)
    torch.set_num_threads(args.threads or cfg.train.threads)  # the thread count training uses
    sizes = QUICK if args.quick else Sizes()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, data_note = M.locate_data(cfg, args.data, Path(tmp))
        with contextlib.redirect_stderr(io.StringIO()):  # one line per arm, not the epoch bars of every round
            res = measure(cfg, data_dir, args.arms, sizes)
    res.update(measured_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               quick=args.quick, git=runtime.git_info(), profile=cfg.profile, data=data_note,
               threads=torch.get_num_threads(),
               load_average_before=load_before, load_average_after=os.getloadavg())
    merge_into(args.out, "arms", res)
    print(f"written: {args.out} (key 'arms')" + ("  (quick mode: not for reporting)" if args.quick else ""))


if __name__ == "__main__":
    main()
