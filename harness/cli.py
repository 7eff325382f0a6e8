"""The `harness` command: helpers around the pipeline (the pipeline itself is `dvc repro`)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from harness import config as C
from harness.errors import UserError


def _model_info(args) -> None:
    from harness.model import build_model, layer_table
    cfg = C.load_config(args.params) if args.params else C.Config()
    mcfg = cfg.model
    if args.paper:
        mcfg = C.ModelConfig()
    classes = args.classes
    rows = layer_table(build_model(mcfg, classes), mcfg.input_size)
    info = {"input": [3, mcfg.input_size, mcfg.input_size], "num_classes": classes,
            "layers": [{"name": r.name, "output": list(r.out_shape), "params": r.params,
                        "mult_adds": r.mult_adds} for r in rows],
            "total_params": sum(r.params for r in rows), "total_mult_adds": sum(r.mult_adds for r in rows)}
    if args.json:
        print(json.dumps(info, indent=2))
        return
    print(f"{'layer':8} {'output':>16} {'params':>12} {'mult-adds':>14}")
    for r in info["layers"]:
        print(f"{r['name']:8} {'x'.join(map(str, r['output'])):>16} {r['params']:>12,} {r['mult_adds']:>14,}")
    print(f"{'total':8} {'':>16} {info['total_params']:>12,} {info['total_mult_adds']:>14,}")


def _make_reference(args) -> None:
    """Train + evaluate other seeds with the current params; write their per-seed errors."""
    from harness.stages import open_stage
    from harness.stages.evaluate import run_evaluate
    from harness.stages.train import run_train
    ctx = open_stage(args.params, "reference", purpose="reference")
    cfg = ctx.cfg
    clash = sorted(set(args.seeds) & set(cfg.train.seeds))
    if clash:
        raise UserError(f"reference seeds {clash} are also in train.seeds: a run would be compared with itself")
    errors = {"top1_error": [], "top5_error": []}
    with tempfile.TemporaryDirectory(prefix="reference-") as tmp:
        tmp = Path(tmp)
        data_dir = Path(args.data)
        for seed in args.seeds:
            run_train(ctx, seed=seed, data_dir=data_dir, out_dir=tmp / f"m{seed}", metrics_path=tmp / f"t{seed}.json",
                      plots_path=tmp / f"t{seed}.csv")
            r = run_evaluate(ctx, seed=seed, data_dir=data_dir, model_dir=tmp / f"m{seed}", out_dir=tmp / f"p{seed}",
                             metrics_path=tmp / f"e{seed}.json")
            for k in errors:
                errors[k].append(r["protocols"][args.protocol][k])
            print(f"reference seed {seed}: top-1 {errors['top1_error'][-1]:.2f}%")
    out = {"profile": cfg.profile, "dataset": cfg.data.source, "protocol": args.protocol,
           "training_digest": C.training_digest(cfg), "seeds": list(args.seeds), **errors,
           "note": "per-seed errors (percent) of earlier runs with other seeds; made by `harness make-reference`"}
    from harness.io import atomic_write_json
    atomic_write_json(Path(args.out), out)
    print(f"wrote {args.out}")


def _mlflow_ui(args) -> None:
    """Start `mlflow ui` on the project's store and print the runs-table URL of its experiment."""
    import os

    from harness import runtime, tracking
    cfg = C.load_config(args.params)
    root = runtime.repo_root()
    uri = tracking.resolve_uri(cfg.tracking.uri, runtime.tracking_uri_override(), root)
    exp_id = tracking.ensure_experiment(uri, tracking.experiment_name(cfg.data.source, cfg.profile,
                                                                      cfg.tracking.experiment), root)
    # MLflow 3 opens on a GenAI overview; this URL goes straight to the runs table.
    print(f"Runs table: http://{args.host}:{args.port}/#/experiments/{exp_id}/runs", flush=True)
    os.execvp("mlflow", ["mlflow", "ui", "--backend-store-uri", uri, "--host", args.host,
                         "--port", str(args.port)])


def _preset(args) -> None:
    from harness import presets, runtime
    folder = runtime.repo_root() / "presets"
    if args.list or not args.name:
        for name in presets.available(folder):
            print(name)
        return
    new = presets.apply_preset(args.name, folder, args.params, args.root)
    d, t = new["data"], new["train"]
    arms = new.get("ablations", {}).get("enabled") or []
    print(f"{args.params}: preset {args.name} applied (previous file: {args.params}.bak)\n"
          f"  data {d['source']} from {d.get('root')}, {t['epochs']} epochs, seeds {t['seeds']}, "
          f"devices {t['devices']}" + (f", arms {', '.join(arms)}" if arms else "")
          + "\nRun `dvc repro` (or `make repro`) to start.")


def _collect_seeds(args) -> None:
    """Merge other machines' dvc.lock entries (git revisions) into this checkout (docs/scale-out.md)."""
    from harness import collect, runtime
    taken = collect.collect(runtime.repo_root(), args.revs)
    for rev, stages in taken.items():
        print(f"{rev}: {', '.join(stages) or 'nothing new'}")
    print("dvc.lock updated. Next: `dvc pull` (the outputs from the shared remote), then `dvc repro` "
          "(runs ensemble, compare and report only; `dvc status` first shows what would run).")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("model-info", help="per-layer output shape, parameters and multiply-adds")
    m.add_argument("--params", type=Path, default=None, help="params file (default: the paper's network)")
    m.add_argument("--paper", action="store_true", help="the paper's network whatever the params say")
    m.add_argument("--classes", type=int, default=1000, help="output classes (default 1000)")
    m.add_argument("--json", action="store_true", help="machine-readable output")
    m.set_defaults(fn=_model_info)
    r = sub.add_parser("make-reference", help="record per-seed errors of other seeds as the reference distribution")
    r.add_argument("--params", type=Path, default=Path("params.yaml"))
    r.add_argument("--data", type=Path, default=Path("artifacts/data"), help="prepared data (run `dvc repro prepare` first)")
    r.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103, 104, 105])
    r.add_argument("--protocol", default="center", choices=("center", "ten_patch"))
    r.add_argument("--out", type=Path, default=Path("reports/reference/default.json"))
    r.set_defaults(fn=_make_reference)
    u = sub.add_parser("mlflow-ui", help="MLflow UI on the project's store, opened on the runs table")
    u.add_argument("--params", type=Path, default=Path("params.yaml"))
    u.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    u.add_argument("--port", type=int, default=5000)
    u.set_defaults(fn=_mlflow_ui)
    s = sub.add_parser("preset", help="switch params.yaml to a real-data preset (the paper's recipe)",
                       description="Merge presets/NAME.yaml into params.yaml (keys it does not set are "
                                   "kept; the old file is saved as params.yaml.bak). "
                                   "Presets: ilsvrc2012, ilsvrc2010, cifar10 (the paper's CIFAR-10 "
                                   "experiments, docs/cifar10.md), cifar10-quick.")
    s.add_argument("name", nargs="?", help="preset name, e.g. ilsvrc2012")
    s.add_argument("--root", help="dataset folder: the archives as distributed, or extracted folders")
    s.add_argument("--params", type=Path, default=Path("params.yaml"))
    s.add_argument("--list", action="store_true", help="list the presets")
    s.set_defaults(fn=_preset)
    c = sub.add_parser("collect-seeds", help="merge seeds trained on other machines (git revisions) into dvc.lock",
                       description="For each revision (e.g. origin/seed-2): merge its dvc.lock stages into this "
                                   "checkout's and check out its metrics/plots files. Then `dvc pull` and "
                                   "`dvc repro`. See docs/scale-out.md.")
    c.add_argument("revs", nargs="+", help="git revisions holding the other machines' dvc.lock")
    c.set_defaults(fn=_collect_seeds)
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
