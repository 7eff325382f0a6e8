"""The fast LRN (harness/model/lrn.py, model.lrn_impl fast) against nn.LocalResponseNorm (the
reference path) and against the paper's printed formula (paper 3.3), forward and backward."""

import itertools

import pytest
import torch
from torch import nn

from harness import accel
from harness.config import ModelConfig
from harness.model import LRN_CONVENTIONS, TowerLRN, build_model
from harness.model import lrn as L


def reference(x, towers, size, alpha, beta, k):
    """nn.LocalResponseNorm within each tower: what model.lrn_impl reference computes."""
    b, c = x.shape[:2]
    y = nn.LocalResponseNorm(size, alpha, beta, k)(x.reshape(b * towers, c // towers, *x.shape[2:]))
    return y.reshape(x.shape)


def both(x, towers, size, alpha, beta, k, g=None):
    """(y, dL/dx) of the reference and of the fast LRN for the loss sum(y * g)."""
    out = []
    for fn in (reference, lambda *a: L.local_response_norm(a[0], *a[2:], towers=a[1])):
        xi = x.detach().clone().requires_grad_()
        y = fn(xi, towers, size, alpha, beta, k)
        y.backward(torch.ones_like(y) if g is None else g)
        out.append((y.detach(), xi.grad))
    return out


def activations(shape, dtype=torch.float32, channels_last=False, seed=0):
    """ReLU-like inputs on the scale of conv1's outputs (tens), with exact zeros."""
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 30).relu().to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@pytest.mark.parametrize("convention, towers, channels_last",
                         itertools.product(LRN_CONVENTIONS, (1, 2), (False, True)))
def test_fast_equals_reference_in_float64(convention, towers, channels_last):
    x = activations((3, 12, 5, 7), torch.float64, channels_last)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (y_ref, dx_ref), (y, dx) = both(x, towers, g=g, **LRN_CONVENTIONS[convention])
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dx, dx_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("convention, towers", itertools.product(LRN_CONVENTIONS, (1, 2)))
def test_fast_equals_reference_to_fp32_rounding(convention, towers):
    """fp32 at the paper's conv1 widths: the two differ by rounding only (a few ulp)."""
    x = activations((2, 96, 9, 9))
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    (y_ref, dx_ref), (y, dx) = both(x, towers, g=g, **LRN_CONVENTIONS[convention])
    torch.testing.assert_close(y, y_ref, rtol=2e-6, atol=1e-6)
    torch.testing.assert_close(dx, dx_ref, rtol=2e-6, atol=1e-6)
    assert (y - y_ref).abs().max() / y_ref.abs().max() < 1e-6


@pytest.mark.parametrize("size, beta", [(1, 0.75), (2, 0.75), (3, 0.5), (4, 0.75), (5, 0.75), (6, 1.3), (7, 0.75)])
def test_other_window_sizes_and_exponents_match_the_reference(size, beta):
    """Even windows are lopsided (n//2 channels before, (n-1)//2 after), so the backward's
    transposed window is the mirror image; both are checked against nn.LocalResponseNorm."""
    x = activations((2, 10, 3, 4), torch.float64)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    (y_ref, dx_ref), (y, dx) = both(x, 2, size, 1e-3 * size, beta, 1.5, g=g)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dx, dx_ref, rtol=1e-12, atol=1e-12)


def test_hand_written_backward_passes_gradcheck():
    x = (torch.randn(2, 8, 3, 3, dtype=torch.float64) * 10).requires_grad_()
    for size, beta in ((5, 0.75), (4, 0.6)):
        assert torch.autograd.gradcheck(lambda t: L.local_response_norm(t, size, 0.05, beta, 2.0, towers=2), (x,))


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_paper_lrn_is_the_printed_formula(impl):
    """paper 3.3: b = a / (k + alpha * sum of a^2 over n=5 neighbours)^beta, k=2, alpha=1e-4 (not
    divided by n), beta=0.75, within each tower; by hand, in float64."""
    x = activations((2, 96, 4, 4), torch.float64, seed=4)
    got = TowerLRN(2, "paper", impl)(x)
    want = torch.empty_like(x)
    for tower in range(2):
        a = x[:, tower * 48:(tower + 1) * 48]
        for i in range(48):
            lo, hi = max(0, i - 2), min(47, i + 2)
            want[:, tower * 48 + i] = a[:, i] / (2 + 1e-4 * (a[:, lo:hi + 1] ** 2).sum(1)) ** 0.75
    torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-13)


def test_the_window_stops_at_the_tower_boundary():
    x = torch.zeros(1, 96, 1, 1)
    x[0, 48] = 100.0  # first channel of tower 2
    g = torch.zeros_like(x)
    g[0, 47] = 1.0  # last channel of tower 1
    xi = x.clone().requires_grad_()
    y = TowerLRN(2, "paper", "fast")(xi)
    (y * g).sum().backward()
    assert y[0, 47].item() == 0.0 and y[0, 48].item() == pytest.approx(100 / (2 + 1e-4 * 100**2) ** 0.75)
    assert xi.grad[0, 48].item() == 0.0  # tower 1's output does not depend on tower 2's input


def test_chunking_and_threads_do_not_change_a_bit(monkeypatch):
    """The batch is cut into cache-sized chunks (the last one shorter); elementwise ops only, so
    neither the chunk size nor the thread count changes any value."""
    x = activations((5, 12, 6, 6))
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))

    def run():
        xi = x.clone().requires_grad_()
        y = L.local_response_norm(xi, 5, 5e-4, 0.75, 2.0, towers=2)
        y.backward(g)
        return y.detach(), xi.grad

    one = run()
    monkeypatch.setattr(L, "CHUNK_ELEMENTS", 12 * 36 // 2 * 3)  # 3 rows of [10, 6, 36] per chunk
    chunked = run()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = run()
    finally:
        torch.set_num_threads(threads)
    for a, b, c in zip(one, chunked, single):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_a_retained_graph_gives_the_same_gradient_twice(monkeypatch):
    """The one-chunk path keeps D and D^-beta for the backward: a second backward through a
    retained graph must find them unchanged (and the chunked path recomputes them)."""
    for chunk in (L.CHUNK_ELEMENTS, 100):
        monkeypatch.setattr(L, "CHUNK_ELEMENTS", chunk)
        x = activations((2, 12, 5, 5)).requires_grad_()
        y = L.local_response_norm(x, 5, 5e-4, 0.75, 2.0, towers=2)
        first, = torch.autograd.grad(y.sum(), x, retain_graph=True)
        second, = torch.autograd.grad(y.sum(), x)
        assert torch.equal(first, second)


def test_layouts_and_strides():
    """channels_last stays channels_last (input, output, gradient); other strides are copied."""
    x = activations((2, 12, 5, 5))
    cl = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    y = L.local_response_norm(cl, 5, 5e-4, 0.75, 2.0, towers=2)
    assert y.is_contiguous(memory_format=torch.channels_last)
    y.backward(torch.ones_like(y))
    assert cl.grad.is_contiguous(memory_format=torch.channels_last)
    odd = x.transpose(2, 3)  # neither layout
    torch.testing.assert_close(L.local_response_norm(odd, 5, 5e-4, 0.75, 2.0, towers=2),
                               reference(odd, 2, 5, 5e-4, 0.75, 2.0), rtol=2e-6, atol=1e-6)
    torch.testing.assert_close(y.detach(), reference(x, 2, 5, 5e-4, 0.75, 2.0), rtol=2e-6, atol=1e-6)


def test_bfloat16_is_computed_in_fp32_and_rounded_once():
    x = activations((2, 12, 4, 4)).bfloat16().requires_grad_()
    y = L.local_response_norm(x, 5, 5e-4, 0.75, 2.0, towers=2)
    y.float().sum().backward()
    assert y.dtype == x.grad.dtype == torch.bfloat16
    want = reference(x.detach().float(), 2, 5, 5e-4, 0.75, 2.0).bfloat16()
    assert (y.float() - want.float()).abs().max() <= 2 ** -7 * want.float().abs().max()  # within one bf16 ulp


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="towers"):
        L.local_response_norm(torch.zeros(1, 5, 2, 2), 5, 1e-4, 0.75, 2.0, towers=2)
    with pytest.raises(ValueError, match=r"\[B, C"):
        L.local_response_norm(torch.zeros(4, 5), 5, 1e-4, 0.75, 2.0)
    with pytest.raises(ValueError, match="impl"):
        TowerLRN(2, "paper", "fused")


def test_the_model_trains_alike_with_either_impl():
    """The same weights through the whole net: logits and every gradient agree to fp32 rounding."""
    grads = {}
    for impl in ("fast", "reference"):
        torch.manual_seed(0)
        model = build_model(ModelConfig(width=0.25, input_size=64, lrn_impl=impl, dropout=0.0), 10)
        x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 50
        logits = model(x)
        logits.square().sum().backward()
        grads[impl] = [logits.detach()] + [p.grad for p in model.parameters()]
    assert {m.impl for m in build_model(ModelConfig(), 10).modules() if isinstance(m, TowerLRN)} == {"fast"}
    for a, b in zip(grads["fast"], grads["reference"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * b.abs().max().item())


@pytest.mark.parametrize("convention, towers", itertools.product(sorted(LRN_CONVENTIONS), (1, 2)))
def test_the_traced_form_equals_the_reference(convention, towers):
    """traced_local_response_norm (what torch.export and torch.compile see) is the same
    function, forward and (autograd's) backward, to fp32 rounding."""
    n = LRN_CONVENTIONS[convention]
    x = activations((3, 12, 5, 4))
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    (y_r, g_r), = both(x, towers, n["size"], n["alpha"], n["beta"], n["k"], g)[:1]
    xi = x.clone().requires_grad_()
    y = L.traced_local_response_norm(xi, n["size"], n["alpha"], n["beta"], n["k"], towers)
    y.backward(g)
    torch.testing.assert_close(y, y_r, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(xi.grad, g_r, rtol=1e-4, atol=1e-6)


def test_an_exported_net_keeps_a_dynamic_batch():
    """torch.export with a dynamic batch (the MLflow model of harness/tracking.py log_model): the
    chunked path would fix the batch size; the exported graph runs other batches and gives the
    eager fast LRN's values."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), TowerLRN(2, "paper", "fast")).eval()
    batch = torch.export.Dim("batch", min=1)
    with accel.export_safe_flags():  # as tracking's log_model runs it (a stage may have set the precision)
        program = torch.export.export(net, (torch.randn(2, 3, 9, 9),), dynamic_shapes=({0: batch},))
    x = torch.randn(5, 3, 9, 9)
    torch.testing.assert_close(program.module()(x), net(x), rtol=1e-5, atol=1e-6)
