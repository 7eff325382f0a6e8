"""Stage `ensemble`: softmax averages over seeds, error for every ensemble size."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness import config as C
from harness import tracking
from harness.analysis import ensemble, scoring
from harness.io import atomic_write_json
from harness.stages import StageContext, params_for


def run_ensemble(ctx: StageContext, *, data_dir: Path, pred_dir: Path, metrics_path: Path) -> dict:
    from harness.analysis import stats
    cfg = ctx.cfg
    labels = np.load(data_dir / cfg.evaluate.split / "labels.npy")
    seeds = list(cfg.train.seeds)
    result = {"seeds": seeds, "protocols": {}}
    with tracking.child_run(ctx.uri, ctx.experiment_id, ctx.parent_id, "ensemble",
                            params_for(cfg, "ensemble"), {**ctx.base_tags, "stage": "ensemble"}) as run_id:
        for protocol in cfg.evaluate.protocols:
            probs = ensemble.load_predictions(pred_dir, seeds, protocol)
            sizes = ensemble.ensemble_errors(probs, labels, cfg.ensemble.max_subsets, cfg.ensemble.subset_seed)
            full = scoring.topk_correct(np.mean(probs, 0), labels, 1)
            singles = [scoring.topk_correct(p, labels, 1) for p in probs]
            result["protocols"][protocol] = {
                "sizes": sizes,
                # paired test on the same images: the full ensemble vs each single model
                "mcnemar_full_vs_single": [{"seed": s, **stats.mcnemar(full, c)}
                                           for s, c in zip(seeds, singles)],
            }
            for row in sizes:
                tracking.log_metrics(ctx.uri, run_id, {f"{protocol}.ensemble_top1_error": row["top1_error_mean"],
                                                       f"{protocol}.ensemble_top5_error": row["top5_error_mean"]},
                                     step=row["k"])
        result["mlflow_run_id"] = run_id
        atomic_write_json(metrics_path, result)
        tracking.log_stage_files(ctx.uri, run_id, C.to_dict(cfg), metrics_path)
    return result
