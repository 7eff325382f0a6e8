"""torch.compile sees the paper net as one graph (docs/performance.md): torch._dynamo.explain counts
no graph breaks, in training and in evaluation, with the CPU's LRN (traced under compile) and
with the fused LRN of a CUDA run (the harness::lrn_fused custom op, forced onto CPU tensors in
Triton's interpreter in a subprocess)."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from harness.config import ModelConfig
from harness.model import build_model

REPO = Path(__file__).resolve().parents[2]


def explain(model, x) -> tuple[int, int, list]:
    torch._dynamo.reset()
    e = torch._dynamo.explain(model)(x)
    return e.graph_break_count, e.graph_count, [str(r.reason) for r in e.break_reasons]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_paper_net_compiles_without_graph_breaks(training):
    torch.manual_seed(0)
    model = build_model(ModelConfig(), 1000).train(training)  # the paper net: 224 px, two towers, LRN
    breaks, graphs, reasons = explain(model, torch.randn(2, 3, 224, 224))
    assert (breaks, graphs) == (0, 1), reasons


def test_variants_compile_without_graph_breaks():
    torch.manual_seed(0)
    small = ModelConfig(width=0.125, input_size=64)
    for cfg in (replace(small, arch="one_tower"), replace(small, lrn_impl="reference"),
                replace(small, dropout_scaling="inverted")):
        breaks, graphs, reasons = explain(build_model(cfg, 10), torch.randn(2, 3, 64, 64))
        assert (breaks, graphs) == (0, 1), (cfg, reasons)


FUSED = r"""
import json, torch
from harness.config import ModelConfig
from harness.model import build_model, lrn
torch.manual_seed(0)
model = build_model(ModelConfig(width=0.125, input_size=64), 10)
x = torch.randn(2, 3, 64, 64)
with lrn.fused_on("cpu"):
    e = torch._dynamo.explain(model)(x)
    ops = sorted({str(n.target) for g in e.graphs for n in g.graph.nodes if "lrn" in str(n.target)})
    # compiled (aot_eager: the autograd graph too) forward and backward through the custom op
    torch.manual_seed(0); y = torch.compile(model, backend="aot_eager")(x); y.square().sum().backward()
    torch.manual_seed(0); y_eager = model(x)
print(json.dumps({"breaks": e.graph_break_count, "graphs": e.graph_count, "ops": ops,
                  "reasons": [str(r.reason) for r in e.break_reasons],
                  "compiled_eq": float((y - y_eager).abs().max()),
                  "grads": [bool(p.grad is not None and p.grad.abs().sum() > 0) for p in model.parameters()]}))
"""


def test_fused_lrn_is_one_graph_node():
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(PYTHONPATH=str(REPO), TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", FUSED], capture_output=True, text=True, timeout=180, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (r["breaks"], r["graphs"]) == (0, 1), r["reasons"]
    assert r["ops"] == ["harness.lrn_fused.default"], r["ops"]
    assert r["compiled_eq"] == 0.0 and all(r["grads"])  # the backward ran through the registered autograd


INDUCTOR = r"""
import json, torch
from harness import accel
from harness.config import ModelConfig
from harness.model import build_model, lrn
torch.manual_seed(0)
model = accel.to_channels_last(build_model(ModelConfig(width=0.125, input_size=64, dropout=0.0), 10))
x = torch.randn(3, 3, 64, 64).contiguous(memory_format=torch.channels_last)
with lrn.fused_on("cpu"):
    y_eager = model(x)
    y_eager.sum().backward()
    g_eager = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled = torch.compile(model, backend="inductor", dynamic=True)
    y = compiled(x)
    y.sum().backward()
    other = compiled(torch.randn(5, 3, 64, 64).contiguous(memory_format=torch.channels_last))
print(json.dumps({"fwd_equal": bool(torch.equal(y, y_eager)),
                  "grads_equal": all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), g_eager)),
                  "other_batch": list(other.shape)}))
"""


@pytest.mark.slow
def test_inductor_compiles_the_net_around_the_fused_op():
    """What a CUDA run compiles: inductor with the custom op (here its kernels in the interpreter),
    channels_last, a dynamic batch; forward and gradients equal eager's bit for bit (no dropout)."""
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(PYTHONPATH=str(REPO), TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", INDUCTOR], capture_output=True, text=True, timeout=600, env=env,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r == {"fwd_equal": True, "grads_equal": True, "other_batch": [5, 10]}
