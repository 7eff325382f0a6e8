"""Stage `evaluate@<seed>`: per-image probabilities for each protocol, top-k errors."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np

from harness import accel, runtime, tracking
from harness import config as C
from harness.analysis import scoring
from harness.data import shards, transforms
from harness.data.transforms import EvalView, build_views
from harness.evaluate import inference
from harness.io import atomic_save_npy, atomic_write_json
from harness.stages import StageContext, params_for, run_name
from harness.train import checkpoint
from harness.train.checkpoint import load_model


def run_evaluate(ctx: StageContext, *, seed: int, data_dir: Path, model_dir: Path, out_dir: Path,
                 metrics_path: Path) -> dict:
    """Under torchrun each rank predicts every world-th image; rank 0 assembles and writes."""
    cfg = ctx.cfg
    manifest = shards.load_manifest(data_dir)
    # the whole net on one device per rank: rank r evaluates on the r-th device of train.devices[0]'s kind
    d = runtime.init_distributed(cfg.train.devices[:1])
    runtime.set_determinism(seed, cfg.train.threads)
    backend = accel.configure_precision(cfg.train.precision)  # as trained: fp32 = IEEE (TF32 off)
    model = load_model(model_dir / "model.pt", cfg, d.devices[0])
    if cfg.train.channels_last:  # evaluate in the memory format and precision it trained in
        accel.to_channels_last(model)
    _, _, norm = build_views(cfg, data_dir, seed)
    val_split = shards.load_split(data_dir, cfg.evaluate.split)  # val, or the ILSVRC-2010 test set
    labels = val_split.labels
    result = {"seed": seed, **({"arm": cfg.arm} if cfg.arm else {}), "dataset": cfg.data.source,
              "split": C.evaluated_split(cfg),  # CIFAR-10's prepared "val" is its test batch
              "num_classes": len(manifest["classes"]), "n_images": len(labels), "protocols": {}}
    tags = {**ctx.base_tags, "stage": "evaluate", "seed": seed, "data_digest": manifest["digest"],
            **{f"backend.{k}": v for k, v in backend.items()}}
    tracker = (tracking.child_run(ctx.uri, ctx.experiment_id, ctx.parent_id, run_name("evaluate", cfg, seed),
                                  {**params_for(ctx.cfg, "evaluate"), "seed": seed, "world_size": d.world}, tags)
               if d.main else nullcontext(None))
    with tracker as run_id:
        if d.main:  # the UI links this run to the weights it evaluated and the data it used
            tracking.log_model_input(ctx.uri, run_id, tracking.find_model(
                ctx.uri, ctx.experiment_id, checkpoint.model_tags(cfg, seed)))
            tracking.log_dataset(ctx.uri, run_id, manifest, cfg.evaluate.split, "evaluation")
        for protocol in cfg.evaluate.protocols:
            probs = _predict_all(model, EvalView(val_split, norm, cfg.model.input_size, protocol),
                                 len(labels), cfg.evaluate.batch_size, d, protocol, cfg.train)
            if not d.main:
                continue
            atomic_save_npy(out_dir / f"{protocol}.npy", probs)
            summary = scoring.error_summary(probs, labels)
            summary["per_class_top1_error"] = scoring.per_class_error(probs, labels, result["num_classes"])
            result["protocols"][protocol] = summary
            tracking.log_metrics(ctx.uri, run_id, {f"{protocol}.top1_error": summary["top1_error"],
                                                   f"{protocol}.top5_error": summary["top5_error"]})
        if d.main:
            result["mlflow_run_id"] = run_id
            atomic_write_json(metrics_path, result)
            tracking.log_stage_files(ctx.uri, run_id, C.to_dict(cfg), metrics_path)
    runtime.barrier(d)
    runtime.shutdown(d)
    return result


def _predict_all(model, view, n: int, batch: int, d, protocol: str, train_cfg) -> np.ndarray | None:
    """Probabilities [n, C] in index order on rank 0 (None elsewhere); each image once."""
    batches = transforms.eval_batches(n, batch, d.rank, d.world)
    mine = np.concatenate(batches) if batches else np.zeros(0, np.int64)
    probs = inference.predict(model, transforms.batch_loader(view, batches, 0), len(mine), f"evaluate {protocol}",
                             train_cfg.precision, train_cfg.channels_last)
    parts = runtime.all_gather((mine, probs), d)
    if not d.main:
        return None
    idx = np.concatenate([p[0] for p in parts])
    out = np.empty((n, probs.shape[1]), np.float32)
    out[idx] = np.concatenate([p[1] for p in parts])
    if len(idx) != n or len(np.unique(idx)) != n:
        raise RuntimeError(f"evaluation covered {len(np.unique(idx))} distinct images of {n}")
    return out
