"""`python -m benchmarks.run` (or `make bench`): throughput of this machine, each figure next to
its baseline measured in the same process, written to reports/benchmarks.json.

  python -m benchmarks.run            # the reported figures (about 1-2 minutes on 2 cores)
  python -m benchmarks.run --quick    # a smoke run while developing (seconds; not for reporting)
  python -m benchmarks.run --repro    # also the wall time of a fresh `dvc repro` (about 5 minutes)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
from pathlib import Path

import torch

from benchmarks import data_bench, fullsize
from benchmarks import measure as M
from benchmarks.repro import dvc_repro_wall_time
from harness import config as C
from harness import runtime
from harness.io import atomic_write_json

DATA_SAMPLE = data_bench.DEFAULT_SAMPLE  # ../shared/data/imagenet-sample (skipped when absent)
GOALS = {"train_overhead_pct_max": 5.0, "loader_headroom_min": 2.0, "dvc_repro_s_max": 300.0,
         "lrn_share_pct_max": 12.0, "paper_vs_torchvision_per_flop_min": 0.8, "prepare_per_core_min": 2.0}


def parse_args(argv=None) -> argparse.Namespace:
    p = M.base_parser(__doc__)
    p.add_argument("--repro", action="store_true", help="also time `dvc repro` in a temp copy of the repo")
    return p.parse_args(argv)


def verdicts(res: dict) -> dict:
    v = {"train_overhead": {"value": res["train"]["overhead_pct"]["median"], "unit": "%",
                            "goal": f"<= {GOALS['train_overhead_pct_max']}"},
         "loader_headroom": {"value": res["loader"]["headroom"], "unit": "x",
                             "goal": f">= {GOALS['loader_headroom_min']}"}}
    # an overhead measured against a baseline that did other work means nothing
    v["train_overhead"]["met"] = (v["train_overhead"]["value"] <= GOALS["train_overhead_pct_max"]
                                  and res["train"]["same_weights"])
    v["loader_headroom"]["met"] = v["loader_headroom"]["value"] >= GOALS["loader_headroom_min"]
    lrn = res["step_profile"].get("lrn_share_pct")
    if res["step_profile"].get("lrn") and res["step_profile"]["lrn"]["lrn_impl"] == "fast":
        v["lrn_share_default_profile"] = _at_most(lrn, GOALS["lrn_share_pct_max"], "%")
    if res.get("fullsize"):
        fs = res["fullsize"]
        v["lrn_share_full_size"] = _at_most(fs["profile"]["lrn_share_pct"], GOALS["lrn_share_pct_max"], "%")
        for key in ("paper_vs_torchvision_per_flop", "paper_vs_torchvision_per_flop_channels_last"):
            v[key] = _at_least(fs["ratios"][key], GOALS["paper_vs_torchvision_per_flop_min"], "x")
    if res.get("real_jpegs"):
        for key in ("prepare", "loader"):
            ratio = res["real_jpegs"][key]["ratio"]
            v[f"{key}_per_core"] = {"value": ratio, "unit": "x", "goal": ">= 2", "met": ratio >= 2.0}
    if res.get("dvc_repro"):
        r = res["dvc_repro"]
        v["dvc_repro"] = {"value": r["wall_s"], "unit": "s", "goal": f"<= {GOALS['dvc_repro_s_max']}",
                          "met": r["returncode"] == 0 and r["wall_s"] <= GOALS["dvc_repro_s_max"]}
    return v


def _at_most(value: float, goal: float, unit: str) -> dict:
    return {"value": value, "unit": unit, "goal": f"<= {goal}", "met": value <= goal}


def _at_least(value: float, goal: float, unit: str) -> dict:
    return {"value": value, "unit": unit, "goal": f">= {goal}", "met": value >= goal}


def run(args: argparse.Namespace) -> dict:
    cfg = C.load_config(args.params)
    threads = args.threads or cfg.train.threads
    torch.set_num_threads(threads)  # every figure below at the thread count training uses
    sizes = M.QUICK if args.quick else M.Sizes()
    res: dict = {"measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                 "quick": args.quick, "git": runtime.git_info(), "machine": runtime.environment(),
                 "profile": cfg.profile, "goals": GOALS,
                 # other processes on the machine distort every figure: kept to judge them by
                 "load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        data_dir, data_desc = M.locate_data(cfg, args.data, tmp)
        classes = M.class_count(data_dir)
        res["setup"] = {"data": data_desc, "num_classes": classes, "batch_size": cfg.train.batch_size,
                        "input_size": cfg.model.input_size, "width": cfg.model.width, "threads": threads,
                        "num_workers": cfg.train.num_workers}
        step("train step: harness vs plain PyTorch")
        batches = M.in_memory_batches(cfg, data_dir, sizes.steps)
        res["train"] = M.train_step(cfg, classes, batches, sizes)
        step("profile of the harness step")
        res["step_profile"] = M.op_profile(cfg, classes, batches)
        res["step_profile"]["fixed_overhead"] = M.fixed_overhead(cfg, classes, sizes)
        if cfg.model.lrn != "none":
            res["step_profile"]["lrn"] = M.lrn_cost(cfg, classes, batches, sizes)
        step("matmul peak and model FLOPs")
        res["flops"] = M.model_flops(M.build_model(cfg.model, classes), cfg.model.input_size)
        res["matmul_peak"] = M.matmul_peak(sizes.matmul_n, sizes.matmul_reps)
        res["mfu"] = M.mfu(res["train"], res["flops"], res["matmul_peak"])
        step("loader")
        res["loader"] = M.loader_speed(cfg, data_dir, sizes, res["train"]["harness_images_per_s"]["median"])
        step("10-patch evaluation")
        res["eval_ten_patch"] = M.ten_patch_eval(cfg, data_dir, classes, sizes)
    step("the paper net against torchvision's alexnet at 224 px (minutes)")
    res["fullsize"] = fullsize.measure(sizes.full_batch, sizes.full_rounds, sizes.full_steps, sizes.matmul_n)
    if DATA_SAMPLE.is_dir():
        step("prepare and loader on real ImageNet JPEGs (benchmarks.data_bench)")
        res["real_jpegs"] = data_bench.measure(DATA_SAMPLE, 1 if args.quick else 3,
                                               limit=40 if args.quick else None)
        torch.set_num_threads(threads)
    if args.repro:
        step("dvc repro in a temp copy (minutes)")
        res["dvc_repro"] = dvc_repro_wall_time(runtime.repo_root())
    res["load_average_after"] = os.getloadavg()
    res["verdicts"] = verdicts(res)
    res["notes"] = notes(res)
    return res


def notes(res: dict) -> str:
    """What the figures mean for a run, in words (the report prints this under the table)."""
    lo, t, m = res["loader"], res["train"], res["mfu"]
    out = []
    if lo["num_workers"] == 0:
        out.append(f"With num_workers 0 the loader runs in the training process between steps, so an epoch "
                   f"proceeds at about {lo['serial_epoch_images_per_s']:.0f} images/s "
                   f"(1 / (1/loader + 1/training)).")
    spread = t["overhead_pct"]["max"] - t["overhead_pct"]["min"]
    out.append(f"The overhead's spread over {t['overhead_pct']['n']} paired rounds is {spread:.1f} points.")
    fo = res["step_profile"]["fixed_overhead"]
    step_us = 1e6 * res["setup"]["batch_size"] / t["plain_images_per_s"]["median"]
    out.append(f"The harness's own bookkeeping costs {fo['overhead_us_per_step']:.0f} us per step (measured with "
               f"the model replaced by a tiny linear layer), {100 * fo['overhead_us_per_step'] / step_us:.1f}% "
               f"of this profile's {step_us / 1e3:.1f} ms step.")
    prof = res.get("step_profile", {})
    lrn = prof.get("lrn")
    out.append(f"MFU {100 * m['harness_mfu']:.0f}%: the default profile's small convolutions (width "
               f"{res['setup']['width']}, {res['setup']['input_size']} px) do little work per memory access"
               + (f"; its LRN ({lrn['lrn_impl']}) takes {prof['lrn_share_pct']:.0f}% of a step by the profiler, "
                  f"{lrn['step_share_pct']:.0f}% by removal (the reference LRN "
                  f"{lrn['reference_step_share_pct']:.0f}%)." if lrn else "."))
    fs = res.get("fullsize")
    if fs:
        v, r = fs["variants"], fs["ratios"]
        out.append(f"At 224 px (batch {fs['batch']}, the same loop for every net) the paper net trains "
                   f"{v['paper']['images_per_s']['median']:.1f} images/s, "
                   f"{v['paper']['flop_per_s'] / 1e9:.0f} GFLOP/s (MFU {100 * v['paper']['mfu']:.0f}%), against "
                   f"torchvision's alexnet {v['torchvision']['images_per_s']['median']:.1f} images/s, "
                   f"{v['torchvision']['flop_per_s'] / 1e9:.0f} GFLOP/s (MFU {100 * v['torchvision']['mfu']:.0f}%): "
                   f"{r['paper_vs_torchvision_per_flop']:.2f}x per FLOP "
                   f"({r['paper_vs_torchvision_per_flop_channels_last']:.2f}x with both in channels_last). "
                   f"The fast LRN takes {fs['profile']['lrn_share_pct']:.0f}% of that step by the profiler "
                   f"({r['lrn_step_share_pct_by_removal']:.0f}% by removal); the reference LRN "
                   f"{r['reference_lrn_step_share_pct_by_removal']:.0f}%, and the step is "
                   f"{r['fast_lrn_speedup_of_step']:.2f}x faster with the fast one.")
    busy = max(res["load_average_before"][0], res["load_average_after"][0])
    if busy > 0.5 * (res["machine"]["cpu_count"] or 1):
        out.append(f"Other processes were running (1-min load average up to {busy:.1f} on "
                   f"{res['machine']['cpu_count']} cores): the absolute figures are low; the ratios less so.")
    return " ".join(out)


def step(what: str) -> None:
    print(f"[bench] {what}", flush=True)


def table(res: dict) -> str:
    t, lo, ev, m = res["train"], res["loader"], res["eval_ten_patch"], res["mfu"]
    rows = [
        ("train images/s (harness)", f"{t['harness_images_per_s']['median']:.0f}",
         f"plain PyTorch loop {t['plain_images_per_s']['median']:.0f}",
         f"overhead {t['overhead_pct']['median']:+.1f}% (goal <= 5%)"),
        ("training FLOP/s", f"{m['harness_flop_per_s'] / 1e9:.1f} G",
         f"matmul peak {m['peak_flop_per_s'] / 1e9:.1f} G", f"MFU {100 * m['harness_mfu']:.1f}%"),
        ("loader images/s", f"{lo['images_per_s']['median']:.0f}",
         f"training {lo['training_images_per_s']:.0f}", f"headroom {lo['headroom']:.2f}x (goal >= 2x)"),
        ("10-patch eval images/s", f"{ev['images_per_s']['median']:.0f}",
         f"forward only {ev['forward_only_images_per_s']['median']:.0f}", f"views {ev['view_share_pct']:.0f}% of time"),
    ]
    fs = res.get("fullsize")
    if fs:
        v, r = fs["variants"], fs["ratios"]
        rows.append(("paper net GFLOP/s, 224 px", f"{v['paper']['flop_per_s'] / 1e9:.0f} G",
                     f"torchvision alexnet {v['torchvision']['flop_per_s'] / 1e9:.0f} G",
                     f"{r['paper_vs_torchvision_per_flop']:.2f}x per FLOP (goal >= 0.8x)"))
        rows.append(("  both channels_last", f"{v['paper_channels_last']['flop_per_s'] / 1e9:.0f} G",
                     f"torchvision alexnet {v['torchvision_channels_last']['flop_per_s'] / 1e9:.0f} G",
                     f"{r['paper_vs_torchvision_per_flop_channels_last']:.2f}x per FLOP (goal >= 0.8x)"))
        rows.append(("LRN share of a 224 px step", f"{fs['profile']['lrn_share_pct']:.1f}%",
                     f"reference LRN {r['reference_lrn_step_share_pct_by_removal']:.0f}% (by removal)",
                     "goal <= 12%"))
    if res["step_profile"].get("lrn"):
        rows.append(("LRN share of a default step", f"{res['step_profile']['lrn_share_pct']:.1f}%",
                     f"reference LRN {res['step_profile']['lrn']['reference_step_share_pct']:.0f}% (by removal)",
                     "goal <= 12%"))
    if res.get("real_jpegs"):
        p, lo2 = res["real_jpegs"]["prepare"], res["real_jpegs"]["loader"]
        rows.append(("prepare img/s, 1 core (real JPEGs)", f"{p['harness_decode_fit_encode_img_s']:.0f}",
                     f"Pillow loop {p['pil_open_convert_resize_crop_img_s']:.0f}", f"{p['ratio']:.2f}x (goal >= 2x)"))
        rows.append(("loader img/s, 1 core (real JPEGs)", f"{lo2['harness_trainview_jpeg_shards_img_s']:.0f}",
                     f"ImageFolder {lo2['torchvision_imagefolder_img_s']:.0f}", f"{lo2['ratio']:.2f}x (goal >= 2x)"))
    if res.get("dvc_repro"):
        r = res["dvc_repro"]
        rows.append(("dvc repro (default profile)", f"{r['wall_s']:.0f} s", f"rc {r['returncode']}", "goal <= 300 s"))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w[i]) for i, c in enumerate(r)) for r in rows)


# Keys other benchmarks write into the same file (benchmarks/arm_speed.py, near_duplicates.py): kept when
# this one rewrites it.
OTHER_KEYS = ("arms", "near_duplicates")


def kept_keys(path: Path) -> dict:
    """The other benchmarks' sections of the JSON at path, if it exists."""
    old = json.loads(path.read_text()) if path.is_file() else {}
    return {k: old[k] for k in OTHER_KEYS if k in old}


def main(argv=None) -> None:
    args = parse_args(argv)
    res = run(args)
    atomic_write_json(args.out, {**res, **kept_keys(args.out)})
    print(table(res))
    print(f"written: {args.out}" + ("  (quick mode: not for reporting)" if args.quick else ""))


if __name__ == "__main__":
    main()
