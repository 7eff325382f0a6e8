"""The `harness` command: helpers around the pipeline (the pipeline itself is `dvc repro`)."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from harness import config as C
from harness.errors import UserError


def _model_info(args) -> None:
    from harness.model import build_model, layer_table
    cfg = C.load_config(args.params) if args.params else C.Config()
    if args.paper:  # the paper's network; arms, if any, from --params
        cfg = dataclasses.replace(C.Config(), ablations=cfg.ablations)
    if args.arm:  # an ablation arm's network (params ablations.arms), e.g. no_conv3
        if not cfg.ablations.arms:
            raise UserError("--arm: the arms are declared in params.yaml ablations.arms; pass --params params.yaml")
        cfg = C.apply_arm(cfg, args.arm)
    if args.conv6:  # paper 6: the pre-trained CNNs' sixth conv layer, with the configured model.conv6_* switches
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, conv6=True))
    mcfg = cfg.model
    if args.list_arms:
        if not cfg.ablations.arms:
            raise UserError(f"--list-arms: {args.params} declares no ablation arms (ablations.arms)" if args.params else
                            "--list-arms: arms are declared in params.yaml ablations.arms; pass --params params.yaml")
        for arm in cfg.ablations.arms:
            changes = ", ".join(f"{k}={v}" for k, v in arm.overrides) or "none"
            print(f"{arm.name:18} {changes}{'   (enabled)' if arm.name in cfg.ablations.enabled else ''}")
        return
    classes, source = _class_count(args, cfg)
    rows = layer_table(build_model(mcfg, classes), mcfg.input_size)
    info = {"input": [3, mcfg.input_size, mcfg.input_size], "num_classes": classes, "classes_from": source,
            "arm": args.arm,
            "drop_conv": mcfg.drop_conv, "conv6": mcfg.conv6,
            "layers": [{"name": r.name, "output": list(r.out_shape), "params": r.params,
                        "mult_adds": r.mult_adds} for r in rows],
            "total_params": sum(r.params for r in rows), "total_mult_adds": sum(r.mult_adds for r in rows)}
    if args.json:
        print(json.dumps(info, indent=2))
        return
    print(f"{classes} classes ({source})")
    print(f"{'layer':8} {'output':>16} {'params':>12} {'mult-adds':>14}")
    for r in info["layers"]:
        print(f"{r['name']:8} {'x'.join(map(str, r['output'])):>16} {r['params']:>12,} {r['mult_adds']:>14,}")
    print(f"{'total':8} {'':>16} {info['total_params']:>12,} {info['total_mult_adds']:>14,}")


# Classes of a source whose count the params fix (imagefolder's is its folder count: known once prepared).
SOURCE_CLASSES = {"cifar10": 10, "ilsvrc2012": 1000, "ilsvrc2010": 1000, "fall2011": 21841}


def _class_count(args, cfg: C.Config) -> tuple[int, str]:
    """The output classes model-info counts, and where the number comes from: --classes; else, with
    --params, the prepared data's manifest (what the train stage builds the net for) when it holds
    the configured source, else the data params; else the paper's 1000."""
    if args.classes is not None:
        return args.classes, "--classes"
    if not args.params or args.paper:
        return 1000, "the paper's ILSVRC classes"
    manifest = args.data / "manifest.json"
    if manifest.is_file():
        m = json.loads(manifest.read_text())
        if m.get("source") == cfg.data.source and m.get("classes"):
            return len(m["classes"]), f"the prepared data, {manifest}"
    if cfg.data.source == "synthetic":
        return cfg.data.synthetic.num_classes, f"{args.params} data.synthetic.num_classes"
    if cfg.data.source in SOURCE_CLASSES:
        return SOURCE_CLASSES[cfg.data.source], f"{args.params} data.source {cfg.data.source}"
    raise UserError(f"model-info: data.source {cfg.data.source} has as many classes as class folders, known once "
                    f"prepared ({manifest} is missing): run `dvc repro prepare`, or pass --classes N")


def _pilot(args) -> None:
    """A few hundred steps of the configured recipe; loss, throughput, memory, projected cost."""
    from harness import pilot
    cfg = C.load_config(args.params)
    pilot.main(cfg, Path(args.data), Path(args.out), args.steps, args.eval_images, Path(args.pretrain_data))


def _make_reference(args) -> None:
    """Train + evaluate other seeds with the current params; write their per-seed errors."""
    from harness.stages import open_stage
    from harness.stages.evaluate import run_evaluate
    from harness.stages.train import TrainOutputs, run_train
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
            run_train(ctx, seed=seed, data_dir=data_dir,
                      outputs=TrainOutputs(tmp / f"m{seed}", tmp / f"t{seed}.json", tmp / f"t{seed}.csv"))
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
    print(f"Runs table: {tracking.experiment_url(f'http://{args.host}:{args.port}', exp_id)}", flush=True)
    os.execvp("mlflow", ["mlflow", "ui", "--backend-store-uri", uri, "--host", args.host,
                         "--port", str(args.port)])


def _preset(args) -> None:
    from harness import presets, runtime
    folder = runtime.repo_root() / "presets"
    if args.list or not args.name:
        for name in presets.available(folder):
            print(name)
        return
    reset: list[str] = []
    new = presets.apply_preset(args.name, folder, args.params, args.root, args.ilsvrc2012_root, reset)
    d, t = new["data"], new["train"]
    arms = new.get("ablations", {}).get("enabled") or []
    print(f"{args.params}: preset {args.name} applied (previous file: {args.params}.bak)\n"
          f"  data {d['source']} from {d.get('root')}, {t['epochs']} epochs, seeds {t['seeds']}, "
          f"devices {t['devices']}" + (f", arms {', '.join(arms)}" if arms else "")
          + (f"\n  pre-training (paper 6): {new['pretrain']['data']['source']} from {new['pretrain']['data'].get('root')}, "
             f"seeds {new['pretrain']['seeds']}, fine-tuned on data.*; `harness pilot` projects its cost"
             if new.get("pretrain", {}).get("enabled") else "")
          + (f"\n  set back to the paper's value (another preset had set them): {', '.join(reset)}" if reset else "")
          + "\nRun `dvc repro` (or `make repro`) to start.")


def _queue_seeds(args) -> None:
    """Each seed a queued DVC experiment; one queue worker per device set (docs/scale-out.md)."""
    from harness import parallel, runtime
    root = runtime.repo_root()
    seeds = args.seeds or list(C.load_config(args.params).train.seeds)
    names = parallel.queue_seeds(root, seeds, args.prefix)
    print(f"queued {', '.join(names)}")
    pids = parallel.start_workers(root, args.devices)
    print(f"{len(pids)} queue worker(s) started: " +
          ", ".join(f"{k} on CUDA_VISIBLE_DEVICES={d}" for k, d in enumerate(args.devices, 1)))
    print(f"Follow with `dvc queue status` / `dvc queue logs {names[0]}`; when all succeeded: "
          f"`harness collect-seeds {' '.join(names)} && dvc checkout --allow-missing && dvc repro` "
          "(--allow-missing: ensemble and compare have not run yet, so their outputs have no hash).")


def _collect_seeds(args) -> None:
    """Merge other machines' (or queued experiments') dvc.lock entries into this checkout (docs/scale-out.md)."""
    from harness import collect, parallel, runtime
    root = runtime.repo_root()
    revs = [parallel.exp_ref(root, r) or r for r in args.revs]  # an experiment's name, or any git revision
    taken = collect.collect(root, revs)
    taken = {name: taken[rev] for name, rev in zip(args.revs, revs)}
    for rev, stages in taken.items():
        print(f"{rev}: {', '.join(stages) or 'nothing new'}")
    print("dvc.lock updated. Next: `dvc pull --allow-missing` (the outputs from the shared remote; "
          "ensemble and compare have not run, so theirs are missing), then `dvc repro` "
          "(runs ensemble, compare and report only; `dvc status` first shows what would run).")


def _parse_numbers(text: str, what: str) -> tuple[float, ...]:
    """'18.1,18.3' -> (18.1, 18.3); an error names the bad item. An empty entry ('45,,46', '45,')
    is refused, never dropped: it is a lost seed, not a separator."""
    items = [t.strip() for t in str(text).split(",")]
    if not any(items):
        raise UserError(f"{what}: no numbers given")
    if not all(items):
        raise UserError(f"{what}: entry {items.index('') + 1} of {str(text)!r} is empty (a missing seed?); "
                        "give one number per seed, separated by commas")
    out = []
    for t in items:
        try:
            x = float(t)
        except ValueError:
            raise UserError(f"{what}: {t!r} is not a number") from None
        if x != x or x in (float("inf"), float("-inf")):
            raise UserError(f"{what}: {t!r} is not a finite number")
        out.append(x)
    return tuple(out)


def _integer(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{what}: {text!r} is not a whole number") from None


def _numbers(value, what: str) -> tuple[float, ...]:
    """A JSON list of numbers, or a comma-separated string."""
    if isinstance(value, str):
        return _parse_numbers(value, what)
    if not isinstance(value, list) or not value:
        raise UserError(f"{what}: expected a non-empty list of numbers, got {value!r}")
    for x in value:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise UserError(f"{what}: {x!r} is not a number")
    return _parse_numbers(",".join(repr(float(x)) for x in value), what)


# Data sets whose test labels are private (an evaluation server's): a value for a claim on such a
# test set is a test-server number or comes from another set, and only the user knows which.
PRIVATE_TEST_SETS = ("ilsvrc2012",)


def _in_percent(claim) -> bool:
    """The claim's values are error rates in percent (headline errors, the errors of an ablation's arms)."""
    return claim.kind == "headline" or claim.measure in ("test_error", "train_error", "protocol")


def _check_percent(claim, groups: dict, where: str) -> None:
    """Refuse fractions given for errors in percent: 0.182 for 18.2% would be decided, and wrongly."""
    if not _in_percent(claim):
        return
    for name, xs in groups.items():
        if xs and all(0.0 <= x <= 1.0 for x in xs):
            shown = ", ".join(f"{x:g}" for x in xs[:3]) + (", ..." if len(xs) > 3 else "")
            raise UserError(f"{where}: {name}: every value is at most 1 ({shown}), which looks like a fraction; "
                            f"{claim.id} takes errors in percent (18.2, not 0.182): multiply by 100")


def _check_test_set(claim, n_images, where: str) -> None:
    """A claim on a private test set needs the size of the set the values come from."""
    if n_images is None and claim.kind == "headline" and claim.split == "test" and claim.dataset in PRIVATE_TEST_SETS:
        raise UserError(f"{where}: {claim.id} is measured on the {claim.dataset} test set, whose labels are private: "
                        f"give n_images (--n-images N), the size of the set your values come from (50000 for its "
                        f"validation set; {claim.n_images} for evaluation-server numbers on the test set itself)")


def _pairing(claim, values, variant, asked) -> tuple[bool, str]:
    """(paired, why). The two protocols of the same models are always paired; an ablation's arms
    train on the same seeds as the baseline (ablations.arms), so values[i] and variant[i] pair by
    seed unless the user says --unpaired or the groups differ in size."""
    if claim.measure == "protocol":
        return True, ""
    if asked is not None:
        return bool(asked), ""
    if claim.kind in ("ablation", "convergence") and variant is not None and len(variant) == len(values):
        return True, ("; paired by seed (the default: an ablation's arms train on the baseline's seeds; "
                      "--unpaired if these did not)")
    if variant is not None:
        return False, "; unpaired (the groups differ in size)"
    return False, ""


def _verdict_request(claims: dict, req: dict, where: str):
    """(claim, Evidence) for one request; UserError naming the problem."""
    from harness.analysis import verdict as V
    cid = req.get("claim")
    if not isinstance(cid, str) or not cid:
        raise UserError(f"{where}: no claim id given")
    if cid not in claims:
        near = difflib.get_close_matches(cid, list(claims), n=1)
        raise UserError(f"{where}: unknown claim {cid!r}" + (f" (did you mean {near[0]}?)" if near else "")
                        + "; `harness verdict --list` shows them")
    claim = claims[cid]
    values = _numbers(req.get("values"), f"{where}: values")
    variant = None if req.get("variant") is None else _numbers(req["variant"], f"{where}: variant")
    n_images = req.get("n_images")
    if n_images is not None and (isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1):
        raise UserError(f"{where}: n_images must be a positive integer, got {n_images!r}")
    if req.get("paired") is not None and not isinstance(req["paired"], bool):
        raise UserError(f"{where}: paired must be true or false, got {req['paired']!r}")
    _check_percent(claim, {"values": values, "variant": variant}, where)
    _check_test_set(claim, n_images, where)
    paired, pairing = _pairing(claim, values, variant, req.get("paired"))
    same = n_images is None or n_images == claim.n_images
    resolution = req.get("resolution", 1.0 if claim.measure == "iterations" else 0.0)
    if isinstance(resolution, bool) or not isinstance(resolution, (int, float)) or not resolution >= 0:
        raise UserError(f"{where}: resolution must be a number >= 0, got {resolution!r}")
    ev = V.Evidence(values, variant, n_images=n_images, same_test_set=same, paired=paired,
                    resolution=float(resolution),
                    source="given on the command line" + pairing
                    + ("" if n_images is not None or claim.kind != "headline"
                       else "; the same test set as the paper's assumed"))
    return claim, ev


def _verdict_rows(requests: list[tuple[str, dict]], settings) -> list[dict]:
    """Every request through verdict.assess and one finalize (Holm across them)."""
    from harness.analysis import verdict as V
    from harness.analysis.claims import load_claims
    claims = {c.id: c for c in load_claims()}
    assessments = []
    for where, req in requests:
        claim, ev = _verdict_request(claims, req, where)
        try:
            assessments.append(V.assess(claim, ev, settings))
        except V.EvidenceError as exc:
            raise UserError(f"{where}: {exc}") from None
    return [V.record(r) for r in V.finalize(assessments, settings)]


def _batch_requests(path: str) -> list[tuple[str, dict]]:
    text = sys.stdin.read() if path == "-" else _read_text(Path(path))
    out, seen = [], {}
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"line {i}"
        try:
            req = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(req, dict):
            raise UserError(f"{where}: expected an object like {{\"claim\": ..., \"values\": [...]}}")
        unknown = set(req) - {"claim", "values", "variant", "n_images", "paired", "resolution"}
        if unknown:
            raise UserError(f"{where}: unknown key {sorted(unknown)[0]!r} (keys: claim, values, variant, "
                            "n_images, paired, resolution)")
        cid = req.get("claim")
        if isinstance(cid, str) and cid in seen:  # each request is one member of the Holm family
            raise UserError(f"{where}: claim {cid} is already requested on {seen[cid]}: a repeated claim would "
                            "count twice in the Holm family; give each claim once, with all its seeds")
        seen[cid] = where
        out.append((where, req))
    if not out:
        raise UserError(f"{path}: no requests (one JSON object per line)")
    return out


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise UserError(f"batch file not found: {path}")
    return path.read_text()


def _verdict(args) -> None:
    """Decide claims from per-seed results trained anywhere (the compare stage's code path)."""
    from harness.analysis import verdict as V
    from harness.analysis.claims import load_claims
    if args.list:
        for c in load_claims():
            print(f"{c.id:28} {c.kind:12} {c.describe_value():>14}  {c.contrast or c.metric}")
        return
    settings = V.Settings()
    if args.params is not None:
        settings = V.from_config(C.load_config(args.params).compare)
    if args.batch is not None:
        if args.claim or args.values or args.variant or args.n_images or args.paired or args.unpaired:
            raise UserError("--batch takes its requests from the file: drop --claim/--values/--variant/--n-images")
        for row in _verdict_rows(_batch_requests(args.batch), settings):
            print(json.dumps(row, allow_nan=False))
        return
    if not args.claim or args.values is None:
        raise UserError("give --claim ID and --values V1,V2,... (or --batch FILE, or --list)")
    req = {"claim": args.claim, "values": args.values, "variant": args.variant,
           "n_images": None if args.n_images is None else _integer(args.n_images, "--n-images"),
           "paired": True if args.paired else (False if args.unpaired else None)}
    if args.resolution is not None:
        req["resolution"] = _parse_numbers(args.resolution, "--resolution")[0]
    (row,) = _verdict_rows([("verdict", req)], settings)
    print(json.dumps(row, indent=2, allow_nan=False) if args.json else V.describe(row))


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help, unless the help already says it (defaults that mean
    "not given", None and False, are described in words where they matter)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False) or action.required:
            return text
        return super()._get_help_string(action)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("alexnet-harness")
    except PackageNotFoundError:  # run from a checkout without `make install`
        return "unknown (not installed: run `make install`)"


def build_parser() -> argparse.ArgumentParser:
    """The CLI: one subcommand per _add_<command> below, listed in --help in this order."""
    p = argparse.ArgumentParser(prog="harness", description=__doc__, formatter_class=_Help)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser = functools.partial(sub.add_parser, formatter_class=_Help)  # every subcommand's --help too
    _add_model_info(sub)
    _add_pilot(sub)
    _add_make_reference(sub)
    _add_mlflow_ui(sub)
    _add_preset(sub)
    _add_collect_seeds(sub)
    _add_verdict(sub)
    _add_queue_seeds(sub)
    return p


def _add_model_info(sub) -> None:
    m = sub.add_parser("model-info", help="per-layer output shape, parameters and multiply-adds")
    m.add_argument("--params", type=Path, default=None, help="params file (default: the paper's network)")
    m.add_argument("--paper", action="store_true", help="the paper's network whatever the params say")
    m.add_argument("--classes", type=int, default=None,
                   help="output classes (default: with --params, the prepared data's (--data manifest.json), "
                        "else the data params'; without, the paper's 1000)")
    m.add_argument("--data", type=Path, default=Path("artifacts/data"),
                   help="prepared-data folder whose manifest gives the class count")
    m.add_argument("--json", action="store_true", help="machine-readable output")
    m.add_argument("--arm", default=None, help="the network of this ablation arm (params ablations.arms; needs --params)")
    m.add_argument("--conv6", action="store_true",
                   help="with the sixth conv layer of paper 6's pre-trained CNNs (model.conv6_* switches)")
    m.add_argument("--list-arms", action="store_true", help="list the ablation arms of --params and what each changes")
    m.set_defaults(fn=_model_info)


def _add_pilot(sub) -> None:
    pl = sub.add_parser("pilot", help="a few hundred steps of the configured recipe: does the loss leave "
                                      "ln(classes), throughput, memory, projected cost of the full run",
                        description="Runs --steps training steps of the recipe in --params on the prepared data "
                                    "(`dvc repro prepare` first) and devices, times evaluation, and writes the "
                                    "figures and the projected wall time and device-hours of the full run (all "
                                    "seeds, enabled arms, evaluation) to --out, which the report shows.")
    pl.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file: the recipe to try")
    pl.add_argument("--data", type=Path, default=Path("artifacts/data"), help="prepared data (`dvc repro prepare`)")
    pl.add_argument("--pretrain-data", type=Path, default=Path("artifacts/pretrain/data"),
                    help="prepared Fall 2011 data, when pretrain.enabled (its size is costed; else the entire release)")
    pl.add_argument("--steps", type=int, default=300, help="training steps")
    pl.add_argument("--eval-images", type=int, default=256, help="images timed for centre-crop evaluation "
                                                                 "(a tenth of them for 10-patch)")
    pl.add_argument("--out", type=Path, default=Path("reports/pilot.json"),
                    help="JSON of the figures (the report shows it)")
    pl.set_defaults(fn=_pilot)


def _add_make_reference(sub) -> None:
    r = sub.add_parser("make-reference", help="record per-seed errors of other seeds as the reference distribution")
    r.add_argument("--params", type=Path, default=Path("params.yaml"),
                   help="params file: the recipe the seeds train with")
    r.add_argument("--data", type=Path, default=Path("artifacts/data"), help="prepared data (run `dvc repro prepare` first)")
    r.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103, 104, 105],
                   help="seeds to train, none of them in train.seeds")
    r.add_argument("--protocol", default="center", choices=("center", "ten_patch"), help="evaluation protocol recorded")
    r.add_argument("--out", type=Path, default=Path("reports/reference/default.json"),
                   help="JSON to write (params compare.reference reads it)")
    r.set_defaults(fn=_make_reference)


def _add_mlflow_ui(sub) -> None:
    u = sub.add_parser("mlflow-ui", help="MLflow UI on the project's store, opened on the runs table")
    u.add_argument("--params", type=Path, default=Path("params.yaml"),
                   help="params file: its tracking.* names the store")
    u.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s, loopback only)")
    u.add_argument("--port", type=int, default=5000, help="port of the UI")
    u.set_defaults(fn=_mlflow_ui)


def _add_preset(sub) -> None:
    s = sub.add_parser("preset", help="switch params.yaml to a real-data preset (the paper's recipe)",
                       description="Merge presets/NAME.yaml into params.yaml (a key another preset sets "
                                   "and this one does not goes back to the paper's value, other keys are "
                                   "kept; the old file is saved as params.yaml.bak). "
                                   "Presets: ilsvrc2012, ilsvrc2010, cifar10 (the paper's CIFAR-10 "
                                   "experiments, docs/cifar10.md), cifar10-quick, fall2011 (paper 6: "
                                   "--root Fall 2011, --ilsvrc2012-root ILSVRC-2012).")
    s.add_argument("name", nargs="?", help="preset name, e.g. ilsvrc2012 (default: list the presets)")
    s.add_argument("--root", help="dataset folder: the archives as distributed, or extracted folders")
    s.add_argument("--ilsvrc2012-root", default=None,
                   help="preset fall2011: the ILSVRC-2012 folder (fine-tuning, evaluation, duplicates); --root is Fall 2011's")
    s.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file to rewrite")
    s.add_argument("--list", action="store_true", help="list the presets")
    s.set_defaults(fn=_preset)


def _add_collect_seeds(sub) -> None:
    c = sub.add_parser("collect-seeds", help="merge seeds trained on other machines (git revisions) into dvc.lock",
                       description="For each revision (e.g. origin/seed-2): merge its dvc.lock stages into this "
                                   "checkout's and check out its metrics/plots files. Then `dvc pull --allow-missing` and "
                                   "`dvc repro`. See docs/scale-out.md.")
    c.add_argument("revs", nargs="+", help="git revisions holding the other machines' dvc.lock, or names of "
                                           "DVC experiments of this commit (harness queue-seeds)")
    c.set_defaults(fn=_collect_seeds)


def _add_verdict(sub) -> None:
    v = sub.add_parser("verdict", help="test per-seed results trained anywhere against a claim of the paper",
                       description="Decide a claim of harness/analysis/claims.yaml from per-seed results, with the "
                                   "compare stage's statistics (docs/statistics.md): reproduced, not reproduced, "
                                   "inconclusive (with the seeds that would settle it) or not tested.")
    v.add_argument("--claim", help="claim id (see --list)")
    v.add_argument("--values", help="per-seed results of the paper's network as printed: errors in %% "
                                    "(or per disjoint ensemble for k-model claims), iterations to the claim's target "
                                    "for convergence claims, 1/0 per run for proportion claims")
    v.add_argument("--variant", help="the same for the variant the claim compares against (no LRN, tanh, one "
                                     "tower, ...; the centre crop for ten-patch claims). Effect = variant - paper's "
                                     "net; ratio = variant / paper's net")
    v.add_argument("--n-images", help="size of the test set of --values (default: the paper's own test "
                                                "set; another size adds the binomial noise of both sets). "
                                                "Required for claims on the ILSVRC-2012 test set (private labels)")
    pair = v.add_mutually_exclusive_group()
    pair.add_argument("--paired", action="store_true", help="values[i] and variant[i] come from the same seed "
                                                            "(the default for ablation and convergence claims when "
                                                            "both groups have as many values)")
    pair.add_argument("--unpaired", action="store_true", help="the two groups come from different seeds")
    v.add_argument("--resolution", help="convergence: steps between logged points (default 1)")
    v.add_argument("--json", action="store_true", help="one JSON object (claim, verdict, estimate, interval, "
                                                       "tolerance, p, seeds_needed, ...)")
    v.add_argument("--batch", help="JSON lines in (FILE or - for stdin): {\"claim\", \"values\", \"variant\", "
                                   "\"n_images\", \"paired\"}; one JSON object per line out, in order, Holm across "
                                   "them (each claim once)")
    v.add_argument("--params", type=Path, default=None, help="take alpha, power and multiplicity from this "
                                                             "params file's compare section (default: the defaults)")
    v.add_argument("--list", action="store_true", help="list the claims")
    v.set_defaults(fn=_verdict)


def _add_queue_seeds(sub) -> None:
    q = sub.add_parser("queue-seeds", help="train seeds in parallel: DVC's experiment queue, one worker per GPU set",
                       description="Queue one DVC experiment per seed (evaluate@N and what it needs) and start one "
                                   "queue worker per --devices entry, each with CUDA_VISIBLE_DEVICES set to it. "
                                   "Run `dvc repro prepare` first. See docs/scale-out.md.")
    q.add_argument("--devices", nargs="+", required=True,
                   help="one GPU set per worker, e.g. 0,1 2,3 4,5 6,7 (CUDA_VISIBLE_DEVICES values)")
    q.add_argument("--seeds", type=int, nargs="+", default=None, help="default: train.seeds")
    q.add_argument("--prefix", default="seed", help="experiment names are PREFIX-N")
    q.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file: train.seeds")
    q.set_defaults(fn=_queue_seeds)


# Options whose value is a list of numbers: argparse takes "-5,-6,-7" for an option (it only knows
# single negative numbers), so such a value is glued to its option before parsing.
_NUMBER_LISTS = ("--values", "--variant")


def _glue_negative_lists(argv: list[str]) -> list[str]:
    out = []
    for arg in argv:
        if out and out[-1] in _NUMBER_LISTS and re.match(r"-[\d.]", arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv=None) -> None:
    argv = _glue_negative_lists(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _to_repo_root(parser, args)
        args.fn(args)
        sys.stdout.flush()  # a reader that went away (`| head -1`) shows here, not in the interpreter's exit
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except BrokenPipeError:
        # the standard way (Python docs, "Note on SIGPIPE"): stdout to devnull so the final flush
        # cannot fail again, no traceback for a reader that stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


# string options that name files or folders (the Path-typed ones are found by type)
PATH_STRINGS = ("root", "ilsvrc2012_root", "batch")


def _to_repo_root(parser: argparse.ArgumentParser, args) -> None:
    """Work from any subfolder of the repository, like dvc: paths given on the command line are
    taken relative to where the user stands, the defaults (params.yaml, artifacts/data, ...)
    relative to the repository root (the nearest folder above holding .dvc or dvc.yaml)."""
    cwd = Path.cwd()
    root = next((d for d in (cwd, *cwd.parents) if (d / ".dvc").is_dir() or (d / "dvc.yaml").is_file()), None)
    if root is None or root == cwd:  # outside a checkout (e.g. `verdict` on results from elsewhere): as given
        return
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[args.command]
    defaults = {a.dest: a.default for a in sub._actions}
    for dest, value in vars(args).items():
        if value is defaults.get(dest) or value == "-":  # argparse hands the default object itself when not given
            continue
        if isinstance(value, Path) and not value.is_absolute():
            setattr(args, dest, Path(os.path.normpath(cwd / value)))
        elif dest in PATH_STRINGS and isinstance(value, str) and not Path(value).is_absolute():
            setattr(args, dest, os.path.normpath(cwd / value))
    os.chdir(root)


if __name__ == "__main__":
    main()
