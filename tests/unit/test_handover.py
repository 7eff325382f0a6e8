"""The typed hand-over from compare to report (harness/analysis/handover.py): every key build_compare
writes is declared there, every key declared required is written, and every string key the report
modules look up is declared there or read from another file (the allow-list below). A key renamed
on one side only fails here, not in an end-to-end run."""

from __future__ import annotations

import ast
import json
import types
import typing
from pathlib import Path

import pytest
from test_ablation import _build as ablation_compare
from test_compare import REFERENCE, synthetic_seeds
from test_pretrained_claims import _pre

from harness.analysis import handover as H
from harness.analysis.claims import RunContext, load_claims
from harness.analysis.compare import CompareInputs, CompareSettings, build_compare

REPORT = Path(__file__).resolve().parents[2] / "harness" / "report"
CLAIMS = load_claims()


# --------------------------------------------------------------------------- checking a value against a type


def problems(value, tp, path: str = "compare") -> list[str]:
    """Where `value` (plain JSON) does not fit `tp`: undeclared keys, missing required keys,
    wrong containers. Scalars are checked loosely (a number where a float is declared)."""
    if tp is typing.Any:
        return []
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return []
        found = [problems(value, a, path) for a in args if a is not type(None)]
        return [] if any(not f for f in found) else found[0]
    if typing.is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not a {tp.__name__} dict"]
        out = [f"{path}.{k}: not declared in {tp.__name__}" for k in value
               if k not in tp.__required_keys__ | tp.__optional_keys__]
        out += [f"{path}.{k}: required by {tp.__name__}, missing" for k in tp.__required_keys__ if k not in value]
        hints = typing.get_type_hints(tp)
        for k, v in value.items():
            if k in hints:
                out += problems(v, hints[k], f"{path}.{k}")
        return out
    if origin in (dict, typing.Mapping) or tp is dict:
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not a dict"]
        return [p for k, v in value.items() for p in (problems(v, args[1], f"{path}[{k!r}]") if args else [])]
    if origin is list or tp is list:
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, not a list"]
        return [p for i, v in enumerate(value) for p in (problems(v, args[0], f"{path}[{i}]") if args else [])]
    if tp is float:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [] if number else [f"{path}: {value!r}, not a number"]
    if tp in (int, str, bool):
        return [] if isinstance(value, tp) else [f"{path}: {value!r}, not {tp.__name__}"]
    return []


def test_the_checker_catches_undeclared_missing_and_misshapen_keys():
    row = {"seed": 1, "protocol": "center", "metric": "top1_error", "error": 30.0, "wilson_lo": 28.0,
           "wilson_hi": 32.0, "n_images": 200, "mlflow_run_id": None}
    assert problems(row, H.SeedRow) == []
    assert problems({**row, "wilson_low": 1.0}, H.SeedRow) == ["compare.wilson_low: not declared in SeedRow"]
    assert problems({k: v for k, v in row.items() if k != "wilson_hi"}, H.SeedRow) == [
        "compare.wilson_hi: required by SeedRow, missing"]
    assert problems({"center": {"top1_error": row}}, dict[str, dict[str, H.SummaryStats]])  # wrong row type
    assert problems([row], list[H.SeedRow]) == [] and problems(row, list[H.SeedRow])


# --------------------------------------------------------------------------- build_compare against the types


def _full_inputs():
    """Three seeds, both protocols, correctness, the ensemble stage's dict, a reference, disjoint
    ensembles, architecture measurements and the pre-trained CNNs: every optional input."""
    results, correctness = synthetic_seeds()
    size = {"top1_error_mean": 32.0, "top1_error_sd": 1.0, "top1_error_min": 31.0, "top1_error_max": 33.0,
            "top5_error_mean": 5.5, "top5_error_sd": 0.5, "top5_error_min": 5.0, "top5_error_max": 6.0}
    ensemble = {"seeds": [1, 2, 3], "mlflow_run_id": "ens", "protocols": {p: {
        "sizes": [{"k": 1, "n_subsets": 3, **size}, {"k": 3, "n_subsets": 1, **size}],
        "mcnemar_full_vs_single": [{"seed": 1, "b": 3, "c": 9, "p": 0.146}]} for p in ("center", "ten_patch")}}
    ensembles = {p: {2: {"groups": [[1, 2]], "correct": {m: [c[0] & c[1]] for m, c in correctness[p].items()},
                         "member_correct": {m: [c[:2]] for m, c in correctness[p].items()}}}
                 for p in ("center", "ten_patch")}
    measured = {"n_parameters": 60_965_224, "n_neurons": 659_272, "max_conv_layer_param_share": 1.4518,
                "conv_param_shares": {"conv1": 0.06, "conv3": 1.45}}
    pre = _pre([16.6, 16.8], [39.0, 39.2], 15.4, 36.7)
    pre["pretrain_evaluated"] = [{"seed": 1, "n_images": 100, "protocols": {
        "center": {"top1_error": 60.0, "top5_error": 35.0}}}]
    return CompareInputs(results, correctness, ensemble, REFERENCE, measured, ensembles=ensembles,
                         train={s: {"train_time_s": 10.0, "final_val_top1_error": 30.0} for s in (1, 2, 3)},
                         pretrained=pre)


def _json(out):
    return json.loads(json.dumps(out, allow_nan=False))


@pytest.fixture(scope="module")
def outputs():
    ctx = RunContext("synthetic", "val", 20, 3, ("center", "ten_patch"), full_paper_model=False)
    full = build_compare(_full_inputs(), ctx, CLAIMS, CompareSettings(reference_margin_pp=2.0, n_boot=200))
    bare = build_compare(CompareInputs(_full_inputs().seed_results[:1]), ctx, CLAIMS, CompareSettings(n_boot=200))
    return {"full": _json(full), "bare": _json(bare), "ablations": _json(ablation_compare())}


@pytest.mark.parametrize("name", ["full", "bare", "ablations"])
def test_every_key_of_compare_is_declared_and_every_required_key_written(outputs, name):
    out = outputs[name]
    assert problems(out, H.CompareJson) == []


def test_the_fixtures_reach_the_optional_parts(outputs):
    full, ab = outputs["full"], outputs["ablations"]
    assert full["reference"]["tested"] and full["paired"]["ten_patch_vs_center"]["tested"]
    assert full["paired"]["ensemble_gain"]["center"]["2"]["top1_error"]["image_level"]
    assert full["pretraining"]["pretrained"] and full["model_checks"]["checks"]
    assert any(r["tested"] for r in full["claims"]) and any(not r["tested"] for r in full["claims"])
    assert not outputs["bare"]["reference"]["tested"]
    assert ab["ablation_results"]["no_lrn"]["claims"] and any("measured_on_run" in r for r in ab["claims"])


def test_a_renamed_output_key_fails(outputs):
    out = json.loads(json.dumps(outputs["full"]))
    out["claims"][0]["paper_val"] = out["claims"][0].pop("paper_value")
    assert problems(out, H.CompareJson) == [
        "compare.claims[0].paper_val: not declared in ClaimRow", "compare.claims[0].paper_value: required by "
                                                                   "ClaimRow, missing"]


# --------------------------------------------------------------------------- what the report reads


# Keys the report looks up that are not compare.json's: names of protocols, metrics, labels, arms and
# claims used as keys of compare's maps, and the keys of the other files it reads (params, manifest,
# train metrics and curves, provenance, benchmarks.json, reliability.json, pilot.json, gpu.json,
# cifar10_costs.json, published.yaml, and its own rows: deviations, plan, interpretations).
MAP_KEYS = {"center", "ten_patch", "top1_error", "top5_error", "not reproduced", "not tested", "relu", "tanh",
            "lrn-cifar10", "relu-speed", "ilsvrc2012", "train", "val"}
OTHER_FILES = {
    "acc1", "acc5", "alternatives", "ambiguity", "arms", "assumptions", "at_limit", "backend", "bad_inputs",
    "bad_inputs_tried", "base_lr", "baseline_net", "baseline_step_s_all_rounds", "basis", "batch", "batch_size",
    "chosen_factor", "classes", "code_commit", "colour_selectivity", "colour_tower", "commit", "cpu", "cpu_count",
    "crop_flip",
    "cuda", "curves", "data", "data_or_metrics_lost", "dct_scaling", "decidable", "device", "device_hours",
    "devices", "digest", "dirty", "dvc_lock_digest", "dvc_repro", "empty_classes", "encoding", "end_to_end",
    "environment", "epoch", "epochs", "est_train_s_per_seed", "eval", "eval_center_images_per_s",
    "eval_s_per_image", "eval_ten_patch", "eval_ten_patch_images_per_s", "evaluate", "evaluated_on",
    "evaluations", "expected_h", "experiments", "factors", "fast_lrn_speedup_of_step", "file", "fixed",
    "flop_per_s", "forward_only_images_per_s", "fullsize", "gap", "gflops", "git", "goal", "goals", "gpu_hours",
    "gpus", "grid", "harness_dct_decode_fit_encode_img_s", "harness_decode_fit_encode_img_s",
    "harness_decode_fit_img_s", "harness_flop_per_s", "harness_images_per_s", "harness_mfu",
    "harness_trainview_jpeg_shards_img_s", "headroom", "holdout_every", "image_size", "images",
    "images_per_s_from", "init_logit_sd", "key", "kill_points", "kill_points_tested", "load_average_after",
    "load_average_before", "loader", "loader_headroom", "loader_per_core", "loss", "lr", "lr_drops",
    "lr_select_factors", "lr_select_limit", "lr_select_steps", "lr_select_time_s", "lr_selection", "lr_steps",
    "lrn", "lrn_impl", "lrn_share_default_profile", "lrn_share_full_size", "lrn_share_pct", "machine",
    "max_drops", "measured_at", "measured_on_gpu", "median", "memory", "message", "met", "mfu", "model", "name",
    "needs", "network", "num_workers", "ok", "op", "overhead_pct", "packages", "paper", "paper_figure1_epochs_assumed",
    "paper_recipe", "params", "parts", "patience", "pca_colour", "peak_bytes", "peak_flop_per_s",
    "per_class_top1_error", "pil_open_convert_resize_crop_img_s", "pilot_train_top1_error", "plain_images_per_s",
    "precision", "prepare", "prepare_per_core", "presets", "projected_step_s", "projection", "python", "quick",
    "ratio_dct_scaling", "ratio_same_work", "ratios", "real_jpegs", "reference_lrn_step_share_pct_by_removal",
    "reference_step_share_pct", "resize", "rounds", "rule", "run", "runs", "same_weights", "scaled_images",
    "scaled_psnr_db_mean", "schedule_images", "security_checks", "self_cpu_pct", "separated", "setup", "sha",
    "skipped", "smoke", "stages_killed", "step", "step_profile", "step_ratio_to_baseline", "step_s",
    "step_share_pct", "steps", "steps_per_epoch", "stopped_at_target", "switch", "tests_failed", "tests_passed",
    "threads", "threshold_pp", "throughput", "time_vs_paper", "top_ops", "torch", "torchvision_imagefolder_img_s",
    "total_device_hours", "total_s", "towers", "tracking_faults_tried", "train_images", "train_images_per_s",
    "train_images_per_s_per_device", "train_loss", "train_overhead", "train_top1_error", "training_digest",
    "training_images_per_s", "unit_costs", "unmeasured", "val_top1_error", "variants", "view_share_pct", "wall_s",
    "weight_decay", "weights", "what", "where", "why", "why_no_run", "width", "worst_case_h"}


def declared_keys(types_=H.HANDOVER_TYPES) -> set[str]:
    return {k for t in types_ for k in t.__required_keys__ | t.__optional_keys__}


def report_keys(folder: Path = REPORT) -> dict[str, set[str]]:
    """String constants used as `x["key"]` or `x.get("key")` (setdefault, pop) in the report modules."""
    found: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            key = None
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                key = node.slice.value
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args
                  and node.func.attr in ("get", "setdefault", "pop") and isinstance(node.args[0], ast.Constant)):
                key = node.args[0].value
            if isinstance(key, str):
                found.setdefault(key, set()).add(path.name)
    return found


def test_every_key_the_report_reads_is_declared():
    keys = report_keys()
    unknown = {k: sorted(f) for k, f in keys.items() if k not in declared_keys() | MAP_KEYS | OTHER_FILES}
    assert not unknown, f"the report reads keys harness/analysis/handover.py does not declare: {unknown}"
    stale = sorted((MAP_KEYS | OTHER_FILES) - set(keys))
    assert not stale, f"allow-listed keys the report no longer reads: {stale}"


def test_a_key_renamed_in_the_types_fails_the_report_check():
    """Renaming ReferenceMetric's power_note in a copy of handover.py leaves the report's lookups of
    the old name undeclared: the check above fails on it."""
    src = Path(H.__file__).read_text()
    assert src.count("    power_note: str\n") == 1
    renamed = types.ModuleType("handover_renamed")
    src = src.replace("    power_note: str\n", "    power_notes: str\n")
    exec(compile(src, "handover_renamed", "exec", dont_inherit=True), renamed.__dict__)
    assert "power_note" in report_keys() and "power_note" in declared_keys()
    unknown = set(report_keys()) - declared_keys(renamed.HANDOVER_TYPES) - MAP_KEYS - OTHER_FILES
    assert unknown == {"power_note"}


def test_every_typeddict_of_the_module_is_listed():
    found = {v for v in vars(H).values() if isinstance(v, type) and typing.is_typeddict(v)}
    assert found == set(H.HANDOVER_TYPES)
    tree = ast.parse(Path(H.__file__).read_text())  # the report imports it: typing and dataclasses only
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"typing", "dataclasses"}, imported
