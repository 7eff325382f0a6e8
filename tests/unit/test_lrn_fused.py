"""The fused LRN (harness/model/lrn_fused.py, the CUDA path) checked on the CPU: its Triton
kernels run on CPU tensors in Triton's interpreter (TRITON_INTERPRET=1, which must be set before
triton is imported, hence a subprocess), against nn.LocalResponseNorm in float64 with autograd
(an independent implementation); and its fall-backs when triton or a kernel is missing."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]

pytest.importorskip("triton")

# Each case: shape, towers, channels_last, (size, alpha, beta, k). Channel counts per tower of
# 1, 3 (< n), 5 (= n), 7, 65; element counts below, at and past the kernels' block of 1024.
CHECK = r"""
import json, sys, torch
from harness.model import lrn
from harness.model.layers import LRN_CONVENTIONS
PAPER = tuple(LRN_CONVENTIONS["paper"][k] for k in ("size", "alpha", "beta", "k"))
CASES = [((2, 10, 5, 7), 2, False, PAPER), ((2, 130, 3, 3), 2, True, PAPER), ((3, 1, 4, 4), 1, False, PAPER),
         ((2, 3, 4, 4), 1, False, PAPER), ((2, 7, 3, 3), 1, True, PAPER), ((4, 16, 4, 4), 1, False, PAPER),
         ((2, 10, 5, 7), 2, False, (4, 1e-3, 0.5, 1.0)), ((2, 9, 8), 1, False, (3, 2e-3, 0.9, 1.0))]


def reference(x, g, size, alpha, beta, k, towers):
    # nn.LocalResponseNorm in float64 on each tower's channels; autograd gives the gradient
    x = x.double().contiguous().requires_grad_()
    b, c = x.shape[:2]
    y = torch.nn.LocalResponseNorm(size, alpha, beta, k)(x.reshape(b * towers, c // towers, *x.shape[2:]))
    y = y.reshape(x.shape)
    y.backward(g.double())
    return y.detach(), x.grad


def fused(x, g, size, alpha, beta, k, towers):
    x = x.clone().requires_grad_()
    with lrn.fused_on("cpu"):
        y = lrn.local_response_norm(x, size, alpha, beta, k, towers)
    y.backward(g)
    return y.detach(), x.grad


def rel(a, b):
    return float((a.double() - b).abs().max() / b.abs().max())


out = []
gen = torch.Generator().manual_seed(0)
for shape, towers, cl, args in CASES:
    x = (torch.randn(shape, generator=gen) * 100).relu()  # conv1-like scale: D well above k
    g = torch.randn(shape, generator=gen)
    if cl:
        x, g = x.contiguous(memory_format=torch.channels_last), g.contiguous(memory_format=torch.channels_last)
    for dtype in (torch.float32, torch.bfloat16):
        xd, gd = x.to(dtype), g.to(dtype)
        y_ref, dx_ref = reference(xd, gd, *args, towers)  # the rounded input, exactly, in float64
        y, dx = fused(xd, gd, *args, towers)
        out.append({"shape": list(shape), "towers": towers, "channels_last": cl, "args": list(args),
                    "dtype": str(dtype), "out_dtype": str(y.dtype), "grad_dtype": str(dx.dtype),
                    "layout_kept": y.is_contiguous(memory_format=torch.channels_last) == cl or x.dim() != 4 or shape[1] == 1,
                    "fwd": rel(y, y_ref), "bwd": rel(dx, dx_ref),
                    "d_ratio": float(((y_ref / xd.double()).nan_to_num(1.0)).min())})
# the 64-bit offsets of tensors past 2^31 elements give the same bits as the 32-bit ones
from harness.model import lrn_fused
x, g = (torch.randn(2, 130, 3, 3, generator=gen) * 100).relu(), torch.randn(2, 130, 3, 3, generator=gen)
narrow = fused(x, g, *PAPER, 2)
lrn_fused._wide = lambda t: True
wide = fused(x, g, *PAPER, 2)
with lrn.fused_on("cpu"), torch.no_grad():  # evaluation: no D written, the same output
    y_eval = lrn.local_response_norm(x, *PAPER, 2)
    d_eval = lrn_fused.lrn_fused(x, *PAPER, 2, False)[1]
    out.append({"kernel": lrn.kernel_for("cpu", "fast"), "fell_back": dict(lrn._fell_back),
                "wide_equal": all(torch.equal(a, b) for a, b in zip(narrow, wide)),
                "eval_equal": torch.equal(y_eval, narrow[0]), "eval_d": d_eval.numel()})
print(json.dumps(out))
"""


def _run(code: str, env_extra: dict, prefix: str = "") -> subprocess.CompletedProcess:
    import os
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(PYTHONPATH=str(REPO), **env_extra)
    return subprocess.run([sys.executable, "-c", prefix + code], capture_output=True, text=True, timeout=120,
                          env=env, cwd=REPO)


def test_fused_kernels_match_float64_reference_in_interpreter():
    proc = _run(CHECK, {"TRITON_INTERPRET": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    *cases, info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["kernel"].startswith("fused: Triton") and not info["fell_back"] and info["wide_equal"]
    assert info["eval_equal"] and info["eval_d"] == 0
    assert len(cases) == 16
    for c in cases:
        assert c["out_dtype"] == c["grad_dtype"] == c["dtype"] and c["layout_kept"], c
        if c["dtype"] == "torch.float32":  # fp32 rounding: a few ulp of the largest value
            assert c["fwd"] < 2e-6 and c["bwd"] < 2e-6, c
        else:  # bf16: computed in fp32 and stored once as bf16, so within one bf16 ulp (2^-7 of the
            # largest value): the interpreter truncates fp32 to bf16 (triton 3.8's cast_impl), where
            # the GPU's conversion rounds to nearest, within half of that
            assert c["fwd"] < 2 ** -7 and c["bwd"] < 2 ** -7, c
    # the normalisation bites in these cases (not a near-identity that any code would pass)
    assert min(c["d_ratio"] for c in cases if c["args"][0] == 5) < 0.5


# Triton without its interpreter cannot launch a kernel on CPU tensors: the stand-in for a
# GPU whose kernel fails to build. The layer must warn once, fall back, and give the
# elementwise path's exact bits.
FALLBACK = r"""
import json, warnings, torch
from harness.model import lrn
torch.manual_seed(0)
x = (torch.randn(2, 10, 5, 5) * 100).relu()
want = lrn.local_response_norm(x, 5, 5e-4, 0.75, 2.0, 2)
with warnings.catch_warnings(record=True) as w, lrn.fused_on("cpu"):
    warnings.simplefilter("always")
    got = lrn.local_response_norm(x, 5, 5e-4, 0.75, 2.0, 2)
    again = lrn.local_response_norm(x, 5, 5e-4, 0.75, 2.0, 2)
    kernel = lrn.kernel_for("cpu")
print(json.dumps({"equal": bool(torch.equal(got, want) and torch.equal(again, want)),
                  "warnings": [str(m.message) for m in w if "LRN" in str(m.message)], "kernel": kernel}))
"""

# the path finder made blind to triton, as on a CUDA machine without it
HIDE_TRITON = """
import importlib.machinery as M, sys
class Hide(M.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        return None if name.split('.')[0] == 'triton' else M.PathFinder.find_spec(name, path, target)
sys.meta_path = [Hide if f is M.PathFinder else f for f in sys.meta_path]
"""


@pytest.mark.parametrize("hide", [False, True], ids=["kernel-fails", "no-triton"])
def test_fused_falls_back_with_one_warning(hide):
    proc = _run(FALLBACK, {}, HIDE_TRITON if hide else "")
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["equal"]
    assert len(r["warnings"]) == 1 and "fell back" in r["warnings"][0], r["warnings"]
    assert ("triton is not installed" in r["warnings"][0]) == hide
    assert r["kernel"].startswith("elementwise: fell back from the fused kernels")


def test_cpu_keeps_the_elementwise_path():
    from harness.model import lrn
    x = (torch.randn(2, 10, 5, 5) * 100).relu()
    assert torch.equal(lrn.local_response_norm(x, 5, 5e-4, 0.75, 2.0, 2), lrn._LRN.apply(x, 5, 5e-4, 0.75, 2.0, 2))
    assert lrn.kernel_for("cpu").startswith("elementwise: chunked")
    assert lrn.kernel_for("cpu", compiled=True).startswith("traced")
    assert lrn.kernel_for("cuda", "reference").startswith("reference")


def test_lrn_kernel_names_what_the_model_runs():
    from harness.config import ModelConfig
    from harness.model import build_model
    from harness.model.layers import lrn_kernel
    tiny = ModelConfig(width=0.125, input_size=64)
    assert lrn_kernel(build_model(tiny, 10), "cpu", False).startswith("elementwise: chunked")
    assert lrn_kernel(build_model(tiny, 10), "cuda:0", True).startswith(("fused: Triton", "elementwise: fell back"))
    from dataclasses import replace
    assert lrn_kernel(build_model(replace(tiny, lrn_impl="reference"), 10), "cpu", False).startswith("reference")
    assert lrn_kernel(build_model(replace(tiny, lrn="none"), 10), "cpu", False).startswith("none")


# a backward kernel that cannot be built (the forward's can): the first call's probe runs the
# backward too, so the layer falls back before training starts, not in the middle of a backward
BROKEN_BACKWARD = r"""
from harness.model import lrn_fused
class Broken:
    def __getitem__(self, grid):
        raise RuntimeError("PTX assembly failed (a stand-in)")
lrn_fused._lrn_bwd_kernel = Broken()
"""


def test_a_backward_kernel_that_fails_is_found_by_the_first_forward():
    proc = _run(FALLBACK, {"TRITON_INTERPRET": "1"}, BROKEN_BACKWARD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["equal"] and len(r["warnings"]) == 1 and "PTX assembly failed" in r["warnings"][0]
    assert r["kernel"].startswith("elementwise: fell back")
