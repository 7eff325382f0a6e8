"""Build the content of reports/metrics/compare.json: our seeds vs the paper and vs earlier runs.

Pure functions: the compare stage loads the inputs, calls build_compare, writes the dict once
and mirrors summary_metrics(dict) to MLflow (one source of truth). Every claim goes through
verdict.py, the code path `harness verdict` uses too: this module only gathers each claim's
numbers from the run (Evidence) or says why it cannot. Errors are in percent (0-100). The
output is plain JSON: no numpy types, no NaN (undefined quantities are None).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict
from typing import Any, Mapping, Sequence

import numpy as np

from harness.analysis import ablation, stats, verdict
from harness.analysis.claims import Claim, RunContext, matching_arm, target_for, testability
from harness.analysis.handover import CompareInputs, CompareJson

__all__ = ["CompareInputs", "CompareSettings", "build_compare", "summary_metrics", "METRICS", "to_jsonable",
           "evidence_for"]

METRICS = ("top1_error", "top5_error")
REFERENCE_VERDICTS = ("consistent", "differs", "inconclusive")
CompareSettings = verdict.Settings


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


def _by_seed(seed_results: Sequence[dict], protocol: str, metric: str) -> dict[int, float]:
    return {r["seed"]: float(r["protocols"][protocol][metric]) for r in seed_results if protocol in r["protocols"]}


def _wrong_count(vals: dict, metric: str, n_images: int) -> int:
    """Misclassified count; derived from the percentage when the count is absent."""
    wrong = vals.get(_wrong_key(metric))
    return int(wrong) if wrong is not None else int(round(float(vals[metric]) * n_images / 100.0))


# --------------------------------------------------------------------------- descriptive sections


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


# --------------------------------------------------------------------------- reference runs


def _reference_metric(ours: list[float], ref: list[float], s: CompareSettings) -> dict:
    """Our seeds vs the reference seeds for one metric (verdict after Holm, in _reference)."""
    welch = stats.welch_difference(ours, ref, s.conf)
    tost = stats.welch_tost(ours, ref, s.reference_margin_pp)
    mw = stats.mann_whitney(ours, ref)
    boot = stats.bootstrap_difference_interval(ours, ref, s.n_boot, s.conf, s.rng_seed)
    so, sr = stats.seed_summary(ours, s.conf), stats.seed_summary(ref, s.conf)
    return {"ours": {k: so[k] for k in ("mean", "sd", "n")},
            "reference": {k: sr[k] for k in ("mean", "sd", "n")},
            "diff": welch["diff"], "lo": welch["lo"], "hi": welch["hi"],
            "welch_p": welch["p"], "tost_p": tost["p"], "mann_whitney_p": mw["p"],
            "boot_lo": boot[0], "boot_hi": boot[1], **_reference_power(so, sr, s)}


def _reference_power(so: dict, sr: dict, s: CompareSettings) -> dict:
    """Can this comparison show consistency at all? Power of the Welch TOST at a true
    difference of 0 with the observed sds, and the seeds per group that would reach s.power."""
    if so["sd"] is None or sr["sd"] is None or so["sd"] + sr["sd"] == 0:
        return {"power": None, "seeds_needed": None,
                "power_note": "too few seeds on one side for a spread: the comparison cannot decide"}
    power = stats.welch_tost_power(so["sd"], sr["sd"], so["n"], sr["n"], s.reference_margin_pp, s.alpha)
    need = next((n for n in range(2, verdict.N_MAX + 1)
                 if stats.welch_tost_power(so["sd"], sr["sd"], n, n, s.reference_margin_pp, s.alpha) >= s.power), None)
    if power >= s.power:
        note = f"at {so['n']} vs {sr['n']} seeds the equivalence test has power {power:.2f}"
    else:
        note = (f"cannot decide at this n: at {so['n']} vs {sr['n']} seeds and these spreads the equivalence test "
                f"within +-{s.reference_margin_pp:g} pp has power {power:.2f} < {s.power:g}; it needs "
                + (f"{need} seeds per group" if need else f"more than {verdict.N_MAX} seeds per group"))
    return {"power": power, "seeds_needed": need, "power_note": note}


def _reference(seed_results, reference: dict | None, context: RunContext, s: CompareSettings) -> dict:
    """This run vs a reference distribution of earlier runs (same profile, other seeds).

    consistent: Welch TOST within +-reference_margin_pp (adjusted p < alpha); differs: Welch p
    < alpha, i.e. a difference from 0 (a regression check: any real difference matters);
    inconclusive otherwise. Holm across the metrics compared, each family separately.
    """
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
           "margin_pp": s.reference_margin_pp, "metrics": {}}
    for metric in METRICS:
        if reference.get(metric):
            out["metrics"][metric] = _reference_metric(
                _values(seed_results, proto, metric), [float(v) for v in reference[metric]], s)
    _reference_verdicts(out["metrics"], s)
    return out


def _reference_verdicts(metrics: dict, s: CompareSettings) -> None:
    names = list(metrics)
    for key in ("tost_p", "welch_p"):
        have = [n for n in names if metrics[n][key] is not None]
        adj = stats.holm([metrics[n][key] for n in have]) if s.multiplicity == "holm" else \
            [metrics[n][key] for n in have]
        for n in names:
            metrics[n][f"{key}_adj"] = dict(zip(have, adj)).get(n)
    for n in names:
        m = metrics[n]
        m["verdict"] = ("consistent" if m["tost_p_adj"] is not None and m["tost_p_adj"] < s.alpha else
                        "differs" if m["welch_p_adj"] is not None and m["welch_p_adj"] < s.alpha else "inconclusive")


# --------------------------------------------------------------------------- paired analyses


def _ten_patch_vs_center(seed_results, correctness, s: CompareSettings) -> dict:
    """Per seed McNemar (same images, both protocols) and a paired t across seeds."""
    protos = _protocols(seed_results)
    if "center" not in protos or "ten_patch" not in protos:
        return {"tested": False, "reason": "needs both centre-crop and 10-patch evaluation"}
    out = {"tested": True, "metrics": {}}
    for metric in METRICS:
        c, t = _by_seed(seed_results, "center", metric), _by_seed(seed_results, "ten_patch", metric)
        seeds = sorted(set(c) & set(t))
        rows = []
        for i, seed in enumerate(seeds):
            row = {"seed": seed, "center": c[seed], "ten_patch": t[seed], "gain": c[seed] - t[seed]}
            cc, tc = ((correctness or {}).get(p, {}).get(metric) for p in ("center", "ten_patch"))
            if cc is not None and tc is not None:
                row["mcnemar"] = stats.mcnemar(np.asarray(tc)[i], np.asarray(cc)[i])  # b: only 10-patch right
            rows.append(row)
        est = stats.paired_effect([t[x] for x in seeds], [c[x] for x in seeds])
        lo, hi = stats.interval(est, s.conf)
        out["metrics"][metric] = {"per_seed": rows, "gain": est.value, "lo": lo, "hi": hi, "n": est.n,
                                  "p_value": stats.two_sided_p(est), "method": "paired t over seeds (centre - 10-patch)"}
    return out


def _ensemble_gain(seed_results, ensembles, s: CompareSettings) -> dict:
    """Gain of a k-ensemble over its own members (mean member error - ensemble error), per k.

    Across seeds: a paired t interval over the disjoint k-groups when there are at least 2 of
    them. Always: the image-level paired interval of the first group, conditional on its seeds
    (test-image noise only, not seed noise), so it is labelled as such.
    """
    out: dict = {}
    for proto, by_k in (ensembles or {}).items():
        out[proto] = {}
        for k, ens in sorted(by_k.items(), key=lambda kv: int(kv[0])):
            k = int(k)
            if k < 2:
                continue
            out[proto][str(k)] = {m: _gain_for(seed_results, proto, m, k, ens, s) for m in METRICS}
    return out


def _gain_for(seed_results, proto: str, metric: str, k: int, ens: dict, s: CompareSettings) -> dict:
    singles = _by_seed(seed_results, proto, metric)
    groups, correct = ens["groups"], ens["correct"][metric]
    member = [float(np.mean([singles[x] for x in g])) for g in groups]
    errors = [100.0 * float(np.mean(~np.asarray(c))) for c in correct]
    gains = [a - b for a, b in zip(member, errors)]
    row = {"groups": [list(g) for g in groups], "member_mean_error": member, "ensemble_error": errors,
           "gain": float(np.mean(gains)), "n_groups": len(groups), "lo": None, "hi": None, "p_value": None}
    if len(groups) >= 2:
        est = stats.paired_effect(errors, member)
        row["lo"], row["hi"] = stats.interval(est, s.conf)
        row["p_value"] = stats.two_sided_p(est)
        row["method"] = f"paired t over {len(groups)} disjoint {k}-model groups"
    else:
        row["method"] = f"one {k}-model group: only the image-level interval below (needs {2 * k} seeds for one over seeds)"
    wrong_members = np.mean([~np.asarray(ens["member_correct"][metric][0][i]) for i in range(k)], axis=0) \
        if "member_correct" in ens else None
    if wrong_members is not None:
        d = 100.0 * (wrong_members - (~np.asarray(correct[0])).astype(float))
        se = float(d.std(ddof=1)) / math.sqrt(d.size)
        est = stats.Estimate(float(d.mean()), se, math.inf, int(d.size))
        lo, hi = stats.interval(est, s.conf)
        row["image_level"] = {"gain": est.value, "lo": lo, "hi": hi, "p_value": stats.two_sided_p(est),
                              "note": "conditional on these seeds: test-image noise only"}
    return row


# --------------------------------------------------------------------------- claims


def _claim_rows(claims, seed_results, n_images, context, inputs: dict, s: CompareSettings) -> list[dict]:
    assessments = []
    for claim in claims:
        if claim.pretraining != "none" and inputs.get("pretrained"):  # paper 6: the fine-tuned seeds
            from harness.analysis import pretrained
            assessments.append(pretrained.assessment(claim, context, inputs["pretrained"], s))
            continue
        if claim.dataset == "fall2009" and claim.kind == "headline":  # paper 6: the pre-trained seeds
            from harness.analysis import pretrained
            assessments.append(pretrained.fall2009_assessment(claim, context, inputs["pretrained"], s)
                               if inputs.get("pretrained") else pretrained.fall2009_off(claim, context))
            continue
        found = testability(claim, context)
        if found is not None:
            extra = _measured_on_run(claim, seed_results, n_images, context, inputs, s)
            assessments.append(verdict.not_tested(claim, *found, **extra))
            continue
        ev = evidence_for(claim, seed_results, n_images, context, inputs)
        if isinstance(ev, tuple):
            assessments.append(verdict.not_tested(claim, *ev))
        else:
            assessments.append(verdict.assess(claim, ev, s))
        arm = matching_arm(claim, context.arms) if claim.arm else None
        if arm is not None:
            assessments[-1].row["arm"] = arm
    return verdict.finalize(assessments, s)


def _measured_on_run(claim, seed_results, n_images, context, inputs, s) -> dict:
    """An ablation claim's quantity measured on this run's data, shown though not a verdict."""
    if claim.kind not in ("ablation", "convergence") or (claim.measure != "protocol" and
                                                         matching_arm(claim, context.arms) is None):
        return {}
    ev = evidence_for(claim, seed_results, n_images, context, inputs, any_target=True)
    if isinstance(ev, tuple):
        return {}
    try:
        row = verdict.assess(claim, ev, s).row
    except verdict.EvidenceError:  # e.g. an unusable measurement on this run's data: nothing to show
        return {}
    keep = ("estimate", "lo", "hi", "n", "n_variant", "paired", "direction", "direction_text", "method", "source")
    arm = matching_arm(claim, context.arms) if claim.arm else None
    return {"measured_on_run": {"arm": arm, **{k: row.get(k) for k in keep}}}


def evidence_for(claim: Claim, seed_results, n_images: int, context: RunContext, inputs: dict,
                 any_target: bool = False) -> verdict.Evidence | tuple[str, str]:
    """The claim's numbers from this run, or (category, reason) when something is missing."""
    if claim.kind == "headline":
        return _headline_evidence(claim, seed_results, n_images, context, inputs)
    if claim.kind == "size":
        x = (inputs.get("measured") or {}).get(claim.metric)
        if x is None:
            return "not measured", f"this run did not measure {claim.metric}"
        return verdict.Evidence((float(x),), source="the paper's architecture as built (harness/model)")
    if claim.kind == "proportion":
        return _towers_evidence(inputs)
    if claim.measure == "protocol":
        metric = claim.metric.removesuffix("_reduction")
        t, c = _by_seed(seed_results, "ten_patch", metric), _by_seed(seed_results, "center", metric)
        seeds = sorted(set(t) & set(c))
        if not seeds:
            return "not measured", "needs both centre-crop and 10-patch evaluation of the same seeds"
        return verdict.Evidence(tuple(t[x] for x in seeds), tuple(c[x] for x in seeds), paired=True,
                                source=f"seeds {seeds}: 10-patch (paper's protocol) vs centre crop")
    return _arm_evidence(claim, seed_results, context, inputs, any_target)


def _headline_evidence(claim, seed_results, n_images, context, inputs):
    if claim.arm:  # the number of another net than the baseline's (paper 3.3's CIFAR-10 nets): that arm's seeds
        name = matching_arm(claim, context.arms)
        arm = ((inputs.get("ablations") or {}).get("arms") or {}).get(name)
        if arm is None:
            return "arm not trained", f"the arm {name} has no results in this run"
        seed_results = arm["results"]
        if not _values(seed_results, claim.protocol, claim.metric):
            return "not measured", f"the arm {name} has no {claim.protocol} {claim.metric}"
    values = _values(seed_results, claim.protocol, claim.metric)
    same = claim.split == context.split
    k = claim.n_models or 1
    where = "the same test set" if same else f"our {context.split} set ({n_images:,} images) against the paper's " \
        f"{claim.split} set ({claim.n_images:,})"
    if k == 1:
        return verdict.Evidence(tuple(values), n_images=n_images, same_test_set=same,
                                source=f"{len(values)} seeds, {where}")
    ens = ((inputs.get("ensembles") or {}).get(claim.protocol) or {}).get(k) or \
        ((inputs.get("ensembles") or {}).get(claim.protocol) or {}).get(str(k))
    if not ens:
        return "not measured", f"no disjoint {k}-model ensembles were formed for the {claim.protocol} protocol"
    errors = tuple(100.0 * float(np.mean(~np.asarray(c))) for c in ens["correct"][claim.metric])
    return verdict.Evidence(errors, n_images=n_images, same_test_set=same, singles=tuple(values),
                            source=f"{len(errors)} disjoint {k}-model ensemble(s) of seeds {ens['groups']}, {where}")


def _towers_evidence(inputs):
    train = inputs.get("train") or {}
    flags = {s: (t.get("towers") or {}).get("separated") for s, t in train.items()}
    missing = sorted(s for s, f in flags.items() if not isinstance(f, bool))
    if not train or missing:
        return "not measured", ("the train metrics of seeds " + ", ".join(map(str, missing)) if missing else
                                "no train metrics") + " carry no towers.separated (the towers' colour selectivity)"
    return verdict.Evidence(tuple(1.0 if flags[s] else 0.0 for s in sorted(flags)),
                            source=f"towers.separated of seeds {sorted(flags)}")


def _arm_evidence(claim, seed_results, context, inputs, any_target):
    ab = inputs.get("ablations") or {}
    name = matching_arm(claim, context.arms)
    arm = (ab.get("arms") or {}).get(name)
    if arm is None:
        return "arm not trained", f"the arm {name} has no results in this run"
    base_results, base_ab, base_train, against = _comparison_group(arm, seed_results, ab, inputs.get("train") or {})
    if claim.kind == "convergence":
        return _convergence_evidence(claim, name, arm, base_ab, {**inputs, "train": base_train}, context, any_target,
                                     against)
    arm_ab = {**ab, "baseline_curves": arm.get("curves", {})}
    base, var = _per_seed_measure(claim, base_results, base_ab, base_train, any_target), \
        _per_seed_measure(claim, arm["results"], arm_ab, arm.get("train") or {}, any_target)
    if isinstance(base, str) or isinstance(var, str):
        return "not measured", base if isinstance(base, str) else var
    on = f", {claim.protocol} test" if claim.measure == "test_error" and claim.protocol != "none" else ""
    return _two_groups(base, var, f"arm {name}{on}", against)


def _comparison_group(arm: Mapping, seed_results, ab: Mapping, train: Mapping):
    """(results, ablations view, train metrics, name) of the group an arm is measured against:
    the baseline seeds, or the arm its `base:` names (params ablations.arms), whose results,
    curves, step series and train metrics the compare stage puts under arm["base"]. E.g. paper
    3.3's CIFAR-10 pair: the 11% net without its normalisation against the same net with it,
    while the baseline seeds are paper 3.1's Figure 1 net (docs/cifar10.md)."""
    b = arm.get("base")
    if not b:
        return seed_results, ab, train, "the paper's net"
    view = {**ab, "baseline_curves": b.get("curves") or {}, "baseline_series": b.get("series") or {}}
    return b["results"], view, b.get("train") or {}, f"arm {b['name']}"


def _two_groups(base: dict, var: dict, what: str, against: str = "the paper's net") -> verdict.Evidence:
    seeds = ablation.pairing(list(base), list(var))
    if seeds is not None:
        return verdict.Evidence(tuple(base[s] for s in seeds), tuple(var[s] for s in seeds), paired=True,
                                source=f"{what} vs {against}, paired on seeds {seeds}")
    return verdict.Evidence(tuple(base.values()), tuple(var.values()),
                            source=f"{what} (seeds {sorted(var)}) vs {against} (seeds {sorted(base)}), unpaired")


def _per_seed_measure(claim, results, ab, train, shown_only: bool = False) -> dict[int, float] | str:
    """Per seed: test error (the claim's protocol: the paper's 10-patch test unless it says otherwise;
    the run's ablation protocol on claims without one, and on a number shown_only, i.e. measured on
    a run that cannot decide the claim, where the claim's protocol was not run), final training
    error or overfitting gap."""
    if claim.measure == "test_error":
        run_proto = ab.get("protocol") or "center"
        proto = claim.protocol if claim.protocol != "none" else run_proto
        if shown_only and not _values(results, proto, claim.metric.removesuffix("_reduction")):
            proto = run_proto
        return _by_seed(results, proto, claim.metric.removesuffix("_reduction")) or \
            f"no {proto} evaluation of the arm's or its comparison group's seeds"
    curves = ab.get("baseline_curves") or {}
    if not curves:
        return "no training curves for the final training error"
    final_train = {int(s): float(c[-1]) for s, c in curves.items()}
    if claim.measure == "train_error":
        return final_train
    if any(int(s) not in {int(x) for x in train} for s in final_train):
        return "no train metrics (final validation error) for the overfitting gap"
    return {int(s): float(train[s]["final_val_top1_error"]) - final_train[int(s)] for s in train
            if int(s) in final_train}


def _convergence_evidence(claim, name, arm, ab, inputs, context, any_target, against="the paper's net"):
    if claim.measure == "train_time":
        base = {int(s): float(t["train_time_s"]) for s, t in (inputs.get("train") or {}).items()}
        var = {int(s): float(t["train_time_s"]) for s, t in (arm.get("train") or {}).items()}
        if not base or not var:
            return "not measured", "no train metrics (train_time_s) for one of the groups"
        return _two_groups(base, var, f"arm {name}", against)
    target = target_for(claim, context.dataset)
    if target is None and any_target:
        target = float(ab.get("target_train_error") or 0) or None
    if target is None:
        return "not measured", f"the claim names no training-error target on {context.dataset}"
    sb, sa = ab.get("baseline_series") or {}, arm.get("series") or {}
    if not sb or not sa:
        return "not measured", "no training-error series for one of the groups"
    it_b, it_a = ablation.iterations(sb, target), ablation.iterations(sa, target)
    seeds = ablation.pairing(list(it_b), list(it_a))
    pick_b = seeds if seeds else sorted(it_b)
    pick_a = seeds if seeds else sorted(it_a)
    res = max(x.resolution for x in list(sb.values()) + list(sa.values()))
    return verdict.Evidence(tuple(it_b[s][0] for s in pick_b), tuple(it_a[s][0] for s in pick_a),
                            paired=seeds is not None, resolution=res,
                            censored=tuple(it_b[s][1] for s in pick_b), censored_variant=tuple(it_a[s][1] for s in pick_a),
                            source=f"arm {name} vs {against}: steps to {target:g}% training top-1 error, every {res:g} steps"
                                   + (f", paired on seeds {seeds}" if seeds else ""))


# --------------------------------------------------------------------------- ablation results


def _arm_results(seed_results, ablations: Mapping | None, s: CompareSettings) -> dict:
    """Per arm: overrides, seeds, arm-minus-baseline effect per protocol and metric, convergence
    to ablations.target_train_error (arms without a claim of their own). The baseline is the
    arm's base arm where it has one (`base`: its name, else "baseline")."""
    out = {}
    if not ablations:
        return out
    target = float(ablations["target_train_error"])
    for name, arm in ablations.get("arms", {}).items():
        results = arm["results"]
        base_results, base_ab, _, _ = _comparison_group(arm, seed_results, ablations, {})
        protocols = {}
        for proto in _protocols(results):
            protocols[proto] = {m: ablation.error_effect(_by_seed(base_results, proto, m), _by_seed(results, proto, m),
                                                         s.conf, s.n_boot, s.rng_seed)
                                for m in METRICS if _values(base_results, proto, m)}
        conv = ablation.convergence_effect(base_ab.get("baseline_series") or {}, arm.get("series") or {},
                                           target, s.conf)
        out[name] = {"overrides": dict(arm.get("overrides", {})), "seeds": [r["seed"] for r in results],
                     "base": (arm.get("base") or {}).get("name", "baseline"),
                     "baseline_seeds": [r["seed"] for r in base_results], "protocols": protocols,
                     "convergence": conv}
    return out


def _link_claims(rows: list[dict], arm_results: dict, context: RunContext, claims) -> None:
    """Each arm lists the claims it measures (tested or measured on this run)."""
    by_id = {c.id: c for c in claims}
    for row in rows:
        claim = by_id[row["id"]]
        name = matching_arm(claim, context.arms) if claim.arm else None
        if name in arm_results:
            m = row if row["tested"] else row.get("measured_on_run")
            arm_results[name].setdefault("claims", {})[claim.id] = {
                "metric": claim.metric, "paper_value": claim.value, "band": row["band"], "unit": claim.unit,
                "verdict": row["verdict"], **({k: m.get(k) for k in ("estimate", "lo", "hi")} if m else {})}
    for res in arm_results.values():
        res.setdefault("claims", {})


# --------------------------------------------------------------------------- entry points


def _model_checks(rows: list[dict], measured: Mapping | None) -> dict:
    """The exact arithmetic of the printed architecture: a check of the model, not a claim."""
    checks = [{"id": r["id"], "metric": r["metric"], **r["model_check"]} for r in rows if r.get("model_check")]
    return {"checks": checks, "conv_param_shares": dict((measured or {}).get("conv_param_shares") or {})}


def _decision_rule(rows: list[dict], s: CompareSettings) -> dict:
    m = max([r.get("multiplicity", {}).get("family_size", 0) for r in rows] or [0])
    return {"alpha": s.alpha, "interval_level": 1 - 2 * s.alpha, "exclusion_level": 1 - s.alpha,
            "multiplicity": s.multiplicity, "family_size": m, "power_target": s.power,
            "reproduced": f"the {1 - 2 * s.alpha:.0%} interval of the quantity lies inside the claim's band (TOST)",
            "not_reproduced": f"the {1 - s.alpha:.0%} interval lies entirely outside the band: the data exclude "
                              "the claim at the declared level",
            "inconclusive": "neither; the seeds that would settle it are given (noncentral t, at alpha / family size)",
            "family": f"Holm across the {m} claims decided statistically in this report, separately for the "
                      "'reproduced' and the 'not reproduced' p-values" if s.multiplicity == "holm" else
                      "no multiplicity correction (compare.multiplicity: none)",
            "doc": "docs/statistics.md"}


def build_compare(inputs: CompareInputs, context: RunContext, claims: Sequence[Claim],
                  settings: CompareSettings = CompareSettings()) -> CompareJson:
    """The compare.json content: per-seed rows, across-seed summary, reference, claims, paired
    analyses. `inputs`: the run's results (harness/analysis/handover.py says what each one is)."""
    seed_results, correctness, measured, ablations, ensembles = (
        inputs.seed_results, inputs.correctness, inputs.measured, inputs.ablations, inputs.ensembles)
    pretrained = inputs.pretrained
    n_images = _check_seed_results(seed_results, context)
    # what the claims' evidence reads, as evidence_for takes it
    extra = {"ensembles": ensembles, "measured": measured, "train": inputs.train, "ablations": ablations,
             "pretrained": pretrained}
    rows = _claim_rows(claims, seed_results, n_images, context, extra, settings)
    arm_results = _arm_results(seed_results, ablations, settings)
    _link_claims(rows, arm_results, context, claims)
    out = {
        "settings": asdict(settings),
        "context": asdict(context),
        "decision_rule": _decision_rule(rows, settings),
        "seeds": _seed_rows(seed_results, n_images, settings.conf),
        "summary": _summary(seed_results, correctness, n_images, settings),
        "reference": _reference(seed_results, inputs.reference, context, settings),
        "claims": rows,
        "model_checks": _model_checks(rows, measured),
        "paired": {"ten_patch_vs_center": _ten_patch_vs_center(seed_results, correctness, settings),
                   "ensemble_gain": _ensemble_gain(seed_results, ensembles, settings)},
        "ensemble": inputs.ensemble,
        "ablation_results": arm_results,
        # The verdicts of the experiments; the printed counts and shares of the architecture
        # (kind size, arithmetic on the net as built) are counted apart, never in the headline
        "counts": verdict.counts([r for r in rows if r["kind"] != "size"]),
        "architecture_counts": verdict.counts([r for r in rows if r["kind"] == "size"]),
    }
    if pretrained:  # paper 6: what the pre-trained CNNs were and measured (the report's "Pre-trained CNNs" section)
        out["pretraining"] = _pretraining_summary(pretrained)
    return to_jsonable(out)


def _pretraining_summary(pre: Mapping) -> dict:
    return {"facts": pre["pretraining"], "base_seeds": pre["base_seeds"], "pretrained_seeds": pre["pretrained_seeds"],
            "full_paper_model": pre.get("full_paper_model"),
            "finetuned": [{"seed": r["seed"], **{p: {m: r["protocols"][p][m] for m in ("top1_error", "top5_error")}
                                                 for p in r["protocols"]}} for r in pre["finetuned"]],
            "ensembles": pre["protocols"],
            "pretrained": [{"seed": r["seed"], "n_images": r["n_images"],
                            **{p: {m: r["protocols"][p][m] for m in ("top1_error", "top5_error")} for p in r["protocols"]}}
                           for r in pre.get("pretrain_evaluated") or []]}


_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-/ ]")


def _metric_name(*parts: str) -> str:
    """Join parts with '.' and replace characters MLflow rejects with '_'."""
    return _UNSAFE.sub("_", ".".join(str(p) for p in parts))


def headline(compare: dict) -> dict:
    """The few numbers that answer "did it reproduce?", for `dvc exp show` and `dvc metrics diff`
    (reports/summary.json, the pipeline's only DVC metrics). Flat, short keys in reading order, so
    that DVC's table, which puts the metrics first, shows them all in a 160-column terminal.

    The errors are those of the paper's test protocol (10 patches, paper 4.1) when it was evaluated,
    else of the first evaluated protocol (`protocol` says which): the seeds' mean and sd of top-5 and
    top-1 error and the error of the ensemble of every seed; then the number of seeds, the
    experimental claims' counts per verdict, and apart from them the architecture's printed counts
    and shares that are not as built. Everything else (the other protocol, intervals, p-values,
    per-seed rows, run ids, timings) stays in compare.json and the per-stage JSON files.
    """
    summary = compare.get("summary") or {}
    proto = "ten_patch" if "ten_patch" in summary else next(iter(summary), None)
    out: dict = {}
    if proto:
        full = ((compare.get("ensemble") or {}).get("protocols", {}).get(proto, {}).get("sizes") or [None])[-1]
        for metric in ("top5", "top1"):
            s = summary[proto].get(f"{metric}_error") or {}
            out[metric] = s.get("mean")
            out[f"{metric}_sd"] = s.get("sd")
            out[f"{metric}_ens"] = full.get(f"{metric}_error_mean") if full else None
    out["seeds"] = len({r["seed"] for r in compare.get("seeds", [])})
    if compare.get("pretraining"):  # paper 6 / Table 2, only with pretrain.enabled
        out.update(pretrained_headline(compare["pretraining"]))
    counts = compare.get("counts", {})
    out["tested"] = counts.get("claims_tested")
    out.update({label.replace(" ", "_"): n for label, n in (counts.get("verdicts") or {}).items()
                if label != "not tested"})
    arch = (compare.get("architecture_counts") or {}).get("verdicts")
    if arch:  # the size claims: printed counts and shares against the net as built, apart from the experiments
        out["arch_not_as_printed"] = arch.get("not reproduced", 0)
    out["protocol"] = proto  # text: DVC shows it, MLflow's metrics leave it out
    return out


def pretrained_headline(pre: Mapping) -> dict:
    """The Table 2 "*" rows' top-5 errors (paper 6), in the protocol of their claims (ten_patch, else
    the first evaluated): pre_top5, the fine-tuned CNNs' mean (t2-1cnn-pre), and pre_top5_ens, every
    ILSVRC-only and fine-tuned CNN averaged (t2-7cnn-pre, 5+2 in the paper): two columns of summary.json."""
    protos = pre.get("ensembles") or {}
    proto = "ten_patch" if "ten_patch" in protos else next(iter(protos), None)
    if not proto:
        return {}
    singles = [r[proto]["top5_error"] for r in pre.get("finetuned", []) if proto in r]
    full = (protos.get(proto) or {}).get(f"{len(pre['base_seeds'])}+{len(pre['pretrained_seeds'])}") or {}
    return {"pre_top5": float(np.mean(singles)) if singles else None,
            "pre_top5_ens": (full.get("top5_error") or [None])[0]}


def summary_metrics(compare: dict) -> dict[str, float]:
    """Flatten compare.json aggregates into MLflow metric names and float values.

    e.g. center.top1_error.mean / .sd / .n / .t_lo / .t_hi / .boot_lo / .boot_hi,
    reference.top1_error.diff / .welch_p, claim.<id>.estimate / .lo / .hi / .p_reproduced /
    .p_reproduced_adj / .p_not_reproduced / .p_not_reproduced_adj / .seeds_needed, and
    claims.total / .tested / .reproduced / .not_reproduced / .inconclusive / .not_tested (the
    experimental claims), architecture.total / .reproduced / .not_reproduced (the size claims).
    None values are skipped.
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
        for stat in ("diff", "lo", "hi", "welch_p", "tost_p", "mann_whitney_p", "power"):
            put(row.get(stat), "reference", metric, stat)
    for row in compare.get("claims", []):
        if row.get("tested"):
            for stat in ("estimate", "lo", "hi", "p_reproduced", "p_reproduced_adj", "p_not_reproduced",
                         "p_not_reproduced_adj", "seeds_needed"):
                put(row.get(stat), "claim", row["id"], stat)
    for arm, res in compare.get("ablation_results", {}).items():
        for proto, metrics in res.get("protocols", {}).items():
            for metric, e in metrics.items():
                for stat in ("diff", "lo", "hi", "p_value", "boot_lo", "boot_hi", "mann_whitney_p"):
                    put(e.get(stat), "ablation", arm, proto, metric, stat)
        conv = res.get("convergence", {})
        for stat in ("ratio", "ratio_lo", "ratio_hi"):
            put(conv.get(stat), "ablation", arm, "convergence", stat)
    counts = compare.get("counts", {})
    put(counts.get("claims_total"), "claims", "total")
    put(counts.get("claims_tested"), "claims", "tested")
    for label, n in (counts.get("verdicts") or {}).items():
        put(n, "claims", label.replace(" ", "_"))
    arch = compare.get("architecture_counts") or {}
    put(arch.get("claims_total"), "architecture", "total")
    for label, n in (arch.get("verdicts") or {}).items():
        put(n, "architecture", label.replace(" ", "_"))
    return out
