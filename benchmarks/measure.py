"""The CPU measurements of `python -m benchmarks.run`, each against a baseline of the same run.

- train: the harness's train_one_epoch (its lr schedule, loss check, error counting, progress
  bar and step hook) against a plain PyTorch loop doing the same work: the same model and
  initial weights, the same update rule (the harness's optimizer class), the same lr at every
  step, the same in-memory batches and dropout masks. Both end a round with the same weights,
  bit for bit, which the result records (`same_weights`): the ratio is the harness's overhead;
- flops: achieved training FLOP/s against a large torch.matmul timed in the same process;
- loader: TrainView + batch_loader (the train stage's loader) against the training speed;
- eval: 10-patch evaluation (EvalView + harness.evaluate.predict) against a forward pass on
  patches already in memory.
"""

from __future__ import annotations

import argparse
import copy
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.timing import paired_rounds, summary, timed
from harness import config as C
from harness.data import shards, transforms
from harness.data.transforms import build_views
from harness.evaluate import inference
from harness.model import build_model, count_params, layer_table
from harness.prepare import writer
from harness.train import loop, recipe


@dataclass(frozen=True)
class Sizes:
    """How much each measurement runs; `quick` is for development, not for reported figures."""

    rounds: int = 9  # paired rounds of the train comparison (median reported)
    steps: int = 25  # train steps per round
    matmul_n: int = 2048  # side of the square fp32 matmul for the peak
    matmul_reps: int = 5
    loader_batches: int = 60  # per round
    loader_rounds: int = 3
    eval_images: int = 500
    eval_rounds: int = 3
    full_batch: int = 64  # the paper net against torchvision's at 224 px (benchmarks/fullsize.py)
    full_rounds: int = 7
    full_steps: int = 1  # steps per variant and round (one full-size step takes 1-4 s on 2 cores)


QUICK = Sizes(rounds=3, steps=4, matmul_n=1024, matmul_reps=3, loader_batches=8, loader_rounds=2,
              eval_images=60, eval_rounds=2, full_batch=2, full_rounds=1)


def synthetic_data(cfg: C.Config, root: Path) -> Path:
    """A small prepared set (harness.data.prepare) when the pipeline's data is not there."""
    small = replace(cfg.data, source="synthetic", root=None,
                    synthetic=replace(cfg.data.synthetic, train_per_class=40, val_per_class=10))
    writer.prepare(small, root)
    return root


def base_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every training benchmark takes (benchmarks.run, benchmarks.arm_speed)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="the profile (default params.yaml)")
    p.add_argument("--data", type=Path, default=Path("artifacts/data"),
                   help="prepared data (default artifacts/data; a small synthetic set is made if missing)")
    p.add_argument("--out", type=Path, default=Path("reports/benchmarks.json"), help="the JSON written")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for development")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: train.threads)")
    return p


def locate_data(cfg: C.Config, data_dir: Path, tmp: Path) -> tuple[Path, str]:
    """The prepared data at data_dir if it is complete (has its manifest), else a small synthetic set."""
    if (data_dir / "manifest.json").is_file():
        return data_dir, str(data_dir)
    return synthetic_data(cfg, Path(tmp) / "data"), "synthetic set made by harness.data.prepare in a temp dir"


# --- training step: harness vs plain PyTorch ------------------------------------------------

def in_memory_batches(cfg: C.Config, data_dir: Path, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """n augmented training batches, materialised once (the loader is measured separately)."""
    view, _, _ = build_views(cfg, data_dir, seed=1)
    batches = loop.epoch_batches(len(view), cfg.train.batch_size, 1, 0)
    batches = (batches * (n // max(len(batches), 1) + 1))[:n]
    return [view[b] for b in batches]


def harness_epoch(model, optimizer, cfg: C.TrainConfig, batches) -> float:
    """Seconds of train_one_epoch over `batches`, with the stage's step hook (a list append)."""
    steps: list = []
    hooks = loop.Hooks(on_step=lambda s, loss, lr: steps.append((s, loss, lr)))
    torch.manual_seed(DROPOUT_SEED)
    return timed(lambda: loop.train_one_epoch(model, batches, optimizer, cfg, loop.TrainState(), len(batches), hooks))


DROPOUT_SEED = 0  # both loops start every round from this torch seed: the same dropout masks


def harness_lrs(cfg: C.TrainConfig, steps: int) -> list[float]:
    """The lr of each step of harness_epoch (a fresh TrainState, epoch 0 of `steps` steps)."""
    return [recipe.lr_at(cfg, loop.TrainState(), i / steps) for i in range(steps)]


def plain_epoch(model, optimizer, batches, lrs) -> float:
    """The baseline: the loop every PyTorch tutorial writes, given the harness's lr per step."""
    def run():
        model.train()
        for (x, y), lr in zip(batches, lrs):
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    torch.manual_seed(DROPOUT_SEED)
    return timed(run)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def twin_models(cfg: C.Config, num_classes: int):
    """(harness model, optimizer), (baseline model, optimizer): equal weights, the same update rule."""
    torch.manual_seed(0)
    harness_model = build_model(cfg.model, num_classes)
    plain_model = copy.deepcopy(harness_model)
    return ((harness_model, recipe.make_optimizer(harness_model, cfg.train)),
            (plain_model, recipe.make_optimizer(plain_model, cfg.train)))


def train_step(cfg: C.Config, num_classes: int, batches, sizes: Sizes) -> dict:
    (harness_model, harness_opt), (plain_model, plain_opt) = twin_models(cfg, num_classes)
    lrs = harness_lrs(cfg.train, len(batches))
    harness_epoch(harness_model, harness_opt, cfg.train, batches[:2])  # warm-up: allocator, optimizer state
    plain_epoch(plain_model, plain_opt, batches[:2], harness_lrs(cfg.train, 2))  # the lr of a 2-step epoch
    th, tp = paired_rounds(lambda: harness_epoch(harness_model, harness_opt, cfg.train, batches),
                           lambda: plain_epoch(plain_model, plain_opt, batches, lrs), sizes.rounds)
    images = sum(len(y) for _, y in batches)
    overhead = [100.0 * (h / p - 1.0) for h, p in zip(th, tp)]  # paired per round
    return {"images_per_round": images, "rounds": sizes.rounds,
            "harness_images_per_s": summary([images / t for t in th]),
            "plain_images_per_s": summary([images / t for t in tp]),
            "overhead_pct": summary(overhead),
            "optimizer": type(harness_opt).__name__, "baseline_optimizer": type(plain_opt).__name__,
            "baseline": "plain loop, same model, initial weights, update rule, lr per step, batches and dropout masks",
            # the work was the same: after every round both hold the same weights, bit for bit
            "same_weights": same_weights(harness_model, plain_model)}


def fixed_overhead(cfg: C.Config, num_classes: int, sizes: Sizes, steps: int = 200) -> dict:
    """The harness's bookkeeping per step (lr schedule, loss check, .item() calls, top-5 counts,
    progress bar, hook, its optimizer's Python loop) with the model made negligible: a tiny
    linear layer, so both loops measure almost nothing but their own Python. In microseconds,
    independent of the model; compare it with a real step's time."""
    tiny = torch.nn.Linear(8, num_classes)
    twin = copy.deepcopy(tiny)
    xs = [(torch.randn(cfg.train.batch_size, 8), torch.randint(0, num_classes, (cfg.train.batch_size,)))
          for _ in range(steps)]
    ho, po = recipe.make_optimizer(tiny, cfg.train), recipe.make_optimizer(twin, cfg.train)
    lrs = harness_lrs(cfg.train, steps)
    th, tp = paired_rounds(lambda: harness_epoch(tiny, ho, cfg.train, xs), lambda: plain_epoch(twin, po, xs, lrs),
                           sizes.rounds)
    h, p = statistics.median(th) / steps * 1e6, statistics.median(tp) / steps * 1e6
    return {"harness_us_per_step": h, "plain_us_per_step": p, "overhead_us_per_step": h - p}


# --- where the step's time goes ---------------------------------------------------------------

def op_profile(cfg: C.Config, num_classes: int, batches, top: int = 12) -> dict:
    """torch.profiler over the harness's steps: the operators with the most self CPU time."""
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes)
    opt = recipe.make_optimizer(model, cfg.train)
    harness_epoch(model, opt, cfg.train, batches[:2])
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        harness_epoch(model, opt, cfg.train, batches)
    return profile_shares(prof, len(batches), top)


# profiler ranges of harness/model/lrn.py's autograd Function (forward, backward); the reference
# LRN (nn.LocalResponseNorm) has no range of its own: lrn_cost measures it by removal
LRN_EVENTS = ("_LRN", "autograd::engine::evaluate_function: _LRNBackward")


def profile_shares(prof, steps: int, top: int = 12) -> dict:
    """The top operators by self CPU time, and the fast LRN's share: its forward and backward
    ranges (children included) over the summed self CPU time of every operator."""
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    lrn = sum(e.cpu_time_total for e in prof.key_averages() if e.key in LRN_EVENTS)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return {"steps": steps, "self_cpu_ms_per_step": total / 1e3 / steps, "lrn_share_pct": 100.0 * lrn / total,
            "top_ops": [{"op": e.key, "calls_per_step": e.count / steps,
                         "self_cpu_pct": 100.0 * e.self_cpu_time_total / total} for e in events[:top]]}


def lrn_cost(cfg: C.Config, num_classes: int, batches, sizes: Sizes) -> dict:
    """The LRN's share of the plain step by removal, for the configured implementation and the
    other one: 1 - (step with model.lrn 'none') / (step with LRN), rounds interleaved."""
    other = "reference" if cfg.model.lrn_impl == "fast" else "fast"
    variants = {"configured": cfg.model, "other": replace(cfg.model, lrn_impl=other),
                "none": replace(cfg.model, lrn="none")}
    lrs = harness_lrs(cfg.train, len(batches))
    models = {}
    for key, mcfg in variants.items():
        torch.manual_seed(0)
        m = build_model(mcfg, num_classes)
        models[key] = (m, recipe.make_optimizer(m, cfg.train))
        plain_epoch(*models[key], batches[:2], lrs[:2])
    times = {key: [] for key in models}
    for r in range(sizes.rounds):
        for key in (list(models) if r % 2 == 0 else list(models)[::-1]):
            times[key].append(plain_epoch(*models[key], batches, lrs))
    med = {key: statistics.median(t) for key, t in times.items()}
    share = lambda key: 100.0 * (1 - med["none"] / med[key])  # noqa: E731
    fast, ref = ("configured", "other") if other == "reference" else ("other", "configured")
    return {"lrn": cfg.model.lrn, "lrn_impl": cfg.model.lrn_impl, "step_share_pct": share("configured"),
            "fast_step_share_pct": share(fast), "reference_step_share_pct": share(ref),
            "fast_vs_reference_step_speedup": med[ref] / med[fast]}


# --- FLOPs and the machine's matmul peak ----------------------------------------------------

def matmul_peak(n: int, reps: int) -> dict:
    """Best-of-reps fp32 FLOP/s of an n x n matmul: the practical peak of this CPU and thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = min(timed(lambda: a @ b) for _ in range(reps))
    return {"n": n, "dtype": "float32", "flop_per_s": 2.0 * n**3 / best, "best_s": best}


def model_flops(model, input_size: int) -> dict:
    """Training FLOPs per image: multiply-adds x 2 (FLOPs) x 3 (forward + backward ~ 2x forward)."""
    macs = sum(r.mult_adds for r in layer_table(model, input_size))
    return {"mult_adds_per_image": macs, "train_flop_per_image": 6 * macs, "parameters": count_params(model)}


def mfu(train: dict, flops: dict, peak: dict) -> dict:
    achieved = {k: train[f"{k}_images_per_s"]["median"] * flops["train_flop_per_image"] for k in ("harness", "plain")}
    return {"harness_flop_per_s": achieved["harness"], "plain_flop_per_s": achieved["plain"],
            "peak_flop_per_s": peak["flop_per_s"], "harness_mfu": achieved["harness"] / peak["flop_per_s"],
            "plain_mfu": achieved["plain"] / peak["flop_per_s"]}


# --- loader ---------------------------------------------------------------------------------

def loader_speed(cfg: C.Config, data_dir: Path, sizes: Sizes, train_ips: float) -> dict:
    """TrainView + batch_loader, exactly as the train stage builds them, over one epoch's order."""
    view, _, _ = build_views(cfg, data_dir, seed=1)
    order = loop.epoch_batches(len(view), cfg.train.batch_size, 1, 0)
    order = (order * (sizes.loader_batches // max(len(order), 1) + 1))[:sizes.loader_batches]
    images = sum(len(b) for b in order)

    def one_pass() -> float:
        return timed(lambda: [None for _ in transforms.batch_loader(view, order, cfg.train.num_workers)])
    one_pass()  # warm-up: page cache of the memory-mapped shards
    ips = [images / one_pass() for _ in range(sizes.loader_rounds)]
    med = statistics.median(ips)
    return {"images_per_s": summary(ips), "num_workers": cfg.train.num_workers,
            "training_images_per_s": train_ips, "headroom": med / train_ips,
            # with num_workers 0 the loader runs in the training process, between steps
            "serial_epoch_images_per_s": 1.0 / (1.0 / med + 1.0 / train_ips)}


# --- 10-patch evaluation ----------------------------------------------------------------------

def ten_patch_eval(cfg: C.Config, data_dir: Path, num_classes: int, sizes: Sizes) -> dict:
    """EvalView(ten_patch) + evaluate.predict (the evaluate stage's path) against a forward pass
    on the same patches already in memory (softmax averaged over the 10 views either way)."""
    mean, _ = shards.load_stats(data_dir)
    split = shards.load_split(data_dir, "val")
    view = transforms.EvalView(split, transforms.Normaliser(mean, cfg.model.input_scale),
                               cfg.model.input_size, "ten_patch")
    n = min(sizes.eval_images, len(split))
    order = transforms.eval_batches(n, cfg.evaluate.batch_size)
    model = build_model(cfg.model, num_classes).eval()
    patches = [view[b][0] for b in order]

    @torch.no_grad()
    def forward_only():
        for x in patches:
            b, v = x.shape[:2]
            torch.softmax(model(x.flatten(0, 1)), 1).view(b, v, -1).mean(1)

    def full():
        inference.predict(model, transforms.batch_loader(view, order, 0), n, "benchmark ten_patch")

    full()  # warm-up
    th, tp = paired_rounds(lambda: timed(full), lambda: timed(forward_only), sizes.eval_rounds)
    return {"images": n, "views_per_image": 10, "batch_size": cfg.evaluate.batch_size,
            "images_per_s": summary([n / t for t in th]),
            "forward_only_images_per_s": summary([n / t for t in tp]),
            "view_share_pct": 100.0 * (1 - statistics.median(tp) / statistics.median(th))}


def class_count(data_dir: Path) -> int:
    return len(shards.load_manifest(data_dir)["classes"])
