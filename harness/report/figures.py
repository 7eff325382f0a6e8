"""Report figures as PNG bytes (matplotlib, Agg): titled, labelled, with units, print-safe."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from harness.analysis.handover import EnsembleSize, SeedRow  # noqa: E402

plt.rcParams.update({"font.size": 10, "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 110})


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def training_curves(curves: dict[int, pd.DataFrame], reference_line: float | None, ref_label: str) -> bytes:
    """Validation top-1 error and training loss per epoch, one line per seed."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for seed, df in sorted(curves.items()):
        a.plot(df["epoch"], df["val_top1_error"], marker=".", label=f"seed {seed}")
        b.plot(df["epoch"], df["train_loss"], marker=".", label=f"seed {seed}")
    if reference_line is not None:
        a.axhline(reference_line, color="k", ls="--", lw=1, label=ref_label)
    a.set(title="Validation top-1 error (centre crop)", xlabel="epoch", ylabel="error (%)")
    b.set(title="Training loss", xlabel="epoch", ylabel="cross-entropy (nats)")
    a.legend(fontsize=8)
    b.legend(fontsize=8)
    return _png(fig)


def lr_schedule(curves: dict[int, pd.DataFrame]) -> bytes:
    fig, ax = plt.subplots(figsize=(5, 3))
    seed, df = sorted(curves.items())[0]
    ax.step(df["epoch"], df["lr"], where="post")
    ax.set(title="Learning rate at the end of each epoch", xlabel="epoch", ylabel="learning rate",
           yscale="log")
    return _png(fig)


def ensemble_curve(sizes_by_protocol: dict[str, list[EnsembleSize]], metric: str) -> bytes:
    """Error of k-model softmax averages: mean over subsets with min-max range."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for protocol, rows in sizes_by_protocol.items():
        k = [r["k"] for r in rows]
        mean = [r[f"{metric}_mean"] for r in rows]
        lo = [r[f"{metric}_min"] for r in rows]
        hi = [r[f"{metric}_max"] for r in rows]
        ax.plot(k, mean, marker="o", label=protocol)
        ax.fill_between(k, lo, hi, alpha=0.2)
    ax.set(title=f"Ensemble {metric.replace('_error', '').replace('top', 'top-')} error vs size", xlabel="models averaged (k)",
           ylabel="error (%)", xticks=sorted({r['k'] for rows in sizes_by_protocol.values() for r in rows}))
    ax.legend(fontsize=8, title="mean over subsets; band = min-max")
    return _png(fig)


def per_seed_errors(rows: list[SeedRow], reference_mean: float | None, ref_label: str) -> bytes:
    """Per-seed error with its 95% Wilson interval, per protocol and metric."""
    keys = sorted({(r["protocol"], r["metric"]) for r in rows})
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    labels = []
    for i, key in enumerate(keys):
        sel = [r for r in rows if (r["protocol"], r["metric"]) == key]
        for j, r in enumerate(sel):
            x = i + (j - (len(sel) - 1) / 2) * 0.12
            ax.errorbar(x, r["error"], yerr=[[r["error"] - r["wilson_lo"]], [r["wilson_hi"] - r["error"]]],
                        fmt="o", color=f"C{j}", capsize=3, label=f"seed {r['seed']}" if i == 0 else None)
        labels.append(f"{key[0]}\n{key[1].replace('_error', '')}")
    if reference_mean is not None:
        ax.axhline(reference_mean, color="k", ls="--", lw=1, label=ref_label)
    ax.set_xticks(range(len(keys)), labels)
    ax.set(title="Per-seed error with 95% Wilson intervals", ylabel="error (%)")
    ax.legend(fontsize=8)
    return _png(fig)


def per_class_hist(per_class: dict[int, list[float]]) -> bytes:
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    values = [v for errs in per_class.values() for v in errs if v is not None]
    ax.hist(values, bins=20, range=(0, 100), color="C0", edgecolor="white")
    ax.set(title="Per-class top-1 error (centre crop, all seeds)", xlabel="class error (%)",
           ylabel="classes x seeds")
    return _png(fig)


def training_error_vs_iterations(groups: dict[str, dict[int, tuple[list, list]]], target: float | None) -> bytes:
    """Paper Figure 1 redrawn: training error (%) against iterations, one line per seed, one style
    per group (solid for the first, dashed for the second, as the paper draws ReLU and tanh)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for g, (label, seeds) in enumerate(groups.items()):
        for i, (seed, (x, y)) in enumerate(sorted(seeds.items())):
            ax.plot(x, y, color=f"C{g}", ls="-" if g == 0 else "--", marker="." if len(x) <= 60 else None, lw=1.2,
                    label=label if i == 0 else None)
    if target is not None:
        ax.axhline(target, color="k", ls=":", lw=1, label=f"{target:g}% target")
    ax.set(title="Training error against iterations (all seeds)", xlabel="iterations (SGD steps)",
           ylabel="training top-1 error (%)", ylim=(0, None))
    ax.legend(fontsize=8)
    return _png(fig)


def _kernel_grid(w: np.ndarray, cols: int) -> np.ndarray:
    """RGB mosaic of conv1 kernels [K, 3, k, k], each scaled on its own to 0.5 +/- its largest
    weight (grey = 0), one pixel of white between kernels."""
    k, size = len(w), w.shape[-1]
    rows = -(-k // cols)
    out = np.ones((rows * (size + 1) + 1, cols * (size + 1) + 1, 3))
    for i, kern in enumerate(w):
        img = kern.transpose(1, 2, 0)
        img = 0.5 + img / (2 * max(float(np.abs(img).max()), 1e-12))
        r, c = divmod(i, cols)
        out[1 + r * (size + 1):1 + r * (size + 1) + size, 1 + c * (size + 1):1 + c * (size + 1) + size] = img
    return out


def tower_kernels(kernels: dict[int, np.ndarray], towers: dict[int, dict | None]) -> bytes:
    """Figure 3 of the paper redrawn: each seed's conv1 kernels, one panel per tower, with the
    tower's colour-selectivity index (harness/train/towers.py)."""
    seeds = sorted(kernels)
    fig, axes = plt.subplots(len(seeds), 2, figsize=(9, 2.4 * len(seeds)), squeeze=False)
    for row, seed in zip(axes, seeds):
        halves = np.array_split(kernels[seed], 2)
        t = towers.get(seed) or {}
        for tower, (ax, w) in enumerate(zip(row, halves)):
            cols = min(len(w), 8 if len(w) >= 32 else 6)
            ax.imshow(_kernel_grid(w, cols), interpolation="nearest")
            index = t.get("colour_selectivity", [None, None])[tower]
            ax.set_title(f"seed {seed}, tower {tower}" + (f": colour selectivity {index:.2f}" if index is not None else ""),
                         fontsize=9)
            ax.axis("off")
    fig.suptitle("conv1 kernels per tower (paper Figure 3); grey = 0, each kernel scaled on its own", fontsize=10)
    return _png(fig)


def error_vs_cost(points: list[dict]) -> bytes:
    """Top-1 error against multiply-adds per crop, one point per net with its t interval across
    seeds (points: name, mult_adds, mean, lo, hi; lo/hi None with one seed)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for p in points:
        err = None if p["lo"] is None else [[p["mean"] - p["lo"]], [p["hi"] - p["mean"]]]
        ax.errorbar([p["mult_adds"] / 1e6], [p["mean"]], yerr=err, fmt="o", capsize=3)
        ax.annotate(p["name"], (p["mult_adds"] / 1e6, p["mean"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    ax.set(title="Top-1 error against multiply-adds (this run, same data and recipe)",
           xlabel="multiply-adds per crop (millions, log scale)", ylabel="top-1 error (%)", xscale="log")
    return _png(fig)
