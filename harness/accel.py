"""The GPU path's small helpers: mixed precision, memory format, cuDNN autotuning, compile and
host-to-device copies (docs/architecture.md, "Determinism"; benchmarks/gpu_check.py measures them).

Imports torch only, so the standalone GPU check (benchmarks/gpu_check.py) can use it on a
machine with nothing but PyTorch installed. Nothing here reads params or the environment.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch

PRECISIONS = ("fp32", "tf32", "bf16")


def autocast(device: str | torch.device, precision: str):
    """Context for the forward pass and loss: bf16 autocast, or nothing for fp32.

    bf16 keeps fp32's exponent range, so unlike fp16 it needs no loss scaling; weights,
    gradients and optimizer state stay fp32 (autocast casts per op).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "bf16":  # fp32 and tf32 differ in the backend flags (configure_precision)
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def to_channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """NHWC weights for the conv layers (tensor cores read NHWC without transposes); in place."""
    return model.to(memory_format=torch.channels_last)


def to_device(x: torch.Tensor, device: str | torch.device, channels_last: bool = False) -> torch.Tensor:
    """Copy a batch to `device` without blocking the host (effective when `x` is pinned)."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def pin(x: torch.Tensor) -> torch.Tensor:
    """Page-locked copy of a host tensor, so a non_blocking copy to the GPU is truly async."""
    return x.pin_memory() if torch.cuda.is_available() and not x.is_cuda else x


def configure_cudnn(deterministic: bool) -> dict:
    """cuDNN autotuning (benchmark mode) only when results need not be bitwise reproducible:
    the autotuner may pick different kernels run to run. Returns the flags in force."""
    torch.backends.cudnn.benchmark = not deterministic
    return backend_flags()


def configure_precision(precision: str) -> dict:
    """What train.precision means for fp32 matmuls and convolutions; returns the flags in force.

    fp32 (and bf16, for the ops autocast leaves in fp32): IEEE fp32, TF32 off for cuBLAS
    matmuls and cuDNN convolutions. torch 2.14 runs cuDNN convolutions in TF32 by default on
    Ampere and later GPUs (A100, H100, H200), so "fp32" has to switch it off; the paper
    trained on GTX 580s, which have no TF32 (docs/fidelity.md, "Precision"). tf32: TF32 for
    both, a listed departure. Set through torch's fp32_precision API only: mixing it with the
    legacy allow_tf32 flags makes torch raise when either is read.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    mode = "tf32" if precision == "tf32" else "ieee"
    torch.backends.cuda.matmul.fp32_precision = mode
    torch.backends.cudnn.conv.fp32_precision = mode
    return backend_flags()


@contextmanager
def export_safe_flags():
    """Run torch.export inside this: it saves and restores cuDNN's flags through the legacy
    allow_tf32 getter, which torch 2.14 refuses (RuntimeError) once configure_precision has set
    the fp32_precision API. The legacy flag is set to the same meaning for the duration (it
    matters not: the export traces a CPU model), and the precisions in force come back after."""
    saved = (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision,
             torch.backends.cudnn.rnn.fp32_precision)
    torch.backends.cudnn.allow_tf32 = saved[1] == "tf32"
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision,
         torch.backends.cudnn.rnn.fp32_precision) = saved


def _read(getter):
    try:
        return getter()
    except (RuntimeError, AttributeError) as exc:  # torch refuses a read after mixed APIs
        return f"unreadable: {str(exc).splitlines()[0][:80]}"


def backend_flags() -> dict:
    """The backend settings in force (logged with every run): autotuning, determinism and the
    fp32 precision of cuBLAS matmuls and cuDNN convolutions ("ieee" or "tf32")."""
    return {"cudnn_benchmark": torch.backends.cudnn.benchmark,
            "matmul_fp32_precision": _read(lambda: torch.backends.cuda.matmul.fp32_precision),
            "cudnn_conv_fp32_precision": _read(lambda: torch.backends.cudnn.conv.fp32_precision),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}


def try_compile(model: torch.nn.Module, example: torch.Tensor, backend: str = "inductor",
                **kwargs) -> tuple[torch.nn.Module, str | None]:
    """torch.compile(model), compiled now on `example` (compilation is lazy otherwise).

    Returns (compiled model, None), or (the eager model, the error) when compiling fails,
    e.g. no C++ compiler or Triton on the machine: callers fall back rather than stop.
    """
    try:
        compiled = torch.compile(model, backend=backend, **kwargs)
        compiled(example)
        return compiled, None
    except Exception as exc:  # noqa: BLE001 - any compiler failure means "run eager"
        return model, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
