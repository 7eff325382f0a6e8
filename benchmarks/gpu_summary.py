"""reports/gpu.json: the GPU goals' figures (docs/performance.md) taken from one run of benchmarks/gpu_check.py.

Every figure is a ratio against a baseline measured in the same process (or an images/s figure
with the part it came from). Where the run could not measure a figure (no CUDA device, a part
that failed or ran out of time) the value is null and `unmeasured` says why: nothing is filled
in. A run on a CPU (--smoke) measures CPU figures at toy sizes; they say nothing about a GPU, so
its goals are not judged (met: null) and `measured_on_gpu` is false.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# the GPU goals (docs/performance.md), each measured side by side on the device
GOALS = {"lrn_vs_no_lrn": 0.85, "paper_vs_torchvision_alexnet": 0.6, "compiled_vs_eager": 1.1,
         "pipeline_vs_model_bound": 0.9, "fp32_ieee_images_per_s": 8000.0}
RATIOS = ("lrn_vs_no_lrn", "paper_vs_torchvision_alexnet", "compiled_vs_eager", "pipeline_vs_model_bound")
PIPELINE_REASON = ("measured by benchmarks/gpu_e2e.py (the train stage reading JPEG shards it prepares), "
                   "not by the GPU check; not run yet")


def commit() -> dict:
    """The checkout's commit, and whether the working tree differs from it."""
    def git(*args):
        try:
            r = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, str(exc)
        return (r.stdout.strip(), None) if r.returncode == 0 else (None, r.stderr.strip()[:200])
    sha, err = git("rev-parse", "HEAD")
    if sha is None:
        return {"sha": None, "reason": f"not a git checkout here ({err})"}
    status, _ = git("status", "--porcelain", "--untracked-files=no")
    return {"sha": sha, "dirty": bool(status)}


def build(result: dict, smoke: bool, detail: str, end_to_end: dict | None = None) -> dict:
    parts = result.get("parts", {})
    env = result.get("environment", {})
    cuda = str(env.get("device", "")).startswith("cuda")
    out = {"device": env.get("gpu") if cuda else "cpu", "measured_on_gpu": cuda, "smoke": smoke,
           "commit": commit(), "torch": env.get("torch"), "cuda": env.get("cuda"), "detail": detail,
           "ratios": {}, "images_per_s": {}, "unmeasured": {}}
    if not cuda:
        out["note"] = ("no CUDA device: every figure here is a CPU's at the check's sizes and says nothing "
                       "about a GPU's speed; the GPU figures are unmeasured")
    ratios = _ratios(parts)
    if end_to_end and end_to_end.get("pipeline_vs_model_bound") is not None:  # gpu_e2e.py measured it
        ratios["pipeline_vs_model_bound"] = (end_to_end["pipeline_vs_model_bound"], None)
    for name, (value, reason) in ratios.items():
        _put(out, "ratios", name, value, reason)
    out["images_per_s_from"] = {}
    for name, (value, reason, source) in _rates(parts, cuda).items():
        _put(out, "images_per_s", name, value, reason)
        out["images_per_s_from"][name] = source
    out["goals"] = {k: {"goal": g, "met": _met(out, k, g, cuda)} for k, g in GOALS.items()}
    out["lrn"] = _lrn(parts)
    out["end_to_end"] = end_to_end or {"ok": None, "reason": "not run: python benchmarks/gpu_e2e.py"}
    return out


def _put(out: dict, section: str, name: str, value, reason: str | None) -> None:
    out[section][name] = value
    if value is None:
        out["unmeasured"][f"{section}.{name}"] = reason


def _met(out: dict, key: str, goal: float, cuda: bool):
    value = out["images_per_s"].get("fp32_ieee") if key == "fp32_ieee_images_per_s" else out["ratios"].get(key)
    return None if value is None or not cuda else value >= goal


def _ok(parts: dict, name: str) -> tuple[dict | None, str | None]:
    p = parts.get(name)
    if p is None:
        return None, f"the part '{name}' did not run"
    if not p.get("ok"):
        return None, f"the part '{name}' failed: {p.get('error')}"
    return p, None


def _ratios(parts: dict) -> dict:
    eager, why = _ok(parts, "side by side eager")
    out = {"lrn_vs_no_lrn": (eager and eager.get("lrn_vs_no_lrn"), why),
           "paper_vs_torchvision_alexnet": (eager and eager["paper_vs_torchvision_alexnet_per_flop"], why)}
    compiled, why_c = _ok(parts, "side by side compiled")
    if compiled and compiled.get("skipped"):
        compiled, why_c = None, compiled["skipped"]
    value = compiled["nets"]["paper"]["images_per_s"] / eager["nets"]["paper"]["images_per_s"] \
        if compiled and eager else None
    out["compiled_vs_eager"] = (value, why_c or why)
    out["pipeline_vs_model_bound"] = (None, PIPELINE_REASON)
    stage, why_s = _ok(parts, "stage train bf16 autocast channels_last eager")
    bound = next((p for k, p in parts.items() if k.startswith("train bf16 channels_last") and k.endswith("eager")
                  and p.get("ok") and stage and p["batch"] == stage.get("batch")), None)
    out["stage_loop_vs_model_bound"] = (stage["images_per_s"] / bound["images_per_s"] if stage and bound else None,
                                        why_s or "no model-bound bf16 channels_last run at the loop's batch")
    return out


def _rates(parts: dict, cuda: bool) -> dict:
    """Best eager training images/s of the paper net in each precision: (value, why not, from which part)."""
    out = {}
    for key, precision in (("fp32_ieee", "fp32"), ("tf32", "tf32"), ("bf16", "bf16")):
        runs = [(k, p) for k, p in parts.items() if k.startswith("train ") and p.get("ok")
                and p.get("precision") == precision and not p.get("compile")]
        if key == "tf32" and not cuda:
            out[key] = (None, "TF32 is a mode of CUDA matmuls and convolutions: a CPU computes IEEE fp32", None)
        elif not runs:
            out[key] = (None, f"no eager {precision} training part finished", None)
        else:
            k, p = max(runs, key=lambda kp: kp[1]["images_per_s"])
            out[key] = (p["images_per_s"], None, k)
    return out


def _lrn(parts: dict) -> dict:
    """The fused LRN against nn.LocalResponseNorm on the device (the check's lrn part)."""
    p, why = _ok(parts, "lrn agreement")
    side = parts.get("side by side eager", {})
    if p is None:
        return {"kernel": side.get("lrn_kernel"), "reason": why}
    layers = p["layers"]
    worst = {dt: max((max(v["max_rel_diff_forward"], v["max_rel_diff_backward"])
                      for k, v in layers.items() if k.endswith(dt)), default=None)
             for dt in ("float32", "bfloat16")}
    train = parts.get("lrn fast vs reference, training", {}).get("train", {})
    return {"kernel": p.get("lrn_kernel", side.get("lrn_kernel")), "max_rel_diff_float32": worst["float32"],
            "max_rel_diff_bfloat16": worst["bfloat16"],
            "layer_speedup_vs_reference": {k: v.get("speedup") for k, v in layers.items()},
            "training_images_per_s": train}
