"""Build the content of reports/metrics/compare.json: our seeds vs the paper and vs earlier runs.

Pure functions: the compare stage loads the inputs, calls build_compare, writes the dict
once and mirrors summary_metrics(dict) to MLflow (DESIGN.md: one source of truth).
Errors are in percent (0-100) everywhere. The output is plain JSON: no numpy types, no
NaN (undefined quantities are None).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from harness.analysis import ablation, stats
from harness.analysis.claims import Claim, RunContext, check_size_claim, matching_arm, why_not_testable

__all__ = ["CompareSettings", "build_compare", "summary_metrics", "METRICS", "to_jsonable"]

METRICS = ("top1_error", "top5_error")
REFERENCE_VERDICTS = ("consistent", "differs", "inconclusive")


@dataclass(frozen=True)
class CompareSettings:
    """Statistical settings, declared before looking at results (PAPER.md 5).

    conf: interval level; alpha: test level; margin_pp: equivalence margin in percentage
    points (for TOST against the paper and against the reference runs); n_boot and
    rng_seed: bootstrap replicates and seed (deterministic output); power: target power
    for seeds_needed.
    """

    conf: float = 0.95
    alpha: float = 0.05
    margin_pp: float = 1.0
    n_boot: int = 2000
    rng_seed: int = 0
    power: float = 0.8

    def __post_init__(self) -> None:
        """Reject settings that make the statistics meaningless."""
        if not (0 < self.conf < 1 and 0 < self.alpha < 1 and 0 < self.power < 1):
            raise ValueError(f"conf, alpha and power must be in (0, 1): {self}")
        if self.margin_pp <= 0 or self.n_boot < 1:
            raise ValueError(f"margin_pp must be > 0 and n_boot >= 1: {self}")


# --------------------------------------------------------------------------- JSON hygiene


def to_jsonable(obj: Any) -> Any:
    """Plain Python containers/scalars; numpy scalars unwrapped; NaN/inf -> None."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# --------------------------------------------------------------------------- inputs


def _wrong_key(metric: str) -> str:
    """'top1_error' -> 'top1_wrong' (the count of misclassified images)."""
    return metric.replace("_error", "_wrong")


def _protocols(seed_results: Sequence[dict]) -> list[str]:
    """Protocols in order of first appearance across seeds."""
    seen: list[str] = []
    for res in seed_results:
        seen += [p for p in res["protocols"] if p not in seen]
    return seen


def _check_seed_results(seed_results: Sequence[dict], context: RunContext) -> int:
    """Validate per-seed results; return the common number of evaluated images."""
    if not seed_results:
        raise ValueError("need at least one per-seed evaluation result")
    seeds = [r["seed"] for r in seed_results]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"duplicate seeds in evaluation results: {seeds}")
    sizes = {int(r["n_images"]) for r in seed_results}
    if len(sizes) != 1:
        raise ValueError(f"seeds were evaluated on different numbers of images: {sorted(sizes)}")
    for r in seed_results:
        for key in ("dataset", "split"):
            if key in r and r[key] != getattr(context, key):
                raise ValueError(f"seed {r['seed']}: {key} {r[key]!r} differs from the run "
                                 f"context's {getattr(context, key)!r}")
        for proto, vals in r["protocols"].items():
            for metric in METRICS:
                if metric not in vals or not 0 <= float(vals[metric]) <= 100:
                    raise ValueError(f"seed {r['seed']}, protocol {proto}: {metric} must be a "
                                     f"percentage in [0, 100], got {vals.get(metric)!r}")
    return sizes.pop()


def _values(seed_results: Sequence[dict], protocol: str, metric: str) -> list[float]:
    """Per-seed errors for one protocol and metric, in input order."""
    return [float(r["protocols"][protocol][metric]) for r in seed_results
            if protocol in r["protocols"]]


def _wrong_count(vals: dict, metric: str, n_images: int) -> int:
    """Misclassified count; derived from the percentage when the count is absent."""
    wrong = vals.get(_wrong_key(metric))
    return int(wrong) if wrong is not None else int(round(float(vals[metric]) * n_images / 100.0))


# --------------------------------------------------------------------------- sections


def _seed_rows(seed_results: Sequence[dict], n_images: int, conf: float) -> list[dict]:
    """One row per seed x protocol x metric, with the Wilson interval of that run."""
    rows = []
    for r in seed_results:
        for proto, vals in r["protocols"].items():
            for metric in METRICS:
                lo, hi = stats.wilson_interval(_wrong_count(vals, metric, n_images), n_images, conf)
                rows.append({"seed": r["seed"], "protocol": proto, "metric": metric,
                             "error": float(vals[metric]), "wilson_lo": lo, "wilson_hi": hi,
                             "n_images": n_images, "mlflow_run_id": r.get("mlflow_run_id")})
    return rows


def _checked_correct(seed_results, correct, protocol: str, metric: str, n_images: int) -> np.ndarray:
    """Validate a [n_seeds, n_images] correctness array against the per-seed wrong counts."""
    arr = np.asarray(correct)
    members = [r for r in seed_results if protocol in r["protocols"]]
    if arr.shape != (len(members), n_images) or arr.dtype != bool:
        raise ValueError(f"correctness[{protocol!r}][{metric!r}] must be a boolean array of shape "
                         f"{(len(members), n_images)} (seeds in input order), got {arr.shape} {arr.dtype}")
    for row, r in zip(arr, members):
        expected = _wrong_count(r["protocols"][protocol], metric, n_images)
        if int(np.count_nonzero(~row)) != expected:
            raise ValueError(f"correctness[{protocol!r}][{metric!r}] row of seed {r['seed']} has "
                             f"{int(np.count_nonzero(~row))} wrong, the results say {expected}")
    return arr


def _summary(seed_results, correctness, n_images: int, settings: CompareSettings) -> dict:
    """Across-seed mean, sd, t-interval and (when correctness is given) bootstrap interval."""
    out: dict = {}
    for proto in _protocols(seed_results):
        out[proto] = {}
        for metric in METRICS:
            row = stats.seed_summary(_values(seed_results, proto, metric), settings.conf)
            row.update(boot_lo=None, boot_hi=None)
            correct = (correctness or {}).get(proto, {}).get(metric)
            if correct is not None:
                arr = _checked_correct(seed_results, correct, proto, metric, n_images)
                row["boot_lo"], row["boot_hi"] = stats.two_level_bootstrap(
                    arr, settings.n_boot, settings.conf, settings.rng_seed)
            out[proto][metric] = row
    return out


def _reference_verdict(tost_p: float | None, welch_p: float | None, alpha: float) -> str:
    """consistent / differs / inconclusive for this run vs earlier runs.

    consistent: two-sample Welch TOST p < alpha, i.e. the (1 - 2 alpha) Welch interval of
    the difference lies inside +-margin (checked first: a significant difference smaller
    than the declared margin is not meaningful). differs: Welch p < alpha. Otherwise
    inconclusive (including too few seeds on either side for a variance).
    """
    if tost_p is not None and tost_p < alpha:
        return "consistent"
    if welch_p is not None and welch_p < alpha:
        return "differs"
    return "inconclusive"


def _reference_metric(ours: list[float], ref: list[float], settings: CompareSettings) -> dict:
    """Our seeds vs the reference seeds for one metric."""
    welch = stats.welch_difference(ours, ref, settings.conf)
    tost = stats.welch_tost(ours, ref, settings.margin_pp)
    mw = stats.mann_whitney(ours, ref)
    boot = stats.bootstrap_difference_interval(ours, ref, settings.n_boot, settings.conf,
                                               settings.rng_seed)
    so, sr = stats.seed_summary(ours, settings.conf), stats.seed_summary(ref, settings.conf)
    return {"ours": {k: so[k] for k in ("mean", "sd", "n")},
            "reference": {k: sr[k] for k in ("mean", "sd", "n")},
            "diff": welch["diff"], "lo": welch["lo"], "hi": welch["hi"],
            "welch_p": welch["p"], "tost_p": tost["p"], "mann_whitney_p": mw["p"],
            "boot_lo": boot[0], "boot_hi": boot[1],
            "verdict": _reference_verdict(tost["p"], welch["p"], settings.alpha)}


def _reference(seed_results, reference: dict | None, context: RunContext,
               settings: CompareSettings) -> dict:
    """This run vs a reference distribution of earlier runs (same profile, other seeds)."""
    if reference is None:
        return {"tested": False, "reason": "no reference distribution of earlier runs was given"}
    proto = reference.get("protocol")
    if reference.get("dataset") != context.dataset:
        return {"tested": False, "reason": f"the reference runs used the {reference.get('dataset')} "
                f"dataset; this run uses {context.dataset}"}
    if proto not in _protocols(seed_results):
        return {"tested": False, "reason": f"the reference runs were evaluated with protocol "
                f"{proto!r}, which this run did not evaluate"}
    our_seeds = [r["seed"] for r in seed_results if proto in r["protocols"]]
    out = {"tested": True, "profile": reference.get("profile"), "dataset": reference["dataset"],
           "protocol": proto, "reference_seeds": list(reference.get("seeds", [])),
           "overlapping_seeds": sorted(set(our_seeds) & set(reference.get("seeds", []))),
           "metrics": {}}
    for metric in METRICS:
        if reference.get(metric):
            out["metrics"][metric] = _reference_metric(
                _values(seed_results, proto, metric), [float(v) for v in reference[metric]], settings)
    return out


def _ensemble_entry(ensemble: dict | None, protocol: str, k: int) -> dict | None:
    """The ensemble-stage row for k models under a protocol, if it exists.

    Accepts {protocol: {"sizes": [...]}} or the ensemble stage's whole metrics dict,
    which nests that mapping under "protocols".
    """
    by_protocol = (ensemble or {}).get("protocols", ensemble or {})
    sizes = (by_protocol.get(protocol) or {}).get("sizes") or []
    return next((row for row in sizes if int(row.get("k", -1)) == k), None)


def _test_single(claim: Claim, values: list[float], n_images: int, s: CompareSettings) -> dict:
    """Single-model claim: our seed mean vs the paper, noise of both test sets included."""
    res = stats.test_against_published(values, claim.value, claim.n_images, n_images, s.conf)
    sd = stats.seed_summary(values)["sd"]
    extra = 0.0  # noise more seeds cannot remove; same terms as the test (none if N_p unknown)
    if claim.n_images is not None:
        extra = (stats.binomial_var_pct(claim.value, claim.n_images)
                 + stats.binomial_var_pct(min(max(res["mean"], 0.0), 100.0), n_images))
    needed = None if sd is None else stats.seeds_needed(sd, s.margin_pp, s.alpha, s.power, extra)
    out = {"method": "seeds", "ours_mean": res["mean"], "sd": sd, "n": res["n"],
           "lo": res["lo"], "hi": res["hi"], "diff": res["diff"], "se": res["se"],
           "df": res["df"], "p_value": res["p"], "seeds_needed": needed}
    if sd is None:
        out["seeds_needed_note"] = "one seed gives no spread; run at least 2 seeds"
    elif needed is None:
        out["seeds_needed_note"] = (
            f"the binomial noise of the two test sets alone exceeds what a {s.margin_pp:g} pp "
            f"shift allows at power {s.power:g}; no number of seeds suffices")
    return out


def _test_ensemble(claim: Claim, entry: dict, values: list[float], n_images: int,
                   s: CompareSettings) -> dict:
    """k-model claim: the ensemble stage's k-model error vs the paper.

    The seed variance of one k-model ensemble is approximated by the single-model seed
    variance / k (averaging k independently trained models); an approximation, noted in
    the output. Binomial noise of both test sets is included as for single models.
    """
    k = claim.n_models
    mean = float(entry[f"{claim.metric}_mean"])
    single_sd = stats.seed_summary(values)["sd"]
    var = None if single_sd is None else single_sd**2 / k
    res = stats.compare_mean_to_published(mean, var, len(values) - 1, claim.value,
                                          claim.n_images, n_images, s.conf)
    return {"method": "ensemble", "ours_mean": mean,
            "sd": None if single_sd is None else single_sd / math.sqrt(k), "n": len(values),
            "n_subsets": entry.get("n_subsets"), "lo": res["lo"], "hi": res["hi"],
            "diff": res["diff"], "se": res["se"], "df": res["df"], "p_value": res["p"],
            "seeds_needed": None,
            "method_note": f"seed sd of a {k}-model ensemble approximated as single-model sd / sqrt({k})"}


def _claim_base(claim: Claim) -> dict:
    """Fields every claim row carries, tested or not."""
    return {"id": claim.id, "kind": claim.kind, "metric": claim.metric, "paper_value": claim.value,
            "unit": claim.unit, "dataset": claim.dataset, "split": claim.split,
            "protocol": claim.protocol, "n_models": claim.n_models,
            "paper_section": claim.paper_section, "tested": False}


def _claim_row(claim: Claim, seed_results, n_images: int, context: RunContext, ensemble,
               measured: Mapping[str, float] | None, s: CompareSettings,
               arm_measures: Mapping[str, tuple[str, dict]] | None = None) -> dict:
    """Test one claim, or say why it cannot be tested."""
    row = _claim_base(claim)
    reason = why_not_testable(claim, context)
    if claim.kind in ("ablation", "convergence"):
        return _ablation_claim_row(claim, row, reason, (arm_measures or {}).get(claim.id), s)
    if reason is None and claim.kind == "size":
        check = check_size_claim(claim, dict(measured or {}))
        if not check["tested"]:
            return {**row, "reason": check["reason"]}
        return {**row, "tested": True, "measured": check["measured"],
                "verdict": "reproduced" if check["match"] else "differs"}
    if reason is not None:
        return {**row, "reason": reason}
    values = _values(seed_results, claim.protocol, claim.metric)
    if claim.n_models == 1:
        res = _test_single(claim, values, n_images, s)
    else:
        entry = _ensemble_entry(ensemble, claim.protocol, claim.n_models)
        if entry is None:
            return {**row, "reason": f"the ensemble stage reported no {claim.n_models}-model "
                    f"ensemble for the {claim.protocol} protocol"}
        res = _test_ensemble(claim, entry, values, n_images, s)
    tost = stats.tost_from_estimate(res["diff"], res["se"], res["df"], s.margin_pp)
    res["tost_p"] = tost["p"]
    res["verdict"] = stats.verdict(res["ours_mean"], res["lo"], res["hi"], claim.value,
                                   s.margin_pp, tost["p"], s.alpha)
    return {**row, "tested": True, **res}


# --------------------------------------------------------------------------- ablations


def _ablation_protocol(ablations: Mapping) -> str:
    return ablations.get("protocol") or "center"


def _arm_results(seed_results, ablations: Mapping | None, s: CompareSettings) -> dict:
    """Per arm: overrides, seeds, arm-minus-baseline effect per protocol and metric, convergence."""
    out = {}
    if not ablations:
        return out
    target = float(ablations["target_train_error"])
    for name, arm in ablations.get("arms", {}).items():
        results = arm["results"]
        protocols = {}
        for proto in _protocols(results):
            protocols[proto] = {m: ablation.error_effect(_values(seed_results, proto, m), _values(results, proto, m),
                                                         s.conf, s.n_boot, s.rng_seed)
                                for m in METRICS if _values(seed_results, proto, m)}
        conv = ablation.convergence_effect(
            ablations.get("baseline_curves", {}), arm.get("curves", {}), target,
            int(ablations.get("baseline_steps_per_epoch", 1)), int(arm.get("steps_per_epoch", 1)),
            "baseline", s.alpha, s.conf, s.n_boot, s.rng_seed)
        out[name] = {"overrides": dict(arm.get("overrides", {})), "seeds": [r["seed"] for r in results],
                     "baseline_seeds": [r["seed"] for r in seed_results], "protocols": protocols,
                     "convergence": conv, "claims": {}}
    return out


def _measure_claim(claim: Claim, arm: str, arm_result: dict, ablations: Mapping, s: CompareSettings) -> dict | None:
    """The claim's quantity measured on `arm`: an error effect or a convergence ratio."""
    if claim.kind == "convergence":
        return ablation.convergence_effect(
            ablations.get("baseline_curves", {}), ablations["arms"][arm].get("curves", {}),
            float(ablations["target_train_error"]), int(ablations.get("baseline_steps_per_epoch", 1)),
            int(ablations["arms"][arm].get("steps_per_epoch", 1)), claim.faster, s.alpha, s.conf, s.n_boot,
            s.rng_seed)
    metric = claim.metric.removesuffix("_reduction")
    effect = arm_result["protocols"].get(_ablation_protocol(ablations), {}).get(metric)
    if effect is None:
        return None
    return {**effect, "protocol": _ablation_protocol(ablations), "metric": metric,
            "agrees_with_paper_direction": (effect["diff"] > 0) == (claim.value > 0),
            "method_note": "diff = arm error - baseline error (pp), the error the design choice saves; "
                           "Welch t interval and p, percentile bootstrap interval, Mann-Whitney p"}


def _arm_measures(claims, context: RunContext, arm_results: dict, ablations, s) -> dict:
    """claim id -> (arm, measurement) for every ablation/convergence claim a trained arm measures."""
    out = {}
    for claim in claims:
        if claim.kind not in ("ablation", "convergence"):
            continue
        arm = matching_arm(claim, context.arms)
        if arm is None or arm not in arm_results:
            continue
        m = _measure_claim(claim, arm, arm_results[arm], ablations, s)
        if m is not None:
            out[claim.id] = (arm, m)
            arm_results[arm]["claims"][claim.id] = {"metric": claim.metric, "paper_value": claim.value,
                                                   "unit": claim.unit, **m}
    return out


def _ablation_claim_row(claim: Claim, row: dict, reason: str | None, measure, s: CompareSettings) -> dict:
    """Untested: the reason, plus the arm's measurement when one ran. Tested: a verdict."""
    if measure is None:
        return {**row, "reason": reason or "no trained arm measures this claim's metric"}
    arm, m = measure
    if claim.kind == "convergence":
        summary = {"arm": arm, "ours_mean": m.get("ratio"), "lo": m.get("ratio_lo"), "hi": m.get("ratio_hi"),
                   "p_value": m.get("p_faster"), "agrees_with_paper_direction": m.get("agrees_with_paper_direction")}
    else:
        summary = {"arm": arm, "ours_mean": m["diff"], "lo": m["lo"], "hi": m["hi"], "p_value": m["p_value"],
                   "boot_lo": m["boot_lo"], "boot_hi": m["boot_hi"], "mann_whitney_p": m["mann_whitney_p"],
                   "n": m["arm"]["n"], "n_baseline": m["baseline"]["n"],
                   "agrees_with_paper_direction": m["agrees_with_paper_direction"]}
    if reason is not None or (claim.kind == "convergence" and not m.get("tested")):
        why = reason or m.get("reason")
        return {**row, "reason": f"{why} (measured on this run's data: see ablation_results.{arm})",
                "measured_on_run": summary}
    if claim.kind == "convergence":
        return {**row, "tested": True, "method": "convergence", **summary,
                "verdict": ablation.convergence_verdict(m, claim.value, s.alpha)}
    v = ablation.effect_verdict(m, claim.value, s.margin_pp, s.alpha)
    return {**row, "tested": True, "method": "ablation", **summary, **v}


def _counts(rows: list[dict]) -> dict:
    """How many claims were tested, and the verdicts of those that were."""
    tested = [r for r in rows if r["tested"]]
    verdicts: dict[str, int] = {}
    for r in tested:
        verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
    return {"claims_total": len(rows), "claims_tested": len(tested),
            "claims_untested": len(rows) - len(tested), "verdicts": verdicts}


# --------------------------------------------------------------------------- entry points


def build_compare(
    seed_results: Sequence[dict],
    context: RunContext,
    claims: Sequence[Claim],
    settings: CompareSettings = CompareSettings(),
    correctness: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    ensemble: dict | None = None,
    reference: dict | None = None,
    measured: Mapping[str, float] | None = None,
    ablations: Mapping | None = None,
) -> dict:
    """The compare.json content: per-seed rows, across-seed summary, reference, claims.

    seed_results: per-seed evaluation dicts (errors in percent, see module docs);
    correctness: protocol -> metric -> bool [n_seeds, n_images] (rows in seed_results
    order) for the two-level bootstrap; ensemble: the ensemble stage's dict, passed
    through and used for k-model claims; reference: per-seed errors of earlier runs;
    measured: size/cost measurements keyed by claim metric (e.g. n_parameters);
    ablations: the trained arms, {protocol, target_train_error, baseline_curves {seed: [train
    top-1 error per epoch]}, baseline_steps_per_epoch, arms {name: {overrides, results
    (per-seed evaluation dicts), curves, steps_per_epoch}}}; their names and overrides must
    also be in context.arms for claims to match them.
    """
    n_images = _check_seed_results(seed_results, context)
    arm_results = _arm_results(seed_results, ablations, settings)
    measures = _arm_measures(claims, context, arm_results, ablations, settings)
    claim_rows = [_claim_row(c, seed_results, n_images, context, ensemble, measured, settings, measures)
                  for c in claims]
    out = {
        "settings": asdict(settings),
        "context": asdict(context),
        "seeds": _seed_rows(seed_results, n_images, settings.conf),
        "summary": _summary(seed_results, correctness, n_images, settings),
        "reference": _reference(seed_results, reference, context, settings),
        "claims": claim_rows,
        "ensemble": ensemble,
        "ablation_results": arm_results,
        "counts": _counts(claim_rows),
    }
    return to_jsonable(out)


_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-/ ]")


def _metric_name(*parts: str) -> str:
    """Join parts with '.' and replace characters MLflow rejects with '_'."""
    return _UNSAFE.sub("_", ".".join(str(p) for p in parts))


def summary_metrics(compare: dict) -> dict[str, float]:
    """Flatten compare.json aggregates into MLflow metric names and float values.

    e.g. center.top1_error.mean / .sd / .n / .t_lo / .t_hi / .boot_lo / .boot_hi,
    reference.top1_error.diff / .welch_p, claim.<id>.ours_mean / .lo / .hi / .p_value /
    .tost_p, and claims.tested / claims.total. None values are skipped.
    """
    out: dict[str, float] = {}

    def put(value: Any, *parts: str) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[_metric_name(*parts)] = float(value)

    for proto, metrics in compare.get("summary", {}).items():
        for metric, row in metrics.items():
            for stat, value in row.items():
                put(value, proto, metric, stat)
    for metric, row in compare.get("reference", {}).get("metrics", {}).items():
        for stat in ("diff", "lo", "hi", "welch_p", "tost_p", "mann_whitney_p"):
            put(row.get(stat), "reference", metric, stat)
    for row in compare.get("claims", []):
        if row.get("tested"):
            for stat in ("ours_mean", "sd", "lo", "hi", "p_value", "tost_p", "measured"):
                put(row.get(stat), "claim", row["id"], stat)
    for arm, res in compare.get("ablation_results", {}).items():
        for proto, metrics in res.get("protocols", {}).items():
            for metric, e in metrics.items():
                for stat in ("diff", "lo", "hi", "p_value", "boot_lo", "boot_hi", "mann_whitney_p"):
                    put(e.get(stat), "ablation", arm, proto, metric, stat)
        conv = res.get("convergence", {})
        for stat in ("ratio", "p_faster"):
            put(conv.get(stat), "ablation", arm, "convergence", stat)
    counts = compare.get("counts", {})
    put(counts.get("claims_total"), "claims", "total")
    put(counts.get("claims_tested"), "claims", "tested")
    return out
