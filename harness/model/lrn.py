"""Local response normalisation (paper 3.3) computed without avg_pool3d (model.lrn_impl: fast).

The function is nn.LocalResponseNorm's, with its constants (alpha divided by the window n):

    b_i = a_i * D_i^-beta,   D_i = k + alpha / n * S_i,   S_i = sum of a_j^2 over j in W(i),
    W(i) = channels i - n//2 .. i + (n-1)//2 of the same tower (zero outside it).

nn.LocalResponseNorm pads a copy of the squares and runs avg_pool3d over it, then four more
full-size passes; on a CPU that took about 60% of a full-size training step. Here:

- the window sum is shifted adds of the squares (pairs first, so n=5 costs three adds);
- the work goes through the batch in chunks of about CHUNK_ELEMENTS values, so every
  intermediate stays in the CPU's cache and only the input is read and the output written at
  full size (each fresh full-size tensor also costs page faults, more than a pass over it);
- the backward is written by hand, with the transposed window:

    dL/da_j = g_j D_j^-beta - 2 alpha beta / n * a_j * sum of g_i b_i / D_i over i with j in W(i)

  and it recomputes D from the saved input instead of storing it, so the layer keeps nothing
  beyond its input (which the ReLU before it keeps anyway); an input that fits in one chunk
  (small nets, and always on a GPU) keeps D and D^-beta instead, which costs no allocation
  there and halves the backward's work;
- D^-0.75 (every convention's beta) is rsqrt(D) * sqrt(rsqrt(D)), far cheaper than pow.

Under torch.export and torch.compile the layer is traced_local_response_norm instead: the same
formula in plain ops without the chunk loop, so that a traced graph keeps a dynamic batch size
(autograd derives its backward; a compiler fuses the elementwise ops itself).

On CUDA the layer is the fused Triton kernels of harness/model/lrn_fused.py instead (eagerly and
under torch.compile, where they are one custom op); where they cannot run, this code does, in one
chunk, after one warning that says so (kernel_for names what ran: the train stage's lrn_kernel tag).

The results equal nn.LocalResponseNorm's to fp32 rounding (a few ulp: other summation order;
tests/unit/test_lrn.py), not bit for bit. They do not depend on the thread count (elementwise
ops only). Half and bfloat16 inputs are computed in fp32 and rounded once at the end.
"""

from __future__ import annotations

import contextlib
import warnings

import torch

# Values per chunk and work buffer (2.5 MiB of fp32): five buffers plus the input and output
# chunks fit a 32 MiB L3 with room to spare; measured best on 2 cores at 55x55x48 and 27x27x128.
CHUNK_ELEMENTS = 640 * 1024


def local_response_norm(x: torch.Tensor, size: int, alpha: float, beta: float, k: float,
                        towers: int = 1) -> torch.Tensor:
    """nn.LocalResponseNorm(size, alpha, beta, k) applied within each of `towers` equal channel
    groups of x [B, C, ...]; differentiable (hand-written backward)."""
    if x.dim() < 3:
        raise ValueError(f"local_response_norm needs [B, C, ...], got shape {tuple(x.shape)}")
    if x.shape[1] % towers:
        raise ValueError(f"{x.shape[1]} channels do not split into {towers} towers")
    if x.device.type in _fused_types and not torch.compiler.is_exporting() and _fused_ok(x.device.type):
        y = _fused_or_none(x, size, alpha, beta, k, towers)
        if y is not None:
            return y
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        # the chunk loop fixes the batch size in a traced graph (the MLflow model has a dynamic
        # batch, harness/tracking.py log_model): plain ops there, autograd derives the backward
        return traced_local_response_norm(x, size, alpha, beta, k, towers)
    return _LRN.apply(x, size, alpha, beta, k, towers)


# Device types whose LRN is the fused Triton kernels (harness/model/lrn_fused.py): CUDA. The CPU
# keeps the chunked elementwise path above (its results are the committed ones, bit for bit);
# tests add "cpu" with fused_on("cpu") to run the kernels in Triton's interpreter.
_fused_types = {"cuda"}
_fell_back: dict[str, str] = {}  # device type -> why the fused kernels could not run there


@contextlib.contextmanager
def fused_on(*device_types: str):
    """Use the fused kernels on these device types too, within the block (the kernels run on
    CPU tensors only in Triton's interpreter: TRITON_INTERPRET=1 before triton is imported)."""
    global _fused_types
    before = _fused_types
    _fused_types = before | set(device_types)
    try:
        yield
    finally:
        _fused_types = before


def _fused_ok(device_type: str) -> bool:
    if device_type in _fell_back:
        return False
    reason = _fused_module_missing()
    if reason:
        _fall_back(device_type, reason)
        return False
    return True


def _fused_module_missing() -> str | None:
    try:
        from harness.model import lrn_fused
    except ImportError as exc:  # pragma: no cover - torch without torch.library.custom_op
        return f"harness.model.lrn_fused does not import ({exc})"
    return lrn_fused.available()


def _fused_or_none(x, size, alpha, beta, k, towers):
    """The fused LRN of x, or None (with one warning) when its kernels fail to build or launch
    here: a missing compiler or an unsupported GPU falls back to the elementwise path."""
    from harness.model.lrn_fused import local_response_norm_fused
    x = _supported_layout(x)
    if torch.compiler.is_compiling():  # a graph node; its kernel runs (and fails) after tracing
        return local_response_norm_fused(x, size, alpha, beta, k, towers)
    try:
        if x.device.type not in _probed:  # build the backward's kernels now too, inside this try
            _probe(x, size, alpha, beta, k, towers)
            _probed.add(x.device.type)
        return local_response_norm_fused(x, size, alpha, beta, k, towers)
    except torch.OutOfMemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - triton's compile and launch errors have no common base
        _fall_back(x.device.type, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
        return None


_probed: set[str] = set()  # device types whose fused forward and backward have run once


def _probe(x, size, alpha, beta, k, towers) -> None:
    """Forward and backward of a one-pixel input like x: a kernel that cannot be built here
    fails now, where the layer can still fall back, not in the middle of a backward pass."""
    from harness.model.lrn_fused import local_response_norm_fused
    t = torch.ones((1, x.shape[1]) + (1,) * (x.dim() - 2), dtype=x.dtype, device=x.device, requires_grad=True)
    with torch.enable_grad():
        torch.autograd.grad(local_response_norm_fused(t, size, alpha, beta, k, towers).sum(), t)


def _fall_back(device_type: str, reason: str) -> None:
    _fell_back[device_type] = reason
    warnings.warn(f"LRN: the fused Triton kernels cannot run on {device_type} ({reason}); fell back to the "
                  f"elementwise LRN (harness/model/lrn.py), slower but the same function", RuntimeWarning,
                  stacklevel=3)


def kernel_for(device_type: str, impl: str = "fast", compiled: bool = False) -> str:
    """Which LRN code a model with model.lrn_impl `impl` runs on this device type (the train
    stage's lrn_kernel tag; call it after training, when a fall-back has shown itself)."""
    if impl == "reference":
        return "reference: nn.LocalResponseNorm (avg_pool3d)"
    if device_type in _fused_types:
        if _fused_ok(device_type):
            return "fused: Triton kernels (harness/model/lrn_fused.py)"
        return f"elementwise: fell back from the fused kernels ({_fell_back[device_type]})"
    if compiled:
        return "traced: plain ops fused by the compiler (lrn.traced_local_response_norm)"
    return "elementwise: chunked, hand-written backward (harness/model/lrn.py)"


def traced_local_response_norm(x: torch.Tensor, size: int, alpha: float, beta: float, k: float,
                               towers: int = 1) -> torch.Tensor:
    """The same function in plain, shape-agnostic tensor ops (for torch.export and
    torch.compile): the window sum as shifted adds of the zero-padded squares of each tower."""
    shape = x.shape
    c = shape[1] // towers
    t = x.reshape(shape[0] * towers, c, -1)
    front = size // 2
    sq = torch.nn.functional.pad(t * t, (0, 0, front, size - 1 - front))
    s = sq[:, 0:c]
    for i in range(1, size):
        s = s + sq[:, i:i + c]
    return (t * (k + (alpha / size) * s).pow(-beta)).reshape(shape)


class _LRN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, size, alpha, beta, k, towers):
        x = _supported_layout(x)
        ctx.args = (size, alpha, beta, k, towers)
        y = torch.empty_like(x)
        shape = _Windows(x, towers, size)
        work = _Work(shape, x, alpha, k)
        for s, e in shape.chunks():
            xc, out = shape.view(x)[s:e], shape.view(y)[s:e]
            w = work.rows(e - s)
            p = w.inverse_power(w.denominator(xc), beta)
            if out.dtype == p.dtype:
                torch.mul(xc, p, out=out)
            else:
                out.copy_(torch.mul(p, xc, out=w.tmp))
        if shape.one_chunk:
            # the work buffers hold D and D^-beta of the whole input: keep them (no recompute)
            ctx.save_for_backward(x, work.d, work.p)
        else:
            ctx.save_for_backward(x)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        x, *saved = ctx.saved_tensors
        size, alpha, beta, k, towers = ctx.args
        g = g.contiguous(memory_format=_format_of(x))
        dx = torch.empty_like(x)
        shape = _Windows(x, towers, size)
        work = _Work(shape, x, alpha, k, backward=True)
        coef = -2.0 * alpha * beta / size
        for s, e in shape.chunks():
            xc, gc, dc = shape.view(x)[s:e], shape.view(g)[s:e], shape.view(dx)[s:e]
            w = work.rows(e - s)
            if saved:  # read only: a retained graph may run this backward again
                d, p = saved
            else:
                d = w.denominator(xc)
                p = w.inverse_power(d, beta)
            gp = dc if w.dtype == dc.dtype else w.gp
            torch.mul(gc, p, out=gp)  # g D^-beta: the direct term
            t = w.terms
            torch.mul(gp, xc, out=t)  # g b
            t.div_(d)  # g b / D, summed over the transposed window next
            gp.addcmul_(xc, w.window_sum(w.terms_pad, out=w.tmp), value=coef)
            if gp is not dc:
                dc.copy_(gp)
        return dx, None, None, None, None, None


def _format_of(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.dim() == 4 and not x.is_contiguous() else torch.contiguous_format


def _supported_layout(x: torch.Tensor) -> torch.Tensor:
    """x itself when NCHW-contiguous or channels_last (4-D), else a contiguous copy."""
    if x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)):
        return x
    return x.contiguous()


class _Windows:
    """A tensor seen as [N, c, L] with the normalisation window along dim 1 (one tower's
    channels) and independent rows along dim 0: [B*towers, c, H*W] for NCHW memory,
    [B*H*W*towers, c, 1] for channels_last (there the channels are the innermost dim)."""

    def __init__(self, x: torch.Tensor, towers: int, size: int):
        self.towers, self.size = towers, size
        self.c = x.shape[1] // towers
        self.nhwc = not x.is_contiguous()
        if self.nhwc:
            self.rows, self.length = x.shape[0] * x.shape[2] * x.shape[3] * towers, 1
        else:
            self.rows, self.length = x.shape[0] * towers, x[0, 0].numel()
        per_row = self.c * self.length
        on_cpu = x.device.type == "cpu"
        self.chunk = max(1, CHUNK_ELEMENTS // per_row) if on_cpu else self.rows  # one chunk on a GPU
        self.one_chunk = self.chunk >= self.rows

    def view(self, t: torch.Tensor) -> torch.Tensor:
        if self.nhwc:
            return t.permute(0, 2, 3, 1).reshape(self.rows, self.c, 1)  # a view: NHWC is contiguous
        return t.view(self.rows, self.c, self.length)

    def chunks(self):
        return ((s, min(self.rows, s + self.chunk)) for s in range(0, self.rows, self.chunk))


class _Work:
    """Chunk-sized buffers for one call. `pad` holds (alpha/n) a^2 + k/n for the chunk's c
    channels with n-1 border rows of k/n, so that every window sums exactly n cells and comes out
    as D = k + (alpha/n) S in one go (a window that reaches past the tower's edge sums border
    cells: k/n each, no a^2). The backward's terms g b / D go into `terms_pad`, whose border rows
    are zeros, at the transposed window's offset. Half and bfloat16 are computed in fp32."""

    def __init__(self, shape: _Windows, like: torch.Tensor, alpha: float, k: float, backward: bool = False):
        c, n, m, length = shape.c, shape.size, min(shape.chunk, shape.rows), shape.length
        self.c, self.n = c, n
        self.dtype = torch.float32 if like.dtype in (torch.float16, torch.bfloat16) else like.dtype
        kw = dict(dtype=self.dtype, device=like.device)
        self.scale, self.k_n = alpha / n, torch.tensor(k / n, **kw)
        self._pad = torch.full((m, c + n - 1, length), k / n, **kw)
        self._pair = torch.empty(m, max(c + n - 2, 1), length, **kw)
        self._d, self._p, self._tmp = (torch.empty(m, c, length, **kw) for _ in range(3))
        # the window W(i) starts n//2 channels before i, the transposed one (n-1)//2 before
        self.front = n // 2
        self._terms_pad = torch.zeros(m, c + n - 1, length, **kw) if backward else None
        half = like.dtype != self.dtype
        self._gp = torch.empty(m, c, length, **kw) if backward and half else None

    def rows(self, m: int) -> "_Work":
        """The buffers cut to a chunk of m rows (only the last chunk may be shorter)."""
        self.pad, self.pair = self._pad[:m], self._pair[:m]
        self.d, self.p, self.tmp = self._d[:m], self._p[:m], self._tmp[:m]
        self.gp = self._gp[:m] if self._gp is not None else None
        if self._terms_pad is not None:
            self.terms_pad = self._terms_pad[:m]
            front = (self.n - 1) // 2
            self.terms = self.terms_pad[:, front:front + self.c]
        return self

    def window_sum(self, pad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """out[i] = sum of pad[i + t] for t < n: adjacent pairs first, then every other pair."""
        c, n = self.c, self.n
        if n == 1:
            return out.copy_(pad)
        if n <= 3:
            torch.add(pad[:, 0:c], pad[:, 1:c + 1], out=out)
            if n == 3:
                out.add_(pad[:, 2:c + 2])
            return out
        span = c + n - 2
        torch.add(pad[:, :span], pad[:, 1:span + 1], out=self.pair[:, :span])  # pad[t] + pad[t + 1]
        torch.add(self.pair[:, 0:c], self.pair[:, 2:c + 2], out=out)
        for t in range(4, 2 * (n // 2), 2):
            out.add_(self.pair[:, t:t + c])
        if n % 2:
            out.add_(pad[:, n - 1:n - 1 + c])
        return out

    def denominator(self, xc: torch.Tensor) -> torch.Tensor:
        """D = k + (alpha/n) * window sum of a^2 for this chunk, in the work buffers."""
        cells = self.pad[:, self.front:self.front + self.c]
        if xc.dtype != self.dtype:
            xc = xc.to(self.dtype)
        torch.addcmul(self.k_n, xc, xc, value=self.scale, out=cells)
        return self.window_sum(self.pad, out=self.d)

    def inverse_power(self, d: torch.Tensor, beta: float) -> torch.Tensor:
        """d^-beta into the p buffer; beta 0.75 (paper 3.3) as rsqrt(d) * sqrt(rsqrt(d)),
        about 6x cheaper than pow on a CPU."""
        out = self.p
        if beta == 0.75:
            torch.rsqrt(d, out=out)
            torch.sqrt(out, out=self.tmp)
            return out.mul_(self.tmp)
        if beta == 0.5:
            return torch.rsqrt(d, out=out)
        return torch.pow(d, -beta, out=out)
