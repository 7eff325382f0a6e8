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
from harness.io import atomic_save_npy, atomic_write_json, atomic_write_text, check_writable, remove_stale_temps
from harness.model import build_model, count_params
from harness.model.layers import lrn_kernel
from harness.stages import StageContext, params_for, read_json, run_name
from harness.train import checkpoint, loop, lr_select, recipe, towers

# EpochResult fields that differ on every run: kept out of the plots CSVs, which are committed
WALL_CLOCK_COLUMNS = ("images_per_s", "epoch_time_s")


def train_input(cfg: C.Config, train_view: transforms.TrainView, devices: tuple[str, ...] | None = None):
    """(view, make_loader) of the training batches: decoded on the CPU in the loader (workers,
    pinned memory), or on this rank's first device with train.decode_device (JPEG shards only)."""
    if cfg.train.decode_device == "cpu":
        return train_view, lambda batches: transforms.batch_loader(train_view, batches, cfg.train.num_workers)
    view = transforms.DeviceTrainBatches.from_view(train_view, (devices or cfg.train.devices)[0])
    return view, view.loader


def compile_model(model, cfg: C.TrainConfig, crop: int, world: int, devices: tuple[str, ...] | None = None):
    """(model to train, how it runs) with train.compile: torch.compile, compiled now on a batch of
    zeros, or the eager model with a warning when compiling fails (no compiler, no Triton)."""
    if not cfg.compile:
        return model, "off"
    device = next(model.parameters()).device
    example = accel.to_device(torch.zeros(cfg.batch_size // world, 3, crop, crop), device, cfg.channels_last)
    cuda = [torch.device(x).index if torch.device(x).index is not None else torch.cuda.current_device()
            for x in devices or cfg.devices if x.startswith("cuda")]
    # the example's forward draws dropout masks: fork the RNGs, so a resumed run's masks match
    with torch.random.fork_rng(devices=cuda), accel.autocast(device, cfg.precision):
        compiled, error = accel.try_compile(model, example)
    if error:
        print(f"warning: train.compile: torch.compile failed ({error}); training eagerly", file=sys.stderr, flush=True)
        return model, f"failed, eager: {error[:200]}"
    return compiled, "inductor"


def schedule_loader(cfg: C.Config, data_dir: Path, norm, d):
    """Centre crops of the held-out training slice that drives the plateau rule
    (train.schedule_split holdout), split over ranks like val; None when val drives it."""
    held = transforms.schedule_split(cfg, data_dir)
    if held is None:
        return None, 0
    view = transforms.EvalView(held, norm, cfg.model.input_size, "center")
    return transforms.batch_loader(view, transforms.eval_batches(len(held), cfg.evaluate.batch_size, d.rank, d.world),
                                   0), len(held)


def run_train(ctx: StageContext, *, seed: int, data_dir: Path, out_dir: Path, metrics_path: Path,
              plots_path: Path, steps_path: Path | None = None, kernels_path: Path | None = None,
              work: Path | None = None, init_from: Path | None = None, init_metrics: Path | None = None) -> dict:
    """Train one seed into out_dir (model.pt, provenance.json). The resume checkpoint lives in a
    work folder outside the DVC output (checkpoint.resume_path), so the output need not persist and
    DVC's run-cache can restore earlier weights; `work` None: a `<out_dir>.work` folder beside it.

    `init_from` (the fine-tune phase, paper 6): start from that pre-trained model.pt, with the layers
    from pretrain.reinit up freshly initialised; `init_metrics` (its train metrics) names its MLflow
    run, of which this run becomes a child."""
    cfg = ctx.cfg
    pretrained = _load_pretrained(init_from, init_metrics) if init_from is not None else None
    if pretrained is not None and pretrained["run_id"]:
        ctx = dataclasses.replace(ctx, parent_id=pretrained["run_id"])  # the fine-tune run under its pre-train run
    ckpt = checkpoint.resume_path(_work_root(ctx, out_dir, work), cfg, seed)
    manifest = shards.load_manifest(data_dir)
    d = runtime.init_distributed(cfg.train.devices)  # this rank's own devices (LOCAL_RANK)
    runtime.set_determinism(seed, cfg.train.threads, cfg.train.deterministic)
    accel.configure_cudnn(cfg.train.deterministic)  # autotuning only without bitwise reproducibility
    backend = accel.configure_precision(cfg.train.precision)  # fp32 = IEEE: TF32 off (docs/fidelity.md)
    train_view, val_split, norm = build_views(cfg, data_dir, seed)
    train_view, make_loader = train_input(cfg, train_view, d.devices)
    if cfg.train.batch_size > len(train_view):
        raise UserError(f"train.batch_size: {cfg.train.batch_size} is larger than the "
                        f"{len(train_view)} training images")
    if cfg.train.batch_size % d.world:
        raise UserError(f"train.batch_size: {cfg.train.batch_size} is not divisible by the {d.world} torchrun processes")
    val_loader = transforms.batch_loader(
        transforms.EvalView(val_split, norm, cfg.model.input_size, "center"),
        transforms.eval_batches(len(val_split), cfg.evaluate.batch_size, d.rank, d.world), 0)
    held_loader, n_held = schedule_loader(cfg, data_dir, norm, d)
    model = build_model(cfg.model, len(manifest["classes"]), d.devices)
    if pretrained is not None:  # before the optimizer and the resume (a checkpoint overrides both)
        init_fine_tune(model, pretrained["state_dict"], cfg.pretrain.reinit, init_from)
    if cfg.train.channels_last:  # before the optimizer, so its state takes the same layout
        accel.to_channels_last(model)
    torch.manual_seed(seed + 7919 * d.rank)  # each rank its own dropout masks; rank 0 as alone
    if d.main:
        check_writable(out_dir, ckpt.parent, metrics_path.parent, plots_path.parent)  # fail now, not after training
        for p in [*remove_stale_temps(out_dir), *remove_stale_temps(ckpt.parent)]:  # none may reach DVC's cache
            print(f"removed {p.name}, left by an interrupted write", flush=True)
    selection, fresh, select_s = _lr_selection(ckpt, cfg, seed, model, train_view, make_loader, val_split, norm, d)
    train_cfg = cfg.train if selection is None else dataclasses.replace(cfg.train, lr=selection["lr"])
    optimizer = recipe.make_optimizer(model, train_cfg)
    state, run_id = _resume(ckpt, cfg, seed, model, optimizer, d)
    train_model, compiled = compile_model(runtime.wrap_ddp(model, d), cfg.train, cfg.model.input_size, d.world,
                                          d.devices)
    params = {**params_for(cfg, "data", "model", "train"), "seed": seed, "n_parameters": count_params(model),
              "world_size": d.world, "arm": cfg.arm or "baseline", "train_images": len(train_view),
              "schedule_images": n_held or len(val_split), "lr_trained": train_cfg.lr,
              **({"init_from": str(init_from), "reinit": cfg.pretrain.reinit} if pretrained is not None else {})}
    tags = {**ctx.base_tags, "stage": "train", "seed": seed, "data_digest": manifest["digest"],
            "devices": ",".join(d.devices), "world_size": d.world, "dist_backend": d.backend,
            **({"pretrain_run_id": pretrained["run_id"] or "unknown"} if pretrained is not None else {}),
            **_selection_tags(selection),
            "cuda_visible_devices": runtime.visible_devices(), "threads": cfg.train.threads,
            "num_workers": cfg.train.num_workers, "precision": cfg.train.precision,
            "channels_last": cfg.train.channels_last, "compile": compiled, "decode_device": cfg.train.decode_device,
            **{f"backend.{k}": v for k, v in backend.items()},  # the effective flags (docs/fidelity.md, "Precision": fp32 = IEEE)
            "cudnn_benchmark": backend["cudnn_benchmark"],
            "deterministic": "torch.use_deterministic_algorithms(warn_only=True)" if cfg.train.deterministic
            else "off: cuDNN autotuning and non-deterministic algorithms (weights not bitwise reproducible)"}
    tracker = (tracking.child_run(ctx.uri, ctx.experiment_id, ctx.parent_id, run_name("train", cfg, seed), params, tags,
                                  resume_run_id=run_id) if d.main else nullcontext(None))
    with tracker as run_id, tracking.system_metrics(ctx.uri, run_id):
        tracking.log_dataset(ctx.uri, run_id, manifest, "train", "training")
        tracking.log_dataset(ctx.uri, run_id, manifest, "val", "validation")
        if selection is not None and fresh and run_id:  # logged once: a resumed run reuses its record
            _log_selection(ctx, run_id, selection)
        history = _fit_logged(ctx, run_id, train_model, model, optimizer, state,
                              train_view, make_loader, val_loader, seed, ckpt, d, train_cfg, selection, select_s,
                              held_loader)
        conv1 = _conv1_weight(model)
        result = {**_train_metrics(history, seed, run_id, ctx, len(train_view) // cfg.train.batch_size, selection,
                                   select_s),
                  "backend": backend,
                  **({"pretrain_run_id": pretrained["run_id"], "reinit": cfg.pretrain.reinit}
                     if pretrained is not None else {}),
                  "schedule": schedule_record(cfg.train, state, n_held or len(val_split), len(train_view)),
                  "towers": _towers(cfg, conv1)}
        if d.main:
            _save_model(out_dir / "model.pt", model, cfg, seed, manifest, selection)
            curves = pd.DataFrame([h.__dict__ for h in history]).dropna(axis=1, how="all")  # no holdout: no column
            # the committed plots file holds only what a rerun reproduces bit for bit; wall-clock
            # columns go to the metrics JSON, a cached out (and MLflow)
            curves = curves.drop(columns=list(WALL_CLOCK_COLUMNS))
            atomic_write_text(plots_path, curves.to_csv(index=False))
            if steps_path is not None:
                atomic_write_text(steps_path, steps_csv(state.windows))
            atomic_write_json(metrics_path, result)
            if kernels_path is not None:  # Figure 3 of the report (paper 6.1)
                atomic_save_npy(kernels_path, conv1.astype(np.float32))
            tracking.set_tags(ctx.uri, run_id, {"lr_drop_epochs": ",".join(map(str, result["schedule"]["lr_drops"]))
                                                or "none", "schedule_split": result["schedule"]["split"],
                                                "lrn_kernel": lrn_kernel(model, d.devices[0], compiled == "inductor")})
            if result["towers"]:
                tracking.log_metrics_once(ctx.uri, run_id, {f"tower{t}_colour_selectivity": v for t, v in
                                                            enumerate(result["towers"]["colour_selectivity"])})
            tracking.log_artifact(ctx.uri, run_id, out_dir / "model.pt", "model")
            tracking.log_stage_files(ctx.uri, run_id, C.to_dict(cfg), metrics_path, plots_path, steps_path,
                                     out_dir / "provenance.json")
            if cfg.tracking.log_models:
                _log_mlflow_model(ctx, run_id, model, cfg, seed, len(manifest["classes"]))
            ckpt.unlink(missing_ok=True)  # the final weights supersede it
    runtime.barrier(d)
    runtime.shutdown(d)
    return result


# the layers pretrain.reinit re-initialises, from the named one up (paper 6 does not say)
REINIT_LAYERS = {"fc8": ("fc8",), "fc7": ("fc7", "fc8"), "fc6": ("fc6", "fc7", "fc8")}


def _load_pretrained(model_dir: Path, metrics: Path | None) -> dict:
    path = model_dir / "model.pt" if model_dir.is_dir() else model_dir
    if not path.is_file():
        raise UserError(f"fine-tune: no pre-trained weights at {path}: run the pretrain stage first")
    run_id = None
    if metrics is not None and metrics.is_file():
        run_id = read_json(metrics, "pre-train metrics").get("mlflow_run_id")
    return {"state_dict": checkpoint.load(path)["state_dict"], "run_id": run_id}


def init_fine_tune(model, state: dict, reinit: str, where) -> None:
    """paper 6: fine-tuning starts from the pre-trained weights except a new classifier head; the
    layers of REINIT_LAYERS[reinit] keep the fresh initialisation of this seed (model.init)."""
    fresh = REINIT_LAYERS[reinit]
    kept = {k: v for k, v in state.items() if k.split(".")[0] not in fresh}
    try:
        result = model.load_state_dict(kept, strict=False)
    except RuntimeError as exc:  # a shape mismatch: another network was pre-trained
        raise UserError(f"fine-tune: the pre-trained weights {where} do not fit this network "
                        f"(model.* must match the pre-training's): {str(exc).splitlines()[0]}") from None
    missing = sorted({k.split(".")[0] for k in result.missing_keys})
    if result.unexpected_keys or missing != sorted(fresh):
        raise UserError(f"fine-tune: the pre-trained weights {where} lack {missing} or hold "
                        f"{result.unexpected_keys[:3]}: expected every layer but {list(fresh)}")


def _work_root(ctx: StageContext, out_dir: Path, work: Path | None) -> Path:
    """A relative work folder is resolved against the repository (DVC_ROOT), not the working
    directory: a queued `dvc exp run` runs in a throw-away copy, and its checkpoint must outlive it."""
    if work is None:
        return out_dir.with_name(out_dir.name + ".work")
    return work if work.is_absolute() else ctx.root / work


def steps_csv(windows: list) -> str:
    """The training error per window of steps (loop.TrainState.windows), for convergence claims."""
    df = pd.DataFrame(windows, columns=["step", "epoch", "images", "wrong", "wrong5", "loss_sum"])
    df["train_top1_error"] = 100.0 * df["wrong"] / df["images"].clip(lower=1)
    df["train_top5_error"] = 100.0 * df["wrong5"] / df["images"].clip(lower=1)
    df["train_loss"] = df["loss_sum"] / df["images"].clip(lower=1)
    return df.drop(columns="loss_sum").to_csv(index=False)


def _selection_tags(selection: dict | None) -> dict:
    """MLflow tags of the lr selection: the factor chosen, whether it is at the search's limit (the
    fastest rate may lie beyond: Figure 1's claim is not decided on it), the factors tried."""
    if selection is None:
        return {}
    return {"lr_select.chosen_factor": f"{selection['chosen_factor']:g}",
            "lr_select.at_limit": "yes" if lr_select.at_limit(selection) else "no",
            "lr_select.factors_tried": ",".join(f"{f:g}" for f in selection["factors"])}


def _log_selection(ctx, run_id: str, selection: dict) -> None:
    """Each pilot's factor, training error and loss as series over the pilots, in the order tried."""
    for name in ("factors", "pilot_train_top1_error", "pilot_train_loss"):
        key = "lr_select.factor" if name == "factors" else f"lr_select.{name}"
        tracking.log_series(ctx.uri, run_id, key, [(i, v) for i, v in enumerate(selection[name]) if v is not None])


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
        print(f"lr selection: lr {selection['lr']:.3g} (x{selection['chosen_factor']:g}"
              f"{', at the limit of the search' if selection['at_limit'] else ''}); training error over the "
              f"first {selection['steps']} steps: " + ", ".join(
                  f"x{f:g} {'diverged' if e is None else f'{e:.1f}%'}"
                  for f, e in sorted(zip(selection["factors"], selection["pilot_train_top1_error"]))), flush=True)
    return selection, True, time.perf_counter() - t0


def _resume(path: Path, cfg: C.Config, seed: int, model, optimizer, d) -> tuple[loop.TrainState, str | None]:
    """Restore model, optimizer, RNG and progress from a compatible checkpoint, if any.

    A checkpoint of other params or another seed is ignored (another experiment). One of the same
    run made by another number of processes is refused and kept: its ranks' dropout streams and
    partial sums have no counterpart here, and it may hold days of training.
    """
    if not path.is_file():
        return loop.TrainState(), None
    payload = checkpoint.load(path)
    if not checkpoint.compatible(payload, C.training_digest(cfg), seed):
        print(f"ignoring {path}: it was made with other params or another seed; starting afresh", flush=True)
        return loop.TrainState(), None
    made_by = len(payload["torch_rng"])
    if made_by != d.world:
        raise UserError(f"{path} was written by {made_by} torchrun process(es) and this run has {d.world} "
                        f"(train.nproc_per_node x train.nnodes); set them back to resume it, or delete it to "
                        "start this seed afresh")
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    runtime.set_rng_states({"cpu": payload["torch_rng"][d.rank], "cuda": payload.get("cuda_rng", [[]] * d.world)[d.rank]}, d)
    state = loop.TrainState.from_dict(payload["state"])
    if "partials" in payload:  # each rank's own sums of the unfinished epoch (summed over ranks at its end)
        state.partial = dict(payload["partials"][d.rank])
    if d.main:
        print(f"resuming seed {seed} from {path}: epoch {state.epoch + 1}, step {state.step_in_epoch} "
              f"(global step {state.global_step})", flush=True)
    return state, payload.get("mlflow_run_id")


def schedule_record(cfg: C.TrainConfig, state: loop.TrainState, schedule_images: int, train_images: int) -> dict:
    """What drove the lr schedule and when it dropped (train metrics `schedule`, the report)."""
    # a step at epoch s divides the lr after s epochs: one at the last epoch never takes effect
    drops = list(state.lr_drops) if cfg.schedule == "plateau" else [s for s in cfg.lr_steps if s < cfg.epochs]
    split = "none (fixed steps)" if cfg.schedule == "steps" else cfg.schedule_split
    return {"rule": cfg.schedule, "split": split, "patience": cfg.patience, "threshold_pp": cfg.plateau_threshold,
            "max_drops": cfg.max_drops, "lr_drops": drops, "schedule_images": schedule_images,
            "train_images": train_images,
            "holdout_every": cfg.holdout_every if cfg.schedule_split == "holdout" else None}


def _conv1_weight(model) -> np.ndarray:
    """conv1 kernels [K, 3, 11, 11] in the grouped layout (tower t: the t-th half)."""
    state = model.grouped_state_dict() if hasattr(model, "grouped_state_dict") else model.state_dict()
    key = "conv1.weight" if "conv1.weight" in state else next(k for k in state if k.endswith("weight"))
    return state[key].detach().float().cpu().numpy()


def _towers(cfg: C.Config, conv1: np.ndarray) -> dict | None:
    """paper 6.1: each tower's colour selectivity; None for nets without two towers."""
    if cfg.model.arch != "paper" or cfg.model.towers != 2:
        return None
    return towers.tower_summary(conv1)


class _TargetReached(Exception):
    """train.stop_at_train_error: the epoch just finished reached the target training error."""


def _fit_logged(ctx, run_id, train_model, model, optimizer, state, train_view, loader, val_loader, seed, ckpt, d,
                train_cfg: C.TrainConfig, selection: dict | None, select_s: float | None, held_loader=None):
    """fit() with MLflow logging and checkpoints from rank 0; train_model may be DDP-wrapped
    and compiled, `model` is the plain module that is checkpointed. train_cfg: cfg.train at the
    selected learning rate (the checkpoint's digest stays that of the params)."""
    cfg = ctx.cfg
    steps: list = []
    # exactly once across kills: points are logged before the checkpoint that covers them, and a
    # resumed run skips the steps and epochs its MLflow run already holds
    done = tracking.logged_steps(ctx.uri, run_id, ("step_loss", "val_top1_error")) if run_id and state.global_step \
        else {"step_loss": set(), "val_top1_error": set()}

    def flush_steps():  # per-step scalars to MLflow in batches (docs/architecture.md, "Tracking")
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
                metrics = {k: v for k, v in r.__dict__.items() if k != "epoch" and v is not None}
                # lr drops so far: a step per drop (the tag lr_drop_epochs lists them at the end)
                metrics["lr_drops"] = len(state.lr_drops) if cfg.train.schedule == "plateau" else \
                    sum(s <= r.epoch for s in cfg.train.lr_steps if s < cfg.train.epochs)
                tracking.log_metrics(ctx.uri, run_id, metrics, step=r.epoch)
        if reached:  # every rank decides alike: r is all-reduced
            if d.main:
                flush_steps()
                print(f"seed {seed}: training error {r.train_top1_error:.1f}% <= train.stop_at_train_error "
                      f"{train_cfg.stop_at_train_error:g}% after epoch {r.epoch}; stopping", flush=True)
            raise _TargetReached

    def on_checkpoint(st: loop.TrainState):
        if not all(torch.isfinite(p).all() for p in model.parameters()):  # never overwrite a good checkpoint
            raise loop.NonFiniteLoss(f"the weights became NaN or Inf at epoch {st.epoch + 1}, step {st.step_in_epoch}")
        rng = runtime.all_gather(runtime.rng_states(d), d)  # every rank's dropout RNG (CPU and CUDA)
        partials = runtime.all_gather(dict(st.partial), d)  # every rank's sums of this epoch so far
        if d.main:
            flush_steps()  # before the checkpoint: a kill in between loses nothing, the resume skips them
            checkpoint.save(ckpt, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": st.to_dict(),
                "torch_rng": [r["cpu"] for r in rng], "cuda_rng": [r["cuda"] for r in rng],
                "partials": partials, "seed": seed, "mlflow_run_id": run_id, "lr_selection": selection,
                "lr_select_time_s": select_s,
                "training_digest": C.training_digest(cfg)})
        steps.clear()
        runtime.barrier(d)

    hooks = loop.Hooks(on_step=lambda s, loss, lr: steps.append((s, loss, lr)), on_epoch=on_epoch,
                    on_checkpoint=on_checkpoint)
    try:
        return loop.fit(train_model, optimizer, train_view, loader, val_loader, train_cfg, seed, state, hooks, d,
                        schedule_loader=held_loader)
    except _TargetReached:
        return [loop.EpochResult(**h) for h in state.history]
    except loop.NonFiniteLoss as exc:
        ck = ckpt
        kept = f"the last good checkpoint {ck} is kept" if ck.is_file() else "no checkpoint had been written yet"
        raise UserError(f"training diverged (NaN or Inf): {str(exc).split('; the last checkpoint')[0]}; {kept} "
                        f"(try a lower train.lr than {train_cfg.lr})") from None
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        raise UserError(f"train.batch_size: a batch of {cfg.train.batch_size} images does not fit in memory on "
                        f"{','.join(d.devices)} ({str(exc).strip().splitlines()[0][:160]}); "
                        "lower train.batch_size") from None


def _out_of_memory(exc: BaseException) -> bool:
    """An allocation failure of torch (CPU or CUDA) or of Python itself."""
    msg = str(exc)
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or "can't allocate memory" in msg \
        or "out of memory" in msg.lower()


def _save_model(path: Path, model, cfg: C.Config, seed: int, manifest: dict, selection: dict | None) -> None:
    """Weights plus what describes them (docs/architecture.md, house rule 6): config, seed, classes, data digest.

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


def _log_mlflow_model(ctx, run_id, model, cfg: C.Config, seed: int, num_classes: int) -> None:
    """The final weights as an MLflow model, on the CPU in the one-device (grouped) layout."""
    weights = model.grouped_state_dict() if hasattr(model, "grouped_state_dict") else model.state_dict()
    cpu = build_model(cfg.model, num_classes, ("cpu",))
    cpu.load_state_dict({k: v.detach().float().cpu() for k, v in weights.items()})
    example = torch.zeros(2, 3, cfg.model.input_size, cfg.model.input_size)  # batch 2: a dynamic batch size
    with accel.export_safe_flags():  # torch.export trips over the precision flags otherwise
        tracking.log_model(ctx.uri, run_id, cpu.eval(), example, checkpoint.model_tags(cfg, seed),
                           name=tracking.model_name(cfg.arm, cfg.model.arch, seed))


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
            "epoch_time_s": [h.epoch_time_s for h in history],
            "epoch_images_per_s": [h.images_per_s for h in history],
            "mlflow_run_id": run_id, "mlflow_experiment_id": ctx.experiment_id}


