"""Local response normalisation (paper 3.3) as fused Triton kernels: the LRN of a CUDA run.

The same function as harness/model/lrn.py (nn.LocalResponseNorm's constants, within towers):

    b_i = a_i D_i^-beta,   D_i = k + alpha/n * sum of a_j^2 over j in W(i) (zero outside the tower),
    dL/da_j = g_j D_j^-beta - 2 alpha beta / n * a_j * sum of g_i b_i / D_i over i with j in W(i).

On a GPU the elementwise version spends its time in a dozen separate kernels, each a full pass
over memory with fp32 intermediates (about 45% of a bf16 step on an H200: docs/performance.md). Here:

- forward: one kernel reads a, writes b and D (fp32, kept for the backward): each element
  loads its n window neighbours itself (cache hits: they are the neighbours' own loads);
- backward: one kernel writes T_i = g_i a_i D_i^(-beta-1) (fp32), a second one
  dL/da_j = g_j D_j^-beta + coef a_j * (window sum of T); two passes instead of about ten.

Every sum and power is in fp32 whatever the input (bf16 and fp16 are rounded once, at the
store), so the results equal the elementwise LRN's to fp32 rounding (tests/unit/test_lrn_fused.py
runs the kernels in Triton's interpreter on CPU tensors, TRITON_INTERPRET=1).

The kernels work on the memory order itself, so NCHW-contiguous and channels_last inputs need
no copy: a channel's neighbour is `cstride` elements away (H*W in NCHW, 1 in channels_last) and
an element's channel within its tower is (offset // cstride) % c.

They are wrapped as torch.library custom ops (harness::lrn_fused, harness::lrn_fused_backward)
with fake implementations and a registered autograd formula: torch.compile keeps them as
opaque nodes in one graph (no graph break) with a dynamic batch size.
"""

from __future__ import annotations

import math

import torch

try:  # triton ships with torch's CUDA wheels; a CPU-only install may lack it
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised on machines without triton
    triton = None

BLOCK = 1024  # elements per program: a power of two; any tensor size works (masked tail)


def available() -> str | None:
    """None when the kernels can be launched here, else why not."""
    return None if triton is not None else "triton is not installed"


if triton is not None:
    @triton.jit
    def _offsets(BLOCK_SIZE: tl.constexpr, WIDE: tl.constexpr):
        """This program's element offsets: 64-bit only for tensors past 2^31 elements (64-bit
        division, for the channel index, is several times slower on a GPU)."""
        if WIDE:
            offs = tl.program_id(0).to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
        else:
            offs = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
        return offs

    @triton.jit
    def _window_sum_sq(x_ptr, offs, ch, mask, c, cstride, N: tl.constexpr, FRONT: tl.constexpr):
        """sum of x^2 over channels ch - FRONT .. ch + N - 1 - FRONT of the same tower (fp32)."""
        s = tl.zeros(offs.shape, dtype=tl.float32)
        for t in tl.static_range(N):
            j = ch + (t - FRONT)
            ok = mask & (j >= 0) & (j < c)
            v = tl.load(x_ptr + offs + (t - FRONT) * cstride, mask=ok, other=0.0).to(tl.float32)
            s += v * v
        return s

    @triton.jit
    def _neg_pow(d, beta, BETA_075: tl.constexpr):
        """d^-beta; beta 0.75 (every convention's) as rsqrt(d) * sqrt(rsqrt(d)), each step
        correctly rounded (sqrt_rn, div_rn: tl.sqrt and / are approximate on a GPU)."""
        if BETA_075:
            r = tl.div_rn(1.0, tl.sqrt_rn(d))
            p = r * tl.sqrt_rn(r)
        else:
            p = tl.exp2(-beta * tl.log2(d))
        return p

    @triton.jit
    def _lrn_fwd_kernel(x_ptr, y_ptr, d_ptr, numel, c, cstride, scale, k, beta,
                        N: tl.constexpr, FRONT: tl.constexpr, BETA_075: tl.constexpr, BLOCK_SIZE: tl.constexpr,
                        WIDE: tl.constexpr, STORE_D: tl.constexpr):
        offs = _offsets(BLOCK_SIZE, WIDE)
        mask = offs < numel
        ch = (offs // cstride) % c
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        d = k + scale * _window_sum_sq(x_ptr, offs, ch, mask, c, cstride, N, FRONT)
        y = x * _neg_pow(d, beta, BETA_075)
        tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)
        if STORE_D:  # only when a backward will need it
            tl.store(d_ptr + offs, d, mask=mask)

    @triton.jit
    def _lrn_bwd_terms_kernel(x_ptr, g_ptr, d_ptr, t_ptr, numel, beta,
                              BETA_075: tl.constexpr, BLOCK_SIZE: tl.constexpr,
                        WIDE: tl.constexpr):
        """T = g a D^(-beta-1) = g b / D (fp32)."""
        offs = _offsets(BLOCK_SIZE, WIDE)
        mask = offs < numel
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        d = tl.load(d_ptr + offs, mask=mask, other=1.0)
        tl.store(t_ptr + offs, tl.div_rn(g * x * _neg_pow(d, beta, BETA_075), d), mask=mask)

    @triton.jit
    def _lrn_bwd_kernel(x_ptr, g_ptr, d_ptr, t_ptr, dx_ptr, numel, c, cstride, coef, beta,
                        N: tl.constexpr, BACK: tl.constexpr, BETA_075: tl.constexpr, BLOCK_SIZE: tl.constexpr,
                        WIDE: tl.constexpr):
        """dL/da_j = g_j D_j^-beta + coef a_j sum of T_i over the transposed window
        i = j - BACK .. j + N - 1 - BACK (BACK = (n-1)//2: j is in W(i))."""
        offs = _offsets(BLOCK_SIZE, WIDE)
        mask = offs < numel
        ch = (offs // cstride) % c
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        d = tl.load(d_ptr + offs, mask=mask, other=1.0)
        s = tl.zeros(offs.shape, dtype=tl.float32)
        for t in tl.static_range(N):
            i = ch + (t - BACK)
            ok = mask & (i >= 0) & (i < c)
            s += tl.load(t_ptr + offs + (t - BACK) * cstride, mask=ok, other=0.0)
        dx = g * _neg_pow(d, beta, BETA_075) + coef * x * s
        tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)


def channel_stride(x: torch.Tensor) -> int:
    """Elements between neighbouring channels in memory: 1 for channels_last, H*W (the product
    of the trailing dims) for a contiguous [B, C, ...] tensor."""
    if x.is_contiguous():
        return math.prod(x.shape[2:])
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return 1
    raise ValueError(f"fused LRN needs a contiguous or channels_last input, got strides {x.stride()}")


def _wide(x: torch.Tensor) -> bool:
    """64-bit offsets needed: the last block's offsets, window included, pass 2^31 - 1."""
    return x.numel() + BLOCK + 8 * channel_stride(x) >= 2**31


def _grid(numel: int):
    return (triton.cdiv(numel, BLOCK),)


@torch.library.custom_op("harness::lrn_fused", mutates_args=())
def lrn_fused(x: torch.Tensor, size: int, alpha: float, beta: float, k: float, towers: int,
              keep_d: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(b, D): the LRN of x [B, C, ...] within `towers` channel groups, and its denominator D
    in fp32 (what the backward needs; an empty tensor unless keep_d). x: contiguous or channels_last."""
    y = torch.empty_like(x)
    d = _d_like(x, keep_d)
    if x.numel():
        _lrn_fwd_kernel[_grid(x.numel())](x, y, d, x.numel(), x.shape[1] // towers, channel_stride(x), alpha / size,
                                          k, beta, N=size, FRONT=size // 2, BETA_075=beta == 0.75, BLOCK_SIZE=BLOCK,
                                          WIDE=_wide(x), STORE_D=keep_d)
    return y, d


@lrn_fused.register_fake
def _(x, size, alpha, beta, k, towers, keep_d=True):
    return torch.empty_like(x), _d_like(x, keep_d)


def _d_like(x: torch.Tensor, keep_d: bool) -> torch.Tensor:
    return torch.empty_like(x, dtype=torch.float32) if keep_d else x.new_empty(0, dtype=torch.float32)


@torch.library.custom_op("harness::lrn_fused_backward", mutates_args=())
def lrn_fused_backward(g: torch.Tensor, x: torch.Tensor, d: torch.Tensor, size: int, alpha: float, beta: float,
                       towers: int) -> torch.Tensor:
    """dL/dx of lrn_fused from the output gradient g, the input x and the saved D."""
    g = g.contiguous(memory_format=_format_of(x))  # the kernels read g in x's memory order
    dx = torch.empty_like(x)
    if x.numel():
        terms = torch.empty_like(d)
        grid, beta_075 = _grid(x.numel()), beta == 0.75
        _lrn_bwd_terms_kernel[grid](x, g, d, terms, x.numel(), beta, BETA_075=beta_075, BLOCK_SIZE=BLOCK, WIDE=_wide(x))
        _lrn_bwd_kernel[grid](x, g, d, terms, dx, x.numel(), x.shape[1] // towers, channel_stride(x),
                              -2.0 * alpha * beta / size, beta, N=size, BACK=(size - 1) // 2, BETA_075=beta_075,
                              BLOCK_SIZE=BLOCK, WIDE=_wide(x))
    return dx


@lrn_fused_backward.register_fake
def _(g, x, d, size, alpha, beta, towers):
    return torch.empty_like(x)


def _format_of(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.dim() == 4 and not x.is_contiguous() else torch.contiguous_format


def _setup_context(ctx, inputs, output):
    x, size, alpha, beta, k, towers, keep_d = inputs  # keep_d: True whenever autograd records
    ctx.save_for_backward(x, output[1])
    ctx.args = (size, alpha, beta, towers)


def _backward(ctx, grad_y, grad_d):
    x, d = ctx.saved_tensors
    return lrn_fused_backward(grad_y, x, d, *ctx.args), None, None, None, None, None, None


lrn_fused.register_autograd(_backward, setup_context=_setup_context)


def local_response_norm_fused(x: torch.Tensor, size: int, alpha: float, beta: float, k: float,
                              towers: int = 1) -> torch.Tensor:
    """harness.model.lrn.local_response_norm through the fused kernels (differentiable)."""
    keep_d = torch.is_grad_enabled() and x.requires_grad  # evaluation writes no D
    return lrn_fused(x, size, alpha, beta, k, towers, keep_d)[0]
