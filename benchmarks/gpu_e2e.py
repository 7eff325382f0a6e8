"""Every stage on the device, end to end, as one prepared command (docs/performance.md).

  python benchmarks/gpu_e2e.py [--jpegs FOLDER] [--out FILE] [--work DIR]   # CUDA, under 8 minutes
  python benchmarks/gpu_e2e.py --smoke                                       # tiny, on the CPU (CI)

1. builds an ImageNet-shaped JPEG ImageFolder (train/<class>/, val/<class>/) from the sample JPEGs
   at their real sizes (full: 100 classes x 180 + 20 images, each sample reused; --smoke: 4 x 8 + 3);
2. writes params.yaml for it in a work folder (the checkout's params with a patch: data.source
   imagefolder, the paper net at 224 px, bf16, channels_last, 1 epoch, seeds [1, 2], 10-patch
   evaluation, deterministic; --smoke: an eighth-width net at 64 px on the CPU);
3. runs the stages' own commands, read from dvc.yaml's `cmd` with the params substituted, in the
   pipeline's order: prepare, train@1, train@2, evaluate@1, evaluate@2, ensemble, compare, report;
4. SIGKILLs a training of seed 1 right after its first mid-epoch checkpoint (harness/io.py _fault,
   HARNESS_FAULT_KILL: the process kills itself at that point, as a preemption would), resumes it
   with the same command, and compares its weights with train@1's, bit for bit;
5. the two-tower net with both towers on one device (TwoDeviceAlexNet on (dev, dev)) against the
   grouped net with the same weights: logits and gradients, fp32 with TF32 off;
6. writes a JSON (`--out`, default $OUT/gpu_e2e.json or ./gpu_e2e.json): `ok` and each part's
   findings, in the form benchmarks/gpu_summary.py folds into reports/gpu.json as `end_to_end`
   (gpu_check.py reads it from the summary it rewrites).

No dvc and no mlflow: the stages run with HARNESS_TRACKING=off (harness/runtime.py), so they log
nothing to MLflow and never import it. The labels are arbitrary (every class reuses the same
samples), so accuracy is chance by construction: this checks that the stages run on the device
and what they cost, not what the net learns.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python benchmarks/gpu_e2e.py` from the checkout: harness and benchmarks importable
    sys.path.insert(0, str(REPO))
ORDER = ("validate", "list_data", "prepare", "train", "evaluate", "ensemble", "compare", "report")  # dvc.yaml's order
SEEDS = (1, 2)
# what the stages import besides torch (pyproject.toml's dependencies without mlflow and dvc)
NEEDED = ("yaml", "numpy", "PIL", "pandas", "scipy", "statsmodels", "matplotlib", "simplejpeg", "tqdm")
COPIED = ("harness", "pipelines", "dvc.yaml", "reports/reference", "reports/benchmarks.json",
          "reports/reliability.json", "reports/pilot.json", "reports/cifar10_costs.json")

SIZES = {  # classes, train and val images a class, stored side, crop, batch, checkpoint_every (steps)
    "full": dict(classes=100, train=180, val=20, image_size=256, input_size=224, width=1.0, batch=256, ckpt=30),
    "smoke": dict(classes=4, train=8, val=3, image_size=72, input_size=64, width=0.125, batch=8, ckpt=2),
}


def default_jpegs() -> Path:
    for p in (REPO / "shared" / "data" / "imagenet-sample", REPO.parent / "shared" / "data" / "imagenet-sample"):
        if p.is_dir():
            return p
    return REPO / "shared" / "data" / "imagenet-sample"


def build_dataset(jpegs: Path, root: Path, size: dict) -> dict:
    """root/train/<class>/ and root/val/<class>/ of real JPEGs, hard links where the file system allows."""
    samples = sorted(p for p in jpegs.iterdir() if p.suffix.lower() in (".jpeg", ".jpg"))
    if not samples:
        raise SystemExit(f"no sample JPEGs in {jpegs}: pass --jpegs FOLDER (the ImageNet sample folder)")
    n = 0
    for split, per in (("train", size["train"]), ("val", size["val"])):
        for c in range(size["classes"]):
            folder = root / split / f"c{c:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per):
                src = samples[n % len(samples)]
                dst = folder / f"{n:06d}{src.suffix}"
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)
                n += 1
    return {"root": str(root), "classes": size["classes"], "train_per_class": size["train"],
            "val_per_class": size["val"], "images": n, "distinct_samples": len(samples)}


def params_patch(smoke: bool, data_root: Path, device: str) -> dict:
    s = SIZES["smoke" if smoke else "full"]
    return {
        "data": {"source": "imagefolder", "root": str(data_root), "image_size": s["image_size"],
                 "encoding": "jpeg", "shard_size": 64 if smoke else 2048},
        "model": {"width": s["width"], "input_size": s["input_size"]},
        "train": {"seeds": list(SEEDS), "epochs": 1, "batch_size": s["batch"], "lr_steps": [], "warmup_epochs": 0.0,
                  "checkpoint_every": s["ckpt"], "devices": [device], "precision": "bf16",
                  "channels_last": not smoke, "deterministic": True, "threads": 1 if smoke else 8,
                  "num_workers": 0 if smoke else 8, "decode_device": "cpu" if smoke else "cuda"},
        "evaluate": {"protocols": ["center", "ten_patch"], "batch_size": 16 if smoke else 500},
        "ensemble": {"max_subsets": 10},
        "compare": {"n_boot": 200},
        "tracking": {"log_models": False},
    }


def make_workdir(work: Path, patch: dict) -> dict:
    """The stages' code and reference files copied into `work`, with params.yaml patched."""
    import yaml
    for rel in COPIED:
        src, dst = REPO / rel, work / rel
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    for d in ("reports/metrics/ablations", "reports/plots/ablations", "reports/metrics/finetune"):
        (work / d).mkdir(parents=True, exist_ok=True)  # compare reads these folders, empty or not
    from harness.presets import merged  # the rule `harness preset` patches params.yaml by
    params = merged(yaml.safe_load((REPO / "params.yaml").read_text()), patch)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def stage_commands(work: Path, params: dict) -> list[tuple[str, list[str]]]:
    """(name, argv) of each stage in ORDER, from dvc.yaml's cmd: ${item.seed} for matrix stages."""
    import yaml
    stages = yaml.safe_load((work / "dvc.yaml").read_text())["stages"]
    out = []
    for name in ORDER:
        cmd = " ".join(stages[name]["cmd"].split())
        if "matrix" in stages[name]:
            assert set(stages[name]["matrix"]) == {"seed"}, f"{name}: a matrix over {set(stages[name]['matrix'])}"
            out += [(f"{name}@{s}", _argv(cmd.replace("${item.seed}", str(s)))) for s in params["train"]["seeds"]]
        else:
            out.append((name, _argv(cmd)))
    return out


def _argv(cmd: str) -> list[str]:
    argv = shlex.split(cmd)
    if "${" in cmd:
        raise SystemExit(f"unsubstituted variable in a stage command: {cmd}")
    return [sys.executable if argv[0] == "python" else argv[0], *argv[1:]]


def stage_env(work: Path, extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "DVC_", "HARNESS_FAULT"))}
    path = os.pathsep.join([str(work), *([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])])
    env.update({"PYTHONPATH": path, "HARNESS_TRACKING": "off", "DVC_ROOT": str(work), **(extra or {})})
    return env


def run_stage(work: Path, name: str, argv: list[str], timeout_s: float, extra_env: dict | None = None) -> dict:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=work, env=stage_env(work, extra_env), capture_output=True, text=True,
                              timeout=max(timeout_s, 1))
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(errors="replace")
        return {"stage": name, "rc": None, "seconds": round(time.perf_counter() - t0, 2), "ok": False,
                "tail": f"stopped: past the run's time budget\n{out[-1200:]}", "output": out}
    tail = (proc.stdout + proc.stderr)[-1500:]
    return {"stage": name, "rc": proc.returncode, "seconds": round(time.perf_counter() - t0, 2), "tail": tail,
            "ok": proc.returncode == 0, "output": proc.stdout + proc.stderr}


def run_pipeline(work: Path, commands, deadline: float) -> dict:
    results = {}
    for name, argv in commands:
        r = run_stage(work, name, argv, deadline - time.monotonic())
        r.pop("output")
        results[name] = r
        print(f"  {name}: rc {r['rc']}, {r['seconds']} s", flush=True)
        if not r["ok"]:
            print(r["tail"], file=sys.stderr)
            break
    return results


def outputs_found(work: Path, params: dict) -> dict:
    """What the stages wrote: the headline figures and that each expected file exists."""
    seeds = params["train"]["seeds"]
    files = ["artifacts/data/manifest.json", "reports/metrics/ensemble.json", "reports/metrics/compare.json",
             "reports/summary.json", "reports/report.html", "reports/report.md",
             *[f"artifacts/models/seed-{s}/model.pt" for s in seeds],
             *[f"reports/metrics/evaluate/seed-{s}.json" for s in seeds]]
    missing = [f for f in files if not (work / f).exists()]
    found = {"missing": missing}
    for s in seeds:
        path = work / f"reports/metrics/evaluate/seed-{s}.json"
        if path.is_file():
            ev = json.loads(path.read_text())
            found[f"seed-{s}"] = {p: ev["protocols"][p]["top1_error"] for p in ev["protocols"]}
            found[f"seed-{s}"]["n_images"] = ev["n_images"]
        tr = work / f"reports/metrics/train/seed-{s}.json"
        if tr.is_file():
            found[f"train seed-{s}"] = {k: v for k, v in json.loads(tr.read_text()).items()
                                        if k in ("final_val_top1_error", "train_time_s", "images_per_s", "backend")}
    return found


def kill_and_resume(work: Path, commands, deadline: float) -> dict:
    """train@1 again into its own folders, SIGKILLed after its first mid-epoch checkpoint and
    resumed; its final weights against train@1's (deterministic mode: equal bit for bit)."""
    import torch
    argv = dict(commands)["train@1"]
    argv = [_swap(a) for a in argv]
    fault = {"HARNESS_FAULT_KILL": "after:seed-1/checkpoint.pt#1"}
    killed = run_stage(work, "train@1 killed", argv, deadline - time.monotonic(), fault)
    out = {"killed_rc": killed["rc"], "killed_seconds": killed["seconds"],
           "checkpoint_left": any((work / "artifacts/e2e-resume/work").glob("train/*/seed-1/checkpoint.pt"))}
    resumed = run_stage(work, "train@1 resumed", argv, deadline - time.monotonic())
    out.update(resumed_rc=resumed["rc"], resumed_seconds=resumed["seconds"],
               resumed_message=next((ln for ln in resumed["output"].splitlines() if "resuming seed 1" in ln), None))
    if resumed["rc"] != 0:
        out.update(ok=False, tail=resumed["tail"])
        return out
    a = torch.load(work / "artifacts/models/seed-1/model.pt", map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(work / "artifacts/e2e-resume/models/seed-1/model.pt", map_location="cpu",
                   weights_only=True)["state_dict"]
    differ = sorted(k for k in a if k not in b or not torch.equal(a[k], b[k]))
    out.update(tensors=len(a), bitwise_equal=not differ and a.keys() == b.keys(), differing=differ[:10])
    out["ok"] = killed["rc"] == -9 and out["checkpoint_left"] and out["resumed_message"] is not None \
        and out["bitwise_equal"]
    return out


def _swap(arg: str) -> str:
    """train@1's paths moved under artifacts/e2e-resume (its own work folder: its own checkpoint)."""
    for old, new in (("artifacts/models/", "artifacts/e2e-resume/models/"), ("artifacts/work", "artifacts/e2e-resume/work"),
                     ("reports/", "artifacts/e2e-resume/reports/"), ("artifacts/kernels/", "artifacts/e2e-resume/kernels/")):
        if arg.startswith(old):
            return new + arg[len(old):]
    return arg


def towers_on_one_device(device: str, smoke: bool) -> dict:
    """TwoDeviceAlexNet with both towers on `device` against the grouped net with its weights:
    the same function (paper 3.2), so logits and gradients agree to fp32 rounding."""
    import torch
    import torch.nn.functional as F
    from harness.config import ModelConfig
    from harness.model import AlexNet, TwoDeviceAlexNet
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    size = SIZES["smoke" if smoke else "full"]
    cfg = ModelConfig(width=size["width"], input_size=size["input_size"], dropout=0.0)  # dropout: masks differ per tower
    grouped = AlexNet(cfg, 100).to(device)
    two = TwoDeviceAlexNet.from_grouped(grouped, (device, device))
    x = torch.randn(4 if smoke else 64, 3, cfg.input_size, cfg.input_size, device=device)
    y = torch.randint(0, 100, (x.shape[0],), device=device)
    out_g, out_t = grouped(x), two(x)
    logit_diff = float((out_g - out_t).detach().abs().max() / out_g.detach().abs().max())
    F.cross_entropy(out_g, y).backward()
    F.cross_entropy(out_t, y).backward()
    grads = two_device_grads(two)
    grad_diff = max(float((grads[n] - p.grad).abs().max() / p.grad.abs().max().clamp_min(1e-30))
                    for n, p in grouped.named_parameters())
    devices = sorted({str(p.device) for p in two.parameters()})
    return {"devices": devices, "max_rel_diff_logits": logit_diff, "max_rel_diff_grads": grad_diff,
            "ok": len(devices) == 1 and logit_diff < 1e-4 and grad_diff < 1e-3}


def two_device_grads(two) -> dict:
    from harness.model.two_device import merge_towers
    return merge_towers({n: p.grad for n, p in two.named_parameters()}, two.devices[0])


def preflight(smoke: bool) -> dict:
    missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
    import torch
    cuda = torch.cuda.is_available()
    return {"missing": missing, "cuda": cuda, "device": "cuda:0" if cuda and not smoke else "cpu",
            "gpu": torch.cuda.get_device_name(0) if cuda else None, "torch": torch.__version__,
            "mlflow_importable": importlib.util.find_spec("mlflow") is not None,
            "dvc_importable": importlib.util.find_spec("dvc") is not None}


def write(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    tmp.replace(path)


def main(argv=None) -> int:
    args = parse(argv)
    t0 = time.monotonic()
    deadline = t0 + args.budget_s
    env = preflight(args.smoke)
    result = {"ok": False, "smoke": args.smoke, "environment": env, "parts": {},
              "tracking": "off (HARNESS_TRACKING=off): no MLflow runs; every result is in the stages' files"}
    if env["missing"] or (not args.smoke and not env["cuda"]):
        result["reason"] = (f"missing packages the stages import: {', '.join(env['missing'])}" if env["missing"]
                            else "no CUDA device: the full run is for a GPU machine (--smoke runs on the CPU)")
        write(args.out, result)
        fold_into_summary(result, args)
        print(result["reason"], file=sys.stderr)
        return 2
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    result["work"] = str(work)
    run_parts(args, env, work, deadline, result)
    result["seconds"] = round(time.monotonic() - t0, 1)
    result["ok"] = all(p.get("ok") for p in result["parts"].values()) and len(result["parts"]) == 4
    write(args.out, result)
    report = fold_into_summary(result, args)
    print(f"end to end: {'ok' if result['ok'] else 'FAILED'} in {result['seconds']} s -> {args.out}, {report}")
    return 0 if result["ok"] else 1


def run_parts(args, env: dict, work: Path, deadline: float, result: dict) -> None:
    parts = result["parts"]
    size = SIZES["smoke" if args.smoke else "full"]
    t = time.perf_counter()
    data = build_dataset(args.jpegs, work / "imagefolder", size)
    parts["dataset"] = {**data, "seconds": round(time.perf_counter() - t, 2), "ok": True}
    write(args.out, result)
    params = make_workdir(work, params_patch(args.smoke, work / "imagefolder", env["device"]))
    commands = stage_commands(work, params)
    stages = run_pipeline(work, commands, deadline)
    ok = len(stages) == len(commands) and all(r["ok"] for r in stages.values())
    found = outputs_found(work, params)
    parts["stages"] = {"order": [n for n, _ in commands], "runs": stages, "found": found,
                       "ok": ok and not found["missing"]}
    write(args.out, result)
    if ok:
        parts["kill and resume"] = kill_and_resume(work, commands, deadline)
        write(args.out, result)
    parts["two towers on one device"] = towers_on_one_device(env["device"], args.smoke)


def end_to_end(result: dict, detail: Path) -> dict:
    """The summary's `end_to_end`: ok, the commit, and each part's verdict with its small findings."""
    from benchmarks import gpu_summary
    parts = {}
    for name, part in result["parts"].items():
        keep = {k: v for k, v in part.items() if k not in ("runs", "found", "tail")}
        if "runs" in part:
            keep["seconds"] = {n: r["seconds"] for n, r in part["runs"].items()}
            keep["failed"] = [n for n, r in part["runs"].items() if not r["ok"]]
            keep["missing"] = part["found"]["missing"]
        parts[name] = keep
    return {"ok": result["ok"], "smoke": result["smoke"], "device": result["environment"]["device"],
            "gpu": result["environment"]["gpu"], "commit": gpu_summary.commit(), "seconds": result.get("seconds"),
            "detail": str(detail), "tracking": result["tracking"], "parts": parts,
            **({"reason": result["reason"]} if "reason" in result else {})}


def fold_into_summary(result: dict, args) -> Path:
    """reports/gpu.json's `end_to_end` (--smoke: gpu.smoke.json beside --out), the rest of it kept;
    without one yet, a summary whose figures are all unmeasured (gpu_check.py fills them and keeps this)."""
    from benchmarks import gpu_summary
    path = args.report or (args.out.with_name("gpu.smoke.json") if args.smoke else REPO / "reports" / "gpu.json")
    e2e = end_to_end(result, args.out)
    if path.is_file():
        summary = json.loads(path.read_text())
        summary["end_to_end"] = e2e
    else:
        env = {"device": result["environment"]["device"], "gpu": result["environment"]["gpu"],
               "torch": result["environment"]["torch"]}
        summary = gpu_summary.build({"parts": {}, "environment": env}, args.smoke, "not run: gpu_check.py", e2e)
    write(path, summary)
    return path


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (CI)")
    p.add_argument("--jpegs", type=Path, default=default_jpegs(), help="folder of sample JPEGs")
    p.add_argument("--work", type=Path, default=None, help="work folder (default: a new temporary folder)")
    p.add_argument("--out", type=Path, default=None, help="result JSON (default: $OUT/gpu_e2e.json, else ./gpu_e2e.json)")
    p.add_argument("--report", type=Path, default=None,
                   help="summary to fold the result into as end_to_end (default: reports/gpu.json; --smoke: "
                        "gpu.smoke.json beside --out)")
    p.add_argument("--budget-s", type=float, default=450.0, help="time for the whole run; a stage past it is stopped")
    args = p.parse_args(argv)
    if args.out is None:
        args.out = Path(os.environ["OUT"]) / "gpu_e2e.json" if os.environ.get("OUT") else Path("gpu_e2e.json")
    return args


if __name__ == "__main__":
    sys.exit(main())
