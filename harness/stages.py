"""One function per DVC stage: wires data, model, training, evaluation and tracking.

Pipeline scripts parse paths and call these; nothing here reads argv or params.yaml.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from harness import config as C
from harness import data, ensemble, evaluate, runtime, tracking, transforms
from harness import train as T
from harness.errors import UserError
from harness.io import atomic_save_npy, atomic_write_bytes, atomic_write_json, atomic_write_text
from harness.model import build_model, count_params


@dataclass(frozen=True)
class StageContext:
    cfg: C.Config
    root: Path
    uri: str
    experiment_id: str
    parent_id: str
    base_tags: dict


def open_stage(params_path: Path, stage: str, purpose: str = "pipeline") -> StageContext:
    """Validate params, create the MLflow store/experiment once, find the parent run.

    `purpose` separates parents of other executions with the same params (e.g. reference runs).
    """
    cfg = C.load_config(params_path)
    root = runtime.repo_root()
    uri = tracking.resolve_uri(cfg.tracking.uri, runtime.tracking_uri_override(), root)
    name = tracking.experiment_name(cfg.data.source, cfg.profile, cfg.tracking.experiment)
    exp_id = tracking.ensure_experiment(uri, name, root)
    git = runtime.git_info(root)
    dvc = runtime.dvc_context()
    tags = {"git_commit": git["commit"], "git_dirty": git["dirty"], "DVC_EXP_NAME": dvc["exp_name"],
            "profile": cfg.profile, "dataset": cfg.data.source, "torch": str(torch.__version__),
            "cuda": torch.version.cuda or "none"}
    key = runtime.pipeline_key(params_path) + ("" if purpose == "pipeline" else f"-{purpose}")
    parent = tracking.parent_run(uri, exp_id, key, {**tags, "harness.role": purpose}, root)
    return StageContext(cfg, root, uri, exp_id, parent, {**tags, "DVC_STAGE": dvc["stage"] or stage})


def _params(cfg: C.Config, *sections: str) -> dict:
    d = C.to_dict(cfg)
    return C.flatten({s: d[s] for s in sections})


# --- prepare -----------------------------------------------------------------------------

def run_prepare(ctx: StageContext, out: Path, workers: int) -> dict:
    with tracking.child_run(ctx.uri, ctx.experiment_id, ctx.parent_id, "prepare",
                            _params(ctx.cfg, "data"), {**ctx.base_tags, "stage": "prepare"}) as run_id:
        start = time.perf_counter()
        manifest = data.prepare(ctx.cfg.data, out, workers)
        tracking.log_metrics(ctx.uri, run_id, {"prepare_time_s": time.perf_counter() - start,
                                               **{f"n_{k}": v for k, v in manifest["counts"].items()}})
        tracking.set_tags(ctx.uri, run_id, {"data_digest": manifest["digest"]})
        tracking.set_tags(ctx.uri, ctx.parent_id, {"data_digest": manifest["digest"]})
    return manifest


# --- train -------------------------------------------------------------------------------

def _views(cfg: C.Config, data_dir: Path, seed: int):
    mean, pca = data.load_stats(data_dir)
    norm = transforms.Normaliser(mean, cfg.model.input_scale)
    train_split, val_split = data.load_split(data_dir, "train"), data.load_split(data_dir, "val")
    train_view = transforms.TrainView(train_split, norm, pca if cfg.train.pca_colour else None,
                                      cfg.model.input_size, seed, cfg.train.pca_std, cfg.train.pca_mode)
    return train_view, val_split, norm


def run_train(ctx: StageContext, seed: int, data_dir: Path, out_dir: Path, metrics_path: Path,
              plots_path: Path) -> dict:
    cfg = ctx.cfg
    manifest = data.load_manifest(data_dir)
    runtime.set_determinism(seed, cfg.train.threads)
    train_view, val_split, norm = _views(cfg, data_dir, seed)
    if cfg.train.batch_size > len(train_view):
        raise UserError(f"train.batch_size: {cfg.train.batch_size} is larger than the "
                        f"{len(train_view)} training images")
    val_loader = transforms.batch_loader(
        transforms.EvalView(val_split, norm, cfg.model.input_size, "center"),
        transforms.eval_batches(len(val_split), cfg.evaluate.batch_size), 0)
    model = build_model(cfg.model, len(manifest["classes"]))
    params = {**_params(cfg, "data", "model", "train"), "seed": seed, "n_parameters": count_params(model)}
    tags = {**ctx.base_tags, "stage": "train", "seed": seed, "data_digest": manifest["digest"]}
    with tracking.child_run(ctx.uri, ctx.experiment_id, ctx.parent_id, f"train-seed{seed}",
                            params, tags) as run_id:
        history = _fit_logged(ctx, run_id, model, train_view, val_loader, seed)
        _save_model(out_dir / "model.pt", model, cfg, seed, manifest)
        result = _train_metrics(history, seed, run_id, ctx)
        atomic_write_text(plots_path, pd.DataFrame([h.__dict__ for h in history]).to_csv(index=False))
        atomic_write_json(metrics_path, result)
        tracking.log_artifact(ctx.uri, run_id, out_dir / "model.pt", "model")
    return result


def _fit_logged(ctx, run_id, model, train_view, val_loader, seed):
    cfg = ctx.cfg
    steps: list = []

    def on_step(step, loss, lr):  # per-step scalars to MLflow, flushed once per epoch
        steps.append((step, loss, lr))

    def on_epoch(r: T.EpochResult):
        print(f"seed {seed} epoch {r.epoch}/{cfg.train.epochs}: loss {r.train_loss:.3f}  "
              f"val top-1 {r.val_top1_error:.1f}%  top-5 {r.val_top5_error:.1f}%  "
              f"lr {r.lr:.2g}  {r.images_per_s:.0f} img/s", flush=True)
        metrics = {k: v for k, v in r.__dict__.items() if k != "epoch"}
        tracking.log_metrics(ctx.uri, run_id, metrics, step=r.epoch)
        tracking.log_series(ctx.uri, run_id, "step_loss", [(s, loss) for s, loss, _ in steps])
        tracking.log_series(ctx.uri, run_id, "step_lr", [(s, lr) for s, _, lr in steps])
        steps.clear()

    loader = lambda batches: transforms.batch_loader(train_view, batches, cfg.train.num_workers)
    return T.fit(model, train_view, loader, val_loader, cfg.train, seed, on_epoch, on_step)


def _save_model(path: Path, model, cfg: C.Config, seed: int, manifest: dict) -> None:
    """Weights plus everything needed to describe the run (house rule 6); tensors and plain data only."""
    import io
    buf = io.BytesIO()
    torch.save({"state_dict": model.state_dict(), "config": C.to_dict(cfg), "seed": seed,
                "num_classes": len(manifest["classes"]), "data_digest": manifest["digest"],
                "git": runtime.git_info(), "environment": runtime.environment()}, buf)
    atomic_write_bytes(path, buf.getvalue())


def _train_metrics(history, seed, run_id, ctx) -> dict:
    last = history[-1]
    return {"seed": seed, "epochs": last.epoch, "final_train_loss": last.train_loss,
            "final_val_top1_error": last.val_top1_error, "final_val_top5_error": last.val_top5_error,
            "images_per_s": float(np.mean([h.images_per_s for h in history])),
            "train_time_s": float(sum(h.epoch_time_s for h in history)),
            "mlflow_run_id": run_id, "mlflow_experiment_id": ctx.experiment_id}


def load_model(path: Path, cfg: C.Config) -> torch.nn.Module:
    if not path.is_file():
        raise UserError(f"model weights not found: {path} (run the train stage)")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(cfg.model, ckpt["num_classes"])
    model.load_state_dict(ckpt["state_dict"])
    return model


# --- evaluate ----------------------------------------------------------------------------

def run_evaluate(ctx: StageContext, seed: int, data_dir: Path, model_dir: Path, out_dir: Path,
                 metrics_path: Path) -> dict:
    cfg = ctx.cfg
    manifest = data.load_manifest(data_dir)
    runtime.set_determinism(seed, cfg.train.threads)
    model = load_model(model_dir / "model.pt", cfg)
    _, val_split, norm = _views(cfg, data_dir, seed)
    labels = val_split.labels
    result = {"seed": seed, "dataset": cfg.data.source, "split": "val",
              "num_classes": len(manifest["classes"]), "n_images": len(labels), "protocols": {}}
    tags = {**ctx.base_tags, "stage": "evaluate", "seed": seed, "data_digest": manifest["digest"]}
    with tracking.child_run(ctx.uri, ctx.experiment_id, ctx.parent_id, f"evaluate-seed{seed}",
                            {**_params(ctx.cfg, "evaluate"), "seed": seed}, tags) as run_id:
        for protocol in cfg.evaluate.protocols:
            view = transforms.EvalView(val_split, norm, cfg.model.input_size, protocol)
            loader = transforms.batch_loader(view, transforms.eval_batches(len(labels), cfg.evaluate.batch_size), 0)
            probs = evaluate.predict(model, loader, len(labels), f"evaluate {protocol}")
            atomic_save_npy(out_dir / f"{protocol}.npy", probs)
            summary = evaluate.error_summary(probs, labels)
            summary["per_class_top1_error"] = evaluate.per_class_error(probs, labels, result["num_classes"])
            result["protocols"][protocol] = summary
            tracking.log_metrics(ctx.uri, run_id, {f"{protocol}.top1_error": summary["top1_error"],
                                                   f"{protocol}.top5_error": summary["top5_error"]})
        result["mlflow_run_id"] = run_id
        atomic_write_json(metrics_path, result)
    return result


# --- ensemble ----------------------------------------------------------------------------

def load_predictions(pred_dir: Path, seeds, protocol: str) -> list[np.ndarray]:
    out = []
    for s in seeds:
        p = pred_dir / f"seed-{s}" / f"{protocol}.npy"
        if not p.is_file():
            raise UserError(f"predictions missing: {p} (run evaluate@{s})")
        out.append(np.load(p))
    return out


def run_ensemble(ctx: StageContext, data_dir: Path, pred_dir: Path, metrics_path: Path) -> dict:
    from harness import stats
    cfg = ctx.cfg
    labels = np.load(data_dir / "val" / "labels.npy")
    seeds = list(cfg.train.seeds)
    result = {"seeds": seeds, "protocols": {}}
    with tracking.child_run(ctx.uri, ctx.experiment_id, ctx.parent_id, "ensemble",
                            _params(cfg, "ensemble"), {**ctx.base_tags, "stage": "ensemble"}) as run_id:
        for protocol in cfg.evaluate.protocols:
            probs = load_predictions(pred_dir, seeds, protocol)
            sizes = ensemble.ensemble_errors(probs, labels, cfg.ensemble.max_subsets, cfg.ensemble.subset_seed)
            full = evaluate.topk_correct(np.mean(probs, 0), labels, 1)
            singles = [evaluate.topk_correct(p, labels, 1) for p in probs]
            result["protocols"][protocol] = {
                "sizes": sizes,
                # paired test on the same images: the full ensemble vs each single model
                "mcnemar_full_vs_single": [{"seed": s, **stats.mcnemar(full, c)}
                                           for s, c in zip(seeds, singles)],
            }
            for row in sizes:
                tracking.log_metrics(ctx.uri, run_id, {f"{protocol}.ensemble_top1_error": row["top1_error_mean"],
                                                       f"{protocol}.ensemble_top5_error": row["top5_error_mean"]},
                                     step=row["k"])
        result["mlflow_run_id"] = run_id
        atomic_write_json(metrics_path, result)
    return result


# --- compare -----------------------------------------------------------------------------

def paper_architecture_counts() -> dict:
    """Parameters and neurons of the paper network (1000 classes) as harness/model.py builds it."""
    from harness.model import layer_table
    paper = C.ModelConfig()
    table = layer_table(build_model(paper, 1000), paper.input_size)
    neurons = sum(int(np.prod(r.out_shape)) for r in table if not r.name.startswith("pool"))
    return {"n_parameters": sum(r.params for r in table), "n_neurons": neurons}


def is_full_paper_model(cfg: C.Config) -> bool:
    return cfg.model == C.ModelConfig() or (
        cfg.model == C.ModelConfig(input_size=227, conv1_padding=0))


def _correctness(pred_dir: Path, labels: np.ndarray, seeds, protocols) -> dict:
    out = {}
    for protocol in protocols:
        probs = load_predictions(pred_dir, seeds, protocol)
        out[protocol] = {f"top{k}_error": np.stack([evaluate.topk_correct(p, labels, k) for p in probs])
                         for k in (1, 5)}
    return out


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    return json.loads(path.read_text())


def load_reference(root: Path, cfg: C.Config) -> tuple[dict | None, str | None]:
    """The committed reference distribution, if it was recorded with this run's settings."""
    if not cfg.compare.reference:
        return None, "compare.reference is not set"
    path = root / cfg.compare.reference
    if not path.is_file():
        return None, f"no reference distribution at {cfg.compare.reference} (make one with `harness make-reference`)"
    ref = json.loads(path.read_text())
    if ref.get("training_digest") != C.training_digest(cfg):
        return None, (f"the reference runs in {cfg.compare.reference} were made with other data/model/train "
                      "params than this run, so they are not comparable")
    return ref, None


def run_compare(ctx: StageContext, data_dir: Path, eval_dir: Path, pred_dir: Path,
                ensemble_path: Path, out_path: Path) -> dict:
    from harness import claims as CL
    from harness import compare
    cfg = ctx.cfg
    seeds = list(cfg.train.seeds)
    results = [_read_json(eval_dir / f"seed-{s}.json", f"evaluation of seed {s}") for s in seeds]
    labels = np.load(data_dir / "val" / "labels.npy")
    reference, ref_reason = load_reference(ctx.root, cfg)
    context = CL.RunContext(dataset=cfg.data.source, split="val", num_classes=results[0]["num_classes"],
                            n_models_available=len(seeds), protocols=tuple(cfg.evaluate.protocols),
                            full_paper_model=is_full_paper_model(cfg))
    settings = compare.CompareSettings(conf=cfg.compare.conf, alpha=cfg.compare.alpha,
                                       margin_pp=cfg.compare.margin_pp, n_boot=cfg.compare.n_boot)
    with tracking.child_run(ctx.uri, ctx.experiment_id, ctx.parent_id, "compare",
                            _params(cfg, "compare"), {**ctx.base_tags, "stage": "compare"}) as run_id:
        out = compare.build_compare(
            results, context, CL.load_claims(), settings,
            correctness=_correctness(pred_dir, labels, seeds, cfg.evaluate.protocols),
            ensemble=_read_json(ensemble_path, "ensemble metrics"), reference=reference,
            measured=paper_architecture_counts())
        if ref_reason:
            out["reference"] = {"tested": False, "reason": ref_reason}
        out["mlflow_run_id"] = run_id
        out["parent_run_id"] = ctx.parent_id
        out["mlflow_experiment_id"] = ctx.experiment_id
        metrics = compare.summary_metrics(out)
        tracking.log_metrics(ctx.uri, run_id, metrics)
        tracking.log_metrics(ctx.uri, ctx.parent_id, metrics)  # MLflow has no seed aggregation
        atomic_write_json(out_path, out)
    return out


# --- report ------------------------------------------------------------------------------

def _provenance(ctx: StageContext, train: dict) -> dict:
    import hashlib
    from importlib import metadata
    lock = ctx.root / "dvc.lock"
    env = runtime.environment()
    gpu_s = sum(t["train_time_s"] for t in train.values()) * len(env["gpus"])
    packages = {}
    for name in ("torch", "torchvision", "mlflow", "dvc", "numpy", "scipy", "pandas"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = "not installed"
    return {"git": runtime.git_info(ctx.root), "environment": env, "packages": packages,
            "dvc_lock_digest": hashlib.sha256(lock.read_bytes()).hexdigest()[:16] if lock.is_file() else "none",
            "gpu_hours": gpu_s / 3600}


def run_report(ctx: StageContext, data_dir: Path, metrics_dir: Path, plots_dir: Path,
               out_md: Path, out_html: Path, figures_dir: Path) -> Path:
    from harness import report, report_sections
    from harness.deviations import deviations
    cfg = ctx.cfg
    seeds = list(cfg.train.seeds)
    train = {s: _read_json(metrics_dir / "train" / f"seed-{s}.json", f"training metrics of seed {s}") for s in seeds}
    inputs = report_sections.ReportInputs(
        params=C.to_dict(cfg),
        compare=_read_json(metrics_dir / "compare.json", "comparison"),
        train=train,
        curves={s: pd.read_csv(plots_dir / "train" / f"seed-{s}.csv") for s in seeds},
        evaluations={s: _read_json(metrics_dir / "evaluate" / f"seed-{s}.json", f"evaluation of seed {s}") for s in seeds},
        ensemble=_read_json(metrics_dir / "ensemble.json", "ensemble metrics"),
        manifest=data.load_manifest(data_dir), deviations=deviations(cfg),
        provenance=_provenance(ctx, train))
    doc = report_sections.build(inputs)
    for block in doc.blocks:
        if block[0] == "fig":
            atomic_write_bytes(figures_dir / f"{block[1]}.png", block[3])
    rel = Path(*[".."] * 0, figures_dir.relative_to(out_md.parent)) if figures_dir.is_relative_to(out_md.parent) else figures_dir
    atomic_write_text(out_md, report.to_markdown(doc, rel.as_posix()))
    atomic_write_text(out_html, report.to_html(doc, "AlexNet reproducibility report"))
    with tracking.child_run(ctx.uri, ctx.experiment_id, ctx.parent_id, "report", {},
                            {**ctx.base_tags, "stage": "report"}):
        tracking.log_artifact(ctx.uri, ctx.parent_id, out_html, "report")
        tracking.log_artifact(ctx.uri, ctx.parent_id, out_md, "report")
        tracking.log_artifacts(ctx.uri, ctx.parent_id, figures_dir, "report/figures")
    tracking.finish_parent(ctx.uri, ctx.parent_id)
    return out_html
