"""Per-iteration cost of the cuda-convnet CIFAR-10 nets on this machine, and the projected wall time
of the `cifar10` and `cifar10-quick` presets (paper 3.1 Figure 1, paper 3.3; docs/cifar10.md).

    python -m benchmarks.cifar10            # writes reports/cifar10_costs.json (the report shows it)
    python -m benchmarks.cifar10 --quick    # a smoke run, indicative only

No CIFAR-10 is needed: the nets train on random CIFAR-sized batches (the cost of a step does not
depend on the pixel values). Each net's step runs through the harness's train_one_epoch (PaperSGD
with the layer files' per-layer rates, the loss and error sums, the progress bar), at the
presets' thread count, alternating with the Figure 1 ReLU net's step (ABBA rounds), which is
the same-run baseline every other net is a ratio of. Evaluation cost is the forward pass of the
10,000 test images, centre crop and 10 patches, as the evaluate stage runs it.

A net's step time is projected as its median per-round ratio to the baseline step times the
baseline's median over all rounds, so that machine load drifting between nets does not skew one
against another. Projections multiply these costs by what each preset runs: lr-selection pilots, epochs (for the
convergence runs of Figure 1, the epochs the paper's Figure 1 shows to 25% training error, and the
cap train.epochs as the worst case), the per-epoch validation pass and the evaluation, for every
seed of the baseline and of each enabled arm.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # the train loop's progress bars would flood the output

import torch  # noqa: E402
import yaml  # noqa: E402

from benchmarks.timing import paired_rounds, summary, timed  # noqa: E402
from harness import config as C  # noqa: E402
from harness import presets  # noqa: E402
from harness.io import atomic_write_json  # noqa: E402
from harness.model import build_model, count_params  # noqa: E402
from harness.train import loop, lr_select, recipe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
N_TRAIN, N_TEST, CLASSES = 50_000, 10_000, 10
# Paper 3.1, Figure 1: epochs to 25% training error, read off the figure (ReLU about 6, tanh
# about 6 times as many: "six times faster"). Used only to project the expected wall time.
PAPER_FIGURE1_EPOCHS = {"relu": 6, "tanh": 36}


def preset_config(name: str) -> C.Config:
    """params.yaml with presets/<name>.yaml applied, as `harness preset` would (no file written)."""
    new = presets.with_preset(yaml.safe_load((REPO / "params.yaml").read_text()),
                              yaml.safe_load((REPO / "presets" / f"{name}.yaml").read_text()))
    new["data"]["root"] = "/cifar-10-batches-py"  # not read: the costs need no data
    cfg = C.from_dict(new)
    C._check_cross_fields(cfg)
    return cfg


def runs(cfg: C.Config) -> dict[str, C.Config]:
    """'baseline' and every enabled arm -> its config."""
    return {"baseline": cfg, **{a: C.apply_arm(cfg, a) for a in cfg.ablations.enabled}}


def step_fn(cfg: C.Config, steps: int):
    """A callable timing `steps` harness training steps of cfg's net on random CIFAR-sized batches."""
    torch.manual_seed(0)
    model = build_model(cfg.model, CLASSES)
    opt = recipe.make_optimizer(model, cfg.train)
    s, b = cfg.model.input_size, cfg.train.batch_size
    batches = [(torch.randn(b, 3, s, s) * 60, torch.randint(0, CLASSES, (b,))) for _ in range(steps)]
    return lambda: timed(lambda: loop.train_one_epoch(model, batches, opt, cfg.train, loop.TrainState(), steps,
                                                      loop.Hooks())) / steps


@torch.no_grad()
def forward_s_per_image(cfg: C.Config, images: int) -> float:
    model = build_model(cfg.model, CLASSES).eval()
    x = torch.randn(min(images, 500), 3, cfg.model.input_size, cfg.model.input_size) * 60
    model(x)  # warm-up
    reps = max(1, images // len(x))
    return timed(lambda: [model(x) for _ in range(reps)]) / (reps * len(x))


def net_key(cfg: C.Config) -> str:
    return f"{cfg.model.arch}/{cfg.model.activation}/lrn={cfg.model.lrn}/{cfg.model.input_size}px"


def measure(configs: dict[str, C.Config], rounds: int, steps: int, eval_images: int) -> dict:
    """Seconds per training step (median of ABBA rounds against the Figure 1 ReLU net) and per
    evaluated image, for each distinct net of `configs`."""
    nets = {}
    for cfg in configs.values():
        nets.setdefault(net_key(cfg), cfg)
    base_key, base_cfg = next(iter(nets.items()))
    base = step_fn(base_cfg, steps)
    base()  # warm-up
    out, pooled = {}, []
    for key, cfg in nets.items():
        fn = step_fn(cfg, steps)
        fn()
        t, tb = paired_rounds(fn, base, rounds)
        pooled += tb
        out[key] = {"arch": cfg.model.arch, "activation": cfg.model.activation, "lrn": cfg.model.lrn,
                    "input_size": cfg.model.input_size, "batch_size": cfg.train.batch_size,
                    "n_parameters": count_params(build_model(cfg.model, CLASSES)),
                    "step_s": summary(t), "baseline_step_s": summary(tb),
                    "step_ratio_to_baseline": summary([a / b for a, b in zip(t, tb)]),
                    "eval_s_per_image": forward_s_per_image(cfg, eval_images)}
    # Machine load drifts between nets, so each net's step is projected as its per-round ratio to
    # the baseline step times the baseline's median over all rounds: one time base for all.
    base_s = summary(pooled)["median"]
    for c in out.values():
        c["projected_step_s"] = c["step_ratio_to_baseline"]["median"] * base_s
        c["train_images_per_s"] = c["batch_size"] / c["projected_step_s"]
    return {"baseline_net": base_key, "baseline_step_s_all_rounds": summary(pooled), "nets": out}


def project(cfg: C.Config, costs: dict) -> dict:
    """Projected wall seconds of each run of a preset, summed over seeds: expected and worst case."""
    out = {}
    for name, rc in runs(cfg).items():
        c = costs["nets"][net_key(rc)]
        t = rc.train
        steps = N_TRAIN // t.batch_size
        step, fwd = c["projected_step_s"], c["eval_s_per_image"]
        # the declared grid, and at worst its longest extension to train.lr_select_limit (lr_select.py)
        pilot_steps = len(t.lr_select_factors) * min(t.lr_select_steps, steps)
        pilot_steps_max = lr_select.max_pilots(t.lr_select_factors, t.lr_select_limit) * min(t.lr_select_steps, steps)
        epoch = steps * step + N_TEST * fwd  # training plus the per-epoch validation pass
        evaluate = N_TEST * (1 + 10 * ("ten_patch" in cfg.evaluate.protocols)) * fwd
        if t.stop_at_train_error is not None:
            expected_epochs = min(t.epochs, PAPER_FIGURE1_EPOCHS[rc.model.activation])
        else:
            expected_epochs = t.epochs
        seeds = len(cfg.train.seeds)  # every arm trains the seeds of train.seeds
        out[name] = {"net": net_key(rc), "seeds": seeds, "epochs_cap": t.epochs, "expected_epochs": expected_epochs,
                     "lr_select_pilot_steps": pilot_steps, "lr_select_pilot_steps_max": pilot_steps_max,
                     "expected_s": seeds * (pilot_steps * step + expected_epochs * epoch + evaluate),
                     "worst_case_s": seeds * (pilot_steps_max * step + t.epochs * epoch + evaluate)}
    return out


def experiments(cfg: C.Config, proj: dict) -> dict:
    """Figure 1 (the baseline and the arms compared with it) and LRN (the arms with a base arm and
    that base), each summed: what a user waits for each."""
    ab = cfg.ablations
    based = {ab.arm(a).base for a in ab.enabled} - {None}
    lrn = sorted(based | {a for a in ab.enabled if ab.arm(a).base is not None})
    fig1 = ["baseline"] + [a for a in ab.enabled if a not in lrn]
    total = lambda names, k: sum(proj[n][k] for n in names)  # noqa: E731
    return {"figure1": {"runs": fig1, "expected_h": total(fig1, "expected_s") / 3600,
                        "worst_case_h": total(fig1, "worst_case_s") / 3600},
            "lrn": {"runs": lrn, "expected_h": total(lrn, "expected_s") / 3600,
                    "worst_case_h": total(lrn, "worst_case_s") / 3600}}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="few rounds and steps: a smoke run, indicative only")
    p.add_argument("--out", type=Path, default=REPO / "reports" / "cifar10_costs.json")
    args = p.parse_args(argv)
    full, quick = preset_config("cifar10"), preset_config("cifar10-quick")
    torch.set_num_threads(full.train.threads)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    configs = {**{f"cifar10:{k}": v for k, v in runs(full).items()},
               **{f"cifar10-quick:{k}": v for k, v in runs(quick).items()}}
    costs = measure(configs, rounds=3 if args.quick else 7, steps=2 if args.quick else 12,
                    eval_images=500 if args.quick else 2000)
    result = {"measured_at": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": args.quick,
              "machine": {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                          "torch": str(torch.__version__), "threads": torch.get_num_threads(),
                          "load_average_before": load_before, "load_average_after": os.getloadavg()},
              "paper_figure1_epochs_assumed": PAPER_FIGURE1_EPOCHS, **costs, "presets": {}}
    for name, cfg in (("cifar10", full), ("cifar10-quick", quick)):
        proj = project(cfg, costs)
        result["presets"][name] = {"runs": proj, "experiments": experiments(cfg, proj)}
    result["benchmark_s"] = time.perf_counter() - t0
    atomic_write_json(args.out, result)
    for key, c in costs["nets"].items():
        print(f"{key:58} {1000 * c['projected_step_s']:7.1f} ms/step  {c['train_images_per_s']:6.0f} img/s  "
              f"x{c['step_ratio_to_baseline']['median']:.2f} of {costs['baseline_net'].split('/')[0]}")
    for name, r in result["presets"].items():
        for exp, e in r["experiments"].items():
            print(f"{name:14} {exp:8} expected {e['expected_h']:6.2f} h, worst case {e['worst_case_h']:6.2f} h")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
