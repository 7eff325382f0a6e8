"""Stage `compare`: claims and reference distribution vs this run's seeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from harness import config as C
from harness import tracking
from harness.analysis import scoring
from harness.analysis.ensemble import load_predictions
from harness.data import shards
from harness.errors import UserError
from harness.io import atomic_write_json
from harness.model import build_model
from harness.stages import StageContext, params_for, read_json


def paper_architecture_counts() -> dict:
    """Parameters and neurons of the paper network (1000 classes) as harness/model/alexnet.py builds it."""
    from harness.model import layer_table
    paper = C.ModelConfig()
    table = layer_table(build_model(paper, 1000), paper.input_size)
    neurons = sum(int(np.prod(r.out_shape)) for r in table if not r.name.startswith("pool"))
    return {"n_parameters": sum(r.params for r in table), "n_neurons": neurons}


def is_full_paper_model(cfg: C.Config) -> bool:
    """The network the paper's claims were measured on: the full AlexNet, or for the CIFAR-10
    claims (paper 3.1, 3.3) one of the authors' cuda-convnet nets, built from its layer files at
    their sizes (config.py refuses any other; docs/cifar10.md says which net serves which claim)."""
    if cfg.model.arch in C.CUDA_CONVNET_ARCHS:
        return cfg.data.source == "cifar10"
    return cfg.model == C.ModelConfig() or (
        cfg.model == C.ModelConfig(input_size=227, conv1_padding=0))


def _correctness(pred_dir: Path, labels: np.ndarray, seeds, protocols) -> dict:
    out = {}
    for protocol in protocols:
        probs = load_predictions(pred_dir, seeds, protocol)
        out[protocol] = {f"top{k}_error": np.stack([scoring.topk_correct(p, labels, k) for p in probs])
                         for k in (1, 5)}
    return out




def load_reference(root: Path, cfg: C.Config) -> tuple[dict | None, str | None]:
    """The committed reference distribution, if it was recorded with this run's settings."""
    if not cfg.compare.reference:
        return None, "compare.reference is not set"
    path = root / cfg.compare.reference
    if not path.is_file():
        return None, f"no reference distribution at {cfg.compare.reference} (make one with `harness make-reference`)"
    ref = json.loads(path.read_text())
    if ref.get("training_digest") != C.training_digest(cfg):
        return None, (f"the reference runs in {cfg.compare.reference} were made with other data/model/train "
                      "params than this run, so they are not comparable")
    return ref, None


def _train_error_curve(path: Path) -> list[float]:
    if not path.is_file():
        raise UserError(f"training curve not found: {path} (run the train stages)")
    return [float(v) for v in pd.read_csv(path)["train_top1_error"]]


def load_ablations(cfg: C.Config, data_dir: Path, train_plots: Path, ablations_dir: Path,
                   ablation_plots: Path, base: str | None = None) -> dict | None:
    """Evaluations and training curves of the enabled arms compared with `base`, with the curves
    of `base` itself: the baseline seeds (None) or another arm (an arm's `base:` in params).

    Only the arms in ablations.enabled are read: results of arms switched off stay on disk
    (DVC does not delete them) but are not reported.
    """
    ab = cfg.ablations
    names = [n for n in ab.enabled if ab.arm(n).base == base]
    if not names:
        return None
    n_train = shards.load_manifest(data_dir)["counts"]["train"]
    steps = lambda c: n_train // c.train.batch_size  # noqa: E731 -- harness/train/loop.py drops the last partial batch
    seeds = ab.seeds_or(cfg.train.seeds)
    if base is None:
        base_curves = {s: _train_error_curve(train_plots / f"seed-{s}.csv") for s in cfg.train.seeds}
        base_steps = steps(cfg)
    else:
        base_curves = {s: _train_error_curve(ablation_plots / base / "train" / f"seed-{s}.csv") for s in seeds}
        base_steps = steps(C.apply_arm(cfg, base))
    arms = {}
    for name in names:
        arm_cfg = C.apply_arm(cfg, name)
        arms[name] = {
            "overrides": ab.arm(name).as_dict(),
            "results": [read_json(ablations_dir / name / "evaluate" / f"seed-{s}.json",
                                  f"evaluation of arm {name}, seed {s}") for s in seeds],
            "curves": {s: _train_error_curve(ablation_plots / name / "train" / f"seed-{s}.csv") for s in seeds},
            "steps_per_epoch": steps(arm_cfg)}
    return {"protocol": "center" if "center" in cfg.evaluate.protocols else cfg.evaluate.protocols[0],
            "target_train_error": ab.target_train_error, "baseline_steps_per_epoch": base_steps,
            "baseline_curves": base_curves, "arms": arms}


def _context(cfg: C.Config, results: list[dict], ablations: dict | None):
    from harness.analysis import claims as CL
    return CL.RunContext(dataset=cfg.data.source, split=C.evaluated_split(cfg), num_classes=results[0]["num_classes"],
                         n_models_available=len(results), protocols=tuple(cfg.evaluate.protocols),
                         full_paper_model=is_full_paper_model(cfg),
                         arms=tuple((n, cfg.ablations.arm(n).overrides) for n in (ablations or {}).get("arms", {})))


def differs(cfg: C.Config, arm: str, base: str) -> dict:
    """model.*/train.* keys where arm and its base arm train differently: {key: [base's, arm's]}."""
    a, b = (C.flatten({k: C.training_config(C.apply_arm(cfg, n))[k] for k in ("model", "train")}) for n in (arm, base))
    return {k: [b[k], a[k]] for k in sorted(a) if a[k] != b[k]}


def _measures(row: dict) -> int:
    """How much a claim row says: 2 tested, 1 measured on an arm of this run, 0 neither."""
    return 2 if row.get("tested") else int("measured_on_run" in row)


def compare_with_base_arms(out: dict, cfg: C.Config, load_fn, compare_fn, results_fn) -> None:
    """Arms with a `base:` arm, compared with that arm's seeds instead of the baseline's.

    For each base arm: results_fn(base) gives its per-seed evaluations, load_fn(base) the
    load_ablations(..., base=base) of the arms based on it, and compare_fn(seed_results, context,
    ablations) runs the compare machinery with the base arm's evaluations as the baseline
    (harness/analysis/compare.build_compare);
    its arm results join out["ablation_results"] (each marked with its base), and a claim row
    replaces the main one when it says more (tested, or measured on one of these arms). E.g.
    paper 3.3's CIFAR-10 LRN pair: the 11% net without its normalisation against the same net
    with it, while the baseline seeds are paper 3.1's Figure 1 net (docs/cifar10.md).
    """
    ab = cfg.ablations
    for name, res in out["ablation_results"].items():
        res.setdefault("base", "baseline")
    bases = sorted({ab.arm(n).base for n in ab.enabled} - {None})
    rows = {r["id"]: i for i, r in enumerate(out["claims"])}
    for base in bases:
        results, ablations, base_cfg = results_fn(base), load_fn(base), C.apply_arm(cfg, base)
        sub = compare_fn(results, _context(base_cfg, results, ablations), ablations)
        for name, res in sub["ablation_results"].items():
            out["ablation_results"][name] = {**res, "base": base, "differs_from_base": differs(cfg, name, base)}
        for row in sub["claims"]:
            i = rows[row["id"]]
            if _measures(row) > _measures(out["claims"][i]):
                out["claims"][i] = {**row, "compared_with": base}
    if bases and {"claims_tested", "claims_untested", "verdicts"} <= set(out.get("counts", {})):
        tested = [r for r in out["claims"] if r["tested"]]
        verdicts: dict[str, int] = {}
        for r in tested:
            verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
        out["counts"] = {**out["counts"], "claims_tested": len(tested),
                         "claims_untested": len(out["claims"]) - len(tested), "verdicts": verdicts}


def run_compare(ctx: StageContext, *, data_dir: Path, eval_dir: Path, pred_dir: Path,
                ensemble_path: Path, out_path: Path, train_plots: Path | None = None,
                ablations_dir: Path | None = None, ablation_plots: Path | None = None) -> dict:
    from harness.analysis import claims as CL
    from harness.analysis import compare
    cfg = ctx.cfg
    seeds = list(cfg.train.seeds)
    results = [read_json(eval_dir / f"seed-{s}.json", f"evaluation of seed {s}") for s in seeds]
    labels = np.load(data_dir / cfg.evaluate.split / "labels.npy")
    reference, ref_reason = load_reference(ctx.root, cfg)
    have_arms = ablations_dir is not None and train_plots is not None
    ablations = load_ablations(cfg, data_dir, train_plots, ablations_dir, ablation_plots) if have_arms else None
    context = _context(cfg, results, ablations)
    settings = compare.CompareSettings(conf=cfg.compare.conf, alpha=cfg.compare.alpha,
                                       margin_pp=cfg.compare.margin_pp, n_boot=cfg.compare.n_boot)
    claims = CL.load_claims()

    def against_base_arm(base_results, base_context, base_ablations):
        return compare.build_compare(base_results, base_context, claims, settings, ablations=base_ablations)

    def load_for(base):
        return load_ablations(cfg, data_dir, train_plots, ablations_dir, ablation_plots, base=base)

    def results_of(arm):
        return [read_json(ablations_dir / arm / "evaluate" / f"seed-{s}.json", f"evaluation of arm {arm}, seed {s}")
                for s in cfg.ablations.seeds_or(cfg.train.seeds)]

    with tracking.child_run(ctx.uri, ctx.experiment_id, ctx.parent_id, "compare",
                            params_for(cfg, "compare"), {**ctx.base_tags, "stage": "compare"}) as run_id:
        out = compare.build_compare(
            results, context, claims, settings,
            correctness=_correctness(pred_dir, labels, seeds, cfg.evaluate.protocols),
            ensemble=read_json(ensemble_path, "ensemble metrics"), reference=reference,
            measured=paper_architecture_counts(), ablations=ablations)
        if have_arms:
            compare_with_base_arms(out, cfg, load_for, against_base_arm, results_of)
        out["ablations"] = {"enabled": list(cfg.ablations.enabled),
                            "seeds": list(cfg.ablations.seeds_or(cfg.train.seeds)),
                            "target_train_error": cfg.ablations.target_train_error,
                            "protocol": (ablations or {}).get("protocol")}
        if ref_reason:
            out["reference"] = {"tested": False, "reason": ref_reason}
        out["mlflow_run_id"] = run_id
        out["parent_run_id"] = ctx.parent_id
        out["mlflow_experiment_id"] = ctx.experiment_id
        metrics = compare.summary_metrics(out)
        tracking.log_metrics(ctx.uri, run_id, metrics)
        tracking.log_metrics_once(ctx.uri, ctx.parent_id, metrics)  # MLflow has no seed aggregation
        atomic_write_json(out_path, out)
    return out
