"""The prepared GPU check (docs/performance.md): one command, under 8 minutes on one H200, no network.

  python benchmarks/gpu_check.py [--out DIR_OR_FILE] [--jpegs FOLDER] [--budget-s 420]
  python benchmarks/gpu_check.py --smoke        # tiny sizes on the CPU (the test runs this)

Measures the paper model (width 1, 224 px crops, 1000 classes): training images/s in fp32 and
bf16 autocast, eager and torch.compile, NCHW and channels_last, at batch 128 and larger;
model FLOPs utilisation against a bf16 matmul timed in the same run; 10-patch evaluation
images/s; the fast LRN (model.lrn_impl fast) against the reference on the device (lrn_check);
JPEG decoding on the GPU (torchvision.io.decode_jpeg, device="cuda") against the
CPU decoder; host-to-device copies from pinned and pageable memory; and the projected time of
90 ILSVRC-2012 epochs against the goal (20,000 images/s, under 2 hours).

Then the train stage's own code: harness.train.loop.train_one_epoch with the paper's
update rule (recipe.make_optimizer), pinned host batches copied as the loader's are, for a few
hundred steps on one GPU in IEEE fp32, TF32 and bf16, NCHW and channels_last, eager and
compiled; `harness pilot` when the checkout has it (and prepared data); and torchrun with one
process per GPU through harness.runtime (LOCAL_RANK devices, set_device, device_id, the
cpu:gloo,cuda:nccl backend, DDP, the float64 CPU sums and all_gather_object the stages use).

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
import math
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
try:
    import tqdm  # noqa: F401
except ImportError:  # the train loop draws a progress bar with it; a silent stand-in changes nothing else
    class _SilentBar:
        def __init__(self, iterable=None, **kwargs):
            self.iterable = iterable

        def __iter__(self):
            return iter(self.iterable)

        def set_postfix(self, *args, **kwargs):
            pass

    import importlib.machinery
    _stub = types.ModuleType("tqdm")
    _stub.__spec__ = importlib.machinery.ModuleSpec("tqdm", None)  # torch._dynamo looks modules up by spec
    _stub.tqdm = _SilentBar
    sys.modules["tqdm"] = _stub
from harness import accel
from harness.config import ModelConfig
from harness.model import build_model, layer_table

ILSVRC2012_TRAIN = 1_281_167  # images
EPOCHS = 90  # paper 5: "roughly 90 cycles"
GOAL_IMAGES_PER_S = 20_000  # the goal: 90 epochs in under 2 hours on one H200 (docs/performance.md)
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
    stage_steps: int = 300  # steps of the train stage's loop per configuration (after stage_warmup)
    stage_warmup: int = 20
    stage_s: float = 45.0  # hard budget of one eager stage configuration
    ddp_steps: int = 200


def full_plan(device: str) -> Plan:
    return Plan(device, ModelConfig(), 1000, 256, (128,), (256, 512), 128, 8192, 5, 10, 8.0, 40.0, 180.0,
                128, 128, 256)


def smoke_plan(device: str) -> Plan:
    return Plan(device, ModelConfig(width=0.125, input_size=64), 10, 72, (4,), (8,), 4, 128, 1, 2, 0.3,
                60.0, 90.0, 4, 4, 4, stage_steps=6, stage_warmup=2, stage_s=60.0, ddp_steps=4)


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
    accel.configure_precision(precision)  # fp32 = IEEE (TF32 off), as the train stage runs it; tf32 its own choice
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
    accel.configure_precision(precision)
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


# --- the train stage's own code ------------------------------------------------------------

STAGE_CONFIGS = (  # (fp32 matmul/conv precision, autocast, channels_last, compiled)
    ("ieee", "fp32", False, False),  # the paper's arithmetic: IEEE fp32 everywhere
    ("tf32", "fp32", False, False),
    ("tf32", "fp32", True, False),
    ("ieee", "bf16", True, False),
    ("ieee", "bf16", True, True),
)


def set_fp32_precision(mode: str) -> dict:
    """cuBLAS matmuls and cuDNN convolutions in IEEE fp32 or TF32, through torch's fp32_precision
    API (accel.configure_precision where the checkout has it; mixing in the legacy allow_tf32
    flags makes torch raise when either is read)."""
    if hasattr(accel, "configure_precision"):
        return accel.configure_precision("tf32" if mode == "tf32" else "fp32")
    torch.backends.cuda.matmul.fp32_precision = mode
    torch.backends.cudnn.conv.fp32_precision = mode
    return {"matmul_fp32_precision": mode, "cudnn_conv_fp32_precision": mode}


def stage_name(fp32: str, precision: str, channels_last: bool, compiled: bool) -> str:
    what = "bf16 autocast" if precision == "bf16" else ("tf32" if fp32 == "tf32" else "fp32 ieee")
    return f"stage train {what} {'channels_last' if channels_last else 'nchw'} {'compiled' if compiled else 'eager'}"


def host_batches(plan: Plan, batch: int, n: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Normalised crops and labels in (pinned) host memory, as the training loader yields them."""
    g = torch.Generator().manual_seed(0)
    s = plan.model.input_size
    return [(accel.pin(torch.randn(batch, 3, s, s, generator=g)), accel.pin(torch.randint(0, plan.classes, (batch,),
                                                                                         generator=g)))
            for _ in range(n)]


def stage_speed(plan: Plan, fp32: str, precision: str, channels_last: bool, compiled: bool,
                compile_backend: str | None, batch: int = 128, devices: tuple[str, ...] | None = None,
                d=None) -> dict:
    """Images/s of harness.train.loop.train_one_epoch, the train stage's loop (lr schedule, autocast,
    device-side sums read every SYNC_EVERY steps, the paper's update rule), for plan.stage_steps steps."""
    from harness.config import TrainConfig
    from harness.train import loop, recipe
    flags = set_fp32_precision(fp32) if plan.device.startswith("cuda") else {"fp32": "cpu (no TF32)"}
    cfg = TrainConfig(batch_size=batch, epochs=1, precision=precision, channels_last=channels_last,
                      compile=compiled, devices=devices or (plan.device,))
    torch.manual_seed(0)
    model = build_model(plan.model, plan.classes, cfg.devices)
    if channels_last:
        accel.to_channels_last(model)
    optimizer = recipe.make_optimizer(model, cfg)
    if d is not None:  # a torchrun rank (ddp_worker): gradients averaged over the ranks
        from harness import runtime
        train_model = runtime.wrap_ddp(model, d)
    else:
        train_model = model
    how = "off"
    if compiled:
        if not compile_backend:
            return {"skipped": "compiling is off (--compile-backend none)"}
        example = accel.to_device(torch.zeros(batch, 3, plan.model.input_size, plan.model.input_size),
                                  next(model.parameters()).device, channels_last)
        with accel.autocast(plan.device, precision):
            train_model, error = accel.try_compile(train_model, example, backend=compile_backend)
        if error:
            raise RuntimeError(f"torch.compile failed: {error}")
        how = compile_backend
    batches = host_batches(plan, batch)
    total = plan.stage_warmup + plan.stage_steps

    def loader(n):
        return (batches[i % len(batches)] for i in range(n))
    state = loop.TrainState()
    t0 = time.monotonic()
    loop.train_one_epoch(train_model, loader(plan.stage_warmup), optimizer, cfg, state, total, loop.Hooks())
    sync(plan.device)
    warm_s = time.monotonic() - t0
    losses: list[float] = []
    hooks = loop.Hooks(on_step=lambda step, loss, lr: losses.append(loss))
    t1 = time.perf_counter()
    loop.train_one_epoch(train_model, loader(plan.stage_steps), optimizer, cfg, state, total, hooks)
    sync(plan.device)
    seconds = time.perf_counter() - t1
    world = 1 if d is None else d.world
    out = {"fp32_precision": fp32, "precision": precision, "channels_last": channels_last, "compile": how,
           "batch": batch * world, "steps": plan.stage_steps, "warmup_steps": plan.stage_warmup,
           "warmup_s": round(warm_s, 2), "images_per_s": plan.stage_steps * batch * world / seconds,
           "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
           "losses_finite": all(map(math.isfinite, losses)), "backend_flags": flags,
           "code": "harness.train.loop.train_one_epoch + harness.train.recipe.make_optimizer"}
    if not out["losses_finite"]:
        raise FloatingPointError(f"the loss became non-finite: {losses[-5:]}")
    if plan.device.startswith("cuda"):
        out["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        torch.cuda.reset_peak_memory_stats()
    return out


def pilot_part(out_dir: Path, steps: int, data: Path | None) -> dict:
    """`harness pilot` (branch fidelity) on this checkout's params and prepared data, if both exist."""
    import subprocess

    from harness import cli
    choices = next(a for a in cli.build_parser()._actions if a.dest == "command").choices
    if "pilot" not in choices:
        return {"skipped": "this checkout has no `harness pilot` (it is being written on branch fidelity)"}
    repo = Path(__file__).resolve().parents[1]
    data = data or repo / "artifacts" / "data"
    if not (data / "manifest.json").is_file():
        return {"skipped": f"no prepared data in {data}: run `dvc repro prepare` first"}
    out = out_dir / "pilot.json"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "pilot", "--steps", str(steps), "--data", str(data),
                           "--out", str(out)],
                          check=False, cwd=repo, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"harness pilot exited {proc.returncode}: {(proc.stderr or proc.stdout)[-400:]}")
    return {"result": json.loads(out.read_text()), "stdout_tail": proc.stdout[-400:]}


def torchrun_part(plan: Plan, nproc: int, budget_s: float) -> dict:
    """torchrun with one process per GPU (2 CPU processes with --smoke): each rank joins through
    harness.runtime and trains plan.ddp_steps steps of the stage's loop under DDP."""
    import subprocess
    folder = Path(tempfile.mkdtemp(prefix="gpu-check-ddp-"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           str(Path(__file__).resolve()), "--ddp-worker", str(folder), "--device", plan.device,
           *(["--smoke"] if plan.model.width < 1 else [])]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=max(budget_s - 5, 10))
    ranks = [json.loads(p.read_text()) for p in sorted(folder.glob("rank-*.json"))]
    if proc.returncode or len(ranks) != nproc:
        raise RuntimeError(f"torchrun exited {proc.returncode} with {len(ranks)} of {nproc} ranks reporting: "
                           f"{(proc.stderr or proc.stdout)[-600:]}")
    r0 = ranks[0]
    return {"processes": nproc, "backend": r0["backend"], "devices": [r["devices"] for r in ranks],
            "collectives_ok": all(r["collectives_ok"] for r in ranks), "images_per_s": r0["train"]["images_per_s"],
            "global_batch": r0["train"]["batch"], "steps": r0["train"]["steps"], "ranks": ranks}


def ddp_worker(folder: Path, plan: Plan) -> None:
    """One torchrun rank of torchrun_part (run as `gpu_check.py --ddp-worker FOLDER`)."""
    from harness import runtime
    d = runtime.init_distributed(("cuda:0",) if plan.device.startswith("cuda") else ("cpu",))
    sums = runtime.all_reduce_sum([1.0 + 1e-12 * (d.rank + 1), 1.0], d)  # float64 on the CPU (gloo)
    gathered = runtime.all_gather({"rank": d.rank, "rng": runtime.rng_states(d)["cpu"]}, d)
    ok = abs(sums[0] - (d.world + 1e-12 * d.world * (d.world + 1) / 2)) < 1e-15 and sums[1] == d.world \
        and [g["rank"] for g in gathered] == list(range(d.world))
    device_plan = Plan(**{**plan.__dict__, "device": d.devices[0], "stage_steps": plan.ddp_steps})
    cuda = d.devices[0].startswith("cuda")
    per_rank = max(1, 128 // d.world) if plan.model.width >= 1 else 4  # paper 5: a global batch of 128
    train = stage_speed(device_plan, "ieee", "bf16" if cuda else "fp32", cuda, False, None, batch=per_rank,
                        devices=d.devices, d=d)
    runtime.barrier(d)
    (folder / f"rank-{d.rank}.json").write_text(json.dumps(
        {"rank": d.rank, "world": d.world, "local_rank": d.local_rank, "devices": list(d.devices),
         "backend": d.backend, "collectives_ok": ok, "train": train}, default=str))
    runtime.shutdown(d)


def stage_parts(plan: Plan, rec: Recorder, compile_backend: str | None, out_dir: Path, pilot_data: Path | None) -> None:
    cuda = plan.device.startswith("cuda")
    before = (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision) if cuda else None
    for cfg in STAGE_CONFIGS:
        rec.part(stage_name(*cfg), plan.compile_s if cfg[3] else plan.stage_s, stage_speed, plan, *cfg, compile_backend,
                 plan.batches[0])
    if cuda:  # the other parts measure torch's defaults, as before
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = before
    rec.part("pilot", plan.compile_s, pilot_part, out_dir, 300 if plan.model.width >= 1 else 5, pilot_data)
    nproc = torch.cuda.device_count() if plan.device.startswith("cuda") else 2
    rec.part(f"torchrun {nproc} process(es), one per {'GPU' if plan.device.startswith('cuda') else 'CPU process'}",
             plan.compile_s, torchrun_part, plan, nproc, plan.compile_s)


# --- the check -----------------------------------------------------------------------------------

# --- the fast LRN on the device (harness/model/lrn.py; kept apart from the parts above) ----------

def lrn_agreement(plan: Plan) -> dict:
    """model.lrn_impl fast (on CUDA the fused Triton kernels of harness/model/lrn_fused.py, unless
    they fell back: lrn_kernel says which ran) against reference (nn.LocalResponseNorm) on the
    device: their largest relative difference, forward and backward, fp32 and bf16 (also
    channels_last), at conv1's and conv2's maps of the plan's net, and the layer's forward+backward
    time with each. Run first: it is the device's check of the kernels' correctness."""
    from harness.model import TowerLRN
    out: dict = {"layers": {}}
    model = build_model(plan.model, plan.classes)
    shapes = [r.out_shape for r in layer_table(model, plan.model.input_size) if r.name in ("conv1", "conv2")]
    b = plan.batches[0]
    convention = plan.model.lrn if plan.model.lrn != "none" else "paper"
    for name, shape in zip(("lrn1", "lrn2"), shapes):
        for layout, dtype in (("", torch.float32), ("", torch.bfloat16), ("channels_last ", torch.bfloat16)):
            x = (torch.randn(b, *shape, device=plan.device) * 30).relu().to(dtype)
            g = torch.randn_like(x)
            if layout:
                x, g = x.contiguous(memory_format=torch.channels_last), g.contiguous(memory_format=torch.channels_last)
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
            out["layers"][f"{name} {layout}{str(dtype).replace('torch.', '')}"] = rec
    out["lrn_kernel"] = _lrn_kernel(plan.device, False)
    return out


def lrn_check(plan: Plan, compile_backend: str | None = None) -> dict:
    """The training images/s of the whole net with model.lrn_impl fast and reference, in bf16
    channels_last (fp32 on a CPU: avg_pool3d has no CPU bf16 kernel), eager and compiled when a
    backend is given. The fast LRN is also what every train part already runs (the default)."""
    from dataclasses import replace
    out: dict = {"train": {}}
    b = plan.batches[0]
    flop = train_flop_per_image(plan)
    precision = "bf16" if plan.device.startswith("cuda") else "fp32"
    for impl in ("reference", "fast"):
        lrn_plan = replace(plan, model=replace(plan.model, lrn_impl=impl))
        for backend in (None, compile_backend) if compile_backend else (None,):
            key = f"{precision} channels_last b{b} {'compiled' if backend else 'eager'} {impl}"
            out["train"][key] = train_speed(lrn_plan, b, precision, True, backend, flop, None)["images_per_s"]
    out["lrn_kernel"] = _lrn_kernel(plan.device, bool(compile_backend))
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


# --- side by side: the paper net against itself without LRN and against torchvision's alexnet ----

# (name, ModelConfig changes): the paper net, the same net with model.lrn none, and torchvision's
# alexnet (the 2014 variant: 714M multiply-adds against the paper net's 724M), trained the same way
SIDE_NETS = (("paper", {}), ("paper_no_lrn", {"lrn": "none"}),
             ("torchvision_alexnet", {"arch": "torchvision", "width": 1.0}))
SIDE_ROUNDS = 3


def side_by_side(plan: Plan, compile_backend: str | None = None) -> dict:
    """Training images/s of the SIDE_NETS at one setting (bf16 autocast, channels_last, batch
    big_batches[0] on a GPU; fp32 at the smoke batch on a CPU), eager or compiled, measured in
    interleaved rounds (a clock or thermal drift hits every net alike); the best round of each."""
    from dataclasses import replace
    cuda = plan.device.startswith("cuda")
    precision, batch = ("bf16", plan.big_batches[0]) if cuda else ("fp32", plan.batches[0])
    nets = SIDE_NETS if not compile_backend else SIDE_NETS[::2]  # compiled: paper and torchvision only
    steps, flop = {}, {}
    for name, change in nets:
        sub = replace(plan, model=replace(plan.model, **change))
        flop[name] = train_flop_per_image(sub)
        steps[name] = make_trainer(sub, batch, precision, True, compile_backend)
        for _ in range(plan.warmup_steps):  # autotuning, compilation
            steps[name]()
        sync(plan.device)
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(SIDE_ROUNDS):
        for name, step in steps.items():
            rates[name].append(_images_per_s(plan, step, batch, plan.measure_s / SIDE_ROUNDS))
    out = {"precision": precision, "channels_last": True, "batch": batch, "compile": compile_backend or False,
           "rounds": SIDE_ROUNDS, "lrn_kernel": _lrn_kernel(plan.device, bool(compile_backend)), "nets": {}}
    for name in steps:
        best = max(rates[name])
        out["nets"][name] = {"images_per_s": best, "rounds_images_per_s": rates[name],
                             "train_flop_per_image": flop[name], "flop_per_s": best * flop[name]}
    n = out["nets"]
    out["paper_vs_torchvision_alexnet_per_flop"] = n["paper"]["flop_per_s"] / n["torchvision_alexnet"]["flop_per_s"]
    if "paper_no_lrn" in n:
        out["lrn_vs_no_lrn"] = n["paper"]["images_per_s"] / n["paper_no_lrn"]["images_per_s"]
    return out


def _images_per_s(plan: Plan, step, batch: int, seconds: float) -> float:
    steps, t0, end = 0, time.perf_counter(), time.monotonic() + seconds
    while steps < max(1, plan.min_steps // 2) or time.monotonic() < end:
        step()
        steps += 1
    sync(plan.device)
    return steps * batch / (time.perf_counter() - t0)


def _lrn_kernel(device: str, compiled: bool) -> str:
    from harness.model import lrn
    return lrn.kernel_for(torch.device(device).type, "fast", compiled)


def train_configs(plan: Plan, compile_backend: str | None) -> list[tuple]:
    """(batch, precision, channels_last, compile backend): the harness today first
    (fp32, NCHW, eager), then the GPU path's switches one by one, compiled last (slowest)."""
    b0 = plan.batches[0]
    cfgs = [(b0, "fp32", False, None), (b0, "fp32", True, None), (b0, "tf32", True, None), (b0, "bf16", False, None),
            (b0, "bf16", True, None)]
    cfgs += [(b, "bf16", True, None) for b in plan.big_batches]
    if compile_backend:
        big = plan.big_batches[-1] if plan.big_batches else b0
        cfgs += [(big, "bf16", True, compile_backend), (b0, "fp32", True, compile_backend)]
    return cfgs


def config_name(batch, precision, channels_last, compile_backend) -> str:
    fmt = "channels_last" if channels_last else "nchw"
    return f"train {precision} {fmt} b{batch} {'compiled' if compile_backend else 'eager'}"


def check(plan: Plan, rec: Recorder, jpegs: Path | None, smoke: bool, compile_backend: str | None,
          pilot_data: Path | None = None) -> dict:
    r = rec.result
    r["plan"] = {k: (v.__dict__ if isinstance(v, ModelConfig) else v) for k, v in plan.__dict__.items()}
    r["environment"] = environment(plan.device)
    r["flags"] = accel.configure_cudnn(deterministic=False)  # autotune when not deterministic (docs/architecture.md, "Determinism")
    flop = train_flop_per_image(plan)
    r["train_flop_per_image"] = flop
    peak = rec.part("matmul bf16", plan.part_s, matmul_peak, plan.device, plan.matmul_n, torch.bfloat16, plan.measure_s)
    rec.part("matmul fp32", plan.part_s, matmul_peak, plan.device, plan.matmul_n, torch.float32, plan.measure_s)
    peak_flops = peak.get("flop_per_s")
    rec.part("lrn agreement", plan.part_s, lrn_agreement, plan)  # the fused kernels' correctness on the device
    rec.part("side by side eager", 2 * plan.part_s, side_by_side, plan)  # the goals' ratios next
    if compile_backend:
        rec.part("side by side compiled", plan.compile_s, side_by_side, plan, compile_backend)
    configs = train_configs(plan, compile_backend)
    for cfg in [c for c in configs if not c[3]]:
        rec.part(config_name(*cfg), plan.part_s, train_speed, plan, *cfg, flop, peak_flops)
    stage_parts(plan, rec, compile_backend, rec.out.parent, pilot_data)  # before the slow compiled ones
    for cfg in [c for c in configs if c[3]]:
        rec.part(config_name(*cfg), plan.compile_s, train_speed, plan, *cfg, flop, peak_flops)
    for precision, cl in (("fp32", False), ("bf16", True)):
        rec.part(f"eval ten_patch {precision} {'channels_last' if cl else 'nchw'}", plan.part_s, eval_speed,
                 plan, precision, cl)
    rec.part("lrn fast vs reference, training", plan.compile_s, lrn_check, plan, compile_backend)
    rec.part("jpeg decode", plan.part_s, jpeg_speed, plan, jpegs, smoke)
    rec.part("host to device copy", plan.part_s, h2d_speed, plan)
    r["projection"] = projection(r["parts"])
    r["gpu_path_in_train_stage"] = GPU_PATH_STATUS
    rec.save()
    return r


# What harness/train/loop.py and harness/stages/train.py do today (updated when the GPU path was wired in;
# the defaults still train exactly as before).
GPU_PATH_STATUS = {
    "bf16_autocast": "present: train.precision bf16 (autocast around forward and loss in train_one_epoch, "
                     "validation and evaluate.predict); default fp32",
    "channels_last": "present: train.channels_last (model before the optimizer, batches via accel.to_device; "
                     "evaluation too); default off",
    "torch_compile": "present: train.compile (harness.train.setup.compile_model; falls back to eager with a "
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
    "lrn": "present: model.lrn_impl fast (default; on CUDA the fused Triton kernels of harness/model/lrn_fused.py, "
           "a custom op that torch.compile keeps in one graph, falling back to harness/model/lrn.py's elementwise "
           "ops with a warning; deterministic) or reference (nn.LocalResponseNorm, avg_pool3d); lrn_check "
           "compares them, the train stage tags lrn_kernel",
    "two_towers_two_gpus": "present: train.devices [cuda:0, cuda:1] (TwoDeviceAlexNet)",
    "ddp": "present: torchrun from the pipeline (train.nproc_per_node); each rank on its own GPUs from LOCAL_RANK, "
           "torch.cuda.set_device and device_id, backend cpu:gloo,cuda:nccl (harness.runtime); the 'torchrun' part "
           "runs it here",
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
    p.add_argument("--budget-s", type=float, default=450.0, help="total time budget (default 450 s: under 8 minutes "
                                                                 "with start-up)")
    p.add_argument("--pilot-data", type=Path, default=None,
                   help="prepared data for `harness pilot` (default: the checkout's artifacts/data)")
    p.add_argument("--report", type=Path, default=None,
                   help="the summary of the GPU goals' figures (default: reports/gpu.json of this checkout; with "
                        "--smoke: gpu.smoke.json beside the detailed JSON, so a CPU run never stands in for a GPU's)")
    p.add_argument("--ddp-worker", type=Path, default=None, help=argparse.SUPPRESS)  # one rank of the torchrun part
    p.add_argument("--compile-backend", default=None,
                   help="torch.compile backend (default: inductor; 'eager' with --smoke); 'none' skips compile")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = args.device or ("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    plan = smoke_plan(device) if args.smoke else full_plan(device)
    if args.ddp_worker:
        return ddp_worker(args.ddp_worker, plan)
    backend = args.compile_backend or ("eager" if args.smoke else "inductor")
    rec = Recorder(out_path(args.out), args.budget_s)
    if device == "cpu" and not args.smoke:
        print("[gpu-check] no CUDA device: measuring the full-size model on the CPU (slow; use --smoke)", flush=True)
    r = check(plan, rec, args.jpegs, args.smoke, None if backend == "none" else backend, args.pilot_data)
    print(table(r))
    report = write_summary(r, args, rec.out)
    print(f"written: {rec.out} and {report}")
    return r


def write_summary(r: dict, args: argparse.Namespace, detail: Path) -> Path:
    """reports/gpu.json (benchmarks/gpu_summary.py); an end-to-end result already there is kept,
    with the commit it ran on (benchmarks/gpu_e2e.py writes it)."""
    from benchmarks import gpu_summary
    path = args.report or (detail.with_name("gpu.smoke.json") if args.smoke
                           else Path(__file__).resolve().parents[1] / "reports" / "gpu.json")
    before = json.loads(path.read_text()) if path.is_file() else {}
    summary = gpu_summary.build(r, args.smoke, str(detail), before.get("end_to_end"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


if __name__ == "__main__":
    main()
