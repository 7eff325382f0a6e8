"""Stage `train@<seed>`: fit one seed, save its weights, log per-epoch metrics."""

from __future__ import annotations

import dataclasses
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from harness import accel, runtime, tracking
from harness import config as C
from harness.data import shards
from harness.data.transforms import build_views
from harness.errors import UserError
from harness.io import atomic_save_npy, atomic_write_json, atomic_write_text, check_writable, remove_stale_temps
from harness.model import build_model, count_params
from harness.model.layers import lrn_kernel
from harness.stages import StageContext, params_for, pipeline_outputs, read_json, run_name
from harness.train import checkpoint, loop, lr_select, recipe, towers
from harness.train.setup import CenterLoaders, check_batch_size, compile_model, schedule_loader, train_input

# EpochResult fields that differ on every run: kept out of the plots CSVs, which are committed
WALL_CLOCK_COLUMNS = ("images_per_s", "epoch_time_s")


@dataclass(frozen=True)
class TrainOutputs:
    """What a seed's training writes: out_dir (model.pt, provenance.json), the metrics JSON, the
    per-epoch CSV, and optionally the per-window training error CSV and the conv1 kernels."""

    out_dir: Path
    metrics: Path
    plots: Path
    steps: Path | None = None
    kernels: Path | None = None


def run_train(ctx: StageContext, *, seed: int, data_dir: Path, outputs: TrainOutputs, work: Path | None = None,
              init_from: Path | None = None, init_metrics: Path | None = None) -> dict:
    """Train one seed into outputs.out_dir. The resume checkpoint lives in a work folder outside the
    DVC output (checkpoint.resume_path), so the output need not persist and DVC's run-cache can
    restore earlier weights; `work` None: a `<out_dir>.work` folder beside it.

    `init_from` (the fine-tune phase, paper 6): start from that pre-trained model.pt, with the layers
    from pretrain.reinit up freshly initialised; `init_metrics` (its train metrics) names its MLflow
    run, of which this run becomes a child."""
    pretrained = _load_pretrained(init_from, init_metrics) if init_from is not None else None
    if pretrained is not None and pretrained["run_id"]:
        ctx = dataclasses.replace(ctx, parent_id=pretrained["run_id"])  # the fine-tune run under its pre-train run
    ckpt = checkpoint.resume_path(_work_root(ctx, outputs.out_dir, work), ctx.cfg, seed)
    s = _Setup.build(ctx.cfg, seed, data_dir, pretrained, init_from)
    if s.d.main:
        _clear_outputs(outputs, ckpt)
    payload = _read_checkpoint(ckpt, ctx.cfg, seed)  # read once: the lr selection and the resume use it
    choice = _lr_selection(payload, s)
    train_cfg = choice.train_cfg(ctx.cfg.train)
    optimizer = recipe.make_optimizer(s.model, train_cfg)
    state, run_id = _resume(payload, ckpt, s, optimizer)
    train_model, compiled = compile_model(runtime.wrap_ddp(s.model, s.d), ctx.cfg.train, ctx.cfg.model.input_size,
                                          s.d.world, s.d.devices)
    tracker = (tracking.child_run(ctx.uri, ctx.experiment_id, ctx.parent_id, run_name("train", ctx.cfg, seed),
                                  _run_params(s, train_cfg, init_from), _run_tags(ctx, s, choice, compiled),
                                  resume_run_id=run_id) if s.d.main else nullcontext(None))
    with tracker as run_id, tracking.system_metrics(ctx.uri, run_id):
        _log_inputs(ctx, run_id, s.manifest, choice)
        fit = LoggedFit(ctx, run_id, s, train_cfg, optimizer, state, ckpt, choice)
        history = fit.run(train_model)
        result = _train_result(ctx, run_id, s, history, state, choice)
        if s.d.main:
            _write_outputs(ctx, run_id, outputs, s, history, state, result, compiled)
            ckpt.unlink(missing_ok=True)  # the final weights supersede it
    runtime.barrier(s.d)
    runtime.shutdown(s.d)
    return result


@dataclass
class _Setup:
    """What a run builds before its first step, in this order (the RNG draws of the model's
    initialisation follow the seeding): distributed ranks, determinism, the data, the model."""

    cfg: C.Config
    seed: int
    d: runtime.Dist
    manifest: dict
    backend: dict  # the effective precision and cuDNN flags
    train_view: object
    make_loader: object
    val: CenterLoaders
    held_loader: object  # the schedule's held-out slice (train.schedule_split holdout), or None
    n_held: int
    model: torch.nn.Module
    pretrained: dict | None = None

    @classmethod
    def build(cls, cfg: C.Config, seed: int, data_dir: Path, pretrained: dict | None, init_from: Path | None):
        manifest = shards.load_manifest(data_dir)
        d = runtime.init_distributed(cfg.train.devices)  # this rank's own devices (LOCAL_RANK)
        runtime.set_determinism(seed, cfg.train.threads, cfg.train.deterministic)
        accel.configure_cudnn(cfg.train.deterministic)  # autotuning only without bitwise reproducibility
        backend = accel.configure_precision(cfg.train.precision)  # fp32 = IEEE: TF32 off (docs/fidelity.md)
        train_view, val_split, norm = build_views(cfg, data_dir, seed)
        train_view, make_loader = train_input(cfg, train_view, d.devices)
        check_batch_size(cfg.train, len(train_view), d.world)
        val = CenterLoaders(val_split, norm, cfg, d.rank, d.world)
        held_loader, n_held = schedule_loader(cfg, data_dir, norm, d.rank, d.world)
        model = build_model(cfg.model, len(manifest["classes"]), d.devices)
        if pretrained is not None:  # before the optimizer and the resume (a checkpoint overrides both)
            init_fine_tune(model, pretrained["state_dict"], cfg.pretrain.reinit, init_from)
        if cfg.train.channels_last:  # before the optimizer, so its state takes the same layout
            accel.to_channels_last(model)
        torch.manual_seed(seed + 7919 * d.rank)  # each rank its own dropout masks; rank 0 as alone
        return cls(cfg, seed, d, manifest, backend, train_view, make_loader, val, held_loader, n_held, model,
                   pretrained)

    @property
    def schedule_images(self) -> int:
        """Images of the split the plateau rule reads: the held-out slice, else val."""
        return self.n_held or self.val.images


def _clear_outputs(outputs: TrainOutputs, ckpt: Path) -> None:
    """Fail now on an unwritable output, not after training; remove temp files an interrupted
    write left (none may reach DVC's cache)."""
    check_writable(outputs.out_dir, ckpt.parent, outputs.metrics.parent, outputs.plots.parent)
    for p in [*remove_stale_temps(outputs.out_dir), *remove_stale_temps(ckpt.parent)]:
        print(f"removed {p.name}, left by an interrupted write", flush=True)


def _run_params(s: _Setup, train_cfg: C.TrainConfig, init_from: Path | None) -> dict:
    """The MLflow params of the run: the params that shape it and what it trained on."""
    cfg = s.cfg
    fine_tune = {"init_from": str(init_from), "reinit": cfg.pretrain.reinit} if s.pretrained is not None else {}
    return {**params_for(cfg, "data", "model", "train"), "seed": s.seed, "n_parameters": count_params(s.model),
            "world_size": s.d.world, "arm": cfg.arm or "baseline", "train_images": len(s.train_view),
            "schedule_images": s.schedule_images, "lr_trained": train_cfg.lr, **fine_tune}


def _run_tags(ctx: StageContext, s: _Setup, choice: LrChoice, compiled: str) -> dict:
    """The MLflow tags of the run: where and how it ran (devices, precision, determinism)."""
    cfg, d, backend = s.cfg, s.d, s.backend
    pretrain = {"pretrain_run_id": s.pretrained["run_id"] or "unknown"} if s.pretrained is not None else {}
    return {**ctx.base_tags, "stage": "train", "seed": s.seed, "data_digest": s.manifest["digest"],
            "devices": ",".join(d.devices), "world_size": d.world, "dist_backend": d.backend,
            **pretrain, **_selection_tags(choice.record),
            "cuda_visible_devices": runtime.visible_devices(), "threads": cfg.train.threads,
            "num_workers": cfg.train.num_workers, "precision": cfg.train.precision,
            "channels_last": cfg.train.channels_last, "compile": compiled, "decode_device": cfg.train.decode_device,
            **{f"backend.{k}": v for k, v in backend.items()},  # the effective flags (docs/fidelity.md, "Precision": fp32 = IEEE)
            "cudnn_benchmark": backend["cudnn_benchmark"],
            "deterministic": "torch.use_deterministic_algorithms(warn_only=True)" if cfg.train.deterministic
            else "off: cuDNN autotuning and non-deterministic algorithms (weights not bitwise reproducible)"}


def _log_inputs(ctx: StageContext, run_id: str | None, manifest: dict, choice: LrChoice) -> None:
    """The datasets the run reads, and the lr selection's pilots (logged once: a resumed run reuses
    its record)."""
    tracking.log_dataset(ctx.uri, run_id, manifest, "train", "training")
    tracking.log_dataset(ctx.uri, run_id, manifest, "val", "validation")
    if choice.record is not None and choice.fresh and run_id:
        _log_selection(ctx, run_id, choice.record)


def _train_result(ctx: StageContext, run_id: str | None, s: _Setup, history: list, state: loop.TrainState,
                  choice: LrChoice) -> dict:
    """The train metrics JSON: the final errors and speed, the schedule's record, the towers."""
    cfg = s.cfg
    fine_tune = ({"pretrain_run_id": s.pretrained["run_id"], "reinit": cfg.pretrain.reinit}
                 if s.pretrained is not None else {})
    return {**_train_metrics(history, s.seed, run_id, ctx, len(s.train_view) // cfg.train.batch_size, choice),
            "backend": s.backend, **fine_tune,
            "schedule": schedule_record(cfg.train, state, s.schedule_images, len(s.train_view)),
            "towers": _towers(cfg, _conv1_weight(s.model))}


def _write_outputs(ctx: StageContext, run_id: str | None, outputs: TrainOutputs, s: _Setup, history: list,
                   state: loop.TrainState, result: dict, compiled: str) -> None:
    """Rank 0: the weights, the curves, the metrics JSON and the kernels; their MLflow tags,
    metrics and artifacts."""
    cfg, model = s.cfg, s.model
    selection = result.get("lr_selection")  # the lr selection record, if the run made one
    _save_model(outputs.out_dir / "model.pt", model, cfg, s.seed, s.manifest, selection)
    curves = pd.DataFrame([h.__dict__ for h in history]).dropna(axis=1, how="all")  # no holdout: no column
    # the committed plots file holds only what a rerun reproduces bit for bit; wall-clock
    # columns go to the metrics JSON, a cached out (and MLflow)
    curves = curves.drop(columns=list(WALL_CLOCK_COLUMNS))
    atomic_write_text(outputs.plots, curves.to_csv(index=False))
    if outputs.steps is not None:
        atomic_write_text(outputs.steps, steps_csv(state.windows))
    atomic_write_json(outputs.metrics, result)
    if outputs.kernels is not None:  # Figure 3 of the report (paper 6.1)
        atomic_save_npy(outputs.kernels, _conv1_weight(model).astype(np.float32))
    tracking.set_tags(ctx.uri, run_id, {"lr_drop_epochs": ",".join(map(str, result["schedule"]["lr_drops"]))
                                        or "none", "schedule_split": result["schedule"]["split"],
                                        "lrn_kernel": lrn_kernel(model, s.d.devices[0], compiled == "inductor")})
    if result["towers"]:
        tracking.log_metrics_once(ctx.uri, run_id, {f"tower{t}_colour_selectivity": v for t, v in
                                                    enumerate(result["towers"]["colour_selectivity"])})
    tracking.log_artifact(ctx.uri, run_id, outputs.out_dir / "model.pt", "model")
    tracking.log_stage_files(ctx.uri, run_id, C.to_dict(cfg), outputs.metrics, outputs.plots, outputs.steps,
                             outputs.out_dir / "provenance.json")
    if cfg.tracking.log_models:
        _log_mlflow_model(ctx, run_id, model, cfg, s.seed, len(s.manifest["classes"]))


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


@dataclass(frozen=True)
class LrChoice:
    """The run's lr selection (train.lr_select_factors): its record (None when the factors are
    empty), whether it was made now, the pilots' wall seconds. The seconds stay out of the record,
    which model.pt keeps: its bytes must not change when the same weights are trained again."""

    record: dict | None = None
    fresh: bool = False
    seconds: float | None = None

    def train_cfg(self, cfg: C.TrainConfig) -> C.TrainConfig:
        """cfg.train at the selected learning rate (the checkpoint's digest stays that of the params)."""
        return cfg if self.record is None else dataclasses.replace(cfg, lr=self.record["lr"])


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


def _read_checkpoint(path: Path, cfg: C.Config, seed: int) -> dict | None:
    """The resume checkpoint, if there is one of these params and this seed. One of other params or
    another seed is ignored (another experiment)."""
    if not path.is_file():
        return None
    payload = checkpoint.load(path)
    if not checkpoint.compatible(payload, C.training_digest(cfg), seed):
        print(f"ignoring {path}: it was made with other params or another seed; starting afresh", flush=True)
        return None
    return payload


def _lr_selection(payload: dict | None, s: _Setup) -> LrChoice:
    """The run's lr selection: none when train.lr_select_factors is empty, the checkpoint's record
    when it carries one (a resumed run does not select again), else the pilots run now."""
    cfg, d = s.cfg, s.d
    if not cfg.train.lr_select_factors:
        return LrChoice()
    if payload is not None and payload.get("lr_selection"):
        return LrChoice(payload["lr_selection"], False, payload.get("lr_select_time_s"))
    t0 = time.perf_counter()
    try:  # the pilots' epoch-end validation is not used: one batch of it keeps them cheap
        selection = lr_select.select_lr(s.model, recipe.make_optimizer, s.train_view, s.make_loader,
                                        s.val.first_batch(), cfg.train, s.seed, d)
    except loop.NonFiniteLoss as exc:
        raise UserError(f"train.lr_select_factors: {exc}; try smaller factors or a lower train.lr") from None
    if d.main:
        print(f"lr selection: lr {selection['lr']:.3g} (x{selection['chosen_factor']:g}"
              f"{', at the limit of the search' if selection['at_limit'] else ''}); training error over the "
              f"first {selection['steps']} steps: " + ", ".join(
                  f"x{f:g} {'diverged' if e is None else f'{e:.1f}%'}"
                  for f, e in sorted(zip(selection["factors"], selection["pilot_train_top1_error"]))), flush=True)
    return LrChoice(selection, True, time.perf_counter() - t0)


def _resume(payload: dict | None, path: Path, s: _Setup, optimizer) -> tuple[loop.TrainState, str | None]:
    """Restore model, optimizer, RNG and progress from the compatible checkpoint `payload`, if any.

    One of the same run made by another number of processes is refused and kept: its ranks'
    dropout streams and partial sums have no counterpart here, and it may hold days of training.
    """
    d = s.d
    if payload is None:
        return loop.TrainState(), None
    made_by = len(payload["torch_rng"])
    if made_by != d.world:
        raise UserError(f"{path} was written by {made_by} torchrun process(es) and this run has {d.world} "
                        f"(train.nproc_per_node x train.nnodes); set them back to resume it, or delete it to "
                        "start this seed afresh")
    s.model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    runtime.set_rng_states({"cpu": payload["torch_rng"][d.rank], "cuda": payload.get("cuda_rng", [[]] * d.world)[d.rank]}, d)
    state = loop.TrainState.from_dict(payload["state"])
    if "partials" in payload:  # each rank's own sums of the unfinished epoch (summed over ranks at its end)
        state.partial = dict(payload["partials"][d.rank])
    if d.main:
        print(f"resuming seed {s.seed} from {path}: epoch {state.epoch + 1}, step {state.step_in_epoch} "
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


@dataclass
class LoggedFit:
    """fit() with MLflow logging and checkpoints from rank 0. The model trained may be DDP-wrapped
    and compiled; `setup.model` is the plain module that is checkpointed. train_cfg: cfg.train at
    the selected learning rate (the checkpoint's digest stays that of the params).

    Each point is logged exactly once across kills: points are logged before the checkpoint that
    covers them, and a resumed run skips the steps and epochs its MLflow run already holds."""

    ctx: StageContext
    run_id: str | None
    setup: _Setup
    train_cfg: C.TrainConfig
    optimizer: torch.optim.Optimizer
    state: loop.TrainState
    ckpt: Path
    choice: LrChoice
    steps: list = field(default_factory=list)  # (global step, loss, lr) not yet logged
    done: dict = field(default_factory=lambda: {"step_loss": set(), "val_top1_error": set()})

    def __post_init__(self):
        if self.run_id and self.state.global_step:
            self.done = tracking.logged_steps(self.ctx.uri, self.run_id, ("step_loss", "val_top1_error"))

    def run(self, train_model) -> list[loop.EpochResult]:
        s, cfg = self.setup, self.setup.cfg
        hooks = loop.Hooks(on_step=self.on_step, on_epoch=self.on_epoch, on_checkpoint=self.on_checkpoint)
        try:
            return loop.fit(train_model, self.optimizer, s.train_view, s.make_loader, s.val.all(), self.train_cfg,
                            s.seed, self.state, hooks, s.d, schedule_loader=s.held_loader)
        except _TargetReached:
            return [loop.EpochResult(**h) for h in self.state.history]
        except loop.NonFiniteLoss as exc:
            kept = f"the last good checkpoint {self.ckpt} is kept" if self.ckpt.is_file() \
                else "no checkpoint had been written yet"
            raise UserError(f"training diverged (NaN or Inf): {str(exc).split('; the last checkpoint')[0]}; {kept} "
                            f"(try a lower train.lr than {self.train_cfg.lr})") from None
        except (MemoryError, RuntimeError) as exc:
            if not _out_of_memory(exc):
                raise
            raise UserError(f"train.batch_size: a batch of {cfg.train.batch_size} images does not fit in memory on "
                            f"{','.join(s.d.devices)} ({str(exc).strip().splitlines()[0][:160]}); "
                            "lower train.batch_size") from None

    def on_step(self, step: int, loss: float, lr: float) -> None:
        self.steps.append((step, loss, lr))

    def flush_steps(self) -> None:
        """Per-step scalars to MLflow in batches (docs/architecture.md, "Tracking")."""
        new = [x for x in self.steps if x[0] not in self.done["step_loss"]]
        if self.run_id:
            tracking.log_series(self.ctx.uri, self.run_id, "step_loss", [(s, loss) for s, loss, _ in new])
            tracking.log_series(self.ctx.uri, self.run_id, "step_lr", [(s, lr) for s, _, lr in new])
        self.steps.clear()

    def on_epoch(self, r: loop.EpochResult) -> None:
        cfg, seed, target = self.setup.cfg, self.setup.seed, self.train_cfg.stop_at_train_error
        reached = target is not None and r.train_top1_error <= target
        if self.setup.d.main:
            print(f"seed {seed} epoch {r.epoch}/{cfg.train.epochs}: loss {r.train_loss:.3f}  "
                  f"train top-1 {r.train_top1_error:.1f}%  val top-1 {r.val_top1_error:.1f}%  "
                  f"top-5 {r.val_top5_error:.1f}%  lr {r.lr:.2g}  {r.images_per_s:.0f} img/s", flush=True)
            if r.epoch not in self.done["val_top1_error"]:
                self._log_epoch(r)
        if reached:  # every rank decides alike: r is all-reduced
            if self.setup.d.main:
                self.flush_steps()
                print(f"seed {seed}: training error {r.train_top1_error:.1f}% <= train.stop_at_train_error "
                      f"{target:g}% after epoch {r.epoch}; stopping", flush=True)
            raise _TargetReached

    def _log_epoch(self, r: loop.EpochResult) -> None:
        train = self.setup.cfg.train
        metrics = {k: v for k, v in r.__dict__.items() if k != "epoch" and v is not None}
        # lr drops so far: a step per drop (the tag lr_drop_epochs lists them at the end)
        metrics["lr_drops"] = len(self.state.lr_drops) if train.schedule == "plateau" else \
            sum(s <= r.epoch for s in train.lr_steps if s < train.epochs)
        tracking.log_metrics(self.ctx.uri, self.run_id, metrics, step=r.epoch)

    def on_checkpoint(self, st: loop.TrainState) -> None:
        s = self.setup
        if not all(torch.isfinite(p).all() for p in s.model.parameters()):  # never overwrite a good checkpoint
            raise loop.NonFiniteLoss(f"the weights became NaN or Inf at epoch {st.epoch + 1}, step {st.step_in_epoch}")
        rng = runtime.all_gather(runtime.rng_states(s.d), s.d)  # every rank's dropout RNG (CPU and CUDA)
        partials = runtime.all_gather(dict(st.partial), s.d)  # every rank's sums of this epoch so far
        if s.d.main:
            self.flush_steps()  # before the checkpoint: a kill in between loses nothing, the resume skips them
            checkpoint.save(self.ckpt, {
                "model": s.model.state_dict(), "optimizer": self.optimizer.state_dict(), "state": st.to_dict(),
                "torch_rng": [r["cpu"] for r in rng], "cuda_rng": [r["cuda"] for r in rng],
                "partials": partials, "seed": s.seed, "mlflow_run_id": self.run_id,
                "lr_selection": self.choice.record, "lr_select_time_s": self.choice.seconds,
                "training_digest": C.training_digest(s.cfg)})
        self.steps.clear()
        runtime.barrier(s.d)


def _out_of_memory(exc: BaseException) -> bool:
    """An allocation failure of torch (CPU or CUDA) or of Python itself. oneDNN (the CPU's
    convolutions) says only "could not create a primitive" when its workspace cannot be allocated;
    the message keeps its text, so another cause of it is still named."""
    msg = str(exc)
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or "can't allocate memory" in msg \
        or "out of memory" in msg.lower() or "could not create a primitive" in msg


def _save_model(path: Path, model, cfg: C.Config, seed: int, manifest: dict, selection: dict | None) -> None:
    """Weights plus what describes them (docs/architecture.md, house rule 6): config, seed, classes, data digest.

    Only deterministic content goes into model.pt, so retraining to the same weights gives the
    same bytes and DVC skips evaluation. The code commit and the environment go to provenance.json
    beside it: the code commit (runtime.git_info), not HEAD, so that committing regenerated results
    does not change the model folder's hash in dvc.lock.
    """
    # one format whatever the devices: a two-device model saves its grouped single-device weights
    weights = model.grouped_state_dict() if hasattr(model, "grouped_state_dict") else model.state_dict()
    extra = {} if selection is None else {"lr_selection": selection}  # the lr it trained at
    checkpoint.save(path, {"state_dict": weights, "config": C.training_config(cfg), "seed": seed,
                           "num_classes": len(manifest["classes"]), "data_digest": manifest["digest"], **extra})
    atomic_write_json(path.with_name("provenance.json"),
                      {"git": _code_commit(), "environment": runtime.environment(), "seed": seed})


def _code_commit() -> dict:
    """The commit of the code and params (not of the pipeline's own outputs) and the dirty flag."""
    root = runtime.repo_root()
    git = runtime.git_info(root, ignore=pipeline_outputs(root))
    return {"code_commit": git["code_commit"], "dirty": git["dirty"]}


def _log_mlflow_model(ctx, run_id, model, cfg: C.Config, seed: int, num_classes: int) -> None:
    """The final weights as an MLflow model, on the CPU in the one-device (grouped) layout."""
    weights = model.grouped_state_dict() if hasattr(model, "grouped_state_dict") else model.state_dict()
    cpu = build_model(cfg.model, num_classes, ("cpu",))
    cpu.load_state_dict({k: v.detach().float().cpu() for k, v in weights.items()})
    example = torch.zeros(2, 3, cfg.model.input_size, cfg.model.input_size)  # batch 2: a dynamic batch size
    with accel.export_safe_flags():  # torch.export trips over the precision flags otherwise
        tracking.log_model(ctx.uri, run_id, cpu.eval(), example, checkpoint.model_tags(cfg, seed),
                           name=tracking.model_name(cfg.arm, cfg.model.arch, seed))


def _train_metrics(history, seed, run_id, ctx, steps_per_epoch: int, choice: LrChoice) -> dict:
    last = history[-1]
    arm = {"arm": ctx.cfg.arm} if ctx.cfg.arm else {}  # baseline files keep their old shape
    extra = {} if choice.record is None else {"lr_selection": choice.record, "lr_select_time_s": choice.seconds}
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


