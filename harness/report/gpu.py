"""The GPU figures of the performance section: reports/gpu.json, written on a GPU machine by
benchmarks/gpu_check.py (the GPU goals' ratios, each against a baseline measured in the same process)."""

from __future__ import annotations

from harness.report.render import Doc

LABELS = {  # key -> (figure, what it is measured against)
    "lrn_vs_no_lrn": ("paper net step speed with LRN", "the same net with model.lrn none"),
    "paper_vs_torchvision_alexnet": ("paper net FLOP/s", "torchvision's alexnet, same settings"),
    "compiled_vs_eager": ("paper net compiled (inductor)", "the same net eager"),
    "pipeline_vs_model_bound": ("train stage on JPEG shards", "the model-bound step rate"),
    "stage_loop_vs_model_bound": ("train stage loop, pinned host batches", "the model-bound step rate"),
}


def gpu_section(doc: Doc, g: dict | None) -> None:
    if not g:
        doc.p("GPU figures: not measured (run `python benchmarks/gpu_check.py` on a CUDA machine to write "
              "reports/gpu.json; docs/performance.md).")
        return
    commit = g.get("commit") or {}
    where = (f"on {g['device']}" if g.get("measured_on_gpu") else "on no GPU")
    doc.p(f"GPU figures (reports/gpu.json, `python benchmarks/gpu_check.py` {where}, commit "
          f"{(commit.get('sha') or 'unknown')[:10]}{' with local changes' if commit.get('dirty') else ''}"
          f"{', smoke sizes' if g.get('smoke') else ''}). " + (g.get("note", "")))
    goals = g.get("goals", {})
    rows = []
    for key, (what, base) in LABELS.items():
        if key not in g.get("ratios", {}):
            continue
        v = g["ratios"][key]
        goal = goals.get(key, {})
        rows.append([what, base, "–" if v is None else f"{v:.2f}x",
                     f">= {goal['goal']} x" if goal else "–", _met(goal, v, g, key)])
    for key, v in g.get("images_per_s", {}).items():
        goal = goals.get(f"{key}_images_per_s", {})
        rows.append([f"training images/s, {key.replace('_', ' ')}", g.get("images_per_s_from", {}).get(key) or "–",
                     "–" if v is None else f"{v:,.0f}", f">= {goal['goal']:,.0f}" if goal else "–",
                     _met(goal, v, g, f"images_per_s.{key}")])
    doc.table(["figure", "against", "value", "goal", "met"], rows)
    e2e = g.get("end_to_end") or {}
    doc.p(f"End to end on the device: {_e2e(e2e)}.")


def _met(goal: dict, v, g: dict, key: str) -> str:
    if v is None:
        return "unmeasured: " + g.get("unmeasured", {}).get(key if "." in key else f"ratios.{key}", "")
    return "–" if not goal or goal.get("met") is None else ("yes" if goal["met"] else "no")


def _e2e(e2e: dict) -> str:
    if e2e.get("ok") is None:
        return e2e.get("reason", "not run")
    if e2e["ok"]:
        return "ok"
    failed = [k for k, v in e2e.get("parts", {}).items() if not v.get("ok")]
    return "failed: " + "; ".join(failed + ([e2e["reason"]] if e2e.get("reason") else []))  # e.g. a missing package
