"""Stage `train@<seed>`: fit one seed, save its weights, log per-epoch metrics."""

from __future__ import annotations

import dataclasses
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from harness import accel, runtime, tracking
from harness import config as C
from harness.data import shards, transforms
from harness.data.transforms import build_views
from harness.errors import UserError
from harness.io import atomic_write_json, atomic_write_text, check_writable, remove_stale_temps
from harness.model import build_model, count_params
from harness.stages import StageContext, params_for, run_name
from harness.train import checkpoint, loop, lr_select, recipe


def train_input(cfg: C.Config, train_view: transforms.TrainView):
    """(view, make_loader) of the training batches: decoded on the CPU in the loader (workers,
    pinned memory), or on the device with train.decode_device (issue 4.5; JPEG shards only)."""
    if cfg.train.decode_device == "cpu":
        return train_view, lambda batches: transforms.batch_loader(train_view, batches, cfg.train.num_workers)
    view = transforms.DeviceTrainBatches.from_view(train_view, cfg.train.devices[0])
    return view, view.loader


def compile_model(model, cfg: C.TrainConfig, crop: int, world: int):
    """(model to train, how it runs) with train.compile: torch.compile, compiled now on a batch of
    zeros, or the eager model with a warning when compiling fails (no compiler, no Triton)."""
    if not cfg.compile:
        return model, "off"
    device = next(model.parameters()).device
    example = accel.to_device(torch.zeros(cfg.batch_size // world, 3, crop, crop), device, cfg.channels_last)
    cuda = [torch.device(x).index if torch.device(x).index is not None else torch.cuda.current_device()
            for x in cfg.devices if x.startswith("cuda")]
    # the example's forward draws dropout masks: fork the RNGs, so a resumed run's masks match
    with torch.random.fork_rng(devices=cuda), accel.autocast(device, cfg.precision):
        compiled, error = accel.try_compile(model, example)
    if error:
        print(f"warning: train.compile: torch.compile failed ({error}); training eagerly", file=sys.stderr, flush=True)
        return model, f"failed, eager: {error[:200]}"
    return compiled, "inductor"


def run_train(ctx: StageContext, *, seed: int, data_dir: Path, out_dir: Path, metrics_path: Path,
              plots_path: Path) -> dict:
    cfg = ctx.cfg
    manifest = shards.load_manifest(data_dir)
    d = runtime.init_distributed()
    runtime.set_determinism(seed, cfg.train.threads, cfg.train.deterministic)
    backend = accel.configure_cudnn(cfg.train.deterministic)  # autotuning only without bitwise reproducibility
    train_view, val_split, norm = build_views(cfg, data_dir, seed)
    train_view, make_loader = train_input(cfg, train_view)
    if cfg.train.batch_size > len(train_view):
        raise UserError(f"train.batch_size: {cfg.train.batch_size} is larger than the "
                        f"{len(train_view)} training images")
    if cfg.train.batch_size % d.world:
        raise UserError(f"train.batch_size: {cfg.train.batch_size} is not divisible by the {d.world} torchrun processes")
    val_loader = transforms.batch_loader(
        transforms.EvalView(val_split, norm, cfg.model.input_size, "center"),
        transforms.eval_batches(len(val_split), cfg.evaluate.batch_size, d.rank, d.world), 0)
    model = build_model(cfg.model, len(manifest["classes"]), cfg.train.devices)
    if cfg.train.channels_last:  # before the optimizer, so its state takes the same layout
        accel.to_channels_last(model)
    torch.manual_seed(seed + 7919 * d.rank)  # each rank its own dropout masks; rank 0 as alone
    if d.main:
        check_writable(out_dir, metrics_path.parent, plots_path.parent)  # fail now, not after training
        for p in remove_stale_temps(out_dir):  # a killed write's temp file must not reach DVC's cache
            print(f"removed {p.name}, left by an interrupted write", flush=True)
    selection, fresh, select_s = _lr_selection(out_dir / CHECKPOINT, cfg, seed, model, train_view, make_loader,
                                               val_split, norm, d)
    train_cfg = cfg.train if selection is None else dataclasses.replace(cfg.train, lr=selection["lr"])
    optimizer = recipe.make_optimizer(model, train_cfg)
    state, run_id = _resume(out_dir / CHECKPOINT, cfg, seed, model, optimizer, d)
    train_model, compiled = compile_model(runtime.wrap_ddp(model, d), cfg.train, cfg.model.input_size, d.world)
    params = {**params_for(cfg, "data", "model", "train"), "seed": seed, "n_parameters": count_params(model),
              "world_size": d.world, "arm": cfg.arm or "baseline", "lr_trained": train_cfg.lr}
    tags = {**ctx.base_tags, "stage": "train", "seed": seed, "data_digest": manifest["digest"],
            "devices": ",".join(cfg.train.devices), "world_size": d.world, "threads": cfg.train.threads,
            "num_workers": cfg.train.num_workers, "precision": cfg.train.precision,
            "channels_last": cfg.train.channels_last, "compile": compiled, "decode_device": cfg.train.decode_device,
            "cudnn_benchmark": backend["cudnn_benchmark"],
            "deterministic": "torch.use_deterministic_algorithms(warn_only=True)" if cfg.train.deterministic
            else "off: cuDNN autotuning and non-deterministic algorithms (weights not bitwise reproducible)"}
    tracker = (tracking.child_run(ctx.uri, ctx.experiment_id, ctx.parent_id, run_name("train", cfg, seed), params, tags,
                                  resume_run_id=run_id) if d.main else nullcontext(None))
    with tracker as run_id, tracking.system_metrics(ctx.uri, run_id):
        tracking.log_dataset(ctx.uri, run_id, manifest, "train", "training")
        tracking.log_dataset(ctx.uri, run_id, manifest, "val", "validation")
        if selection is not None and fresh and run_id:  # logged once: a resumed run reuses its record
            for name in ("pilot_train_top1_error", "pilot_train_loss"):
                tracking.log_series(ctx.uri, run_id, f"lr_select.{name}",
                                    [(i, v) for i, v in enumerate(selection[name]) if v is not None])
        history = _fit_logged(ctx, run_id, train_model, model, optimizer, state,
                              train_view, make_loader, val_loader, seed, out_dir, d, train_cfg, selection, select_s)
        result = _train_metrics(history, seed, run_id, ctx, len(train_view) // cfg.train.batch_size, selection,
                                select_s)
        if d.main:
            _save_model(out_dir / "model.pt", model, cfg, seed, manifest, selection)
            atomic_write_text(plots_path, pd.DataFrame([h.__dict__ for h in history]).to_csv(index=False))
            atomic_write_json(metrics_path, result)
            tracking.log_artifact(ctx.uri, run_id, out_dir / "model.pt", "model")
            (out_dir / CHECKPOINT).unlink(missing_ok=True)  # the final weights supersede it
    runtime.barrier(d)
    runtime.shutdown(d)
    return result


CHECKPOINT = "checkpoint.pt"


def _lr_selection(path: Path, cfg: C.Config, seed: int, model, train_view, make_loader, val_split, norm,
                  d) -> tuple[dict | None, bool, float | None]:
    """(the run's lr selection record or None when train.lr_select_factors is empty, whether it was
    made now, the pilots' wall seconds). A compatible checkpoint carries the record, so a resumed
    run does not select again. The seconds stay out of the record, which model.pt keeps: its bytes
    must not change when the same weights are trained again."""
    if not cfg.train.lr_select_factors:
        return None, False, None
    if path.is_file():
        payload = checkpoint.load(path)
        if checkpoint.compatible(payload, C.training_digest(cfg), seed) and payload.get("lr_selection"):
            return payload["lr_selection"], False, payload.get("lr_select_time_s")
    t0 = time.perf_counter()
    # the pilots' epoch-end validation is not used: one batch of it keeps them cheap
    one_batch = [transforms.eval_batches(len(val_split), cfg.evaluate.batch_size, d.rank, d.world)[0]]
    val_loader = transforms.batch_loader(transforms.EvalView(val_split, norm, cfg.model.input_size, "center"),
                                         one_batch, 0)
    try:
        selection = lr_select.select_lr(model, recipe.make_optimizer, train_view, make_loader, val_loader,
                                        cfg.train, seed, d)
    except loop.NonFiniteLoss as exc:
        raise UserError(f"train.lr_select_factors: {exc}; try smaller factors or a lower train.lr") from None
    if d.main:
        print(f"lr selection: lr {selection['lr']:.3g} (x{selection['chosen_factor']:g}); training error over the "
              f"first {selection['steps']} steps: " + ", ".join(
                  f"x{f:g} {'diverged' if e is None else f'{e:.1f}%'}"
                  for f, e in zip(selection["factors"], selection["pilot_train_top1_error"])), flush=True)
    return selection, True, time.perf_counter() - t0


def _resume(path: Path, cfg: C.Config, seed: int, model, optimizer, d) -> tuple[loop.TrainState, str | None]:
    """Restore model, optimizer, RNG and progress from a compatible checkpoint, if any."""
    if not path.is_file():
        return loop.TrainState(), None
    payload = checkpoint.load(path)
    if not checkpoint.compatible(payload, C.training_digest(cfg), seed) or len(payload["torch_rng"]) != d.world:
        print(f"ignoring {path}: it was made with other params, another seed or another number of "
              "processes; starting afresh", flush=True)
        return loop.TrainState(), None
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["torch_rng"][d.rank])
    state = loop.TrainState.from_dict(payload["state"])
    if d.main:
        print(f"resuming seed {seed} from {path}: epoch {state.epoch + 1}, step {state.step_in_epoch} "
              f"(global step {state.global_step})", flush=True)
    return state, payload.get("mlflow_run_id")


class _TargetReached(Exception):
    """train.stop_at_train_error: the epoch just finished reached the target training error."""


def _fit_logged(ctx, run_id, train_model, model, optimizer, state, train_view, loader, val_loader, seed, out_dir, d,
                train_cfg: C.TrainConfig, selection: dict | None, select_s: float | None):
    """fit() with MLflow logging and checkpoints from rank 0; train_model may be DDP-wrapped
    and compiled, `model` is the plain module that is checkpointed. train_cfg: cfg.train at the
    selected learning rate (the checkpoint's digest stays that of the params)."""
    cfg = ctx.cfg
    steps: list = []
    # exactly once across kills: points are logged before the checkpoint that covers them, and a
    # resumed run skips the steps and epochs its MLflow run already holds
    done = tracking.logged_steps(ctx.uri, run_id, ("step_loss", "val_top1_error")) if run_id and state.global_step \
        else {"step_loss": set(), "val_top1_error": set()}

    def flush_steps():  # per-step scalars to MLflow in batches (DESIGN.md)
        new = [x for x in steps if x[0] not in done["step_loss"]]
        if run_id:
            tracking.log_series(ctx.uri, run_id, "step_loss", [(s, loss) for s, loss, _ in new])
            tracking.log_series(ctx.uri, run_id, "step_lr", [(s, lr) for s, _, lr in new])
        steps.clear()

    def on_epoch(r: loop.EpochResult):
        reached = train_cfg.stop_at_train_error is not None and r.train_top1_error <= train_cfg.stop_at_train_error
        if d.main:
            print(f"seed {seed} epoch {r.epoch}/{cfg.train.epochs}: loss {r.train_loss:.3f}  "
                  f"train top-1 {r.train_top1_error:.1f}%  val top-1 {r.val_top1_error:.1f}%  "
                  f"top-5 {r.val_top5_error:.1f}%  lr {r.lr:.2g}  {r.images_per_s:.0f} img/s", flush=True)
            if r.epoch not in done["val_top1_error"]:
                tracking.log_metrics(ctx.uri, run_id, {k: v for k, v in r.__dict__.items() if k != "epoch"},
                                     step=r.epoch)
        if reached:  # every rank decides alike: r is all-reduced
            if d.main:
                flush_steps()
                print(f"seed {seed}: training error {r.train_top1_error:.1f}% <= train.stop_at_train_error "
                      f"{train_cfg.stop_at_train_error:g}% after epoch {r.epoch}; stopping", flush=True)
            raise _TargetReached

    def on_checkpoint(st: loop.TrainState):
        if not all(torch.isfinite(p).all() for p in model.parameters()):  # never overwrite a good checkpoint
            raise loop.NonFiniteLoss(f"the weights became NaN or Inf at epoch {st.epoch + 1}, step {st.step_in_epoch}")
        rng = runtime.all_gather(torch.get_rng_state(), d)  # every rank's dropout RNG
        if d.main:
            flush_steps()  # before the checkpoint: a kill in between loses nothing, the resume skips them
            checkpoint.save(out_dir / CHECKPOINT, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": st.to_dict(),
                "torch_rng": rng, "seed": seed, "mlflow_run_id": run_id, "lr_selection": selection,
                "lr_select_time_s": select_s,
                "training_digest": C.training_digest(cfg)})
        steps.clear()
        runtime.barrier(d)

    hooks = loop.Hooks(on_step=lambda s, loss, lr: steps.append((s, loss, lr)), on_epoch=on_epoch,
                    on_checkpoint=on_checkpoint)
    try:
        return loop.fit(train_model, optimizer, train_view, loader, val_loader, train_cfg, seed, state, hooks, d)
    except _TargetReached:
        return [loop.EpochResult(**h) for h in state.history]
    except loop.NonFiniteLoss as exc:
        ck = out_dir / CHECKPOINT
        kept = f"the last good checkpoint {ck} is kept" if ck.is_file() else "no checkpoint had been written yet"
        raise UserError(f"training diverged (NaN or Inf): {str(exc).split('; the last checkpoint')[0]}; {kept} "
                        f"(try a lower train.lr than {train_cfg.lr})") from None
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        raise UserError(f"train.batch_size: a batch of {cfg.train.batch_size} images does not fit in memory on "
                        f"{','.join(cfg.train.devices)} ({str(exc).strip().splitlines()[0][:160]}); "
                        "lower train.batch_size") from None


def _out_of_memory(exc: BaseException) -> bool:
    """An allocation failure of torch (CPU or CUDA) or of Python itself."""
    msg = str(exc)
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or "can't allocate memory" in msg \
        or "out of memory" in msg.lower()


def _save_model(path: Path, model, cfg: C.Config, seed: int, manifest: dict, selection: dict | None) -> None:
    """Weights plus what describes them (house rule 6): config, seed, classes, data digest.

    Only deterministic content goes into model.pt, so retraining to the same weights gives the
    same bytes and DVC skips evaluation. Git commit and environment, which change with every
    commit, go to provenance.json beside it.
    """
    # one format whatever the devices: a two-device model saves its grouped single-device weights
    weights = model.grouped_state_dict() if hasattr(model, "grouped_state_dict") else model.state_dict()
    extra = {} if selection is None else {"lr_selection": selection}  # the lr it trained at
    checkpoint.save(path, {"state_dict": weights, "config": C.training_config(cfg), "seed": seed,
                           "num_classes": len(manifest["classes"]), "data_digest": manifest["digest"], **extra})
    atomic_write_json(path.with_name("provenance.json"),
                      {"git": runtime.git_info(), "environment": runtime.environment(), "seed": seed})


def _train_metrics(history, seed, run_id, ctx, steps_per_epoch: int, selection: dict | None,
                   select_s: float | None) -> dict:
    last = history[-1]
    arm = {"arm": ctx.cfg.arm} if ctx.cfg.arm else {}  # baseline files keep their old shape
    extra = {} if selection is None else {"lr_selection": selection, "lr_select_time_s": select_s}
    target = ctx.cfg.train.stop_at_train_error
    if target is not None:  # a convergence run: did it stop at the target, or at train.epochs?
        extra["stopped_at_target"] = {"target_train_error": target, "reached": last.train_top1_error <= target,
                                      "epoch": last.epoch, "steps_per_epoch": steps_per_epoch}
    return {"seed": seed, **arm, **extra, "epochs": last.epoch, "final_train_loss": last.train_loss,
            "final_val_top1_error": last.val_top1_error, "final_val_top5_error": last.val_top5_error,
            "images_per_s": float(np.mean([h.images_per_s for h in history])),
            "train_time_s": float(sum(h.epoch_time_s for h in history)),
            "mlflow_run_id": run_id, "mlflow_experiment_id": ctx.experiment_id}


