"""Arithmetic that gives the same bits on every machine, for the embedded dataset's bytes.

IEEE 754 rounds +, -, *, / and sqrt correctly, so each of these numpy ufuncs gives the same
bits whatever SIMD path a CPU takes. Transcendental functions do not: numpy picks a SIMD
sin/cos/exp/log by CPU (AVX2, AVX-512, NEON give different last bits), and the C library
and OpenBLAS choose kernels by CPU too (a LAPACK eigen-solver on an AVX-512 Intel and on an
AMD Zen disagree in the last bits). Here: sine and cosine as a polynomial of separate
multiplies and adds, uniform and near-normal draws from PCG64's raw doubles (Generator.normal
uses exp/log on its rejection path), and a Jacobi eigen-solver in Python floats. No ufunc
call here fuses a multiply and an add, so FMA hardware cannot change a result either.
"""

from __future__ import annotations

import math

import numpy as np

PI = math.pi
_HALF_PI = PI / 2
# Taylor coefficients of sin(x) = x - x^3/3! + ... up to x^17: below 1e-13 off on [-pi/2, pi/2]
_SIN_COEFFS = [(-1.0 if k % 2 else 1.0) / math.factorial(2 * k + 1) for k in range(9)]
SQRT3 = math.sqrt(3.0)  # sqrt is correctly rounded (IEEE 754), so this is the same everywhere


def sin(x):
    """sin(x) from +, -, *, / and rint only; x a float or a float64 array."""
    x = np.asarray(x, np.float64)
    k = np.rint(x / PI)  # x = k*pi + r with |r| <= pi/2 (up to rounding, the same everywhere)
    r = x - k * PI
    r2 = r * r
    p = np.full_like(r, _SIN_COEFFS[-1])
    for c in reversed(_SIN_COEFFS[:-1]):  # Horner: each step a multiply then an add
        p = p * r2 + c
    s = p * r
    odd = np.remainder(k, 2.0) != 0  # sin(r + k*pi) = (-1)^k sin(r)
    out = np.where(odd, -s, s)
    return float(out) if out.ndim == 0 else out


def cos(x):
    return sin(np.asarray(x, np.float64) + _HALF_PI)


def uniform(rng: np.random.Generator, lo: float, hi: float, size=None):
    """Uniform on [lo, hi): PCG64's doubles are (next_uint64 >> 11) * 2**-53, exact everywhere;
    the scaling is done here, as a numpy multiply then add (not in compiled C that a compiler
    may fuse into an FMA)."""
    return lo + (hi - lo) * rng.random(size)


def normal(rng: np.random.Generator, sd: float, size=None):
    """Mean 0, standard deviation `sd`: a sum of four uniforms (Irwin-Hall), which is
    bell-shaped and bounded at +-3.46 sd, with no exp or log."""
    shape = (4,) if size is None else (4, *np.atleast_1d(size))
    u = rng.random(shape)
    s = ((u[0] + u[1]) + (u[2] + u[3]) - 2.0) * (SQRT3 * sd)  # var of the sum: 4/12
    return float(s) if size is None else s


def eigh3(a) -> tuple[list[float], list[list[float]]]:
    """Eigenvalues (descending) and eigenvectors (columns) of a symmetric 3x3 matrix by cyclic
    Jacobi rotations in Python floats: only +, -, *, / and sqrt, so the same bits on every CPU,
    unlike LAPACK through OpenBLAS. Each eigenvector's largest component is made positive."""
    m = [[float(a[i][j]) for j in range(3)] for i in range(3)]
    v = [[1.0 if i == j else 0.0 for j in range(3)] for i in range(3)]
    for _ in range(50):  # converges in under 10 sweeps; a fixed cap keeps it total
        rotated = False
        for p, q in ((0, 1), (0, 2), (1, 2)):
            if _negligible(m[p][q], m[p][p], m[q][q]):
                m[p][q] = m[q][p] = 0.0
                continue
            rotated = True
            theta = (m[q][q] - m[p][p]) / (2.0 * m[p][q])
            t = (1.0 if theta >= 0 else -1.0) / (abs(theta) + math.sqrt(theta * theta + 1.0))
            c = 1.0 / math.sqrt(t * t + 1.0)
            s = t * c
            _rotate(m, v, p, q, c, s)
            m[p][q] = m[q][p] = 0.0  # zero by construction; rounding leaves a trace
        if not rotated:
            break
    vals = [m[i][i] for i in range(3)]
    order = sorted(range(3), key=lambda i: -vals[i])
    vecs = [[v[r][i] for r in range(3)] for i in order]  # one list per eigenvector
    vecs = [[-x for x in e] if -min(e) > max(e) else e for e in vecs]
    return [vals[i] for i in order], [[vecs[c][r] for c in range(3)] for r in range(3)]


def _negligible(off: float, dp: float, dq: float) -> bool:
    """|off| below the last bit of both diagonal entries: a rotation would change nothing."""
    big = 100.0 * abs(off)
    return off == 0.0 or (abs(dp) + big == abs(dp) and abs(dq) + big == abs(dq))


def _rotate(m, v, p, q, c, s) -> None:
    """Apply the Jacobi rotation J(p, q, c, s): m <- J^T m J, v <- v J."""
    for k in range(3):
        mkp, mkq = m[k][p], m[k][q]
        m[k][p], m[k][q] = c * mkp - s * mkq, s * mkp + c * mkq
    for k in range(3):
        mpk, mqk = m[p][k], m[q][k]
        m[p][k], m[q][k] = c * mpk - s * mqk, s * mpk + c * mqk
    for k in range(3):
        vkp, vkq = v[k][p], v[k][q]
        v[k][p], v[k][q] = c * vkp - s * vkq, s * vkp + c * vkq
