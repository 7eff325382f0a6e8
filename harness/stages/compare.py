"""Stage `compare`: every claim of the paper (verdicts, harness/analysis/verdict.py) and the
reference distribution vs this run's seeds."""

from __future__ import annotations

import dataclasses
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
    """Parameters, neurons and the conv layers' share of the parameters of the paper network (1000
    classes) as harness/model/alexnet.py builds it: measured, never copied from claims.yaml."""
    from harness.model import layer_table
    paper = C.ModelConfig()
    table = layer_table(build_model(paper, 1000), paper.input_size)
    total = sum(r.params for r in table)
    neurons = sum(int(np.prod(r.out_shape)) for r in table if not r.name.startswith("pool"))
    shares = {r.name: 100.0 * r.params / total for r in table if r.name.startswith("conv")}
    return {"n_parameters": total, "n_neurons": neurons, "max_conv_layer_param_share": max(shares.values()),
            "conv_param_shares": shares, "n_crop_flip_variants": crop_flip_variants(256, paper.input_size)}


def crop_flip_variants(stored: int, crop: int, draws: int = 200_000) -> int:
    """paper 4.1's "factor of 2048": the distinct (row, column, reflection) training draws of a crop
    from a stored image, counted on what harness/data/transforms.py epoch_draws draws (not computed
    from a formula: the count of the code as built; 200,000 draws miss none of 2,178 by far)."""
    from harness.data.transforms import epoch_draws
    d = epoch_draws(draws, stored, crop, seed=0, epoch=0, pca_std=0.0)
    return int(np.unique(np.stack([d.ys, d.xs, d.flip.astype(np.int64)]), axis=1).shape[1])


def load_pretrained(cfg: C.Config, folder: Path | None, results: list[dict]) -> dict | None:
    """The ensemble_finetune stage's result (paper 6's pre-trained CNNs), when pretrain.enabled."""
    if not cfg.pretrain.enabled or folder is None:
        return None
    pre = read_json(folder / "ensemble.json", "the ensemble of ILSVRC-only and fine-tuned CNNs")
    six = C.apply_phase(cfg, "finetune")
    five = dataclasses.replace(six.model, **{f.name: getattr(C.ModelConfig(), f.name)
                                             for f in dataclasses.fields(C.ModelConfig) if f.name.startswith("conv6")})
    base = {p: {m: [r["protocols"][p][m] for r in results] for m in ("top1_error", "top5_error")}
            for p in cfg.evaluate.protocols}
    return {**pre, "full_paper_model": is_full_paper_model(dataclasses.replace(six, model=five)), "base_singles": base}


def net_cost(cfg: C.Config, num_classes: int) -> dict:
    """Parameters (all, trained) and multiply-adds of one crop's forward pass in eval mode (harness/model/table.py
    layer_table: conv and fc layers; GoogLeNet's auxiliary heads do not run at test), as built for
    this data's classes and crop."""
    from harness.model import count_params, layer_table
    model = build_model(cfg.model, num_classes)
    table = layer_table(model, cfg.model.input_size)
    # every trained parameter (BatchNorm's and GoogLeNet's auxiliary heads' too), not only the table's layers
    return {"arch": cfg.model.arch, "input_size": cfg.model.input_size, "n_parameters": count_params(model),
            "mult_adds": sum(r.mult_adds for r in table)}


def _throughput(train: dict | None) -> dict:
    """Training images per second over the seeds (train metrics images_per_s, this machine)."""
    values = [float(t["images_per_s"]) for t in (train or {}).values() if t.get("images_per_s")]
    return {"images_per_s": float(np.mean(values)) if values else None,
            "train_time_s": float(np.mean([float(t["train_time_s"]) for t in train.values()])) if values else None}


def arm_costs(cfg: C.Config, num_classes: int, ablations: dict | None, baseline_train: dict | None) -> dict:
    """The paper net's and every trained arm's size and speed, and each one's top-1 error interval
    across seeds (the "What came after" section, docs/successors.md): {"baseline": {...}, arm: {...}}."""
    out = {"baseline": {**net_cost(cfg, num_classes), **_throughput(baseline_train)}}
    for name, arm in ((ablations or {}).get("arms") or {}).items():
        out[name] = {**net_cost(C.apply_arm(cfg, name), num_classes), **_throughput(arm.get("train"))}
    return out


def error_summaries(results: list[dict], protocol: str, conf: float) -> dict:
    """Mean top-1/top-5 error of one group of seeds with its t interval across seeds."""
    from harness.analysis import stats
    return {m: stats.seed_summary([r["protocols"][protocol][m] for r in results], conf)
            for m in ("top1_error", "top5_error")}


def _add_costs(out: dict, cfg: C.Config, results: list[dict], ablations: dict | None, train: dict | None) -> None:
    """compare.json `arm_costs`: size, multiply-adds, img/s and error intervals, baseline and arms."""
    if not ablations:
        return
    proto = ablations["protocol"]
    costs = arm_costs(cfg, results[0]["num_classes"], ablations, train)
    costs["baseline"]["errors"] = error_summaries(results, proto, cfg.compare.conf)
    for name, arm in ablations["arms"].items():
        costs[name]["errors"] = error_summaries(arm["results"], proto, cfg.compare.conf)
    out["arm_costs"] = {"protocol": proto, "conf": cfg.compare.conf, "nets": costs}


def is_full_paper_model(cfg: C.Config) -> bool:
    """The network the paper's claims were measured on: the full AlexNet, or for the CIFAR-10
    claims (paper 3.1, 3.3) one of the authors' cuda-convnet nets, built from its layer files at
    their sizes (config.py refuses any other; docs/cifar10.md says which net serves which claim).
    How far a CIFAR-10 run's experiment is cut down is a separate question (cifar10_protocol_gaps)."""
    if cfg.model.arch in C.CUDA_CONVNET_ARCHS:
        return cfg.data.source == "cifar10"
    return cfg.model == C.ModelConfig() or (
        cfg.model == C.ModelConfig(input_size=227, conv1_padding=0))


# The experiments behind the CIFAR-10 claims (docs/cifar10.md): the whole data set, Figure 1's
# 25% training-error target (paper 3.1), and the 11% net's schedule from its layer-params file
# (350 + 150 + 10 + 10 epochs, laid out as 450 on all five batches, paper 3.3).
CIFAR10_COUNTS = {"train": 50_000, "val": 10_000}
FIGURE1_TARGET = 25.0
LRN_NET_EPOCHS = {"cuda_convnet_11pct": 450}


def cifar10_protocol_gaps(cfg: C.Config, counts: dict) -> tuple[tuple[str, str], ...]:
    """Where this run cuts the paper's CIFAR-10 experiments down, as (claim id or "*", reason).

    Decided from what the run did, not from its name: a claim with a gap is "not tested" with
    the reason (harness/analysis/claims.py testability), its numbers still shown as measured.
    presets/cifar10-quick.yaml has all three kinds; presets/cifar10.yaml on the real archive none.
    """
    if cfg.data.source != "cifar10":
        return ()
    gaps = []
    have = {k: int(counts.get(k, 0)) for k in CIFAR10_COUNTS}
    if have != CIFAR10_COUNTS:
        gaps.append(("*", f"the prepared data hold {have['train']:,} training / {have['val']:,} test images; "
                          "CIFAR-10 has 50,000 / 10,000"))
    runs = [("the baseline", cfg)] + [(f"arm {n}", C.apply_arm(cfg, n)) for n in cfg.ablations.enabled]
    early = [f"{who} at {c.train.stop_at_train_error:g}%" for who, c in runs
             if c.train.stop_at_train_error is not None and c.train.stop_at_train_error > FIGURE1_TARGET]
    if early:
        gaps.append(("relu-speed", f"training stops before Figure 1's {FIGURE1_TARGET:g}% training error "
                                   f"(train.stop_at_train_error: {', '.join(early)})"))
    short = [f"{who} {c.train.epochs}" for who, c in runs
             if c.train.epochs < LRN_NET_EPOCHS.get(c.model.arch, 0)]
    if short:  # the LRN effect and the 11% / 13% levels themselves (the nets of the same schedule)
        gaps += [(cid, "the 11% net trains fewer epochs than its layer file's schedule of "
                       f"{LRN_NET_EPOCHS['cuda_convnet_11pct']} ({', '.join(short)})")
                 for cid in ("lrn-cifar10", "cifar10-11pct", "cifar10-13pct")]
    return tuple(gaps)


FIGURE1_CLAIM = "relu-speed"


def _at_limit(selection: dict) -> bool:
    """harness/train/lr_select.py at_limit (not imported: this stage does not depend on torch's
    training code): the chosen factor is the largest or smallest the search tried."""
    if "at_limit" in selection:
        return bool(selection["at_limit"])
    return selection["chosen_factor"] in (min(selection["factors"]), max(selection["factors"]))


def lr_limit_gaps(cfg: C.Config, train: dict | None, ablations: dict | None, arms: tuple) -> tuple:
    """Figure 1's claim on runs whose learning rate was chosen at the limit of its search: the
    paper chose each net's rate "to make training as fast as possible" (3.1), and a rate at the
    edge of what was tried has not shown that, so the ratio of two such runs is not decided
    (docs/cifar10.md). The runs are the claim's arm and what it is compared with."""
    from harness.analysis import claims as CL
    if cfg.data.source != "cifar10" or not ablations:
        return ()
    arm = CL.matching_arm({c.id: c for c in CL.load_claims()}[FIGURE1_CLAIM], arms)
    if arm is None:
        return ()
    base = ablations["arms"][arm].get("base")  # _with_bases: a base arm's results, its train metrics too
    runs = ((f"arm {base['name']}", base.get("train")) if base else ("the baseline", train),
            (f"arm {arm}", ablations["arms"][arm].get("train")))
    edge = [f"{who} seed {s} x{sel['chosen_factor']:g} (lr {sel['lr']:.3g})"
            for who, metrics in runs for s, t in sorted((metrics or {}).items())
            if (sel := t.get("lr_selection")) and _at_limit(sel)]
    if not edge:
        return ()
    return ((FIGURE1_CLAIM, "lr at the grid's edge: the learning-rate search (train.lr_select_factors, "
                            f"train.lr_select_limit) ended with its best rate at an edge of the rates tried, so a "
                            f"faster one may lie beyond ({', '.join(edge)})"),)


def _correctness(pred_dir: Path, labels: np.ndarray, seeds, protocols) -> tuple[dict, dict]:
    """Per protocol: top-1/top-5 correctness [n_seeds, n_images] of each seed, and the disjoint
    k-model ensembles (seeds in order, groups of k; softmax averaged, paper 6) for k = 2..n."""
    correct, ensembles = {}, {}
    for protocol in protocols:
        probs = load_predictions(pred_dir, seeds, protocol)
        correct[protocol] = {f"top{k}_error": np.stack([scoring.topk_correct(p, labels, k) for p in probs])
                             for k in (1, 5)}
        ensembles[protocol] = {}
        for k in range(2, len(seeds) + 1):
            groups = [list(range(j * k, (j + 1) * k)) for j in range(len(seeds) // k)]
            avg = [np.mean([probs[i] for i in g], axis=0) for g in groups]
            ensembles[protocol][k] = {
                "groups": [[seeds[i] for i in g] for g in groups],
                "correct": {f"top{t}_error": [scoring.topk_correct(a, labels, t) for a in avg] for t in (1, 5)},
                "member_correct": {m: [c[g] for g in groups] for m, c in correct[protocol].items()}}
        del probs
    return correct, ensembles


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


def _series(plots: Path, seed: int, steps_per_epoch: int):
    """The train stage's window series (seed-N.steps.csv beside seed-N.csv); runs trained before
    it existed fall back to the per-epoch curve (epoch resolution)."""
    from harness.analysis.ablation import Series
    steps = plots / f"seed-{seed}.steps.csv"
    if steps.is_file():
        df = pd.read_csv(steps)
        return Series.from_windows(df["step"], df["images"], df["wrong"])
    return Series.from_epochs(_train_error_curve(plots / f"seed-{seed}.csv"), steps_per_epoch)


def _train_metrics(folder: Path, seeds) -> dict:
    return {s: read_json(folder / f"seed-{s}.json", f"training metrics of seed {s}") for s in seeds}


def load_ablations(cfg: C.Config, data_dir: Path, train_plots: Path, ablations_dir: Path,
                   ablation_plots: Path) -> dict | None:
    """Evaluations, training curves, step series and train metrics of every enabled arm, with
    the baseline's curves and series. An arm with a `base:` arm carries that arm's under `base`
    (harness/analysis/compare.py measures it against them instead of the baseline seeds).

    Only the arms in ablations.enabled are read: results of arms switched off stay on disk
    (DVC does not delete them) but are not reported.
    """
    ab = cfg.ablations
    names = list(ab.enabled)
    if not names:
        return None
    n_train = shards.load_manifest(data_dir)["counts"]["train"]
    steps = lambda c: n_train // c.train.batch_size  # noqa: E731 -- harness/train/loop.py drops the last partial batch
    seeds = cfg.train.seeds
    arms = {}
    for name in names:
        arm_cfg = C.apply_arm(cfg, name)
        plots = ablation_plots / name / "train"
        arms[name] = {
            "overrides": ab.arm(name).as_dict(),
            "results": [read_json(ablations_dir / name / "evaluate" / f"seed-{s}.json",
                                  f"evaluation of arm {name}, seed {s}") for s in seeds],
            "curves": {s: _train_error_curve(plots / f"seed-{s}.csv") for s in seeds},
            "series": {s: _series(plots, s, steps(arm_cfg)) for s in seeds},
            "train": _train_metrics(ablations_dir / name / "train", seeds),
            "steps_per_epoch": steps(arm_cfg)}
    return {"protocol": "center" if "center" in cfg.evaluate.protocols else cfg.evaluate.protocols[0],
            "target_train_error": ab.target_train_error, "baseline_steps_per_epoch": steps(cfg),
            "baseline_curves": {s: _train_error_curve(train_plots / f"seed-{s}.csv") for s in cfg.train.seeds},
            "baseline_series": {s: _series(train_plots, s, steps(cfg)) for s in cfg.train.seeds},
            "arms": _with_bases(arms, ab)}


def _with_bases(arms: dict, ab: C.AblationsConfig) -> dict:
    """Each arm with a `base:` arm gets that arm's results, curves, series and train metrics
    (config.py makes sure the base is enabled, so it was loaded)."""
    out = {}
    for name, arm in arms.items():
        base = ab.arm(name).base
        if base is not None:
            b = arms[base]
            arm = {**arm, "base": {"name": base, **{k: b[k] for k in ("results", "curves", "series", "train")}}}
        out[name] = arm
    return out


def _context(cfg: C.Config, results: list[dict], ablations: dict | None, counts: dict, train: dict | None = None):
    """The run as the claims see it; `train`: the baseline seeds' train metrics (their lr selection)."""
    from harness.analysis import claims as CL
    arms = tuple((n, cfg.ablations.arm(n).overrides) for n in (ablations or {}).get("arms", {}))
    return CL.RunContext(protocol_gaps=cifar10_protocol_gaps(cfg, counts) + lr_limit_gaps(cfg, train, ablations, arms),
                         dataset=cfg.data.source, split=C.evaluated_split(cfg), num_classes=results[0]["num_classes"],
                         n_models_available=len(results), protocols=tuple(cfg.evaluate.protocols),
                         full_paper_model=is_full_paper_model(cfg), devices=len(cfg.train.devices), arms=arms)


def differs(cfg: C.Config, arm: str, base: str) -> dict:
    """model.*/train.* keys where arm and its base arm train differently: {key: [base's, arm's]}."""
    a, b = (C.flatten({k: C.training_config(C.apply_arm(cfg, n))[k] for k in ("model", "train")}) for n in (arm, base))
    return {k: [b[k], a[k]] for k in sorted(a) if a[k] != b[k]}


def mark_bases(out: dict, cfg: C.Config) -> None:
    """What a base arm changes, said where it is read: each arm result with a base arm lists the
    keys it trains differently from it (differs_from_base), and each claim row measured on such
    an arm names the arm it was compared with (compared_with)."""
    ab = cfg.ablations
    for name, res in out["ablation_results"].items():
        if res.get("base", "baseline") != "baseline":
            res["differs_from_base"] = differs(cfg, name, res["base"])
    for row in out["claims"]:
        arm = row.get("arm") or (row.get("measured_on_run") or {}).get("arm")
        if arm in out["ablation_results"] and ab.arm(arm).base is not None:
            row["compared_with"] = ab.arm(arm).base


def run_compare(ctx: StageContext, *, data_dir: Path, eval_dir: Path, pred_dir: Path,
                ensemble_path: Path, out_path: Path, train_plots: Path | None = None,
                ablations_dir: Path | None = None, ablation_plots: Path | None = None,
                train_dir: Path | None = None, summary_path: Path | None = None,
                finetune_dir: Path | None = None) -> dict:
    from harness.analysis import claims as CL
    from harness.analysis import compare, verdict
    cfg = ctx.cfg
    seeds = list(cfg.train.seeds)
    results = [read_json(eval_dir / f"seed-{s}.json", f"evaluation of seed {s}") for s in seeds]
    labels = np.load(data_dir / cfg.evaluate.split / "labels.npy")
    reference, ref_reason = load_reference(ctx.root, cfg)
    ablations = (load_ablations(cfg, data_dir, train_plots, ablations_dir, ablation_plots)
                 if ablations_dir is not None and train_plots is not None else None)
    train = _train_metrics(train_dir, seeds) if train_dir is not None else None
    context = _context(cfg, results, ablations, shards.load_manifest(data_dir)["counts"], train)
    correctness, ensembles = _correctness(pred_dir, labels, seeds, cfg.evaluate.protocols)
    with tracking.child_run(ctx.uri, ctx.experiment_id, ctx.parent_id, "compare",
                            params_for(cfg, "compare"), {**ctx.base_tags, "stage": "compare"}) as run_id:
        inputs = compare.CompareInputs(
            results, correctness=correctness, ensemble=read_json(ensemble_path, "ensemble metrics"),
            reference=reference, measured=paper_architecture_counts(), ablations=ablations, ensembles=ensembles,
            train=train, pretrained=load_pretrained(cfg, finetune_dir, results))
        out = compare.build_compare(inputs, context, CL.load_claims(), verdict.from_config(cfg.compare))
        mark_bases(out, cfg)
        out["protocol_gaps"] = [{"claims": scope, "reason": reason} for scope, reason in context.protocol_gaps]
        _add_costs(out, cfg, results, ablations, train)
        out["ablations"] = {"enabled": list(cfg.ablations.enabled),
                            "seeds": list(cfg.train.seeds),
                            "target_train_error": cfg.ablations.target_train_error,
                            "protocol": (ablations or {}).get("protocol")}
        if ref_reason:
            out["reference"] = {"tested": False, "reason": ref_reason}
        out["mlflow_run_id"] = run_id
        out["parent_run_id"] = ctx.parent_id
        out["mlflow_experiment_id"] = ctx.experiment_id
        tracking.log_metrics(ctx.uri, run_id, compare.summary_metrics(out))  # MLflow has no seed aggregation
        atomic_write_json(out_path, out)
        headline = compare.headline(out)
        if summary_path is not None:  # the DVC metrics: a handful of columns in `dvc exp show`
            atomic_write_json(summary_path, headline)
        # the same figures on the parent: what the UI's Compare shows for two pipeline executions
        tracking.log_headline(ctx.uri, ctx.parent_id, headline)
        tracking.log_stage_files(ctx.uri, run_id, C.to_dict(cfg), out_path, summary_path)
    return out
