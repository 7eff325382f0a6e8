"""Sections of the reproducibility report, each a small function over the result files."""

from __future__ import annotations

from dataclasses import dataclass

from harness.report import cifar10, figures
from harness.report.render import Doc, Link, fmt

UI = "http://127.0.0.1:5000"


@dataclass(frozen=True)
class ReportInputs:
    params: dict
    compare: dict
    train: dict  # seed -> train metrics JSON
    curves: dict  # seed -> per-epoch DataFrame
    evaluations: dict  # seed -> evaluate metrics JSON
    ensemble: dict
    manifest: dict
    deviations: list
    provenance: dict
    benchmarks: dict | None = None  # reports/benchmarks.json (python -m benchmarks.run), if present
    reliability: dict | None = None  # reports/reliability.json (make reliability), if present
    arms: dict | None = None  # enabled arm -> {train, curves, evaluations} by seed, like the baseline's
    cifar10_costs: dict | None = None  # reports/cifar10_costs.json (python -m benchmarks.cifar10), if present


def run_link(run_id: str | None, exp_id: str) -> Link | str:
    if not run_id:
        return "–"
    return Link(run_id[:8], f"{UI}/#/experiments/{exp_id}/runs/{run_id}")


def build(inp: ReportInputs) -> Doc:
    doc = Doc()
    doc.h(1, "AlexNet reproducibility report")
    doc.p(f"Krizhevsky, Sutskever, Hinton, ImageNet Classification with Deep Convolutional Neural "
          f"Networks (NIPS 2012). Profile '{inp.params['profile']}', dataset '{inp.params['data']['source']}', "
          f"{len(inp.train)} seeds. Generated from the pipeline's metrics files; every number below "
          f"can be recomputed from reports/metrics/*.json.")
    for section in (scope, verdicts, reference, per_seed, ensemble, curves, per_class,
                    claims_detail, ablations, cifar10.section, deviations, provenance, reproduce, performance,
                    reliability):
        section(doc, inp)
    return doc


def scope(doc: Doc, inp: ReportInputs) -> None:
    c = inp.compare["counts"]
    m = inp.manifest
    doc.h(2, "1. Scope")
    counts = ", ".join(f"{n} {split}" for split, n in m["counts"].items())
    doc.p(f"Data: {m['source']}, {counts} images of {len(m['classes'])} classes at {m['image_size']} px "
          f"({m.get('resize', 'crop')}, {m.get('encoding', 'raw')} shards; data digest {m['digest'][:12]}). "
          f"The paper's claims: {c['claims_total']} in the claims file, "
          f"{c['claims_tested']} testable on this data, {c['claims_untested']} not (each with its reason below).")
    skipped = m.get("skipped", [])
    if skipped:  # a reviewer must see what was left out of the data, and why
        doc.p(f"{len(skipped)} input file(s) were unusable and left out (artifacts/data/manifest.json lists all):")
        doc.table(["split", "file", "reason"], [[s["split"], s["file"], s["reason"]] for s in skipped[:20]])


def verdicts(doc: Doc, inp: ReportInputs) -> None:
    doc.h(2, "2. Verdicts")
    rows = []
    for r in inp.compare["claims"]:
        if r["tested"]:
            ours = r.get("ours_mean", r.get("measured"))
            interval = f"{fmt(r.get('lo'))} – {fmt(r.get('hi'))}" if r.get("lo") is not None else "–"
            rows.append([r["id"], r["metric"], r["paper_value"], ours, interval, r.get("n", "–"), r["verdict"]])
    if rows:
        doc.table(["claim", "metric", "paper", "ours (mean)", "95% interval", "n seeds", "verdict"], rows)
    else:
        doc.p("No claim of the paper can be tested on this data (see the reasons in section 8).")
    s = inp.compare["summary"]
    doc.p("Across seeds (mean, sd, t-interval and two-level bootstrap interval over seeds and images):")
    doc.table(["protocol", "metric", "mean %", "sd", "n", "t 95% interval", "bootstrap 95% interval"],
              [[p, m, v["mean"], v["sd"], v["n"], f"{fmt(v['t_lo'])} – {fmt(v['t_hi'])}",
                f"{fmt(v['boot_lo'])} – {fmt(v['boot_hi'])}"]
               for p, ms in s.items() for m, v in ms.items()])


def reference(doc: Doc, inp: ReportInputs) -> None:
    ref = inp.compare["reference"]
    doc.h(2, "3. Against the reference runs")
    if not ref.get("tested"):
        doc.p(f"Not compared: {ref['reason']}.")
        return
    doc.p(f"Reference: earlier runs of profile '{ref['profile']}' with seeds {ref['reference_seeds']} "
          f"({ref['protocol']} protocol). Consistent = equivalent within ±{inp.compare['settings']['margin_pp']} pp "
          f"(two one-sided Welch tests); differs = Welch p < {inp.compare['settings']['alpha']}.")
    doc.table(["metric", "ours mean (sd, n)", "reference mean (sd, n)", "difference [95% CI]", "Welch p",
               "TOST p", "Mann-Whitney p", "verdict"],
              [[m, f"{fmt(v['ours']['mean'])} ({fmt(v['ours']['sd'])}, {v['ours']['n']})",
                f"{fmt(v['reference']['mean'])} ({fmt(v['reference']['sd'])}, {v['reference']['n']})",
                f"{fmt(v['diff'])} [{fmt(v['lo'])}, {fmt(v['hi'])}]", v["welch_p"], v["tost_p"],
                v["mann_whitney_p"], v["verdict"]] for m, v in ref["metrics"].items()])


def per_seed(doc: Doc, inp: ReportInputs) -> None:
    doc.h(2, "4. Per seed")
    exp = inp.compare.get("mlflow_experiment_id", "0")
    rows = []
    for seed, t in sorted(inp.train.items()):
        e = inp.evaluations[seed]
        for proto, m in e["protocols"].items():
            rows.append([seed, proto, m["top1_error"], m["top5_error"], m["n_images"], t["epochs"],
                         round(t["train_time_s"], 1), round(t["images_per_s"]),
                         run_link(t["mlflow_run_id"], exp), run_link(e.get("mlflow_run_id"), exp)])
    doc.table(["seed", "protocol", "top-1 %", "top-5 %", "images", "epochs", "train s", "img/s",
               "train run", "eval run"], rows)
    ref = inp.compare["reference"]
    ref_mean = ref["metrics"]["top1_error"]["reference"]["mean"] if ref.get("tested") else None
    doc.figure("per_seed", "Per-seed top-1 and top-5 error with 95% Wilson intervals; dashed: reference-run mean top-1",
               figures.per_seed_errors(inp.compare["seeds"], ref_mean, "reference mean top-1"))


def ensemble(doc: Doc, inp: ReportInputs) -> None:
    doc.h(2, "5. Ensembles (softmax averages, paper 6)")
    protos = inp.ensemble["protocols"]
    rows = [[p, r["k"], r["n_subsets"], r["top1_error_mean"], r["top1_error_sd"], r["top5_error_mean"],
             r["top5_error_sd"]] for p, v in protos.items() for r in v["sizes"]]
    doc.table(["protocol", "k", "subsets", "top-1 % mean", "sd", "top-5 % mean", "sd"], rows)
    mc = [[p, m["seed"], m["b"], m["c"], m["p"]] for p, v in protos.items() for m in v["mcnemar_full_vs_single"]]
    doc.p("McNemar exact test, full ensemble vs each single model on the same images "
          "(b: only the ensemble right, c: only the single model right):")
    doc.table(["protocol", "single seed", "b", "c", "p"], mc)
    doc.figure("ensemble", "Top-1 error of k-model ensembles (mean over subsets, band min-max)",
               figures.ensemble_curve({p: v["sizes"] for p, v in protos.items()}, "top1_error"))


def curves(doc: Doc, inp: ReportInputs) -> None:
    doc.h(2, "6. Training")
    line, label = _reference_line(inp.compare)
    doc.figure("training_curves", f"Validation top-1 error and training loss per epoch, all seeds; dashed: {label or 'none'}",
               figures.training_curves(inp.curves, line, label))
    doc.figure("lr_schedule", "Learning-rate schedule", figures.lr_schedule(inp.curves))


def _reference_line(compare: dict) -> tuple[float | None, str]:
    """The paper's single-CNN top-1 number when this run can test it, else the reference runs' mean."""
    paper = [c for c in compare["claims"] if c["tested"] and c["metric"] == "top1_error" and c.get("n_models") == 1]
    if paper:
        return paper[0]["paper_value"], f"paper ({paper[0]['id']})"
    ref = compare["reference"]
    if ref.get("tested") and "top1_error" in ref["metrics"]:
        return ref["metrics"]["top1_error"]["reference"]["mean"], "reference runs, final mean"
    return None, ""


def per_class(doc: Doc, inp: ReportInputs) -> None:
    doc.h(2, "7. Per-class error")
    pc = {s: e["protocols"]["center"]["per_class_top1_error"] for s, e in inp.evaluations.items()
          if "center" in e["protocols"]}
    if pc:
        doc.figure("per_class", "Distribution of per-class top-1 error (centre crop), all seeds",
                   figures.per_class_hist(pc))


def claims_detail(doc: Doc, inp: ReportInputs) -> None:
    doc.h(2, "8. Every claim of the paper")
    rows = [[r["id"], r["kind"], r["metric"].replace("_", " "), r["paper_value"], r.get("paper_section", "–"),
             r["verdict"] if r["tested"] else "not tested", r.get("reason") or r.get("method", "")]
            for r in inp.compare["claims"]]
    doc.table(["claim", "kind", "metric", "paper", "section", "result", "reason / method"], rows, text_last=True)


def ablations(doc: Doc, inp: ReportInputs) -> None:
    doc.h(2, "9. Ablations")
    results = inp.compare.get("ablation_results") or {}
    design = [r for r in inp.compare["claims"] if r["kind"] in ("ablation", "convergence")]
    if not results:
        doc.p("This run trained no ablation groups (params `ablations.enabled` is empty), so the paper's "
              "design claims are not tested here. Each needs its own group of seeds:")
        doc.table(["claim", "what it needs"], [[r["id"], r["reason"]] for r in design if not r["tested"]],
                  text_last=True)
        return
    doc.p("Each arm retrains the seeds with the listed params changed. Effect = arm error minus baseline "
          "error (pp): the error the baseline's design choice saves (the paper's 'reduction'); Welch t "
          "interval and p, percentile bootstrap interval and Mann-Whitney p as a rank-based check.")
    rows = []
    for arm, a in results.items():
        changes = ", ".join(f"{k}={v}" for k, v in a["overrides"].items()) or "none (control)"
        for proto, metrics in a["protocols"].items():
            for metric, e in metrics.items():
                rows.append([arm, changes, proto, metric, f"{fmt(e['baseline']['mean'])} (n {e['baseline']['n']})",
                             f"{fmt(e['arm']['mean'])} (n {e['arm']['n']})",
                             f"{fmt(e['diff'])} [{fmt(e['lo'])}, {fmt(e['hi'])}]",
                             f"[{fmt(e['boot_lo'])}, {fmt(e['boot_hi'])}]", e["p_value"], e["mann_whitney_p"]])
    doc.table(["arm", "changes", "protocol", "metric", "baseline mean %", "arm mean %",
               "effect [95% CI]", "bootstrap 95%", "Welch p", "Mann-Whitney p"], rows)
    conv = []
    for arm, a in results.items():
        c = a["convergence"]
        its = lambda d: ", ".join("–" if v is None else str(v) for v in d.values())  # noqa: E731
        conv.append([arm, f"{c['target_train_error']:g}%", its(c["baseline_iterations"]), its(c["arm_iterations"]),
                     fmt(c.get("ratio")) if c.get("tested") else c.get("reason"), c.get("p_faster")])
    doc.p("Convergence (MLPerf style): training iterations until the training top-1 error first reaches the "
          "target, per seed (– = never); ratio = arm / baseline (olympic means with >= 3 seeds); p = one-sided "
          "Welch test that the baseline converges faster.")
    doc.table(["arm", "target", "baseline iterations", "arm iterations", "ratio", "p (baseline faster)"], conv)
    rows = []
    for r in design:
        m = r if r["tested"] else r.get("measured_on_run")
        measured = "–" if not m else f"{fmt(m.get('ours_mean'))} [{fmt(m.get('lo'))}, {fmt(m.get('hi'))}]"
        agrees = "–" if not m else m.get("agrees_with_paper_direction")
        rows.append([r["id"], r["paper_value"], (m or {}).get("arm", "–"), measured, agrees,
                     r["verdict"] if r["tested"] else f"not tested: {r['reason']}"])
    doc.p("The paper's design claims: what this run measured for each (effect in pp, or the convergence "
          "ratio), whether its sign agrees with the paper, and the verdict where data and network match "
          "the paper's (reproduced / smaller / larger effect beyond the margin / inconclusive).")
    doc.table(["claim", "paper", "arm", "measured [95% CI]", "same direction", "verdict"], rows, text_last=True)


def deviations(doc: Doc, inp: ReportInputs) -> None:
    doc.h(2, "10. Departures from the paper")
    doc.table(["what", "paper", "this run", "why", "where in code"],
              [[d["key"], d["paper"], d["ours"], d["why"], d["where"]] for d in inp.deviations], text_last=True)


def provenance(doc: Doc, inp: ReportInputs) -> None:
    p = inp.provenance
    env = p["environment"]
    doc.h(2, "11. Environment and provenance")
    doc.table(["item", "value"], [
        ["git commit", p["git"]["commit"]], ["working tree dirty", p["git"]["dirty"]],
        ["dvc.lock sha256", p["dvc_lock_digest"]], ["data digest", inp.manifest["digest"]],
        ["MLflow parent run", run_link(inp.compare.get("parent_run_id"), inp.compare.get("mlflow_experiment_id", "0"))],
        ["python / torch / CUDA", f"{env['python']} / {env['torch']} / {env['cuda']}"],
        ["CPU / cores / torch threads", f"{env['cpu']} / {env['cpu_count']} / {inp.params['train']['threads']}"],
        ["GPUs", ", ".join(env["gpus"]) or "none"],
        ["DataLoader workers", inp.params["train"]["num_workers"]],
        ["training wall time (all seeds)", f"{sum(t['train_time_s'] for t in inp.train.values()):.1f} s"],
        ["GPU-hours", f"{p['gpu_hours']:.3f}"],
    ] + [[f"package {k}", v] for k, v in p["packages"].items()])
    doc.p("Resolved parameters:")
    import yaml
    doc.code(yaml.safe_dump(inp.params, sort_keys=False).strip())


def reproduce(doc: Doc, inp: ReportInputs) -> None:
    doc.h(2, "12. How to reproduce")
    doc.code(f"git clone <this repository> && cd <it>\ngit checkout {inp.provenance['git']['commit']}\n"
             "make repro        # creates .venv, installs, runs dvc repro\nmake test         # the test suite\n"
             "make mlflow-ui    # MLflow UI on http://127.0.0.1:5000 (links above)")


def performance(doc: Doc, inp: ReportInputs) -> None:
    """Throughput of the machine that ran `python -m benchmarks.run`, each figure beside its baseline."""
    doc.h(2, "13. Performance")
    b = inp.benchmarks
    if not b:
        doc.p("Not measured: run `make bench` (python -m benchmarks.run) to write reports/benchmarks.json.")
        return
    m, s = b["machine"], b["setup"]
    doc.p(f"Measured {b['measured_at']} by `python -m benchmarks.run` on {m['cpu']} with {m['cpu_count']} cores, "
          f"torch {m['torch']}, {s['threads']} threads, {s['num_workers']} DataLoader workers; profile "
          f"'{b['profile']}' (batch {s['batch_size']}, {s['input_size']} px crops, width {s['width']}). Each figure "
          f"is the median of several rounds, beside a baseline measured in the same process"
          + (" (quick mode: indicative only)." if b.get("quick") else "."))
    t, lo, ev, mf, v = b["train"], b["loader"], b["eval_ten_patch"], b["mfu"], b["verdicts"]
    ips = lambda x: int(round(x))  # noqa: E731 - images/s as whole numbers
    rows = [["training images/s", ips(t["harness_images_per_s"]["median"]), "plain PyTorch loop",
             ips(t["plain_images_per_s"]["median"]), f"overhead {t['overhead_pct']['median']:+.1f}%",
             v["train_overhead"]["goal"] + " %", v["train_overhead"]["met"]],
            ["training GFLOP/s", round(mf["harness_flop_per_s"] / 1e9, 1), "fp32 matmul peak",
             round(mf["peak_flop_per_s"] / 1e9, 1), f"MFU {100 * mf['harness_mfu']:.1f}%", "–", "–"],
            ["loader images/s", ips(lo["images_per_s"]["median"]), "training images/s", ips(lo["training_images_per_s"]),
             f"headroom {lo['headroom']:.1f}x", v["loader_headroom"]["goal"] + " x", v["loader_headroom"]["met"]],
            ["10-patch evaluation images/s", ips(ev["images_per_s"]["median"]), "forward pass only",
             ips(ev["forward_only_images_per_s"]["median"]), f"views {ev['view_share_pct']:.0f}% of the time", "–", "–"]]
    rj = b.get("real_jpegs")
    if rj:  # issue 4's goals, one core each, on the real ImageNet sample
        p, lo2 = rj["prepare"], rj["loader"]
        rows.append(["prepare images/s, 1 core (decode, 256 crop, JPEG encode)", ips(p["harness_decode_fit_encode_img_s"]),
                     "Pillow open-convert-resize-crop", ips(p["pil_open_convert_resize_crop_img_s"]),
                     f"{p['ratio']:.2f}x", ">= 2 x", v["prepare_per_core"]["met"]])
        rows.append(["loader images/s, 1 core (JPEG shards, paper augmentation)",
                     ips(lo2["harness_trainview_jpeg_shards_img_s"]), "torchvision ImageFolder",
                     ips(lo2["torchvision_imagefolder_img_s"]), f"{lo2['ratio']:.2f}x", ">= 2 x",
                     v["loader_per_core"]["met"]])
    if "dvc_repro" in v:
        rows.append(["`dvc repro` wall time (s)", round(b["dvc_repro"]["wall_s"]), "–", "–", "–",
                     v["dvc_repro"]["goal"] + " s", v["dvc_repro"]["met"]])
    doc.table(["figure", "value", "baseline", "baseline value", "ratio", "goal", "met"], rows)
    prof = b.get("step_profile")
    if prof:
        ops = ", ".join(f"{o['op'].removeprefix('aten::')} {o['self_cpu_pct']:.0f}%" for o in prof["top_ops"][:6])
        lrn = f" The paper's LRN takes {prof['lrn']['step_share_pct']:.0f}% of a step." if "lrn" in prof else ""
        doc.p(f"Where a training step's time goes (torch.profiler, self CPU time): {ops}.{lrn}")
    if b.get("notes"):
        doc.p(b["notes"])


def reliability(doc: Doc, inp: ReportInputs) -> None:
    """Figures of the reliability suite (kills, bad inputs, tracking faults), as last recorded."""
    r = inp.reliability
    doc.h(2, "14. Reliability")
    if not r:
        doc.p("Not measured: run `make reliability` to write reports/reliability.json.")
        return
    lost = r["data_or_metrics_lost"]
    doc.p(f"From `make reliability` ({r['tests_passed']} tests passed, {r['tests_failed']} failed). "
          f"Data or metrics lost: {'not established (a loss check failed or did not run)' if lost is None else lost}.")
    doc.table(["figure", "value"], [
        ["SIGKILL points tested (then `dvc repro`, outputs compared with an uninterrupted run)", r["kill_points_tested"]],
        ["stages killed", ", ".join(r["stages_killed"])],
        ["bad inputs tried (each: non-zero exit, a message naming the problem, no traceback)", r["bad_inputs_tried"]],
        ["tracking faults tried (locked SQLite store, server lost mid-run, unreachable at start)", r["tracking_faults_tried"]],
        ["security checks", r["security_checks"]],
        ["data or metrics lost", "–" if lost is None else lost],
    ])
    doc.p("Kill points: " + "; ".join(r["kill_points"]) + ". Bad inputs: " + ", ".join(r["bad_inputs"]) + ".")
