"""The paper net against torchvision's alexnet at the paper's size, side by side in one process.

Every variant trains with the same loop on the same random batch (224 px crops, 1000 classes):
the paper's update rule (harness.train.recipe.make_optimizer with the paper's recipe),
cross-entropy, zero_grad, backward, step. Variants:

- torchvision's alexnet (the 2014 variant, 714M multiply-adds), NCHW and channels_last;
- the paper net (724M) with the fast LRN (model.lrn_impl fast), NCHW and channels_last;
- the paper net with the reference LRN (nn.LocalResponseNorm, model.lrn_impl reference);
- the paper net without LRN (model.lrn none), for the LRN's share of a step by removal.

Rounds alternate the order (A B C ... then ... C B A) so that drift in the machine's load hits
every variant alike; each variant's figure is the median over rounds. GFLOP/s counts 6 x the
forward multiply-adds per image (layer_table), the convention of benchmarks/measure.py, so it
compares with the matmul peak measured in the same run (MFU). The LRN's share is also read off
torch.profiler: the time inside the fast LRN's forward (_LRN) and backward (_LRNBackward) over
all operator time of a profiled step.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from benchmarks.measure import matmul_peak, profile_shares
from benchmarks.timing import summary
from harness import config as C
from harness.model import build_model, layer_table
from harness.train import recipe

CLASSES, SIZE = 1000, 224


@dataclass(frozen=True)
class Variant:
    name: str
    model: C.ModelConfig
    channels_last: bool = False


PAPER = C.ModelConfig()  # the paper's net at 224 px with padding 2 (paper 3.5)
TORCHVISION = replace(PAPER, arch="torchvision")
VARIANTS = (
    Variant("torchvision", TORCHVISION),
    Variant("paper", PAPER),
    Variant("paper_reference_lrn", replace(PAPER, lrn_impl="reference")),
    Variant("paper_no_lrn", replace(PAPER, lrn="none")),
    Variant("torchvision_channels_last", TORCHVISION, True),
    Variant("paper_channels_last", PAPER, True),
)


def build(v: Variant) -> tuple[torch.nn.Module, torch.optim.Optimizer, int]:
    torch.manual_seed(0)
    model = build_model(v.model, CLASSES)
    macs = sum(r.mult_adds for r in layer_table(model, SIZE))
    if v.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, recipe.make_optimizer(model, C.TrainConfig()), macs


def steps_seconds(model, opt, x, y, steps: int) -> float:
    """Wall seconds of `steps` plain training steps on one batch."""
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def measure(batch: int, rounds: int, steps: int, matmul_n: int) -> dict:
    """Per-variant img/s, GFLOP/s and MFU, the per-FLOP ratios and the LRN's share of a step.

    The matmul peak is the best of n and 2n square fp32 matmuls timed before and after the
    rounds: under other processes' load a single short timing reads low."""
    peaks = [matmul_peak(n, 3) for n in (matmul_n, 2 * matmul_n)]
    torch.manual_seed(0)
    x = torch.randn(batch, 3, SIZE, SIZE)
    y = torch.randint(0, CLASSES, (batch,))
    inputs = {False: x, True: x.contiguous(memory_format=torch.channels_last)}
    built = {v.name: (v, *build(v)) for v in VARIANTS}
    for v, model, opt, _ in built.values():
        steps_seconds(model, opt, inputs[v.channels_last], y, 1)  # warm-up: allocator, optimizer state
    times: dict[str, list[float]] = {name: [] for name in built}
    order = list(built)
    for r in range(rounds):
        for name in (order if r % 2 == 0 else order[::-1]):
            v, model, opt, _ = built[name]
            times[name].append(steps_seconds(model, opt, inputs[v.channels_last], y, steps) / steps)
    peaks += [matmul_peak(n, 3) for n in (matmul_n, 2 * matmul_n)]
    peak = max(peaks, key=lambda p: p["flop_per_s"])
    peak_flop_per_s = peak["flop_per_s"]
    out = {"batch": batch, "input_size": SIZE, "classes": CLASSES, "rounds": rounds, "steps_per_round": steps,
           "update_rule": "paper (harness.train.recipe.PaperSGD)", "matmul_peak": peak,
           "matmul_peaks_gflop_per_s": [round(p["flop_per_s"] / 1e9, 1) for p in peaks], "variants": {}}
    for name, (v, _, _, macs) in built.items():
        per_s = [batch / t for t in times[name]]
        flops = 6 * macs * statistics.median(per_s)
        out["variants"][name] = {"arch": v.model.arch, "lrn": v.model.lrn, "lrn_impl": v.model.lrn_impl,
                                 "channels_last": v.channels_last, "mult_adds_per_image": macs,
                                 "images_per_s": summary(per_s), "step_s": summary(times[name]),
                                 "flop_per_s": flops, "mfu": flops / peak_flop_per_s}
    out["ratios"] = ratios(out["variants"])
    _, model, opt, _ = built["paper"]
    out["profile"] = lrn_profile(model, opt, inputs[False], y)
    return out


def ratios(v: dict) -> dict:
    per_flop = lambda a, b: v[a]["flop_per_s"] / v[b]["flop_per_s"]  # noqa: E731
    step = lambda a: v[a]["step_s"]["median"]  # noqa: E731
    return {
        "paper_vs_torchvision_per_flop": per_flop("paper", "torchvision"),
        "paper_vs_torchvision_per_flop_channels_last": per_flop("paper_channels_last", "torchvision_channels_last"),
        "reference_lrn_vs_torchvision_per_flop": per_flop("paper_reference_lrn", "torchvision"),
        "fast_lrn_speedup_of_step": step("paper_reference_lrn") / step("paper"),
        # share by removal: 1 - (step without LRN) / (step with it)
        "lrn_step_share_pct_by_removal": 100.0 * (1 - step("paper_no_lrn") / step("paper")),
        "reference_lrn_step_share_pct_by_removal": 100.0 * (1 - step("paper_no_lrn") / step("paper_reference_lrn")),
    }


def lrn_profile(model, opt, x, y, steps: int = 2, top: int = 10) -> dict:
    """torch.profiler over `steps` plain steps: the fast LRN's share of all operator time."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        steps_seconds(model, opt, x, y, steps)
    return profile_shares(prof, steps, top)
