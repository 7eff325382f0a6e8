"""Stage `ensemble_finetune@fall2011`: the ILSVRC-only CNNs averaged with the pre-trained,
fine-tuned ones (paper 6, Table 2: 5 + 2 = 7 CNNs), every mix, and what the pre-training used."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness import config as C
from harness import tracking
from harness.analysis import ensemble
from harness.data import shards
from harness.io import atomic_write_json
from harness.stages import StageContext, params_for, read_json


def pretrain_facts(manifest: dict, cfg: C.Config) -> dict:
    """What the pre-training data and network were: compare decides the pre-trained claims only when
    they are the paper's (the entire Fall 2011 release, the full six-conv net)."""
    f11 = manifest.get("fall2011", {})
    return {"source": manifest["source"], "release": f11.get("release"), "n_classes": len(manifest["classes"]),
            "counts": manifest["counts"], "split": f11.get("split"),
            "n_excluded": f11.get("exclusion", {}).get("n_excluded"),
            "excluded_against": f11.get("exclusion", {}).get("against"), "digest": manifest["digest"],
            "model": C.to_dict(C.apply_phase(cfg, "finetune").model), "reinit": cfg.pretrain.reinit,
            "schedule": {"epochs": cfg.pretrain.epochs, "lr": cfg.pretrain.lr, "lr_steps": list(cfg.pretrain.lr_steps),
                         "finetune_epochs": cfg.pretrain.finetune_epochs, "finetune_lr": cfg.pretrain.finetune_lr,
                         "finetune_lr_steps": list(cfg.pretrain.finetune_lr_steps)}}


def run_ensemble_finetune(ctx: StageContext, *, data_dir: Path, pretrain_data: Path, pred_dir: Path,
                          finetune_dir: Path, evaluations: Path, metrics_path: Path,
                          pretrain_evaluations: Path | None = None) -> dict:
    """`pretrain_evaluations`: the pre-trained CNNs on the held-out split of their own data (the half of
    the Fall-2009 protocol, paper 6), carried as `pretrain_evaluated` for the Fall-2009 claims."""
    cfg = ctx.cfg
    labels = np.load(data_dir / cfg.evaluate.split / "labels.npy")
    base, pre = list(cfg.train.seeds), list(cfg.pretrain.seeds)
    result = {"base_seeds": base, "pretrained_seeds": pre,
              "pretraining": pretrain_facts(shards.load_manifest(pretrain_data), cfg),
              "finetuned": [read_json(evaluations / f"seed-{s}.json", f"evaluation of fine-tuned seed {s}") for s in pre],
              "pretrain_evaluated": [read_json(pretrain_evaluations / f"seed-{s}.json",
                                               f"evaluation of pre-trained seed {s} on its held-out data")
                                     for s in pre] if pretrain_evaluations is not None else [],
              "protocols": {}}
    with tracking.child_run(ctx.uri, ctx.experiment_id, ctx.parent_id, "ensemble-finetune",
                            params_for(cfg, "ensemble", "pretrain"),
                            {**ctx.base_tags, "stage": "ensemble_finetune"}) as run_id:
        for protocol in cfg.evaluate.protocols:
            mixes = ensemble.mixed_ensembles(ensemble.load_predictions(pred_dir, base, protocol),
                                             ensemble.load_predictions(finetune_dir, pre, protocol), base, pre, labels)
            result["protocols"][protocol] = mixes
            full = mixes[f"{len(base)}+{len(pre)}"]
            tracking.log_metrics(ctx.uri, run_id, {f"{protocol}.all_{full['k']}_top1_error": full["top1_error"][0],
                                                   f"{protocol}.all_{full['k']}_top5_error": full["top5_error"][0]})
        result["mlflow_run_id"] = run_id
        atomic_write_json(metrics_path, result)
        tracking.log_stage_files(ctx.uri, run_id, C.to_dict(cfg), metrics_path)
    return result
