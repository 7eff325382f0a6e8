"""One module per DVC stage (harness/stages/<stage>.py) wiring data, model, training and tracking.

This package module holds what every stage shares: opening a stage (validated params, the
MLflow store, the parent run). Pipeline scripts parse paths and call run_<stage>; nothing here
reads argv or params.yaml directly (config does).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from harness import config as C
from harness import tracking
from harness.errors import UserError

# torch and harness.runtime (which imports torch) are imported inside the functions that use them:
# a stage that needs no torch (list_data, on every `dvc repro`) then starts in a tenth of the time.


@dataclass(frozen=True)
class StageContext:
    cfg: C.Config
    root: Path
    uri: str
    experiment_id: str
    parent_id: str
    base_tags: dict


def open_stage(params_path: Path, stage: str, purpose: str = "pipeline", arm: str | None = None) -> StageContext:
    """Validate params, create the MLflow store/experiment once, find the parent run.

    `purpose` separates parents of other executions with the same params (e.g. reference runs).
    `arm`: an ablation arm; the stage then sees the arm's config (config.apply_arm) and its
    MLflow runs are children of the same pipeline parent as the baseline seeds.
    """
    import torch

    from harness import runtime
    base = C.load_config(params_path)
    cfg = base if arm is None else C.arm_config(base, arm)  # an ablation arm or a pre-training phase
    root = runtime.repo_root()
    uri = tracking.OFF if runtime.tracking_off() else \
        tracking.resolve_uri(cfg.tracking.uri, runtime.tracking_uri_override(), root)
    name = tracking.experiment_name(cfg.data.source, cfg.profile, cfg.tracking.experiment)
    exp_id = tracking.ensure_experiment(uri, name, root)
    git = runtime.git_info(root, ignore=pipeline_outputs(root))
    dvc = runtime.dvc_context()
    tags = {"git_commit": git["commit"], "git_dirty": git["dirty"], "DVC_EXP_NAME": dvc["exp_name"],
            "profile": cfg.profile, "dataset": cfg.data.source, "torch": str(torch.__version__),
            "cuda": torch.version.cuda or "none",
            # MLflow's own source tags: the UI's Source and Version columns
            "mlflow.source.type": "LOCAL", "mlflow.source.git.commit": git["commit"]}
    key = runtime.pipeline_key(params_path) + ("" if purpose == "pipeline" else f"-{purpose}")
    digest = hashlib.sha256(Path(params_path).read_bytes()).hexdigest()
    parent = tracking.parent_run(
        uri, exp_id, key, {**tags, "harness.role": purpose, "mlflow.source.name": "dvc.yaml"}, root,
        name=tracking.parent_name(purpose, dvc["exp_name"], git["commit"], digest),
        shared_name=tracking.parent_name(purpose, "", git["commit"], digest),
        params=C.flatten(C.to_dict(base)))  # the params file, not an arm's: one parent for all arms
    arm_tag = {} if arm is None else {"arm": arm}  # on the arm's own runs, never on the parent
    return StageContext(cfg, root, uri, exp_id, parent,
                        {**tags, **arm_tag, "mlflow.source.name": script_of(stage), "DVC_STAGE": dvc["stage"] or stage})


def pipeline_outputs(root: Path) -> tuple[str, ...]:
    """Paths the pipeline writes itself, as fnmatch patterns: dvc.lock, each out, metric and plot
    file of dvc.yaml's stages (templated parts as wildcards) and DVC's .gitignore entries. A change
    there does not make the work tree dirty: otherwise the first stage of a `dvc repro` on a clean
    checkout sees a clean tree and every later one, after DVC rewrote dvc.lock, a dirty one."""
    import yaml
    found = ["dvc.lock", ".gitignore", "*/.gitignore"]
    path = root / "dvc.yaml"
    stages = (yaml.safe_load(path.read_text()) or {}).get("stages", {}) if path.is_file() else {}
    for stage in stages.values():
        body = stage.get("do", stage)  # foreach/do stages keep their fields under do
        for entry in (e for key in ("outs", "metrics", "plots") for e in body.get(key) or []):
            for out in (entry if isinstance(entry, dict) else [entry]):
                found.append(re.sub(r"\$\{[^}]*\}", "*", str(out)))
    return tuple(found)


def script_of(stage: str) -> str:
    """The pipeline script that runs a DVC stage: train@3 and train_ablation@no_lrn-3 ->
    pipelines/train.py."""
    return f"pipelines/{stage.split('@')[0].removesuffix('_ablation')}.py"


def torchrun_if_asked(params_path: Path, script: str, argv: list[str], stage: str, arm: str | None = None,
                      one_node: bool = False) -> None:
    """Hand this stage script over to torchrun when the params ask for several processes.

    train.nproc_per_node x train.nnodes = 1 (or already under torchrun): returns, and this process
    does the work. Otherwise this process becomes `torchrun ... script argv` (runtime.exec_torchrun),
    so `dvc repro` and `dvc exp run -S train.nproc_per_node=8` launch it with nothing else to set.
    `one_node`: evaluation runs on this machine only, whatever train.nnodes says.
    """
    from harness import runtime
    if runtime.under_torchrun():
        return
    cfg = C.load_config(params_path)
    if arm is not None:
        cfg = C.arm_config(cfg, arm)  # an ablation arm or a pre-training phase
    nnodes = 1 if one_node else cfg.train.nnodes
    if cfg.train.nproc_per_node * nnodes == 1:
        return
    runtime.exec_torchrun(runtime.torchrun_command(
        script, argv, nproc=cfg.train.nproc_per_node, nnodes=nnodes, rdzv_endpoint=cfg.launch.rdzv_endpoint,
        rdzv_id=re.sub(r"[^A-Za-z0-9_-]", "-", stage), max_restarts=cfg.launch.max_restarts))


def params_for(cfg: C.Config, *sections: str) -> dict:
    d = C.to_dict(cfg)
    return C.flatten({s: d[s] for s in sections})


def read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    return json.loads(path.read_text())


def run_name(stage: str, cfg: C.Config, seed: int) -> str:
    """MLflow run name: train-seed3, or train-no_lrn-seed3 for an ablation arm."""
    return f"{stage}-seed{seed}" if cfg.arm is None else f"{stage}-{cfg.arm}-seed{seed}"
