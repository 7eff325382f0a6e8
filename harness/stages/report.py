"""Stage `report`: render reports/report.md and report.html, log them to the parent run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness import config as C
from harness import runtime, tracking
from harness.data import shards
from harness.io import atomic_write_bytes, atomic_write_text
from harness.stages import StageContext, pipeline_outputs, read_json


def _provenance(ctx: StageContext, train: dict) -> dict:
    import hashlib
    from importlib import metadata
    lock = ctx.root / "dvc.lock"
    env = runtime.environment()
    gpu_s = sum(t["train_time_s"] for t in train.values()) * len(env["gpus"])
    packages = {}
    for name in ("torch", "torchvision", "mlflow", "dvc", "numpy", "scipy", "statsmodels", "pandas"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = "not installed"
    # dirty as the MLflow parent says it: the pipeline's own outputs (this report, removed by DVC
    # before the stage runs; dvc.lock) do not count, or every report of a committed run says "yes"
    return {"git": runtime.git_info(ctx.root, ignore=pipeline_outputs(ctx.root)), "environment": env, "packages": packages,
            "dvc_lock_digest": hashlib.sha256(lock.read_bytes()).hexdigest()[:16] if lock.is_file() else "none",
            "gpu_hours": gpu_s / 3600}


def write_all_seeds(curves: dict, path: Path) -> None:
    """Per-epoch curves of every seed in one CSV with a `seed` column, for `dvc plots show`
    (the seeds.json template colours by seed, so all seeds overlay in one plot)."""
    frames = [df.assign(seed=seed) for seed, df in sorted(curves.items())]
    atomic_write_text(path, pd.concat(frames, ignore_index=True).to_csv(index=False))


def _steps(folder: Path, seeds) -> dict:
    """seed -> the train stage's window series (seed-N.steps.csv) where it was written."""
    return {s: pd.read_csv(folder / f"seed-{s}.steps.csv") for s in seeds if (folder / f"seed-{s}.steps.csv").is_file()}


def _arms(cfg: C.Config, metrics_dir: Path, plots_dir: Path) -> dict:
    """Per enabled arm, its seeds' train metrics, per-epoch curves, step series and evaluations."""
    out = {}
    for arm in cfg.ablations.enabled:
        m, seeds, plots = metrics_dir / "ablations" / arm, cfg.train.seeds, plots_dir / "ablations" / arm / "train"
        out[arm] = {"train": {s: read_json(m / "train" / f"seed-{s}.json", f"training metrics of arm {arm}, seed {s}")
                              for s in seeds},
                    "curves": {s: pd.read_csv(plots / f"seed-{s}.csv") for s in seeds},
                    "steps": _steps(plots, seeds),
                    "evaluations": {s: read_json(m / "evaluate" / f"seed-{s}.json", f"evaluation of arm {arm}, seed {s}")
                                    for s in seeds}}
    return out


def _kernels(folder: Path | None, seeds: list[int]) -> dict | None:
    """seed -> conv1 kernels written by the train stage (artifacts/kernels/seed-N.npy)."""
    if folder is None:
        return None
    found = {s: np.load(folder / f"seed-{s}.npy") for s in seeds if (folder / f"seed-{s}.npy").is_file()}
    return found or None


def run_report(ctx: StageContext, *, data_dir: Path, metrics_dir: Path, plots_dir: Path,
               out_md: Path, out_html: Path, figures_dir: Path, all_seeds_csv: Path,
               benchmarks: Path | None = None, reliability: Path | None = None,
               kernels: Path | None = None, pilot: Path | None = None, cifar10_costs: Path | None = None,
               gpu: Path | None = None) -> Path:
    from harness.report import render, sections
    from harness.report.deviations import deviations, interpretations
    cfg = ctx.cfg
    seeds = list(cfg.train.seeds)
    train = {s: read_json(metrics_dir / "train" / f"seed-{s}.json", f"training metrics of seed {s}") for s in seeds}
    inputs = sections.ReportInputs(
        params=C.to_dict(cfg),
        compare=read_json(metrics_dir / "compare.json", "comparison"),
        train=train,
        curves={s: pd.read_csv(plots_dir / "train" / f"seed-{s}.csv") for s in seeds},
        evaluations={s: read_json(metrics_dir / "evaluate" / f"seed-{s}.json", f"evaluation of seed {s}") for s in seeds},
        ensemble=read_json(metrics_dir / "ensemble.json", "ensemble metrics"),
        manifest=shards.load_manifest(data_dir), deviations=deviations(cfg),
        provenance=_provenance(ctx, train),
        benchmarks=read_json(benchmarks, "benchmarks") if benchmarks and benchmarks.is_file() else None,
        reliability=read_json(reliability, "reliability figures") if reliability and reliability.is_file() else None,
        ui_url=tracking.ui_url(ctx.uri),
        interpretations=interpretations(cfg), kernels=_kernels(kernels, seeds),
        pilot=read_json(pilot, "pilot figures") if pilot and pilot.is_file() else None,
        gpu=read_json(gpu, "GPU figures") if gpu and gpu.is_file() else None,
        training_digest=C.training_digest(cfg), param_defaults=C.to_dict(C.from_dict({})),
        arms=_arms(cfg, metrics_dir, plots_dir), steps=_steps(plots_dir / "train", seeds),
        cifar10_costs=read_json(cifar10_costs, "CIFAR-10 costs") if cifar10_costs and cifar10_costs.is_file() else None)
    write_all_seeds(inputs.curves, all_seeds_csv)
    doc = sections.build(inputs)
    for block in doc.blocks:
        if block[0] == "fig":
            atomic_write_bytes(figures_dir / f"{block[1]}.png", block[3])
    rel = Path(*[".."] * 0, figures_dir.relative_to(out_md.parent)) if figures_dir.is_relative_to(out_md.parent) else figures_dir
    atomic_write_text(out_md, render.to_markdown(doc, rel.as_posix()))
    atomic_write_text(out_html, render.to_html(doc, "AlexNet reproducibility report"))
    with tracking.child_run(ctx.uri, ctx.experiment_id, ctx.parent_id, "report", {},
                            {**ctx.base_tags, "stage": "report"}) as run_id:
        tracking.log_stage_files(ctx.uri, run_id, inputs.params, all_seeds_csv)
        tracking.log_artifact(ctx.uri, ctx.parent_id, out_html, "report")
        tracking.log_artifact(ctx.uri, ctx.parent_id, out_md, "report")
        tracking.log_artifacts(ctx.uri, ctx.parent_id, figures_dir, "report/figures")
    tracking.finish_parent(ctx.uri, ctx.parent_id)
    return out_html
