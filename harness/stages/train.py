"""Stage `train@<seed>`: fit one seed, save its weights, log per-epoch metrics."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from harness import config as C
from harness import checkpoint, data, runtime, tracking, transforms
from harness import train as T
from harness.errors import UserError
from harness.io import atomic_write_json, atomic_write_text
from harness.model import build_model, count_params
from harness.stages import StageContext, params_for


def build_views(cfg: C.Config, data_dir: Path, seed: int):
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
    d = runtime.init_distributed()
    runtime.set_determinism(seed, cfg.train.threads)
    train_view, val_split, norm = build_views(cfg, data_dir, seed)
    if cfg.train.batch_size > len(train_view):
        raise UserError(f"train.batch_size: {cfg.train.batch_size} is larger than the "
                        f"{len(train_view)} training images")
    if cfg.train.batch_size % d.world:
        raise UserError(f"train.batch_size: {cfg.train.batch_size} is not divisible by the {d.world} torchrun processes")
    val_loader = transforms.batch_loader(
        transforms.EvalView(val_split, norm, cfg.model.input_size, "center"),
        transforms.eval_batches(len(val_split), cfg.evaluate.batch_size, d.rank, d.world), 0)
    model = build_model(cfg.model, len(manifest["classes"]), cfg.train.devices)
    torch.manual_seed(seed + 7919 * d.rank)  # each rank its own dropout masks; rank 0 as alone
    optimizer = T.make_optimizer(model, cfg.train)
    state, run_id = _resume(out_dir / CHECKPOINT, cfg, seed, model, optimizer, d)
    params = {**params_for(cfg, "data", "model", "train"), "seed": seed, "n_parameters": count_params(model),
              "world_size": d.world}
    tags = {**ctx.base_tags, "stage": "train", "seed": seed, "data_digest": manifest["digest"],
            "devices": ",".join(cfg.train.devices), "world_size": d.world, "threads": cfg.train.threads,
            "num_workers": cfg.train.num_workers, "deterministic": "torch.use_deterministic_algorithms(warn_only=True)"}
    tracker = (tracking.child_run(ctx.uri, ctx.experiment_id, ctx.parent_id, f"train-seed{seed}", params, tags,
                                  resume_run_id=run_id) if d.main else nullcontext(None))
    with tracker as run_id, tracking.system_metrics(ctx.uri, run_id):
        tracking.log_dataset(ctx.uri, run_id, manifest, "train", "training")
        tracking.log_dataset(ctx.uri, run_id, manifest, "val", "validation")
        history = _fit_logged(ctx, run_id, runtime.wrap_ddp(model, d), model, optimizer, state,
                              train_view, val_loader, seed, out_dir, d)
        result = _train_metrics(history, seed, run_id, ctx)
        if d.main:
            _save_model(out_dir / "model.pt", model, cfg, seed, manifest)
            atomic_write_text(plots_path, pd.DataFrame([h.__dict__ for h in history]).to_csv(index=False))
            atomic_write_json(metrics_path, result)
            tracking.log_artifact(ctx.uri, run_id, out_dir / "model.pt", "model")
            (out_dir / CHECKPOINT).unlink(missing_ok=True)  # the final weights supersede it
    runtime.barrier(d)
    runtime.shutdown(d)
    return result


CHECKPOINT = "checkpoint.pt"


def _resume(path: Path, cfg: C.Config, seed: int, model, optimizer, d) -> tuple[T.TrainState, str | None]:
    """Restore model, optimizer, RNG and progress from a compatible checkpoint, if any."""
    if not path.is_file():
        return T.TrainState(), None
    payload = checkpoint.load(path)
    if not checkpoint.compatible(payload, C.training_digest(cfg), seed) or len(payload["torch_rng"]) != d.world:
        print(f"ignoring {path}: it was made with other params, another seed or another number of "
              "processes; starting afresh", flush=True)
        return T.TrainState(), None
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["torch_rng"][d.rank])
    state = T.TrainState.from_dict(payload["state"])
    if d.main:
        print(f"resuming seed {seed} from {path}: epoch {state.epoch + 1}, step {state.step_in_epoch} "
              f"(global step {state.global_step})", flush=True)
    return state, payload.get("mlflow_run_id")


def _fit_logged(ctx, run_id, train_model, model, optimizer, state, train_view, val_loader, seed, out_dir, d):
    """fit() with MLflow logging and checkpoints from rank 0; train_model may be DDP-wrapped."""
    cfg = ctx.cfg
    steps: list = []

    def flush_steps():  # per-step scalars to MLflow in batches (DESIGN.md)
        if run_id:
            tracking.log_series(ctx.uri, run_id, "step_loss", [(s, loss) for s, loss, _ in steps])
            tracking.log_series(ctx.uri, run_id, "step_lr", [(s, lr) for s, _, lr in steps])
        steps.clear()

    def on_epoch(r: T.EpochResult):
        if not d.main:
            return
        print(f"seed {seed} epoch {r.epoch}/{cfg.train.epochs}: loss {r.train_loss:.3f}  "
              f"val top-1 {r.val_top1_error:.1f}%  top-5 {r.val_top5_error:.1f}%  "
              f"lr {r.lr:.2g}  {r.images_per_s:.0f} img/s", flush=True)
        tracking.log_metrics(ctx.uri, run_id, {k: v for k, v in r.__dict__.items() if k != "epoch"}, step=r.epoch)

    def on_checkpoint(st: T.TrainState):
        rng = runtime.all_gather(torch.get_rng_state(), d)  # every rank's dropout RNG
        if d.main:
            checkpoint.save(out_dir / CHECKPOINT, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": st.to_dict(),
                "torch_rng": rng, "seed": seed, "mlflow_run_id": run_id,
                "training_digest": C.training_digest(cfg)})
        flush_steps()  # steps logged only once their checkpoint exists: a resume logs no duplicates
        runtime.barrier(d)

    hooks = T.Hooks(on_step=lambda s, loss, lr: steps.append((s, loss, lr)), on_epoch=on_epoch,
                    on_checkpoint=on_checkpoint)
    loader = lambda batches: transforms.batch_loader(train_view, batches, cfg.train.num_workers)
    try:
        return T.fit(train_model, optimizer, train_view, loader, val_loader, cfg.train, seed, state, hooks, d)
    except T.NonFiniteLoss as exc:
        raise UserError(str(exc)) from None


def _save_model(path: Path, model, cfg: C.Config, seed: int, manifest: dict) -> None:
    """Weights plus what describes them (house rule 6): config, seed, classes, data digest.

    Only deterministic content goes into model.pt, so retraining to the same weights gives the
    same bytes and DVC skips evaluation. Git commit and environment, which change with every
    commit, go to provenance.json beside it.
    """
    # one format whatever the devices: a two-device model saves its grouped single-device weights
    weights = model.grouped_state_dict() if hasattr(model, "grouped_state_dict") else model.state_dict()
    checkpoint.save(path, {"state_dict": weights, "config": C.training_config(cfg), "seed": seed,
                           "num_classes": len(manifest["classes"]), "data_digest": manifest["digest"]})
    atomic_write_json(path.with_name("provenance.json"),
                      {"git": runtime.git_info(), "environment": runtime.environment(), "seed": seed})


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
    ckpt = checkpoint.load(path)
    model = build_model(cfg.model, ckpt["num_classes"], cfg.train.devices[:1])  # grouped format
    model.load_state_dict(ckpt["state_dict"])
    return model
