"""`harness pilot`: a few hundred steps of the configured recipe before the expensive run.

On the configured (prepared) data, devices and recipe it measures whether the training loss
leaves ln(number of classes), the throughput and peak memory per device, and the cost of
evaluation, then projects the wall time and device-hours of the whole run: every seed, every
enabled ablation arm, the per-epoch validation and the evaluate stage. A flat loss (the
paper's N(0, 0.01) init is known to sit at ln 1000 for a long time: the input-dependent part
of its initial logits is tiny) is reported as such. The result goes to reports/pilot.json,
which the report reads for its pilot section and its costed reproduction plan
(docs/fidelity.md, "Pilot").
"""

from __future__ import annotations

import math
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from harness import accel, runtime
from harness import config as C
from harness.data import shards, transforms
from harness.errors import UserError
from harness.model import build_model, layer_table
from harness.train import loop, recipe
from harness.train.setup import check_batch_size, compile_model, train_input  # as the train stage

# A loss counts as having left ln(C) when the mean of the last window of steps is below it by
# more than 3 standard errors of that mean and by at least 1% of ln(C) (docs/fidelity.md).
LEAVE_SE = 3.0
LEAVE_FRACTION = 0.01
# The paper net as printed (docs/paper.md, "Size and cost"): multiply-adds of one 224 forward.
PAPER_MULT_ADDS = 724_406_816


def mult_adds(cfg: C.ModelConfig, num_classes: int) -> int:
    """Multiply-adds of one forward pass of the net cfg describes (harness/model/table.py)."""
    rows = layer_table(build_model(cfg, num_classes), cfg.input_size)
    return int(sum(r.mult_adds for r in rows))


def _sync(devices) -> None:
    for d in devices:
        if str(d).startswith("cuda"):
            torch.cuda.synchronize(d)


def _train_steps(model, optimizer, cfg: C.Config, view, make_loader, seed: int, n: int,
                 losses: list, state: loop.TrainState) -> None:
    """n more training steps of the configured recipe (loop.train_one_epoch) from `state`,
    in the recipe's data order, crossing epoch ends as the train stage would (no validation)."""
    per_epoch = len(view) // cfg.train.batch_size
    hooks = loop.Hooks(on_step=lambda s, loss, lr: losses.append(loss))
    while n > 0:
        if state.step_in_epoch == per_epoch:
            state.epoch, state.step_in_epoch, state.partial = state.epoch + 1, 0, dict(loop.EMPTY_PARTIAL)
        batches = loop.epoch_batches(len(view), cfg.train.batch_size, seed, state.epoch)
        todo = batches[state.step_in_epoch:state.step_in_epoch + n]
        view.set_epoch(state.epoch)
        loop.train_one_epoch(model, make_loader(todo), optimizer, cfg.train, state, per_epoch, hooks)
        n -= len(todo)


def _loss_verdict(losses: list[float], num_classes: int) -> dict:
    """Did the loss leave ln(C)? Means of the first and last windows of steps, with the SE."""
    ln_c = math.log(num_classes)
    arr = np.asarray(losses, np.float64)
    w = max(5, len(arr) // 10)
    first, last = arr[:w], arr[-w:]
    se = float(last.std(ddof=1) / math.sqrt(len(last))) if len(last) > 1 else float("nan")
    drop = ln_c - float(last.mean())
    bar = max(LEAVE_SE * se, LEAVE_FRACTION * ln_c)
    if not np.isfinite(arr).all() or float(last.mean()) > ln_c + 1.0:
        verdict = "diverged"
        msg = f"the loss diverged (last {w} steps: {last.mean():.3f} nats against ln {num_classes} = {ln_c:.3f})"
    elif drop > bar:
        verdict = "decreasing"
        msg = (f"the loss left ln {num_classes} = {ln_c:.3f}: mean of the last {w} steps {last.mean():.3f} nats, "
               f"{drop:.3f} below it ({drop / ln_c:.1%}, {drop / se if se > 0 else float('inf'):.0f} SE)")
    else:
        verdict = "flat"
        msg = (f"FLAT LOSS: after {len(arr)} steps the loss is still at ln {num_classes} = {ln_c:.3f} (mean of the "
               f"last {w} steps {last.mean():.3f}, {drop:+.3f} nats, needs > {bar:.3f}); the full run would start "
               "by sitting at chance. Check the init (the paper's N(0, 0.01) is known to sit flat), lr and input scale "
               "before spending device-days")
    return {"ln_classes": ln_c, "window_steps": w, "first_mean": float(first.mean()), "last_mean": float(last.mean()),
            "drop_nats": drop, "drop_fraction": drop / ln_c, "last_se": se, "required_drop": bar,
            "verdict": verdict, "message": msg}


@torch.no_grad()
def init_logit_spread(model, x: torch.Tensor) -> float:
    """Mean over classes of the sd across images of the initial logits: the input-dependent
    part (a net whose logits do not depend on the image starts, and may stay, at ln C)."""
    model.eval()
    logits = model(x).float()
    model.train()
    return float(logits.std(0).mean()) if len(x) > 1 else float("nan")


def _peak_memory(devices) -> dict:
    out = {}
    for d in dict.fromkeys(devices):
        if str(d).startswith("cuda"):
            out[d] = {"peak_bytes": int(torch.cuda.max_memory_allocated(d)),
                      "what": "torch.cuda.max_memory_allocated over the timed steps"}
        else:  # ru_maxrss is in KiB on Linux: the whole process, the data loader's memory maps included
            out[d] = {"peak_bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024,
                      "what": "process peak resident set size (CPU: the whole process)"}
    return out


def _eval_rate(model, split, norm, cfg: C.Config, protocol: str, images: int) -> float:
    """Images per second of one evaluation protocol over the first `images` images of `split`."""
    from harness.evaluate import inference
    n = min(images, len(split))
    view = transforms.EvalView(split, norm, cfg.model.input_size, protocol)
    loader = transforms.batch_loader(view, transforms.eval_batches(n, cfg.evaluate.batch_size), 0)
    t = time.perf_counter()
    inference.predict(model, loader, n, f"pilot {protocol}", cfg.train.precision, cfg.train.channels_last)
    _sync(cfg.train.devices)
    return n / (time.perf_counter() - t)


def run_pilot(cfg: C.Config, data_dir: Path, *, steps: int = 300, eval_images: int = 256,
              warmup_steps: int | None = None, pretrain_data: Path | None = None) -> dict:
    """Measure the configured recipe for `steps` training steps; returns pilot.json's content.
    `pretrain_data`: the prepared Fall 2011 folder, if prepared (pretrain.enabled: its size is costed)."""
    manifest = shards.load_manifest(data_dir)
    classes = len(manifest["classes"])
    seed = cfg.train.seeds[0]
    runtime.set_determinism(seed, cfg.train.threads, cfg.train.deterministic)
    accel.configure_cudnn(cfg.train.deterministic)
    backend = accel.configure_precision(cfg.train.precision)
    view, val_split, norm = transforms.build_views(cfg, data_dir, seed)
    view, make_loader = train_input(cfg, view)
    check_batch_size(cfg.train, len(view))
    devices = cfg.train.devices
    model = build_model(cfg.model, classes, devices)
    if cfg.train.channels_last:
        accel.to_channels_last(model)
    torch.manual_seed(seed)
    optimizer = recipe.make_optimizer(model, cfg.train)
    first = view[loop.epoch_batches(len(view), cfg.train.batch_size, seed, 0)[0]][0]
    spread = init_logit_spread(model, accel.to_device(first, next(model.parameters()).device, cfg.train.channels_last))
    train_model, compiled = compile_model(model, cfg.train, cfg.model.input_size, 1)
    warm = warmup_steps if warmup_steps is not None else min(20, max(2, steps // 10))
    losses: list[float] = []
    state = loop.TrainState()
    _train_steps(train_model, optimizer, cfg, view, make_loader, seed, warm, losses, state)  # compile, caches
    _sync(devices)
    for d in devices:
        if d.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(d)
    t = time.perf_counter()
    _train_steps(train_model, optimizer, cfg, view, make_loader, seed, steps - warm, losses, state)
    _sync(devices)
    train_s = time.perf_counter() - t
    train_ips = (steps - warm) * cfg.train.batch_size / train_s
    memory = _peak_memory(devices)
    eval_split = shards.load_split(data_dir, cfg.evaluate.split)
    center_ips = _eval_rate(model, eval_split, norm, cfg, "center", eval_images)
    # 10-patch whatever evaluate.protocols says: the reproduction plan evaluates both protocols
    ten_ips = _eval_rate(model, eval_split, norm, cfg, "ten_patch", max(1, eval_images // 10))
    rates = {"train_images_per_s": train_ips, "train_images_per_s_per_device": train_ips / len(devices),
             "eval_center_images_per_s": center_ips, "eval_ten_patch_images_per_s": ten_ips}
    macs = mult_adds(cfg.model, classes)
    out = {
        "made_by": "harness pilot", "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "training_digest": C.training_digest(cfg), "profile": cfg.profile, "dataset": cfg.data.source,
        "num_classes": classes, "counts": manifest["counts"], "devices": list(devices), "world_size": 1,
        "machine": runtime.environment(), "backend": backend, "compile": compiled,
        "recipe": {"batch_size": cfg.train.batch_size, "lr": cfg.train.lr, "init": cfg.model.init,
                   "precision": cfg.train.precision, "width": cfg.model.width, "input_size": cfg.model.input_size},
        "steps": steps, "warmup_steps": warm, "timed_steps": steps - warm, "timed_s": train_s,
        "loss": {**_loss_verdict(losses, classes), "init_logit_sd": spread, "per_step": losses},
        "throughput": rates, "memory": memory, "mult_adds": {"configured": macs, "paper": PAPER_MULT_ADDS},
    }
    pre_manifest = (shards.load_manifest(pretrain_data) if pretrain_data is not None
                    and (pretrain_data / "manifest.json").is_file() else None)
    out["projection"] = project(cfg, manifest, rates, classes, pre_manifest)
    out["unit_costs"] = unit_costs(cfg, rates, macs)
    return out


def _run_cost(cfg: C.Config, counts: dict, rates: dict, scale: float) -> dict:
    """Seconds of one seed's train stage (epochs, per-epoch validation) and evaluate stage."""
    t = cfg.train
    train_n = counts.get("train", 0)
    held = len(shards.holdout_indices(train_n, t.holdout_every)) if t.schedule_split == "holdout" else 0
    val_n = counts.get("val", 0)
    train_s = t.epochs * (train_n - held) / rates["train_images_per_s"] * scale
    validate_s = t.epochs * (val_n + held) / rates["eval_center_images_per_s"] * scale
    n_eval = counts.get(cfg.evaluate.split, 0)
    evaluate_s = 0.0
    for protocol in cfg.evaluate.protocols:
        rate = rates["eval_center_images_per_s"] if protocol == "center" else rates["eval_ten_patch_images_per_s"]
        evaluate_s += n_eval / rate * scale
    return {"train_s": train_s, "validate_s": validate_s, "evaluate_s": evaluate_s,
            "total_s": train_s + validate_s + evaluate_s}


# The entire Fall 2011 release (image-net.org): the projection's size while it is not prepared yet
FALL2011_IMAGES, FALL2011_SYNSETS = 14_197_122, 21_841


def pretrain_groups(cfg: C.Config, manifest: dict, rates: dict, classes: int, base_macs: int,
                    pretrain_manifest: dict | None) -> list[dict]:
    """paper 6's pre-training on Fall 2011 and fine-tuning on data.*, per pretrain.seeds, at the
    baseline's rates scaled by multiply-adds (the 22k-way fc8 and conv6 included) and by the device
    count (the rates are those of train.devices together). Before
    prepare_pretrain has run, the Fall 2011 size is the entire release's, split by data.fall2011."""
    if not cfg.pretrain.enabled:
        return []
    pre, fine = C.apply_phase(cfg, "pretrain"), C.apply_phase(cfg, "finetune")
    if pretrain_manifest is not None:
        counts, n_cls, basis = pretrain_manifest["counts"], len(pretrain_manifest["classes"]), "prepared"
    else:
        every = 2 if pre.data.fall2011.split == "half" else pre.data.fall2011.val_every
        counts = {"train": FALL2011_IMAGES - FALL2011_IMAGES // every, "val": FALL2011_IMAGES // every}
        n_cls, basis = FALL2011_SYNSETS, "the entire release (not prepared yet)"
    out = []
    for what, c, cnt, k in ((f"pre-training on Fall 2011 ({basis})", pre, counts, n_cls),
                            ("fine-tuning", fine, manifest["counts"], classes)):
        # the rates were measured on train.devices; a phase on fewer devices (the six-conv net on one) is slower
        scale = mult_adds(c.model, k) / base_macs * len(cfg.train.devices) / len(c.train.devices)
        out.append({"what": what, "seeds": len(cfg.pretrain.seeds), "devices": len(c.train.devices),
                    "scale": scale, **_run_cost(c, cnt, rates, scale)})
    return out


def project(cfg: C.Config, manifest: dict, rates: dict, classes: int, pretrain_manifest: dict | None = None) -> dict:
    """Wall time and device-hours of the full run on these devices, one run after another.

    Baseline: every seed in train.seeds. Arms: every enabled arm x the same train.seeds, each costed
    at the baseline's measured rates times its multiply-adds over the baseline's (the arms were
    not run by the pilot; an arm with another cost per multiply-add is mis-projected by that
    much). ensemble, compare and report take seconds on a CPU and are left out.
    """
    base_macs = mult_adds(cfg.model, classes)
    groups = [{"what": "baseline", "seeds": len(cfg.train.seeds), "devices": len(cfg.train.devices),
               "scale": 1.0, **_run_cost(cfg, manifest["counts"], rates, 1.0)}]
    for name in cfg.ablations.enabled:
        arm = C.apply_arm(cfg, name)
        scale = mult_adds(arm.model, classes) / base_macs
        groups.append({"what": f"arm {name}", "seeds": len(arm.train.seeds),
                       "devices": len(arm.train.devices), "scale": scale,
                       **_run_cost(arm, manifest["counts"], rates, scale)})
    groups += pretrain_groups(cfg, manifest, rates, classes, base_macs, pretrain_manifest)
    wall = sum(g["seeds"] * g["total_s"] for g in groups)
    device_hours = sum(g["seeds"] * g["total_s"] * g["devices"] for g in groups) / 3600
    return {"groups": groups, "wall_s": wall, "wall_days": wall / 86400, "device_hours": device_hours,
            "assumptions": "runs one after another on the pilot's devices at the pilot's measured rates; arms "
                           "scaled by multiply-adds; validation each epoch and the evaluate stage at the measured "
                           "evaluation rates; ensemble/compare/report left out (seconds on a CPU)"}


def unit_costs(cfg: C.Config, rates: dict, macs: int) -> dict:
    """Device-seconds per image of the paper net (224 px, full width) on these devices, for the
    report's reproduction plan. Measured when the configured net is the paper's; otherwise the
    configured net's rates scaled by multiply-adds (small nets use a device less efficiently, so
    this overestimates the paper net's cost)."""
    paper_net = cfg.model.arch == "paper" and cfg.model.width == 1.0 and cfg.model.input_size in (224, 227) \
        and cfg.model.drop_conv == "none"
    scale = 1.0 if paper_net else PAPER_MULT_ADDS / macs
    per = lambda r: None if r is None else len(cfg.train.devices) / r * scale  # noqa: E731 - device-s per image
    return {"basis": "measured on the paper net" if paper_net else
            f"scaled by multiply-adds from the configured net ({macs:,} per image, x{scale:.0f})",
            "devices": list(cfg.train.devices),
            "train_device_s_per_image": per(rates["train_images_per_s"]),
            "eval_center_device_s_per_image": per(rates["eval_center_images_per_s"]),
            "eval_ten_patch_device_s_per_image": per(rates["eval_ten_patch_images_per_s"])}


def summary_lines(p: dict) -> list[str]:
    """What `harness pilot` prints."""
    r, pr, loss = p["throughput"], p["projection"], p["loss"]
    lines = [f"pilot: {p['steps']} steps of the '{p['profile']}' recipe on {p['dataset']} ({p['num_classes']} classes), "
             f"devices {', '.join(p['devices'])}, batch {p['recipe']['batch_size']}",
             ("WARNING: " if loss["verdict"] != "decreasing" else "") + loss["message"],
             f"initial logits: sd across images {loss['init_logit_sd']:.3g} (input-dependent part)",
             f"throughput: {r['train_images_per_s']:.1f} training images/s "
             f"({r['train_images_per_s_per_device']:.1f} per device), evaluation {r['eval_center_images_per_s']:.1f} "
             "images/s centre" + (f", {r['eval_ten_patch_images_per_s']:.1f} 10-patch"
                                  if r["eval_ten_patch_images_per_s"] else "")]
    for d, m in p["memory"].items():
        lines.append(f"peak memory {d}: {m['peak_bytes'] / 2**30:.2f} GiB ({m['what']})")
    for g in pr["groups"]:
        lines.append(f"  {g['what']}: {g['seeds']} seed(s) x {g['total_s'] / 3600:.2f} h on {g['devices']} device(s) "
                     f"(train {g['train_s'] / 3600:.2f} h, validation {g['validate_s'] / 3600:.2f} h, "
                     f"evaluate {g['evaluate_s'] / 3600:.2f} h)")
    pre = [g for g in pr["groups"] if g["what"].startswith(("pre-training", "fine-tuning"))]
    if pre:
        h = sum(g["seeds"] * g["total_s"] * g["devices"] for g in pre) / 3600
        lines.append(f"pre-trained CNNs (paper 6): {h:.2f} of the {pr['device_hours']:.2f} device-hours")
    lines.append(f"full run: {pr['wall_s'] / 3600:.2f} h wall ({pr['wall_days']:.2f} days), "
                 f"{pr['device_hours']:.2f} device-hours, one run after another")
    return lines


def main(cfg: C.Config, data_dir: Path, out: Path, steps: int, eval_images: int,
         pretrain_data: Path | None = None) -> dict:
    from harness.io import atomic_write_json
    if steps < 10:
        raise UserError(f"--steps: a pilot needs at least 10 steps to judge the loss, got {steps}")
    result = run_pilot(cfg, data_dir, steps=steps, eval_images=eval_images, pretrain_data=pretrain_data)
    atomic_write_json(out, result)
    for line in summary_lines(result):
        print(line, file=sys.stdout if not line.startswith("WARNING") else sys.stderr, flush=True)
    print(f"wrote {out}")
    return result
