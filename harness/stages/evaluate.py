"""Stage `evaluate@<seed>`: per-image probabilities for each protocol, top-k errors."""

from __future__ import annotations

from pathlib import Path


from harness import data, evaluate, runtime, tracking, transforms
from harness.io import atomic_save_npy, atomic_write_json
from harness.stages import StageContext, params_for
from harness.stages.train import build_views, load_model


def run_evaluate(ctx: StageContext, seed: int, data_dir: Path, model_dir: Path, out_dir: Path,
                 metrics_path: Path) -> dict:
    cfg = ctx.cfg
    manifest = data.load_manifest(data_dir)
    runtime.set_determinism(seed, cfg.train.threads)
    model = load_model(model_dir / "model.pt", cfg)
    _, val_split, norm = build_views(cfg, data_dir, seed)
    labels = val_split.labels
    result = {"seed": seed, "dataset": cfg.data.source, "split": "val",
              "num_classes": len(manifest["classes"]), "n_images": len(labels), "protocols": {}}
    tags = {**ctx.base_tags, "stage": "evaluate", "seed": seed, "data_digest": manifest["digest"]}
    with tracking.child_run(ctx.uri, ctx.experiment_id, ctx.parent_id, f"evaluate-seed{seed}",
                            {**params_for(ctx.cfg, "evaluate"), "seed": seed}, tags) as run_id:
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
