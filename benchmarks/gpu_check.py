"""The prepared GPU check of issue 7: one command, under 8 minutes on one H200, no network.

  python benchmarks/gpu_check.py [--out DIR_OR_FILE] [--jpegs FOLDER] [--budget-s 420]
  python benchmarks/gpu_check.py --smoke        # tiny sizes on the CPU (the test runs this)

Measures the paper model (width 1, 224 px crops, 1000 classes): training images/s in fp32 and
bf16 autocast, eager and torch.compile, NCHW and channels_last, at batch 128 and larger;
model FLOPs utilisation against a bf16 matmul timed in the same run; 10-patch evaluation
images/s; the fast LRN (model.lrn_impl fast) against the reference on the device (lrn_check);
JPEG decoding on the GPU (torchvision.io.decode_jpeg, device="cuda") against the
CPU decoder; host-to-device copies from pinned and pageable memory; and the projected time of
90 ILSVRC-2012 epochs against the goal (20,000 images/s, under 2 hours).

Needs only torch (torchvision for the JPEG part): it imports harness.model and harness.accel,
whose import chain is torch plus harness.config, which imports yaml at the top for
load_config (never called here), so a stand-in yaml module is used when PyYAML is missing.
Every part has a time budget; a part that fails or runs out of time is recorded, not fatal.
For the JPEG part on a machine without /work/shared, copy the sample folder into the checkout
(a git-ignored folder) and pass it with --jpegs; without it, synthetic JPEGs are decoded.
The JSON is rewritten after every part, so a killed run still leaves what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import time
import traceback
import types
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
try:
    import yaml  # noqa: F401
except ImportError:  # harness.config imports yaml only for load_config, which is not used here
    sys.modules["yaml"] = types.ModuleType("yaml")
from harness import accel  # noqa: E402
from harness.config import ModelConfig  # noqa: E402
from harness.model import build_model, layer_table  # noqa: E402

ILSVRC2012_TRAIN = 1_281_167  # images
EPOCHS = 90  # paper 5: "roughly 90 cycles"
GOAL_IMAGES_PER_S = 20_000  # issue 7: 90 epochs in under 2 hours on one H200
DEFAULT_JPEGS = Path("/work/shared/data/imagenet-sample")


@dataclass(frozen=True)
class Plan:
    """Sizes and budgets (seconds) of one check."""

    device: str
    model: ModelConfig
    classes: int
    stored: int  # side of the stored image the 10 patches are cut from (paper: 256)
    batches: tuple[int, ...]
    big_batches: tuple[int, ...]  # bf16 channels_last only
    eval_batch: int
    matmul_n: int
    warmup_steps: int
    min_steps: int
    measure_s: float  # seconds each timed loop runs after its warm-up (at least min_steps)
    part_s: float  # hard budget of one part, warm-up included
    compile_s: float  # hard budget of a compiled config, compilation included
    jpeg_batch: int
    synthetic_jpegs: int
    h2d_batch: int


def full_plan(device: str) -> Plan:
    return Plan(device, ModelConfig(), 1000, 256, (128,), (256, 512), 128, 8192, 5, 10, 8.0, 40.0, 180.0,
                128, 128, 256)


def smoke_plan(device: str) -> Plan:
    return Plan(device, ModelConfig(width=0.125, input_size=64), 10, 72, (4,), (8,), 4, 128, 1, 2, 0.3,
                60.0, 90.0, 4, 4, 4)


# --- budgets -------------------------------------------------------------------------------

class PartTimeout(Exception):
    pass


@contextmanager
def deadline(seconds: float):
    """Raise PartTimeout in the main thread after `seconds` (SIGALRM; Unix)."""
    if not hasattr(signal, "setitimer") or seconds <= 0:
        yield
        return

    def fire(signum, frame):
        raise PartTimeout(f"ran past its {seconds:.0f} s budget")
    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Recorder:
    """Runs parts under budgets and rewrites the JSON after each one."""

    def __init__(self, out: Path, total_s: float):
        self.out, self.end = out, time.monotonic() + total_s
        self.result: dict = {"parts": {}}

    def left(self) -> float:
        return self.end - time.monotonic()

    def part(self, name: str, budget: float, fn, *args):
        budget = min(budget, self.left())
        rec: dict = {"budget_s": round(budget, 1)}
        t0 = time.monotonic()
        if budget < 1:
            rec.update(ok=False, error="skipped: the check's total budget is spent")
        else:
            try:
                with deadline(budget):
                    rec.update(fn(*args) or {})
                rec["ok"] = True
            except Exception as exc:  # noqa: BLE001 - one part's failure must not end the check
                rec.update(ok=False, error=f"{type(exc).__name__}: {str(exc)[:400]}",
                           trace=traceback.format_exc(limit=3)[-800:])
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        rec["seconds"] = round(time.monotonic() - t0, 2)
        self.result["parts"][name] = rec
        self.save()
        status = "ok" if rec["ok"] else rec["error"]
        print(f"[gpu-check] {name}: {status} ({rec['seconds']} s)", flush=True)
        return rec

    def save(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.out.parent, prefix=f".{self.out.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(self.result, f, indent=2, default=str)
        os.replace(tmp, self.out)


# --- the parts -------------------------------------------------------------------------------

def environment(device: str) -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "device": device, "cpu_count": os.cpu_count(), "threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), sm_count=p.multi_processor_count,
                   cudnn=torch.backends.cudnn.version())
    try:
        import torchvision
        env["torchvision"] = torchvision.__version__
    except ImportError:
        env["torchvision"] = None
    return env


def matmul_peak(device: str, n: int, dtype: torch.dtype, budget_s: float = 8.0) -> dict:
    """Best FLOP/s of an n x n x n matmul, repeated until the budget: the practical peak."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    best, reps, t_end = float("inf"), 0, time.monotonic() + budget_s
    while time.monotonic() < t_end and reps < 50:
        t0 = time.perf_counter()
        for _ in range(10):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - t0) / 10)
        reps += 1
    return {"n": n, "dtype": str(dtype).replace("torch.", ""), "flop_per_s": 2.0 * n**3 / best}


def train_flop_per_image(plan: Plan) -> float:
    """multiply-adds x 2 (FLOPs) x 3 (forward + backward); the paper net: 724M mult-adds."""
    model = build_model(plan.model, plan.classes)
    return 6.0 * sum(r.mult_adds for r in layer_table(model, plan.model.input_size))


def make_trainer(plan: Plan, batch: int, precision: str, channels_last: bool, compile_backend: str | None):
    torch.manual_seed(0)
    model = build_model(plan.model, plan.classes, (plan.device,))
    if channels_last:
        model = accel.to_channels_last(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    fmt = accel.memory_format(channels_last)
    s = plan.model.input_size
    x = torch.randn(batch, 3, s, s, device=plan.device).contiguous(memory_format=fmt)
    y = torch.randint(0, plan.classes, (batch,), device=plan.device)
    fwd = model
    if compile_backend:
        fwd = torch.compile(model, backend=compile_backend)

    def step():
        with accel.autocast(plan.device, precision):
            loss = F.cross_entropy(fwd(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def train_speed(plan: Plan, batch: int, precision: str, channels_last: bool, compile_backend: str | None,
                flop_per_image: float, peak: float | None) -> dict:
    """Images/s of a full training step on data already on the device (model-bound speed)."""
    t0 = time.monotonic()
    step = make_trainer(plan, batch, precision, channels_last, compile_backend)
    for _ in range(plan.warmup_steps):  # cuDNN autotuning, compilation, allocator
        step()
    sync(plan.device)
    warm_s = time.monotonic() - t0
    steps, t_start = 0, time.perf_counter()
    soft_end = time.monotonic() + plan.measure_s
    while steps < plan.min_steps or time.monotonic() < soft_end:
        step()
        steps += 1
        if steps % 5 == 0:
            sync(plan.device)
        if steps >= 2000:
            break
    sync(plan.device)
    ips = steps * batch / (time.perf_counter() - t_start)
    out = {"batch": batch, "precision": precision, "channels_last": channels_last,
           "compile": compile_backend or False, "images_per_s": ips, "steps": steps,
           "warmup_s": round(warm_s, 2), "flop_per_s": ips * flop_per_image,
           "hours_90_epochs": EPOCHS * ILSVRC2012_TRAIN / ips / 3600}
    if peak:
        out["mfu_vs_bf16_peak"] = out["flop_per_s"] / peak
    if plan.device.startswith("cuda"):
        out["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        torch.cuda.reset_peak_memory_stats()
    return out


def ten_views(images: torch.Tensor, crop: int) -> torch.Tensor:
    """paper 4.1: four corners + centre, and their mirrors; [B, 3, S, S] -> [B * 10, 3, c, c]."""
    s = images.shape[-1]
    e, m = s - crop, (s - crop) // 2
    crops = [images[..., y:y + crop, x:x + crop] for y, x in ((0, 0), (0, e), (e, 0), (e, e), (m, m))]
    crops += [c.flip(-1) for c in crops]
    return torch.stack(crops, 1).flatten(0, 1)


def eval_speed(plan: Plan, precision: str, channels_last: bool) -> dict:
    """10-patch evaluation of uint8 images already on the device: views, mean subtraction,
    forward in eval mode, softmax averaged over the 10 views (as harness.evaluate.predict)."""
    model = build_model(plan.model, plan.classes, (plan.device,)).eval()
    if channels_last:
        model = accel.to_channels_last(model)
    s, c, b = plan.stored, plan.model.input_size, plan.eval_batch
    images = torch.randint(0, 256, (b, 3, s, s), dtype=torch.uint8, device=plan.device)
    mean = torch.full((3, s, s), 120.0, device=plan.device)

    @torch.no_grad()
    def run():
        x = ten_views(images.float() - mean, c).contiguous(memory_format=accel.memory_format(channels_last))
        with accel.autocast(plan.device, precision):
            logits = model(x)
        return torch.softmax(logits.float(), 1).view(b, 10, -1).mean(1)

    for _ in range(plan.warmup_steps):
        run()
    sync(plan.device)
    n, t0, soft_end = 0, time.perf_counter(), time.monotonic() + plan.measure_s
    while n < plan.min_steps or time.monotonic() < soft_end:
        run()
        n += 1
        if n >= 1000:
            break
    sync(plan.device)
    return {"precision": precision, "channels_last": channels_last, "batch": b, "views": 10,
            "images_per_s": n * b / (time.perf_counter() - t0)}


def jpeg_inputs(folder: Path | None, count: int, smoke: bool) -> tuple[list[torch.Tensor], str]:
    """Encoded JPEG bytes: real files from `folder` when it has any, else synthetic images."""
    from torchvision.io import encode_jpeg
    if folder and folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpeg", ".jpg"))
        if files:
            data = [torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8) for p in files]
            return data, f"{len(files)} JPEGs from {folder}"
    side = 64 if smoke else 400
    g = torch.Generator().manual_seed(0)
    data = []
    for i in range(count):  # smooth gradients plus noise: compresses like a photo, not like noise
        ramp = torch.linspace(0, 255, side).view(1, 1, side) * torch.rand(3, 1, 1, generator=g)
        img = (ramp + ramp.transpose(1, 2) * 0.5 + torch.randn(3, side, side, generator=g) * 8)
        data.append(encode_jpeg(img.clamp(0, 255).to(torch.uint8), quality=90))
    return data, f"{count} synthetic {side}x{side} JPEGs (torchvision.io.encode_jpeg, quality 90)"


def jpeg_speed(plan: Plan, folder: Path | None, smoke: bool) -> dict:
    """torchvision.io.decode_jpeg on the GPU (batched) against the CPU decoder, same files."""
    from torchvision.io import ImageReadMode, decode_jpeg
    data, source = jpeg_inputs(folder, plan.synthetic_jpegs, smoke)
    batch = (data * (plan.jpeg_batch // len(data) + 1))[:plan.jpeg_batch]
    out = {"source": source, "batch": len(batch), "bytes_per_image": sum(d.numel() for d in data) / len(data)}

    def rate(device: str) -> float:
        decode_jpeg(batch, mode=ImageReadMode.RGB, device=device)  # warm-up (decoder handles)
        sync(device)
        n, t0, end = 0, time.perf_counter(), time.monotonic() + plan.measure_s
        while n < 2 or time.monotonic() < end:
            decode_jpeg(batch, mode=ImageReadMode.RGB, device=device)
            n += 1
        sync(device)
        return n * len(batch) / (time.perf_counter() - t0)

    out["cpu_images_per_s"] = rate("cpu")
    out["cpu_decoder"] = "torchvision decode_jpeg on the CPU (libjpeg-turbo), one process, one image at a time"
    if plan.device.startswith("cuda"):
        out["gpu_images_per_s"] = rate(plan.device)
        out["gpu_vs_cpu"] = out["gpu_images_per_s"] / out["cpu_images_per_s"]
    return out


def h2d_speed(plan: Plan) -> dict:
    """Host-to-device copy of one uint8 training batch (stored side), pinned vs pageable."""
    if not plan.device.startswith("cuda"):
        return {"skipped": "no CUDA device"}
    s, b = plan.stored, plan.h2d_batch
    pageable = torch.randint(0, 256, (b, 3, s, s), dtype=torch.uint8)
    pinned = accel.pin(pageable)
    out = {"batch": b, "bytes": pageable.numel()}
    for name, src in (("pageable", pageable), ("pinned", pinned)):
        accel.to_device(src, plan.device)
        sync(plan.device)
        n, t0, end = 0, time.perf_counter(), time.monotonic() + plan.measure_s / 2
        while n < 5 or time.monotonic() < end:
            accel.to_device(src, plan.device)
            n += 1
        sync(plan.device)
        dt = (time.perf_counter() - t0) / n
        out[f"{name}_gb_per_s"] = pageable.numel() / dt / 1e9
        out[f"{name}_images_per_s"] = b / dt
    return out


def projection(parts: dict) -> dict:
    """90 ILSVRC-2012 epochs at the best measured training speed (model-bound: data on device)."""
    runs = [(k, v) for k, v in parts.items() if k.startswith("train ") and v.get("ok")]
    if not runs:
        return {"error": "no training configuration finished"}
    name, best = max(runs, key=lambda kv: kv[1]["images_per_s"])
    ips = best["images_per_s"]
    hours = EPOCHS * ILSVRC2012_TRAIN / ips / 3600
    return {"best_config": name, "images_per_s": ips, "epochs": EPOCHS, "images_per_epoch": ILSVRC2012_TRAIN,
            "hours_90_epochs": hours, "goal_images_per_s": GOAL_IMAGES_PER_S, "goal_hours": 2.0,
            "goal_met": ips >= GOAL_IMAGES_PER_S,
            "paper_hours": "5-6 days on two GTX 580 (about 120-145 h)"}


# --- the check -----------------------------------------------------------------------------------

# --- the fast LRN on the device (harness/model/lrn.py; kept apart from the parts above) ----------

def lrn_check(plan: Plan, compile_backend: str | None = None) -> dict:
    """model.lrn_impl fast against reference on the device: their largest relative difference
    (forward and backward, fp32 and bf16, at conv1's and conv2's maps of the plan's net), the
    layer's forward+backward time, and the training images/s of the whole net with each, in
    bf16 channels_last (fp32 on a CPU; eager, and compiled when a backend is given). The fast LRN is also what
    every train part above already runs (it is the default)."""
    from dataclasses import replace

    from harness.model import TowerLRN
    out: dict = {"layers": {}, "train": {}}
    model = build_model(plan.model, plan.classes)
    shapes = [r.out_shape for r in layer_table(model, plan.model.input_size) if r.name in ("conv1", "conv2")]
    b = plan.batches[0]
    convention = plan.model.lrn if plan.model.lrn != "none" else "paper"
    for name, shape in zip(("lrn1", "lrn2"), shapes):
        for dtype in (torch.float32, torch.bfloat16):
            x = (torch.randn(b, *shape, device=plan.device) * 30).relu().to(dtype)
            g = torch.randn_like(x)
            # the differences are taken against the reference in fp32 on the same (rounded) input
            y_r, g_r, _ = _lrn_run(TowerLRN(2, convention, "reference"), x.float(), g.float())
            y_f, g_f, _ = _lrn_run(TowerLRN(2, convention, "fast"), x, g)
            rec = {"shape": [b, *shape],
                   "max_rel_diff_forward": float((y_f.float() - y_r).abs().max() / y_r.abs().max()),
                   "max_rel_diff_backward": float((g_f.float() - g_r).abs().max() / g_r.abs().max())}
            for impl in ("reference", "fast"):
                try:
                    rec[f"fwd_bwd_ms_{impl}"] = 1e3 * _lrn_run(TowerLRN(2, convention, impl), x, g, plan)[2]
                except (NotImplementedError, RuntimeError) as exc:  # avg_pool3d has no CPU bf16 kernel
                    rec[f"fwd_bwd_ms_{impl}"] = None
                    rec[f"{impl}_error"] = str(exc).splitlines()[0][:200]
            if rec["fwd_bwd_ms_reference"]:
                rec["speedup"] = rec["fwd_bwd_ms_reference"] / rec["fwd_bwd_ms_fast"]
            out["layers"][f"{name} {str(dtype).replace('torch.', '')}"] = rec
    flop = train_flop_per_image(plan)
    precision = "bf16" if plan.device.startswith("cuda") else "fp32"  # avg_pool3d: no CPU bf16 kernel
    for impl in ("reference", "fast"):
        lrn_plan = replace(plan, model=replace(plan.model, lrn_impl=impl))
        for backend in (None, compile_backend) if compile_backend else (None,):
            key = f"{precision} channels_last b{b} {'compiled' if backend else 'eager'} {impl}"
            out["train"][key] = train_speed(lrn_plan, b, precision, True, backend, flop, None)["images_per_s"]
    return out


def _lrn_run(layer, x, g, plan: Plan | None = None):
    """(output, input gradient, median seconds of forward+backward when a plan is given)."""
    xi = x.clone().requires_grad_()

    def fb():
        xi.grad = None
        layer(xi).backward(g)
    y = layer(xi).detach()
    fb()
    return y, xi.grad, (_seconds(plan, fb) if plan else None)


def _seconds(plan: Plan, fn) -> float:
    """Median seconds of fn over plan.min_steps calls after plan.warmup_steps."""
    for _ in range(plan.warmup_steps):
        fn()
    sync(plan.device)
    times = []
    for _ in range(max(plan.min_steps, 3)):
        t0 = time.perf_counter()
        fn()
        sync(plan.device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def train_configs(plan: Plan, compile_backend: str | None) -> list[tuple]:
    """(batch, precision, channels_last, compile backend): the harness today first
    (fp32, NCHW, eager), then the GPU path's switches one by one, compiled last (slowest)."""
    b0 = plan.batches[0]
    cfgs = [(b0, "fp32", False, None), (b0, "fp32", True, None), (b0, "bf16", False, None), (b0, "bf16", True, None)]
    cfgs += [(b, "bf16", True, None) for b in plan.big_batches]
    if compile_backend:
        big = plan.big_batches[-1] if plan.big_batches else b0
        cfgs += [(big, "bf16", True, compile_backend), (b0, "fp32", True, compile_backend)]
    return cfgs


def config_name(batch, precision, channels_last, compile_backend) -> str:
    fmt = "channels_last" if channels_last else "nchw"
    return f"train {precision} {fmt} b{batch} {'compiled' if compile_backend else 'eager'}"


def check(plan: Plan, rec: Recorder, jpegs: Path | None, smoke: bool, compile_backend: str | None) -> dict:
    r = rec.result
    r["plan"] = {k: (v.__dict__ if isinstance(v, ModelConfig) else v) for k, v in plan.__dict__.items()}
    r["environment"] = environment(plan.device)
    r["flags"] = accel.configure_cudnn(deterministic=False)  # issue 7: autotune when not deterministic
    flop = train_flop_per_image(plan)
    r["train_flop_per_image"] = flop
    peak = rec.part("matmul bf16", plan.part_s, matmul_peak, plan.device, plan.matmul_n, torch.bfloat16, plan.measure_s)
    rec.part("matmul fp32", plan.part_s, matmul_peak, plan.device, plan.matmul_n, torch.float32, plan.measure_s)
    peak_flops = peak.get("flop_per_s")
    for cfg in train_configs(plan, compile_backend):
        budget = plan.compile_s if cfg[3] else plan.part_s
        rec.part(config_name(*cfg), budget, train_speed, plan, *cfg, flop, peak_flops)
    for precision, cl in (("fp32", False), ("bf16", True)):
        rec.part(f"eval ten_patch {precision} {'channels_last' if cl else 'nchw'}", plan.part_s, eval_speed,
                 plan, precision, cl)
    rec.part("lrn fast vs reference", plan.compile_s, lrn_check, plan, compile_backend)
    rec.part("jpeg decode", plan.part_s, jpeg_speed, plan, jpegs, smoke)
    rec.part("host to device copy", plan.part_s, h2d_speed, plan)
    r["projection"] = projection(r["parts"])
    r["gpu_path_in_train_stage"] = GPU_PATH_STATUS
    rec.save()
    return r


# What harness/train/loop.py and harness/stages/train.py do today (updated when the GPU path was wired in:
# issues 4.5 and 7.2; the defaults still train exactly as before).
GPU_PATH_STATUS = {
    "bf16_autocast": "present: train.precision bf16 (autocast around forward and loss in train_one_epoch, "
                     "validation and evaluate.predict); default fp32",
    "channels_last": "present: train.channels_last (model before the optimizer, batches via accel.to_device; "
                     "evaluation too); default off",
    "torch_compile": "present: train.compile (harness.stages.train.compile_model; falls back to eager with a "
                     "warning, logged as the run's compile tag); default off",
    "pinned_memory": "present: transforms.batch_loader pins on CUDA machines; images and labels are copied "
                     "with non_blocking=True",
    "cudnn_benchmark": "present: train.deterministic false enables cudnn.benchmark and non-deterministic "
                       "algorithms (gives up bitwise reproducibility); default true (deterministic)",
    "host_syncs_per_step": "none per step: loss and top-1/top-5 counts are summed on the device and read (with "
                           "the NaN check, step losses and the progress bar) once every train.SYNC_EVERY=20 "
                           "steps and before each checkpoint",
    "gpu_jpeg_decode": "present: train.decode_device cuda decodes JPEG shards with torchvision.io.decode_jpeg "
                       "on the device and augments there (transforms.DeviceTrainBatches); default cpu "
                       "(simplejpeg in the loader)",
    "lrn": "present: model.lrn_impl fast (default; harness/model/lrn.py: elementwise ops, deterministic, "
           "one chunk on a GPU) or reference (nn.LocalResponseNorm, avg_pool3d); lrn_check compares them",
    "two_towers_two_gpus": "present: train.devices [cuda:0, cuda:1] (TwoDeviceAlexNet)",
    "ddp": "present: torchrun, NCCL on CUDA (harness.runtime)",
}


def table(r: dict) -> str:
    lines = [f"{'part':44} {'result':>40}"]
    for name, p in r["parts"].items():
        if not p.get("ok"):
            val = f"FAILED {p.get('error', '')[:60]}"
        elif "images_per_s" in p:
            val = f"{p['images_per_s']:,.0f} img/s"
            if "mfu_vs_bf16_peak" in p:
                val += f"  MFU {100 * p['mfu_vs_bf16_peak']:.1f}%"
        elif "flop_per_s" in p:
            val = f"{p['flop_per_s'] / 1e12:,.1f} TFLOP/s"
        elif "cpu_images_per_s" in p:
            val = f"CPU {p['cpu_images_per_s']:,.0f}" + (f"  GPU {p['gpu_images_per_s']:,.0f} img/s"
                                                         if "gpu_images_per_s" in p else " img/s")
        elif "layers" in p and p["layers"]:
            worst = max(v["max_rel_diff_backward"] for v in p["layers"].values())
            speed = min(v.get("speedup", float("inf")) for v in p["layers"].values())
            val = f"LRN >= {speed:.1f}x faster, max rel diff {worst:.1e}"
        elif "pinned_gb_per_s" in p:
            val = f"pinned {p['pinned_gb_per_s']:.1f}  pageable {p['pageable_gb_per_s']:.1f} GB/s"
        else:
            val = "ok"
        lines.append(f"{name:44} {val:>40}")
    pr = r.get("projection", {})
    if "hours_90_epochs" in pr:
        lines.append(f"90 epochs of ILSVRC-2012 at {pr['images_per_s']:,.0f} img/s: {pr['hours_90_epochs']:.2f} h "
                     f"(goal {GOAL_IMAGES_PER_S:,} img/s, < 2 h: {'met' if pr['goal_met'] else 'NOT met'})")
    return "\n".join(lines)


def out_path(arg: str | None) -> Path:
    if arg:
        p = Path(arg)
        return p / "gpu_check.json" if p.is_dir() or not p.suffix else p
    return Path(os.environ.get("OUT", ".")) / "gpu_check.json"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="JSON file or folder (default: $OUT/gpu_check.json, else ./gpu_check.json)")
    p.add_argument("--jpegs", type=Path, default=DEFAULT_JPEGS,
                   help=f"folder of real JPEGs for the decode part (default {DEFAULT_JPEGS}; synthetic if absent)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU, seconds (for the test)")
    p.add_argument("--device", default=None, help="default: cuda when available (cpu with --smoke)")
    p.add_argument("--budget-s", type=float, default=420.0, help="total time budget (default 420 s)")
    p.add_argument("--compile-backend", default=None,
                   help="torch.compile backend (default: inductor; 'eager' with --smoke); 'none' skips compile")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = args.device or ("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    plan = smoke_plan(device) if args.smoke else full_plan(device)
    backend = args.compile_backend or ("eager" if args.smoke else "inductor")
    rec = Recorder(out_path(args.out), args.budget_s)
    if device == "cpu" and not args.smoke:
        print("[gpu-check] no CUDA device: measuring the full-size model on the CPU (slow; use --smoke)", flush=True)
    r = check(plan, rec, args.jpegs, args.smoke, None if backend == "none" else backend)
    print(table(r))
    print(f"written: {rec.out}")
    return r


if __name__ == "__main__":
    main()
