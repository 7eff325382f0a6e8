"""The costed reproduction plan: for every claim this run cannot decide, the run that would and
its projected device-hours on the pilot's devices (docs/fidelity.md, "Pilot").

Claim rows are read generically from reports/metrics/compare.json: `id`, `tested`, `verdict`,
`reason`, `kind`, `dataset`, `n_models`, and, when present, `arm`, `seeds_needed` and
`decidable` (false: no run of this harness can decide it). Costs are the pilot's device-seconds
per image of the paper net (reports/pilot.json `unit_costs`) times the images a run processes.
"""

from __future__ import annotations

import re

from harness.analysis.handover import ClaimRow, CompareJson

# Images per split of the public releases (docs/fidelity.md, "Pilot"); the split evaluated.
DATASETS = {
    "ilsvrc2012": {"name": "ILSVRC-2012", "train": 1_281_167, "val": 50_000, "eval": ("val", 50_000)},
    "ilsvrc2010": {"name": "ILSVRC-2010", "train": 1_261_406, "val": 50_000, "eval": ("test", 150_000)},
    # the paper's ablations name no release: the plan uses ILSVRC-2012 (docs/paper.md)
}
# The paper's ablations name no ImageNet release: the plan runs them on ILSVRC-2012, beside (and
# sharing the baseline seeds of) the ILSVRC-2012 headline claims (docs/paper.md).
SAME_RUN = {"imagenet-unspecified": "ilsvrc2012"}
PAPER_EPOCHS = 90  # paper 5: "roughly 90 cycles through the training set"
PLAN_SEEDS = 5  # the paper's five-CNN ensemble; a verdict's seeds_needed wins when larger
NETWORK = "the paper net (two towers, full width, 224 px crops), the presets' recipe"

# Phrases of a `reason` that no run of this harness can remove (used when a row has no
# `decidable` field): other methods, other networks or data this harness does not build.
_NEVER = ("does not build", "competing method", "labels are private", "private", "paper's hardware",
          "Fall-2011", "Fall-2009")


def undecided(rows: list[ClaimRow]) -> list[ClaimRow]:
    """Claim rows this run did not decide: not tested, or tested and inconclusive."""
    return [r for r in rows if not r.get("tested") or str(r.get("verdict", "")).startswith("inconclusive")]


def _never(row: ClaimRow) -> str | None:
    if row.get("decidable") is False:
        return row.get("reason") or "marked not decidable by any run of this harness"
    reason = row.get("reason") or ""
    return reason if any(p in reason for p in _NEVER) else None


def _arm_text(row: ClaimRow) -> str | None:
    arm = row.get("arm")
    if isinstance(arm, dict):
        return ", ".join(f"{k}: {v}" for k, v in arm.items())
    if isinstance(arm, (list, tuple)):
        return ", ".join(f"{k}: {v}" for k, v in arm)
    if arm:
        return str(arm)
    m = re.search(r"add an arm with \{([^}]*)\}", row.get("reason") or "")
    return m.group(1) if m else None


def _seeds(row: ClaimRow) -> int:
    return max(PLAN_SEEDS, int(row.get("n_models") or 1), int(row.get("seeds_needed") or 0))


def run_cost(data: dict, seeds: int, arms: int, costs: dict) -> float | None:
    """Device-hours of one run: seeds x (baseline + each arm) x (90 epochs of training with
    validation each epoch, then centre and 10-patch evaluation)."""
    per = [costs.get(k) for k in ("train_device_s_per_image", "eval_center_device_s_per_image",
                                  "eval_ten_patch_device_s_per_image")]
    if any(v is None for v in per):
        return None
    train, centre, ten = per
    one = PAPER_EPOCHS * (data["train"] * train + data["val"] * centre) + data["eval"][1] * (centre + ten)
    return seeds * (1 + arms) * one / 3600


def build(compare: CompareJson, pilot: dict | None) -> dict:
    """{runs: [...], claims: [...], total_device_hours} for the report's plan section.

    One run per data set decides all its claims: the most seeds any of them needs, every arm
    any of them needs (the arms share the baseline seeds)."""
    costs = (pilot or {}).get("unit_costs") or {}
    runs: dict[str, dict] = {}
    claims = []
    for row in undecided(compare.get("claims", [])):
        never = _never(row)
        key = SAME_RUN.get(row.get("dataset"), row.get("dataset"))
        data = DATASETS.get(key)
        if never or data is None:
            why = never or (
                "another network (the four-layer CIFAR-10 CNN of paper 3.1/3.3): not costed from the pilot's paper-net "
                "figures" if row.get("dataset") == "cifar10" else
                f"data set {row.get('dataset')!r}: no projection for it in this version")
            claims.append({"id": row["id"], "run": None, "needs": row.get("reason"), "why_no_run": why})
            continue
        arm = _arm_text(row)
        run = runs.setdefault(key, {"data": data, "seeds": 0, "arms": [], "claims": []})
        run["seeds"] = max(run["seeds"], _seeds(row))
        if arm and arm not in run["arms"]:
            run["arms"].append(arm)
        run["claims"].append(row["id"])
        claims.append({"id": row["id"], "run": key, "needs": row.get("reason"), "arm": arm})
    if "ilsvrc2012" in runs and any(r.get("dataset") in SAME_RUN for r in compare.get("claims", [])):
        runs["ilsvrc2012"]["data"] = {**DATASETS["ilsvrc2012"], "name": "ILSVRC-2012 (also for the ablations, whose "
                                                                        "ImageNet release the paper does not name)"}
    out_runs = []
    for i, (key, run) in enumerate(runs.items(), 1):
        hours = run_cost(run["data"], run["seeds"], len(run["arms"]), costs)
        out_runs.append({"run": f"R{i}", "data": run["data"]["name"], "network": NETWORK, "seeds": run["seeds"],
                         "epochs": PAPER_EPOCHS, "arms": run["arms"], "claims": run["claims"],
                         "evaluated_on": f"{run['data']['eval'][0]} ({run['data']['eval'][1]:,} images)",
                         "device_hours": hours})
        run["id"] = f"R{i}"
    for c in claims:
        c["run"] = runs[c["run"]]["id"] if c["run"] else None
    hours = [r["device_hours"] for r in out_runs]
    return {"runs": out_runs, "claims": claims, "devices": costs.get("devices"), "basis": costs.get("basis"),
            "total_device_hours": None if any(h is None for h in hours) else sum(hours)}
