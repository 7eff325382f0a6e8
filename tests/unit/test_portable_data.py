"""The embedded dataset has the same bytes on every machine (harness/prepare/portable.py).

Another machine cannot be had in a unit test, so three checks stand in for it: the generator
and the PCA call no function whose last bits depend on the CPU; the data digest is unchanged
when numpy's SIMD paths and OpenBLAS's CPU-specific kernels are switched off in a subprocess;
and a small sample has the digest pinned below, which every machine must give.
"""

import ast
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.config import DataConfig, SyntheticConfig
from harness.prepare import portable, synthetic, writer

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "harness/prepare/synthetic.py", ROOT / "harness/prepare/portable.py"]
TINY = DataConfig(image_size=24, shard_size=50,
                  synthetic=SyntheticConfig(num_classes=5, train_per_class=8, val_per_class=4, clutter=2))
# Correctly rounded in IEEE 754 (or exact): the same bits from any SIMD path.
EXACT_UFUNCS = {"add", "subtract", "multiply", "divide", "true_divide", "negative", "positive", "absolute",
                "sqrt", "maximum", "minimum", "rint", "floor", "ceil", "trunc", "remainder", "fmod",
                "floor_divide", "sign", "square", "equal", "not_equal", "less", "less_equal", "greater",
                "greater_equal", "logical_and", "logical_or", "logical_xor", "logical_not", "bitwise_and",
                "bitwise_or", "bitwise_xor", "invert", "isnan", "isinf", "isfinite", "signbit", "copysign"}
# A sample computed once (x86-64 AMD EPYC, numpy 2.4): any CPU, OS or numpy version must give these
# bits. A change to the generator on purpose changes the data, and this digest with it.
PINNED_SAMPLE = "9c352960bd32c5053b40fb7a64c0455fd6ff6f4fe5101941987d33576b190755"


def _sample_digest() -> str:
    """Images, labels and the PCA (PixelStats sums integers exactly; eigh3 solves it) of a few images."""
    h = hashlib.sha256()
    stats = writer.PixelStats(32)
    for split in ("train", "val"):
        images, labels = synthetic.generate(TINY.synthetic, split, 32, 0, 12)
        h.update(images.tobytes() + labels.tobytes())
        stats.add(images)
    h.update(json.dumps(stats.pca()).encode())
    return h.hexdigest()


class _OnlyRawDraws:
    """A Generator that hands out integers and raw doubles only (normal() uses exp and log)."""

    def __init__(self, rng):
        self._rng = rng

    def integers(self, *a, **k):
        return self._rng.integers(*a, **k)

    def random(self, *a, **k):
        return self._rng.random(*a, **k)


def test_generator_and_pca_call_only_correctly_rounded_operations(monkeypatch):
    """Every numpy ufunc outside EXACT_UFUNCS, np.linalg, and every Generator method but integers
    and random raise while an image is drawn and the PCA solved."""
    def forbidden(name):
        def call(*a, **k):
            raise AssertionError(f"np.{name} gives CPU-dependent bits")
        return call

    for name in dir(np):
        if isinstance(getattr(np, name), np.ufunc) and name not in EXACT_UFUNCS:
            monkeypatch.setattr(np, name, forbidden(name))
    for name in ("eigh", "eig", "eigvalsh", "svd", "solve", "norm"):
        monkeypatch.setattr(np.linalg, name, forbidden(f"linalg.{name}"))
    real = np.random.default_rng
    monkeypatch.setattr(np.random, "default_rng", lambda seed: _OnlyRawDraws(real(seed)))
    cfg = SyntheticConfig(num_classes=32, clutter=8)  # every shape and texture, as distractors too
    images, _ = synthetic.generate(cfg, "train", 24, 0, 40)
    assert images.std() > 10
    stats = writer.PixelStats(24)
    stats.add(images)
    pca = stats.pca()
    assert pca["eigenvalues"][0] > pca["eigenvalues"][2] > 0


def test_no_power_operator_in_the_generator():
    """`x ** y` on arrays is np.power (libm pow), which the ufunc guard above cannot intercept."""
    for path in SOURCES:
        pows = [n.lineno for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Pow)]
        assert not pows, f"{path.name}: ** at lines {pows}"


def test_portable_functions_match_numpy():
    x = np.linspace(-60, 60, 100_001)
    np.testing.assert_allclose(portable.sin(x), np.sin(x), atol=1e-12)
    np.testing.assert_allclose(portable.cos(x), np.cos(x), atol=1e-12)
    rng = np.random.default_rng(0)
    draws = portable.normal(rng, 3.0, 200_000)
    assert abs(draws.mean()) < 0.03 and abs(draws.std() - 3.0) < 0.03
    for _ in range(200):
        a = rng.normal(size=(3, 3)) * rng.uniform(0.1, 1e4)
        a = a + a.T
        vals, vecs = portable.eigh3(a.tolist())
        np.testing.assert_allclose(vals, np.linalg.eigvalsh(a)[::-1], rtol=1e-12, atol=1e-12 * abs(a).max())
        v = np.array(vecs)
        np.testing.assert_allclose(v @ np.diag(vals) @ v.T, a, atol=1e-11 * abs(a).max())
        np.testing.assert_allclose(v.T @ v, np.eye(3), atol=1e-13)


def test_a_small_sample_has_the_pinned_digest():
    assert _sample_digest() == PINNED_SAMPLE


_CHILD = """
import json, sys
from pathlib import Path
import numpy as np
from harness.config import DataConfig, SyntheticConfig
from harness.prepare import portable, writer
cfg = DataConfig(image_size=24, shard_size=50,
                 synthetic=SyntheticConfig(num_classes=5, train_per_class=8, val_per_class=4, clutter=2))
rng = np.random.default_rng(7)
covs = []
for _ in range(300):  # covariances of integer pixels, from exact integer sums as PixelStats makes them
    px = rng.integers(0, 256, (40, 3))
    mu = px.sum(0) / 40
    covs.append((px.T @ px) / 40 - np.outer(mu, mu))
print(json.dumps({"digest": writer.prepare(cfg, Path(sys.argv[1]), workers=1)["digest"],
                  "eigh": [portable.eigh3(c.tolist()) for c in covs]}))
"""


def _child(tmp_path: Path, name: str, env: dict) -> dict:
    p = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path / name)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT), **env}, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def _cpu_variants() -> dict[str, dict]:
    """Environments that make numpy and OpenBLAS take other code paths on this CPU."""
    core = getattr(np, "_core", None) or np.core
    umath = core._multiarray_umath
    found = [f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f)]
    off = {"NPY_DISABLE_CPU_FEATURES": " ".join(found)} if found else {}  # numpy reads it at import
    variants = {}
    if platform.machine() in ("x86_64", "AMD64"):  # OpenBLAS kernels that this CPU can run
        variants["no SIMD above numpy's baseline, OpenBLAS Prescott (SSE3)"] = {**off, "OPENBLAS_CORETYPE": "Prescott"}
        if umath.__cpu_features__.get("AVX512F"):
            variants["OpenBLAS SkylakeX (AVX-512)"] = {"OPENBLAS_CORETYPE": "SkylakeX"}
    elif off:
        variants["no SIMD above numpy's baseline"] = off
    return variants


@pytest.mark.slow
def test_the_data_digest_does_not_depend_on_simd_paths_or_blas_kernels(tmp_path):
    """The CPU a machine has chooses these paths: a digest that moves with them moves between
    machines (an AVX-512 Intel and an AMD Zen once committed different digests of this data)."""
    variants = _cpu_variants()
    if not variants:
        pytest.skip("no SIMD extension or BLAS kernel to switch on this machine")
    plain = _child(tmp_path, "plain", {})
    for i, (name, env) in enumerate(variants.items()):
        assert _child(tmp_path, f"variant-{i}", env) == plain, f"{name} ({env}) changed the bits"
