"""Sections of the reproducibility report, each a small function over the result files."""

from __future__ import annotations

from dataclasses import dataclass

from harness.analysis.handover import ArmResult, ClaimRow, CompareJson, Counts, DecisionRule, Ensemble
from harness.report import cifar10, figures, pretrained
from harness.report.gpu import gpu_section
from harness.report.render import Doc, Link, fmt, fmt_ci, fmt_pp

LOCAL_UI = "http://127.0.0.1:5000"  # `make mlflow-ui` over the repository's SQLite store


@dataclass(frozen=True)
class ReportInputs:
    params: dict
    compare: CompareJson  # reports/metrics/compare.json (harness/analysis/handover.py)
    train: dict  # seed -> train metrics JSON
    curves: dict  # seed -> per-epoch DataFrame
    evaluations: dict  # seed -> evaluate metrics JSON
    ensemble: dict
    manifest: dict
    deviations: list
    provenance: dict
    benchmarks: dict | None = None  # reports/benchmarks.json (python -m benchmarks.run), if present
    reliability: dict | None = None  # reports/reliability.json (make reliability), if present
    arms: dict | None = None  # enabled arm -> {train, curves, steps, evaluations} by seed, like the baseline's
    steps: dict | None = None  # seed -> the baseline's window series (reports/plots/train/seed-N.steps.csv)
    cifar10_costs: dict | None = None  # reports/cifar10_costs.json (python -m benchmarks.cifar10), if present
    ui_url: str = LOCAL_UI  # where the MLflow UI of the run's tracking store is (tracking.ui_url)
    interpretations: list = ()  # every ambiguity and the reading this run uses (deviations.interpretations)
    kernels: dict | None = None  # seed -> conv1 kernels [K, 3, k, k] (artifacts/kernels), for Figure 3
    pilot: dict | None = None  # reports/pilot.json (`harness pilot`), if present
    gpu: dict | None = None  # reports/gpu.json (benchmarks/gpu_check.py on a GPU machine), if present
    training_digest: str | None = None  # this run's (config.training_digest): is the pilot of these params?
    param_defaults: dict | None = None  # params as harness/config defaults them (the paper recipe), to show what differs


def run_link(run_id: str | None, exp_id: str, ui_url: str = LOCAL_UI) -> Link | str:
    if not run_id:
        return "–"
    # MLflow 3 opens its GenAI pages for a run link without the workflow type (as tracking.run_url).
    return Link(run_id[:8], f"{ui_url.rstrip('/')}/#/experiments/{exp_id}/runs/{run_id}?workflowType=machine_learning")


def build(inp: ReportInputs) -> Doc:
    return assemble(SECTIONS, inp, summary)


def assemble(sections, inp, head) -> Doc:
    """The title and `head` (the summary), then `sections` ((key, title, write) in order), numbered
    here: a section whose function writes nothing (it does not apply to this run) is left out, and
    Doc.ref resolves every cross-reference to the number its section got."""
    doc = Doc()
    doc.h(1, "AlexNet reproducibility report")
    parts = []
    for key, title, write in sections:
        part = Doc()
        write(part, inp)
        if part.blocks:
            parts.append((key, title, part))
    doc.numbers = {key: n for n, (key, _, _) in enumerate(parts, 1)}
    head(doc, inp)
    for key, title, part in parts:
        doc.h(2, f"{doc.numbers[key]}. {title}", anchor=key)
        doc.blocks += part.blocks
    return doc


def summary(doc: Doc, inp: ReportInputs) -> None:
    """The first screen: what was tested and what came out, beside the per-seed errors."""
    doc.p(f"Krizhevsky, Sutskever, Hinton, ImageNet Classification with Deep Convolutional Neural "
          f"Networks (NIPS 2012). Generated from the pipeline's metrics files; every number below "
          f"can be recomputed from reports/metrics/*.json. Secondary tables are folded; each opens at its title.")
    cmp, m = inp.compare, inp.manifest
    c = _all_counts(cmp)
    with doc.box("head"):
        with doc.box("summary"):
            doc.p(f"What was tested: {len(inp.train)} seeds of profile '{inp.params['profile']}' on {m['source']} "
                  f"({len(m['classes'])} classes, {', '.join(f'{n:,} {k}' for k, n in m['counts'].items())} images), "
                  f"evaluated with {', '.join(inp.params['evaluate']['protocols'])}; {c['claims_tested']} of the "
                  f"paper's {c['claims_total']} claims can be decided on this run ({Doc.ref('claims')}).")
            doc.p("What came out (the experiments' verdicts; the architecture's arithmetic checks counted apart):")
            doc.table(["verdict", "claims", "which"], _verdict_rows(cmp), text_last=True)
            doc.table(["protocol", "top-1 error % (mean ± sd)", "top-5 error % (mean ± sd)", "ensemble of all seeds"],
                      _headline_rows(cmp, inp.ensemble))
            ref = cmp["reference"]
            if ref.get("tested"):
                doc.p("Against the reference runs (" + Doc.ref("reference") + "): "
                      + ", ".join(f"{k} {v['verdict']}" for k, v in ref["metrics"].items()) + ".")
        ref_mean = ref["metrics"]["top1_error"]["reference"]["mean"] if ref.get("tested") else None
        doc.figure("per_seed", "Per-seed top-1 and top-5 error with 95% Wilson intervals; dashed: reference-run "
                   "mean top-1", figures.per_seed_errors(cmp["seeds"], ref_mean, "reference mean top-1"))


def _verdict_rows(cmp: CompareJson) -> list:
    """One row per label with the claims that got it; the architecture checks in a row of their own."""
    c, rows = cmp["counts"], []
    for label in ("reproduced", "not reproduced", "inconclusive"):
        ids = [r["id"] for r in cmp["claims"] if r["tested"] and r["kind"] != "size" and r["verdict"] == label]
        rows.append([label, c["verdicts"][label], ", ".join(ids) or "–"])
    rows.append(["not tested", c["verdicts"]["not tested"], f"why: {_why_counts(c)}"])
    a = cmp.get("architecture_counts")
    if a and a["claims_tested"]:
        bad = [r["id"] for r in cmp["claims"] if r["kind"] == "size" and r["verdict"] == "not reproduced"]
        rows.append(["architecture checks (arithmetic, no experiment)",
                     f"{a['verdicts']['reproduced']} of {a['claims_tested']} as printed",
                     f"not as printed: {', '.join(bad)}" if bad else "all as printed"])
    return rows


def _headline_rows(cmp: CompareJson, ensemble: Ensemble) -> list:
    rows = []
    for proto, ms in cmp["summary"].items():
        sizes = (ensemble.get("protocols", {}).get(proto) or {}).get("sizes") or []
        full = sizes[-1] if sizes else None
        cells = [f"{fmt_pp(ms[k]['mean'])} ± {fmt_pp(ms[k]['sd'])}" if k in ms else "–"
                 for k in ("top1_error", "top5_error")]
        ens = (f"k = {full['k']}: top-1 {fmt_pp(full['top1_error_mean'])}, top-5 {fmt_pp(full['top5_error_mean'])}"
               if full else "–")
        rows.append([proto, *cells, ens])
    return rows


def scope(doc: Doc, inp: ReportInputs) -> None:
    c = _all_counts(inp.compare)
    m = inp.manifest
    counts = ", ".join(f"{n} {split}" for split, n in m["counts"].items())
    doc.p(f"Data: {m['source']}, {counts} images of {len(m['classes'])} classes at {m['image_size']} px "
          f"({m.get('resize', 'crop')}, {m.get('encoding', 'raw')} shards; JPEGs "
          f"{'decoded at 1/2-1/8 scale in the DCT domain when large, then' if m.get('dct_scaling') else 'decoded at full size and'}"
          f" resized with an antialiased bilinear filter; data digest {m['digest'][:12]}). "
          f"The paper's claims: {c['claims_total']} in the claims file, "
          f"{c['claims_tested']} decided on this run, {c['claims_untested']} not (each with its reason in "
          f"{Doc.ref('claims')}).")
    skipped = m.get("skipped", [])
    if skipped:  # a reviewer must see what was left out of the data, and why
        with doc.details(f"{len(skipped)} input file(s) were unusable and left out "
                         "(artifacts/data/manifest.json lists all)"):
            doc.table(["split", "file", "reason"], [[s["split"], s["file"], s["reason"]] for s in skipped[:20]])
    empty = m.get("empty_classes", [])
    if empty:  # a class the net never saw in training: its val images can only be errors
        doc.p(f"{len(empty)} class(es) have no usable training image: {', '.join(empty[:20])}"
              + (" ..." if len(empty) > 20 else "") + ".")


def _band(r: ClaimRow) -> str:
    """A claim's band as a reader writes it: '17.3 – 19.1', '>= 1.00', '<= 0.50'."""
    b = r.get("band")
    if not b:
        return "–"
    lo, hi = b
    if lo is None:
        return f"≤ {fmt(hi)}"
    if hi is None:
        return f"≥ {fmt(lo)}"
    return f"{fmt(lo)} – {fmt(hi)}"


def _interval(r: dict, lo: str = "lo", hi: str = "hi") -> str:
    return "–" if r.get(lo) is None else f"{fmt(r[lo])} – {fmt(r[hi])}"


def _p_pair(r: dict, key: str) -> str:
    raw, adj = r.get(key), r.get(f"{key}_adj")
    return "–" if raw is None else f"{fmt(raw)} / {fmt(adj)}"


def _seeds(r: ClaimRow) -> str:
    if r["verdict"] != "inconclusive":
        return "–"
    n = r.get("seeds_needed")
    return f"{n} ({r.get('seeds_needed_note', '')})" if n is not None else (r.get("seeds_needed_note") or "–")


def _why_counts(c: Counts) -> str:
    by = c.get("not_tested_by_category") or {}
    return "; ".join(f"{n} {cat}" for cat, n in sorted(by.items(), key=lambda kv: -kv[1])) or "none"


def _all_counts(cmp: CompareJson) -> dict:
    """Claims in the file, decided and not: the experiments' and the architecture checks' together."""
    c, a = cmp["counts"], cmp.get("architecture_counts") or {}
    return {k: c[k] + a.get(k, 0) for k in ("claims_total", "claims_tested", "claims_untested")}


def _architecture_line(cmp: CompareJson) -> str:
    """The size claims' count, apart from the experiments' verdicts: arithmetic facts of the
    architecture as printed, decided on the net as built, not results of a run."""
    a = cmp.get("architecture_counts")
    if not a or not a["claims_tested"]:
        return ""
    v = a["verdicts"]
    ids = [r["id"] for r in cmp["claims"] if r["kind"] == "size" and r["verdict"] == "not reproduced"]
    return (f" Architecture checks (the paper's printed counts and shares against the arithmetic of the net as "
            f"built, no experiment; below): {v['reproduced']} of {a['claims_tested']} as printed"
            + (f", not as printed: {', '.join(ids)}." if ids else "."))


def verdicts(doc: Doc, inp: ReportInputs) -> None:
    """The verdict table (docs/statistics.md): counts first, then every decided claim."""
    cmp = inp.compare
    c, v, rule = cmp["counts"], cmp["counts"]["verdicts"], cmp.get("decision_rule", {})
    doc.p(f"Experimental claims: Reproduced: {v['reproduced']}. Not reproduced: {v['not reproduced']}. Inconclusive: "
          f"{v['inconclusive']}. Not tested: {v['not tested']} (of {c['claims_total']} claims)."
          + _architecture_line(cmp))
    doc.p(f"Why not tested: {_why_counts(c)} ({Doc.ref('claims')} gives each claim's reason and what it needs).")
    rows = [r for r in cmp["claims"] if r["tested"] and r["kind"] != "size"]
    _verdict_table(doc, rows, rule)
    with doc.details("Decision rule and what every p assumes (declared before the run)"):
        _decision_rule(doc, rule)
    _architecture_table(doc, cmp)
    with doc.details("Model checks: the network as built against the paper's exact arithmetic"):
        _model_checks(doc, cmp)
    with doc.details("Paired analyses: 10-patch vs centre crop per seed, ensemble gain per k"):
        _paired(doc, cmp)
    s = cmp["summary"]
    doc.p("Across seeds (mean, sd, t-interval and two-level bootstrap interval over seeds and images):")
    doc.table(["protocol", "metric", "mean %", "sd", "n", "t 95% interval", "bootstrap 95% interval"],
              [[p, m, v["mean"], v["sd"], v["n"], f"{fmt_pp(v['t_lo'])} – {fmt_pp(v['t_hi'])}",
                f"{fmt_pp(v['boot_lo'])} – {fmt_pp(v['boot_hi'])}"]
               for p, ms in s.items() for m, v in ms.items()])


def _decision_rule(doc: Doc, rule: DecisionRule) -> None:
    doc.p(f"Decision rule, declared before the run (docs/statistics.md): each claim declares in "
          f"harness/analysis/claims.yaml a band for its quantity and why. Reproduced: {rule.get('reproduced')}. "
          f"Not reproduced: {rule.get('not_reproduced')}. Inconclusive: {rule.get('inconclusive')}. "
          f"alpha = {rule.get('alpha')}; {rule.get('family')}. p are shown raw / adjusted; a label needs the "
          "adjusted p below alpha. Counts and shares are decided exactly, with no p. The other p-values of this "
          "report (McNemar tests, ensemble gains, ablation effects) describe; they decide no claim. The reference "
          f"runs ({Doc.ref('reference')}) are a separate decision, Holm-adjusted across their metrics.")
    doc.p("Every p assumes the number of seeds was fixed before the results were seen: adding seeds until a "
          "verdict appears inflates its error rates. The paper's numbers, headline errors and printed ablation "
          "effects alike, are one training run (per arm) of the recipe, so their own seed noise, estimated from "
          "our seeds' spread, is part of every interval; seeds that show no spread decide nothing "
          "(docs/statistics.md).")


def _verdict_table(doc: Doc, rows: list[ClaimRow], rule: DecisionRule) -> None:
    """Every decided experimental claim, with the notes of its row."""
    if rows:
        doc.table(["claim", "quantity", "paper", "estimate", f"{rule.get('interval_level', 0.9):.0%} interval",
                   "band (tolerance)", "p reproduced raw / adj", "p not reproduced raw / adj", "seeds needed",
                   "verdict", "direction"],
                  [[r["id"], r["quantity"], r["paper_value"] if r["paper_value"] is not None else "not stated",
                    r.get("estimate"), _interval(r), _band(r), _p_pair(r, "p_reproduced"),
                    _p_pair(r, "p_not_reproduced"), _seeds(r), r["verdict"], r.get("direction_text", "")]
                   for r in rows], text_last=True)
    else:
        doc.p("No experimental claim of the paper can be decided on this data (see the reasons in "
              f"{Doc.ref('claims')}).")
    for r in rows:
        for note in r.get("notes") or []:
            doc.p(f"{r['id']}: {note}")


def _architecture_table(doc: Doc, cmp: CompareJson) -> None:
    """The size claims: what the paper prints against the net as built, at the printed precision."""
    rows = [r for r in cmp["claims"] if r["tested"] and r["kind"] == "size"]
    if rows:
        doc.p("Architecture checks (counted apart from the verdicts above): the paper's printed counts and shares "
              "at their printed precision (the band) against the network as built; exact, no p.")
        doc.table(["claim", "quantity", "paper", "as built", "band (tolerance)", "verdict"],
                  [[r["id"], r["quantity"], r["paper_value"], r.get("estimate"), _band(r), r["verdict"]] for r in rows],
                  text_last=True)


def _model_checks(doc: Doc, cmp: CompareJson) -> None:
    """The exact arithmetic of the printed architecture: a check of the model, not a claim."""
    mc = cmp.get("model_checks") or {}
    if not mc.get("checks"):
        return
    doc.p("Model checks (not claims): the network as built against the exact arithmetic of the paper's "
          "architecture (docs/paper.md). The size claims above are decided against what the paper prints.")
    shares = mc.get("conv_param_shares") or {}
    doc.table(["check", "exact arithmetic", "as built", "equal"],
              [[x["id"], x["exact"], x["measured"], x["equal"]] for x in mc["checks"]]
              + ([["conv layers' share of the parameters (%)", "–",
                   ", ".join(f"{k} {v:.2f}" for k, v in shares.items()), "–"],
                  # each conv layer of the two-tower net is split evenly between the GPUs (paper 3.2):
                  # the per-GPU reading of "no convolutional layer contains more than 1%" (claim conv-param-share)
                  ["share per tower, each GPU's half of a layer (%)", "–",
                   ", ".join(f"{k} {v / 2:.2f}" for k, v in shares.items()), "–"]] if shares else []))


def _paired(doc: Doc, cmp: CompareJson) -> None:
    """Paired analyses: 10-patch vs centre crop per seed and across seeds; ensemble gain per k."""
    tp = (cmp.get("paired") or {}).get("ten_patch_vs_center") or {}
    if tp.get("tested"):
        doc.p("10-patch vs centre crop, the same models on the same images (gain = centre error - 10-patch "
              "error, pp): McNemar exact test per seed (b: only 10-patch right, c: only the centre crop right) "
              "and a paired t interval across seeds (descriptive; the ten-patch claims above use it):")
        rows = []
        for metric, m in tp["metrics"].items():
            for r in m["per_seed"]:
                mc = r.get("mcnemar") or {}
                rows.append([metric, r["seed"], r["center"], r["ten_patch"], r["gain"], mc.get("b", "–"),
                             mc.get("c", "–"), mc.get("p")])
            rows.append([metric, f"all ({m['n']})", "–", "–", fmt_ci(m['gain'], m['lo'], m['hi']),
                         "–", "–", m["p_value"]])
        doc.table(["metric", "seed", "centre %", "10-patch %", "gain pp [95% CI]", "b", "c", "p"], rows)
    gains = (cmp.get("paired") or {}).get("ensemble_gain") or {}
    rows = []
    for proto, by_k in gains.items():
        for k, metrics in by_k.items():
            for metric, g in metrics.items():
                il = g.get("image_level") or {}
                rows.append([proto, k, metric, g["n_groups"], g["gain"], _interval(g),
                             f"{fmt(il.get('gain'))} [{fmt(il.get('lo'))}, {fmt(il.get('hi'))}]" if il else "–",
                             g.get("method", "")])
    if rows:
        doc.p("Ensemble gain per k (mean error of a group's members - the error of their averaged softmax, pp), "
              "over disjoint groups of k seeds: across groups a paired t interval (needs 2 groups), and the "
              "image-level paired interval of the first group, which holds these seeds fixed:")
        doc.table(["protocol", "k", "metric", "groups", "gain pp", "95% CI over groups",
                   "first group, image-level 95% CI", "method"], rows, text_last=True)


def reference(doc: Doc, inp: ReportInputs) -> None:
    ref = inp.compare["reference"]
    if not ref.get("tested"):
        doc.p(f"Not compared: {ref['reason']}.")
        return
    margin = ref.get("margin_pp", inp.compare["settings"].get("reference_margin_pp"))
    doc.p(f"Reference: earlier runs of profile '{ref['profile']}' with seeds {ref['reference_seeds']} "
          f"({ref['protocol']} protocol). Consistent = equivalent within ±{margin} pp (two one-sided Welch "
          f"tests); differs = Welch p < {inp.compare['settings']['alpha']} (Holm across the metrics, p raw / adjusted).")
    doc.table(["metric", "ours mean (sd, n)", "reference mean (sd, n)", "difference [95% CI]", "Welch p",
               "TOST p", "Mann-Whitney p", "TOST power", "verdict"],
              [[m, f"{fmt(v['ours']['mean'])} ({fmt(v['ours']['sd'])}, {v['ours']['n']})",
                f"{fmt(v['reference']['mean'])} ({fmt(v['reference']['sd'])}, {v['reference']['n']})",
                fmt_ci(v['diff'], v['lo'], v['hi']), _p_pair(v, "welch_p"), _p_pair(v, "tost_p"),
                v["mann_whitney_p"], v.get("power"), v["verdict"]] for m, v in ref["metrics"].items()])
    for m, v in ref["metrics"].items():
        if v.get("power_note"):
            doc.p(f"{m}: {v['power_note']}.")


def per_seed(doc: Doc, inp: ReportInputs) -> None:
    exp = inp.compare.get("mlflow_experiment_id", "0")
    rows = []
    for seed, t in sorted(inp.train.items()):
        e = inp.evaluations[seed]
        for proto, m in e["protocols"].items():
            rows.append([seed, proto, m["top1_error"], m["top5_error"], m["n_images"], t["epochs"],
                         round(t["train_time_s"], 1), round(t["images_per_s"]),
                         run_link(t["mlflow_run_id"], exp, inp.ui_url), run_link(e.get("mlflow_run_id"), exp, inp.ui_url)])
    doc.table(["seed", "protocol", "top-1 %", "top-5 %", "images", "epochs", "train s", "img/s",
               "train run", "eval run"], rows)
    doc.p("The figure of these errors, with their intervals, heads the report.")


def ensemble(doc: Doc, inp: ReportInputs) -> None:
    protos = inp.ensemble["protocols"]
    rows = [[p, r["k"], r["n_subsets"], r["top1_error_mean"], r["top1_error_sd"], r["top5_error_mean"],
             r["top5_error_sd"]] for p, v in protos.items() for r in v["sizes"]]
    doc.table(["protocol", "k", "subsets", "top-1 % mean", "sd", "top-5 % mean", "sd"], rows)
    mc = [[p, m["seed"], m["b"], m["c"], m["p"]] for p, v in protos.items() for m in v["mcnemar_full_vs_single"]]
    with doc.details("McNemar exact test, full ensemble vs each single model on the same images"):
        doc.p("b: only the ensemble right, c: only the single model right.")
        doc.table(["protocol", "single seed", "b", "c", "p"], mc)
    doc.figure("ensemble", "Top-1 error of k-model ensembles (mean over subsets, band min-max)",
               figures.ensemble_curve({p: v["sizes"] for p, v in protos.items()}, "top1_error"))


def curves(doc: Doc, inp: ReportInputs) -> None:
    line, label = _reference_line(inp.compare)
    doc.figure("training_curves", f"Validation top-1 error and training loss per epoch, all seeds; dashed: {label or 'none'}",
               figures.training_curves(inp.curves, line, label))
    with doc.details("Learning-rate schedule: the lr per epoch, and what drove its drops"):
        doc.figure("lr_schedule", "Learning-rate schedule", figures.lr_schedule(inp.curves))
        _schedule_table(doc, inp)


def _schedule_table(doc: Doc, inp: ReportInputs) -> None:
    rows = []
    for seed, t in sorted(inp.train.items()):
        sch = t.get("schedule")
        if not sch:
            continue
        rule = (f"plateau: patience {sch['patience']}, threshold {sch['threshold_pp']:g} pp, at most "
                f"{sch['max_drops']} drops" if sch["rule"] == "plateau" else "fixed steps")
        split = sch["split"] + (f" (every {sch['holdout_every']}th training image, {sch['schedule_images']:,} images "
                                "left out of training)" if sch["split"] == "holdout" else "")
        rows.append([seed, rule, split, ", ".join(map(str, sch["lr_drops"])) or "none", sch["train_images"]])
    if rows:
        doc.p("What drove the learning-rate schedule, and after how many epochs it divided the lr by 10 "
              "(also in MLflow: tag lr_drop_epochs, metric lr_drops per epoch). With the plateau rule on val, "
              "the split evaluated below also chose the drops, as in the paper.")
        doc.table(["seed", "rule", "error read (centre crop, top-1)", "lr divided after epochs", "training images"],
                  rows)


def _reference_line(compare: CompareJson) -> tuple[float | None, str]:
    """The paper's single-CNN top-1 number when this run can test it, else the reference runs' mean."""
    paper = [c for c in compare["claims"] if c["tested"] and c["metric"] == "top1_error" and c.get("n_models") == 1
             and c["kind"] == "headline"]
    if paper:
        return paper[0]["paper_value"], f"paper ({paper[0]['id']})"
    ref = compare["reference"]
    if ref.get("tested") and "top1_error" in ref["metrics"]:
        return ref["metrics"]["top1_error"]["reference"]["mean"], "reference runs, final mean"
    return None, ""


def per_class(doc: Doc, inp: ReportInputs) -> None:
    pc = {s: e["protocols"]["center"]["per_class_top1_error"] for s, e in inp.evaluations.items()
          if "center" in e["protocols"]}
    if pc:
        doc.figure("per_class", "Distribution of per-class top-1 error (centre crop), all seeds",
                   figures.per_class_hist(pc))


def claims_detail(doc: Doc, inp: ReportInputs) -> None:
    """The claims not tested as a count by reason; every claim's row, whatever the data, folded below."""
    cmp = inp.compare
    c = _all_counts(cmp)
    doc.p(f"{c['claims_total']} claims in harness/analysis/claims.yaml: {c['claims_tested']} decided on this run "
          f"({Doc.ref('verdicts')}), {cmp['counts']['verdicts']['not tested']} not tested, by reason:")
    by = cmp["counts"].get("not_tested_by_category") or {}
    doc.table(["why not tested", "claims", "which"],
              [[cat, n, ", ".join(r["id"] for r in cmp["claims"]
                         if r["verdict"] == "not tested" and r["kind"] != "size" and r.get("category") == cat)
                or "–"] for cat, n in sorted(by.items(), key=lambda kv: -kv[1])], text_last=True)
    with doc.details(f"Every claim ({len(cmp['claims'])}): its band (what 'reproduced' means), why that band, "
                     "what deciding it needs, and what this run could do"):
        _claims_table(doc, cmp)


def _claims_table(doc: Doc, cmp: CompareJson) -> None:
    doc.p("Every claim has a row whatever the data: its band (what 'reproduced' means, declared in "
          "harness/analysis/claims.yaml), what deciding it needs, and what this run could do.")
    rows = [[r["id"], r["kind"], r["quantity"], r["paper_value"] if r["paper_value"] is not None else "not stated",
             _band(r), r.get("tolerance_reason") or "–", r.get("paper_section", "–"), r["verdict"],
             r.get("requires", ""), r.get("reason") or r.get("method", "")]
            for r in cmp["claims"]]
    doc.table(["claim", "kind", "quantity", "paper", "band", "why this band", "section", "result", "what it needs",
               "reason / method"], rows, text_last=True)
    inferred = [r["id"] for r in cmp["claims"] if r.get("protocol_inferred")]
    if inferred:
        doc.p("Protocol inferred (the paper does not restate it for these numbers; the ablation effects are read "
              "on its standard test, the 10-patch average of section 4.1, both groups alike): "
              + ", ".join(inferred) + ".")


def ablations(doc: Doc, inp: ReportInputs) -> None:
    results = inp.compare.get("ablation_results") or {}
    design = [r for r in inp.compare["claims"] if r["kind"] in ("ablation", "convergence", "proportion")]
    if not results:
        doc.p("This run trained no ablation groups (params `ablations.enabled` is empty), so the paper's "
              f"{sum(not r['tested'] for r in design)} design claims are not tested here. Each needs its own group "
              "of seeds.")
        with doc.details("What each design claim needs"):
            doc.table(["claim", "what it needs"], [[r["id"], r["reason"]] for r in design if not r["tested"]],
                      text_last=True)
        return
    doc.p("Each arm retrains the seeds with the listed params changed. Effect = arm error minus baseline "
          "error (pp): the error the baseline's design choice saves (the paper's 'reduction'); paired by seed "
          "when the arm shares the baseline's seeds, Welch otherwise; percentile bootstrap interval and "
          "Mann-Whitney p as checks that assume no normality.")
    rows = []
    for arm, a in results.items():
        changes = ", ".join(f"{k}={v}" for k, v in a["overrides"].items()) or "none (control)"
        for proto, metrics in a["protocols"].items():
            for metric, e in metrics.items():
                rows.append([arm, changes, proto, metric, f"{fmt(e['baseline']['mean'])} (n {e['baseline']['n']})",
                             f"{fmt(e['arm']['mean'])} (n {e['arm']['n']})",
                             fmt_ci(e['diff'], e['lo'], e['hi']), e.get("method", ""),
                             f"[{fmt_pp(e['boot_lo'])}, {fmt_pp(e['boot_hi'])}]", e["p_value"], e["mann_whitney_p"]])
    with doc.details(f"Effects of every arm, per protocol and metric ({len(rows)} rows)"):
        doc.table(["arm", "changes", "protocol", "metric", "baseline mean %", "arm mean %",
                   "effect [95% CI]", "test", "bootstrap 95%", "p", "Mann-Whitney p"], rows)
    with doc.details("Convergence: training steps to the target training error, per arm"):
        _convergence(doc, results)
    _design_claims(doc, inp, design)


def _convergence(doc: Doc, results: dict[str, ArmResult]) -> None:
    conv = []
    its = lambda d: ", ".join("–" if v is None else f"{v:.0f}" for v in d.values())  # noqa: E731
    for arm, a in results.items():
        c = a["convergence"]
        ratio = (f"{fmt(c.get('ratio'))} [{fmt(c.get('ratio_lo'))}, {fmt(c.get('ratio_hi'))}]"
                 if c.get("tested") else c.get("reason"))
        missed = ", ".join(f"{g}: {v}" for g, v in c.get("not_reached", {}).items() if v) or "none"
        conv.append([arm, f"{c['target_train_error']:g}%", its(c["baseline_iterations"]), its(c["arm_iterations"]),
                     ratio, missed])
    doc.p("Convergence at step resolution: training steps until the training top-1 error (the train stage's "
          "window series, smoothed over 100 steps, interpolated) first reaches params "
          "ablations.target_train_error; seeds that never reach it are counted at the steps they ran and listed; "
          "ratio = arm / baseline (geometric means, 95% t interval on the log scale). Claims use their own target.")
    doc.table(["arm", "target", "baseline steps", "arm steps", "ratio [95% CI]", "never reached"], conv)


def _design_claims(doc: Doc, inp: ReportInputs, design: list) -> None:
    rows = []
    for r in design:
        m = r if r["tested"] else r.get("measured_on_run")
        measured = "–" if not m else f"{fmt(m.get('estimate'))} [{fmt(m.get('lo'))}, {fmt(m.get('hi'))}]"
        rows.append([r["id"], r["paper_value"] if r["paper_value"] is not None else "not stated", _band(r),
                     (m or {}).get("direction_text", "–"), measured,
                     r["verdict"] if r["tested"] else f"not tested: {r['reason']}"])
    doc.p("The paper's design claims: what this run measured for each (effect in pp, or the ratio; the "
          f"{inp.compare.get('decision_rule', {}).get('interval_level', 0.9):.0%} interval), its direction against "
          "the paper, and the verdict where data and network match the paper's.")
    doc.table(["claim", "paper", "band", "direction", "measured [interval]", "verdict"], rows, text_last=True)


def deviations(doc: Doc, inp: ReportInputs) -> None:
    doc.p(f"Departures from what the paper states ({len(inp.deviations)}): "
          + "; ".join(f"{d['key']} {fmt(d['ours'])}" for d in inp.deviations) + ".")
    with doc.details("Departures: where this run does something other than what the paper states, and why"):
        doc.table(["what", "paper", "this run", "why", "where in code"],
                  [[d["key"], d["paper"], d["ours"], d["why"], d["where"]] for d in inp.deviations], text_last=True)
    differ = sum(r["paper_recipe"] != r["ours"] for r in inp.interpretations)
    with doc.details(f"Interpretations: {len(inp.interpretations)} places where the paper can be read more than "
                     f"one way ({differ} read otherwise than the paper recipe here)"):
        _interpretations(doc, inp)
    with doc.details("Backend flags in force while training"):
        _backend_flags(doc, inp)


def _interpretations(doc: Doc, inp: ReportInputs) -> None:
    doc.p("Every place where the paper can be read more than one way, with the reading this run uses, the one "
          "the paper recipe (the presets, the config defaults) uses and the alternatives; listed on every run, "
          "whatever the values (docs/fidelity.md).")
    doc.table(["ambiguity", "the paper", "this run", "paper recipe's reading", "alternatives", "switch", "where in code"],
              [[r["ambiguity"], r["paper"], r["ours"], "same" if r["paper_recipe"] == r["ours"] else r["paper_recipe"],
                r["alternatives"], r["switch"], r["where"]] for r in inp.interpretations], text_last=True)


def _backend_flags(doc: Doc, inp: ReportInputs) -> None:
    flags = [[seed, *(t["backend"].get(k, "–") for k in ("matmul_fp32_precision", "cudnn_conv_fp32_precision",
                                                         "cudnn_benchmark", "deterministic_algorithms"))]
             for seed, t in sorted(inp.train.items()) if t.get("backend")]
    if flags:
        doc.p(f"Backend flags in force while training (train.precision {inp.params['train']['precision']}; "
              "ieee = IEEE fp32, tf32 = TensorFloat-32 tensor cores; on a CPU they have no effect):")
        doc.table(["seed", "cuBLAS matmul fp32", "cuDNN conv fp32", "cuDNN autotuning", "deterministic algorithms"],
                  flags)


def provenance(doc: Doc, inp: ReportInputs) -> None:
    p = inp.provenance
    env = p["environment"]
    doc.table(["item", "value"], [
        ["code commit (last change but the results)", p["git"]["code_commit"]],
        ["working tree dirty", p["git"]["dirty"]],
        ["dvc.lock sha256", p["dvc_lock_digest"]], ["data digest", inp.manifest["digest"]],
        ["MLflow parent run", run_link(inp.compare.get("parent_run_id"), inp.compare.get("mlflow_experiment_id", "0"),
                                       inp.ui_url)],
        ["python / torch / CUDA", f"{env['python']} / {env['torch']} / {env['cuda']}"],
        ["CPU / cores / torch threads", f"{env['cpu']} / {env['cpu_count']} / {inp.params['train']['threads']}"],
        ["GPUs", ", ".join(env["gpus"]) or "none"],
        ["DataLoader workers", inp.params["train"]["num_workers"]],
        ["training wall time (all seeds)", f"{sum(t['train_time_s'] for t in inp.train.values()):.1f} s"],
        ["GPU-hours", f"{p['gpu_hours']:.3f}"],
        ["packages", ", ".join(f"{k} {v}" for k, v in p["packages"].items())],
    ])
    doc.p(bitwise_statement(inp.manifest.get("source"), inp.params.get("train", {})))
    _params_differing(doc, inp)
    import yaml
    with doc.details("Resolved parameters, all of them (params.yaml with the defaults filled in)"):
        doc.code(yaml.safe_dump(inp.params, sort_keys=False).strip())


def bitwise_statement(source: str | None, train: dict) -> str:
    """What a rerun elsewhere gives bit for bit (docs/architecture.md, "Determinism"): the embedded
    data on any machine; training and evaluation only on the same CPU type, torch build, threads and
    DataLoader workers, because oneDNN and BLAS choose their kernels by CPU."""
    data = ("The embedded synthetic dataset is bitwise the same on every machine: the same params give "
            "the data digest above on any CPU." if source == "synthetic" else
            "The prepared dataset is the same bytes wherever the same source files (listed by the list_data "
            "stage, each shard's record holding their sha256) are prepared by the same code and Pillow build.")
    return (f"What reproduces bitwise. {data} Training and evaluation repeat bitwise only on the same CPU type, "
            f"torch build, torch threads ({train.get('threads', '–')}) and DataLoader workers "
            f"({train.get('num_workers', '–')}); on another CPU the weights, and so the errors, differ in their "
            "last bits or more, within the seed-to-seed spread the verdicts allow for. On a GPU bitwise repeats "
            "also need train.deterministic (docs/performance.md says what it covers) and the same GPU model.")


def _params_differing(doc: Doc, inp: ReportInputs) -> None:
    """The params this run sets to other values than harness/config's defaults (the paper recipe)."""
    if inp.param_defaults is None:
        return
    from harness.config import flatten
    ours, default = flatten(inp.params), flatten(inp.param_defaults)
    short = lambda v: f"{len(v)} entries" if isinstance(v, list) and len(str(v)) > 80 else v  # noqa: E731
    rows = [[k, short(default.get(k, "–")), short(v)] for k, v in ours.items() if default.get(k) != v]
    doc.p(f"Parameters that differ from the defaults of harness/config.py (the paper recipe): {len(rows)} of "
          f"{len(ours)}; the full list is folded below.")
    if rows:
        doc.table(["parameter", "default", "this run"], rows)


def reproduce(doc: Doc, inp: ReportInputs) -> None:
    doc.code(f"git clone <this repository> && cd <it>\ngit checkout {inp.provenance['git']['code_commit']}\n"
             "make repro        # creates .venv, installs, runs dvc repro\nmake test         # the test suite\n"
             "make mlflow-ui    # MLflow UI on http://127.0.0.1:5000 (links above)")


def performance(doc: Doc, inp: ReportInputs) -> None:
    """Throughput of the machine that ran `python -m benchmarks.run`, each figure beside its baseline."""
    gpu_section(doc, inp.gpu)
    b = inp.benchmarks
    if not b:
        doc.p("Not measured: run `make bench` (python -m benchmarks.run) to write reports/benchmarks.json.")
        return
    m, s, v = b["machine"], b["setup"], b["verdicts"]
    doc.p(f"Measured {b['measured_at']} by `python -m benchmarks.run` on {m['cpu']} with {m['cpu_count']} cores, "
          f"torch {m['torch']}, {s['threads']} threads, {s['num_workers']} DataLoader workers; profile "
          f"'{b['profile']}' (batch {s['batch_size']}, {s['input_size']} px crops, width {s['width']}). Each figure "
          f"is the median of several rounds, beside a baseline measured in the same process"
          + (" (quick mode: indicative only)." if b.get("quick") else "."))
    rows = _bench_rows(b) + _fullsize_rows(b.get("fullsize"), v) + _jpeg_rows(b.get("real_jpegs"), v)
    if "dvc_repro" in v:
        rows.append(["`dvc repro` wall time (s)", round(b["dvc_repro"]["wall_s"]), "–", "–", "–",
                     v["dvc_repro"]["goal"] + " s", v["dvc_repro"]["met"]])
    goals = [r for r in rows if r[-2] != "–"]
    missed = [r[0].strip() for r in goals if r[-1] is not True]
    doc.p(f"Goals met: {len(goals) - len(missed)} of {len(goals)}"
          + (f"; not met or not measured: {'; '.join(missed)}." if missed else "."))
    with doc.details(f"Every figure beside its baseline ({len(rows)} rows), and where a step's time goes"):
        doc.table(["figure", "value", "baseline", "baseline value", "ratio", "goal", "met"], rows)
        _profile_notes(doc, b)


def _ips(x: float) -> int:
    return int(round(x))  # images/s as whole numbers


def _bench_rows(b: dict) -> list:
    """The default profile's training, loader and 10-patch figures (and its LRN share)."""
    t, lo, ev, mf, v = b["train"], b["loader"], b["eval_ten_patch"], b["mfu"], b["verdicts"]
    same = " (same work: equal weights after every round)" if t.get("same_weights") else ""
    rows = [["training images/s", _ips(t["harness_images_per_s"]["median"]), "plain PyTorch loop" + same,
             _ips(t["plain_images_per_s"]["median"]), f"overhead {t['overhead_pct']['median']:+.1f}%",
             v["train_overhead"]["goal"] + " %", v["train_overhead"]["met"]],
            ["training GFLOP/s", round(mf["harness_flop_per_s"] / 1e9, 1), "fp32 matmul peak",
             round(mf["peak_flop_per_s"] / 1e9, 1), f"MFU {100 * mf['harness_mfu']:.1f}%", "–", "–"],
            ["loader images/s", _ips(lo["images_per_s"]["median"]), "training images/s",
             _ips(lo["training_images_per_s"]), f"headroom {lo['headroom']:.1f}x", v["loader_headroom"]["goal"] + " x",
             v["loader_headroom"]["met"]],
            ["10-patch evaluation images/s", _ips(ev["images_per_s"]["median"]), "forward pass only",
             _ips(ev["forward_only_images_per_s"]["median"]), f"views {ev['view_share_pct']:.0f}% of the time", "–", "–"]]
    prof = b.get("step_profile") or {}
    if "lrn_share_default_profile" in v:
        rows.append(["LRN share of a default-profile step (profiler)", f"{prof['lrn_share_pct']:.1f}%",
                     "reference LRN (by removal)", f"{prof['lrn']['reference_step_share_pct']:.0f}%", "–",
                     v["lrn_share_default_profile"]["goal"] + " %", v["lrn_share_default_profile"]["met"]])
    return rows


def _fullsize_rows(fs: dict | None, v: dict) -> list:
    """The paper net at its own size against torchvision's alexnet, same loop."""
    if not fs:
        return []
    fv, fr, rows = fs["variants"], fs["ratios"], []
    for ours, theirs, key, label in (("paper", "torchvision", "paper_vs_torchvision_per_flop", "NCHW"),
                                     ("paper_channels_last", "torchvision_channels_last",
                                      "paper_vs_torchvision_per_flop_channels_last", "channels_last")):
        rows.append([f"paper net GFLOP/s at 224 px, {label} (MFU {100 * fv[ours]['mfu']:.0f}%)",
                     round(fv[ours]["flop_per_s"] / 1e9), f"torchvision alexnet (MFU {100 * fv[theirs]['mfu']:.0f}%)",
                     round(fv[theirs]["flop_per_s"] / 1e9), f"{fr[key]:.2f}x per FLOP", v[key]["goal"] + " x",
                     v[key]["met"]])
    rows.append(["LRN share of a 224 px step (profiler)", f"{fs['profile']['lrn_share_pct']:.1f}%",
                 "reference LRN (by removal)", f"{fr['reference_lrn_step_share_pct_by_removal']:.0f}%",
                 f"step {fr['fast_lrn_speedup_of_step']:.2f}x faster", v["lrn_share_full_size"]["goal"] + " %",
                 v["lrn_share_full_size"]["met"]])
    return rows


def _jpeg_rows(rj: dict | None, v: dict) -> list:
    """The preparation speed goals (benchmarks/README.md), one core each, on the real ImageNet sample."""
    if not rj:
        return []
    p, lo, pil = rj["prepare"], rj["loader"], "Pillow open-convert-resize-crop"
    base = _ips(p["pil_open_convert_resize_crop_img_s"])
    rows = [["prepare images/s, 1 core (decode, 256 crop, JPEG encode)", _ips(p["harness_decode_fit_encode_img_s"]),
             pil, base, f"{p['ratio']:.2f}x", ">= 2 x", v["prepare_per_core"]["met"]]]
    if "harness_decode_fit_img_s" in p:
        dq = rj["dct_scaling"]
        psnr = f", PSNR {dq['scaled_psnr_db_mean']:.1f} dB on those" if dq["scaled_images"] else ""
        rows += [["  the same work only (decode, 256 crop; no encode, no statistics)",
                  _ips(p["harness_decode_fit_img_s"]), pil, base, f"{p['ratio_same_work']:.2f}x", "–", "–"],
                 [f"  with data.dct_scaling ({dq['scaled_images']} of {dq['images']} images decoded smaller{psnr})",
                  _ips(p["harness_dct_decode_fit_encode_img_s"]), pil, base, f"{p['ratio_dct_scaling']:.2f}x", "–", "–"]]
    rows.append(["loader images/s, 1 core (JPEG shards, paper augmentation)",
                 _ips(lo["harness_trainview_jpeg_shards_img_s"]), "torchvision ImageFolder",
                 _ips(lo["torchvision_imagefolder_img_s"]), f"{lo['ratio']:.2f}x", ">= 2 x", v["loader_per_core"]["met"]])
    return rows


def _profile_notes(doc: Doc, b: dict) -> None:
    """Where a training step's time goes, by the profiler, at the default profile and at 224 px."""
    prof, fs = b.get("step_profile") or {}, b.get("fullsize")
    if prof:
        ops = ", ".join(f"{o['op'].removeprefix('aten::')} {o['self_cpu_pct']:.0f}%" for o in prof["top_ops"][:6])
        impl = prof.get("lrn", {}).get("lrn_impl")  # absent in files written before model.lrn_impl
        lrn = (f" The LRN{f' ({impl})' if impl else ''} takes {prof['lrn']['step_share_pct']:.0f}% of a step by removal."
               if "lrn" in prof else "")
        doc.p(f"Where a training step's time goes (torch.profiler, self CPU time): {ops}.{lrn}")
    if fs:
        ops = ", ".join(f"{o['op'].removeprefix('aten::')} {o['self_cpu_pct']:.0f}%" for o in fs["profile"]["top_ops"][:6])
        doc.p(f"At 224 px (batch {fs['batch']}, {fs['rounds']} rounds alternating the order of the nets, the same "
              f"training loop and update rule for all): {ops}.")
    if b.get("notes"):
        doc.p(b["notes"])


def reliability(doc: Doc, inp: ReportInputs) -> None:
    """Figures of the reliability suite (kills, bad inputs, tracking faults), as last recorded."""
    r = inp.reliability
    if not r:
        doc.p("Not measured: run `make reliability` to write reports/reliability.json.")
        return
    lost = r["data_or_metrics_lost"]
    doc.p(f"From `make reliability` ({r['tests_passed']} tests passed, {r['tests_failed']} failed). "
          f"Data or metrics lost: {'not established (a loss check failed or did not run)' if lost is None else lost}.")
    with doc.details("What the reliability suite tried: kill points, bad inputs, tracking faults"):
        _reliability_table(doc, r, lost)


def _reliability_table(doc: Doc, r: dict, lost) -> None:
    doc.table(["figure", "value"], [
        ["SIGKILL points tested (then `dvc repro`, outputs compared with an uninterrupted run)", r["kill_points_tested"]],
        ["stages killed", ", ".join(r["stages_killed"])],
        ["bad inputs tried (each: non-zero exit, a message naming the problem, no traceback)", r["bad_inputs_tried"]],
        ["tracking faults tried (locked SQLite store, server lost mid-run, unreachable at start)", r["tracking_faults_tried"]],
        ["security checks", r["security_checks"]],
        ["data or metrics lost", "–" if lost is None else lost],
    ])
    doc.p("Kill points: " + "; ".join(r["kill_points"]) + ". Bad inputs: " + ", ".join(r["bad_inputs"]) + ".")


def towers(doc: Doc, inp: ReportInputs) -> None:
    """paper 6.1, Figure 3: does one tower specialise on colour, in every run?"""
    summaries = {s: t.get("towers") for s, t in sorted(inp.train.items())}
    measured = {s: t for s, t in summaries.items() if t}
    if not measured:
        doc.p("Not measured: this run's network has no two towers (or its train metrics predate the measurement).")
        return
    k = sum(t["separated"] for t in measured.values())
    doc.p(f"The paper: one tower's conv1 kernels are largely colour-agnostic, the other's largely colour-specific, "
          f"in every run. Colour selectivity of a tower = share of its conv1 kernels' energy outside the grey "
          f"(R = G = B) component: 0 colour-agnostic, 2/3 for random weights, 1 pure colour opponency. "
          f"Separated: {next(iter(measured.values()))['rule']}. Separated in {k} of {len(measured)} seeds "
          f"({k / len(measured):.0%}).")
    doc.table(["seed", "tower 0", "tower 1", "gap", "Mann-Whitney p", "separated", "more colourful tower"],
              [[s, t["colour_selectivity"][0], t["colour_selectivity"][1], t["gap"], t["mann_whitney_p"],
                t["separated"], t["colour_tower"]] for s, t in measured.items()])
    with doc.details("conv1 kernels of each tower, per seed (paper Figure 3 redrawn)"):
        if inp.kernels:
            doc.figure("tower_kernels", "conv1 kernels of each tower, per seed (paper Figure 3 redrawn)",
                       figures.tower_kernels(inp.kernels, measured))


def pilot_and_plan(doc: Doc, inp: ReportInputs) -> None:
    """`harness pilot`'s figures and the costed plan for every claim this run cannot decide."""
    from harness.report import plan
    p = inp.pilot
    if not p:
        doc.p("No pilot: run `harness pilot` (a few hundred steps of this recipe) to write reports/pilot.json.")
    else:
        stale = p.get("training_digest") != inp.training_digest
        loss, r, pr = p["loss"], p["throughput"], p["projection"]
        doc.p(f"`harness pilot`, {p['measured_at']}: {p['steps']} steps of profile '{p['profile']}' on "
              f"{p['dataset']} ({p['num_classes']} classes), devices {', '.join(p['devices'])}"
              + (". STALE: made with other data/model/train params than this run; run `harness pilot` again"
                 if stale else " (the params of this run)") + ".")
        doc.p(("Loss: " if loss["verdict"] == "decreasing" else "Loss, WARNING: ") + loss["message"] +
              f". Initial logits: sd across images {fmt(loss['init_logit_sd'])}.")
        rows = [["training images/s (all devices)", r["train_images_per_s"]],
                ["training images/s per device", r["train_images_per_s_per_device"]],
                ["centre-crop evaluation images/s", r["eval_center_images_per_s"]],
                ["10-patch evaluation images/s", r["eval_ten_patch_images_per_s"]]]
        rows += [[f"peak memory {d} (GiB; {m['what']})", m["peak_bytes"] / 2**30] for d, m in p["memory"].items()]
        rows += [[f"{g['what']}: {g['seeds']} seed(s) on {g['devices']} device(s), hours each",
                  g["total_s"] / 3600] for g in pr["groups"]]
        rows += [["full run, wall hours (one run after another)", pr["wall_s"] / 3600],
                 ["full run, device-hours", pr["device_hours"]]]
        with doc.details("Pilot figures: throughput, peak memory, projected hours"):
            doc.table(["pilot figure", "value"], rows)
            doc.p(f"Projection: {pr['assumptions']}.")
    built = plan.build(inp.compare, p)
    if not built["claims"]:
        doc.p("Every claim was decided by this run.")
        return
    where = f"on {', '.join(built['devices'])} ({built['basis']})" if built["devices"] else         "not costed (no pilot)"
    doc.p(f"For every claim this run cannot decide: the run that would, and its projected device-hours {where}. "
          f"Each run trains every seed {plan.PAPER_EPOCHS} epochs with validation each epoch, then evaluates "
          "centre crops and 10 patches; arms retrain every seed.")
    doc.table(["run", "data", "network", "seeds", "arms", "evaluated on", "claims it decides", "device-hours"],
              [[r["run"], r["data"], r["network"], r["seeds"], "; ".join(r["arms"]) or "none", r["evaluated_on"],
                ", ".join(r["claims"]), r["device_hours"]] for r in built["runs"]], text_last=False)
    if built["total_device_hours"] is not None:
        doc.p(f"All runs together: {fmt(built['total_device_hours'])} device-hours on these devices.")
    with doc.details(f"Each of the {len(built['claims'])} claims this run cannot decide: the run that would, "
                     "and what it needs now"):
        doc.table(["claim", "run", "what it needs now"],
                  [[c["id"], c["run"] or "none: no run of this harness decides it", c.get("why_no_run") or c["needs"]]
                   for c in built["claims"]], text_last=True)


def _published() -> dict:
    """harness/report/published.yaml: torchvision's published ImageNet accuracies (other recipes)."""
    from pathlib import Path

    import yaml
    return yaml.safe_load((Path(__file__).with_name("published.yaml")).read_text())


def _cost_row(name: str, c: dict, effect: dict | None, speed: dict | None) -> list:
    e = c["errors"]["top1_error"]
    ci = f" [{fmt_pp(e['t_lo'])}, {fmt_pp(e['t_hi'])}]" if e["t_lo"] is not None else ""
    eff = "–" if effect is None else fmt_ci(effect['diff'], effect['lo'], effect['hi'])
    row = [name, c["arch"], f"{fmt_pp(e['mean'])}{ci} (n {e['n']})", fmt(c["errors"]["top5_error"]["mean"]), eff,
           f"{c['n_parameters']:,}", fmt(c["mult_adds"] / 1e6), fmt(c.get("images_per_s")),
           fmt(c.get("train_time_s"))]
    if speed is not None:
        row.append(f"{speed['time_vs_paper']:.2f}x" if speed else "not measured")
    return row


def _arm_speed(inp: ReportInputs, cfg_input: int) -> dict | None:
    """benchmarks/arm_speed.py's figures (reports/benchmarks.json "arms") when they were measured at
    this run's crop, else None: a step time at another input size says nothing about these nets."""
    speed = (inp.benchmarks or {}).get("arms")
    return speed if speed and speed.get("input_size") == cfg_input else None


def _speed_note(speed: dict) -> str:
    load = ", ".join(f"{a:.1f}" for a in speed["load_average_before"])
    return (f"Step time vs paper net: `python -m benchmarks.arm_speed` ({speed['measured_at']}"
            f"{', quick mode: not for reporting' if speed.get('quick') else ''}), the train stage's step on "
            f"the same in-memory batches ({speed['batch_size']} x {speed['input_size']} px, "
            f"{speed['threads']} threads), each arm in rounds alternating with the paper net in one process, "
            f"so load hits both alike; median of {speed['rounds']} per-round ratios (load average before: "
            f"{load}). Unlike img/s, which comes from each net's own training runs, whenever and beside "
            "whatever they ran, these ratios compare the nets with each other.")


def _untrained_arms(doc: Doc, speed: dict, nets: dict) -> None:
    """The benchmarked arms this run did not train: their size and speed only, with the training time
    one seed would take on this profile at the benchmark's step time (an estimate, not a result)."""
    rows = [[n, s["arch"], f"{s['n_parameters']:,}", fmt(s["mult_adds"] / 1e6), fmt(1000 * s["step_s"]["median"]),
             f"{s['time_vs_paper']:.2f}x", fmt(s["est_train_s_per_seed"] / 60)]
            for n, s in speed["nets"].items() if n != "paper" and n not in nets]
    if not rows:
        return
    doc.p(f"Not trained in this run (benchmark only): step time on {speed['train_images']:,} training images x "
          f"{speed['epochs']} epochs gives the estimated minutes per seed on the machine the benchmark ran on.")
    doc.table(["arm", "arch", "parameters", "multiply-adds (M)", "ms / step", "step time vs paper net",
               "est. train min / seed"], rows)


def _baseline_is(deviations: list) -> str:
    """Which net 'the paper net' of this section is: the run's baseline, with its model/train departures
    (on the default profile width 0.25, He init, inverted dropout, ...), not the net as printed."""
    rows = [r for r in deviations if str(r.get("key", "")).startswith(("model.", "train."))]
    if not rows:
        return "'Paper net' below is this run's baseline: the paper's net and recipe as printed."
    return ("'Paper net' below is this run's baseline, not the paper's net as printed: "
            + ", ".join(f"{r['key']} {r['ours']} (paper: {r['paper']})" for r in rows)
            + f" ({Doc.ref('departures')} lists every departure). Effects are against that net.")


def successors(doc: Doc, inp: ReportInputs) -> None:
    """What came after (docs/successors.md): every trained arm beside the paper net, with size,
    multiply-adds and throughput; effects and intervals, no verdicts (no claim of the paper)."""
    costs = inp.compare.get("arm_costs")
    if not costs:
        return
    nets, proto = costs["nets"], costs["protocol"]
    results = inp.compare.get("ablation_results") or {}
    doc.p(_baseline_is(inp.deviations))
    doc.p("The paper net beside what replaced its choices (normalisation variants, VGG, GoogLeNet, ResNet) and "
          "what it extends (LeNet-5), each an ablation arm: the same data, augmentation, evaluation protocol "
          f"({proto}), seeds and statistics as the paper net. Effect = arm minus paper-net error (pp), paired by "
          "seed, with its 95% interval; these arms have no claim in the paper, so they report effects and "
          "intervals, not verdicts. Error interval: t interval of the mean across seeds "
          f"({costs['conf']:.0%}). Multiply-adds: one crop, inference, conv and fc layers "
          "(harness/model/table.py). img/s: training throughput on this machine (mean over seeds). The successors "
          "are built at their published widths with torchvision's initialisation and the paper's recipe unless "
          "the arm declares its own (see 'changes' and docs/successors.md for the input-size rules and the "
          "departures).")
    speed = _arm_speed(inp, nets["baseline"]["input_size"])
    measured = None if speed is None else speed["nets"]
    rows = [_cost_row("paper net (baseline)", nets["baseline"], None, None if measured is None else measured["paper"])]
    for name, c in nets.items():
        if name == "baseline":
            continue
        rows.append(_cost_row(name, c, (results.get(name, {}).get("protocols", {}).get(proto) or {}).get("top1_error"),
                              None if measured is None else measured.get(name, {})))
    doc.table(["net", "arch", "top-1 error % [CI] (n)", "top-5 %", "effect vs paper net pp [95% CI]", "parameters",
               "multiply-adds (M)", "img/s", "train s / seed"]
              + ([] if speed is None else ["step time vs paper net (benchmark)"]), rows)
    if speed is not None:
        doc.p(_speed_note(speed))
        _untrained_arms(doc, speed, nets)
    changes = [[n, ", ".join(f"{k}={v}" for k, v in r["overrides"].items())] for n, r in results.items()]
    with doc.details("What each arm changes (departures from the paper's net or recipe)"):
        doc.table(["arm", "changes (departures from the paper's net or recipe)"], changes, text_last=True)
    if any(c.get("arch") == "googlenet" for c in nets.values()):  # docs/successors.md
        doc.p("GoogLeNet runs with torchvision's dropouts, 0.2 before the classifier and 0.7 in the auxiliary heads; "
              "its paper (Szegedy et al. 2015, section 5) uses 0.4 before the classifier: a departure from that "
              "paper, kept so the net is torchvision's as built.")
    points = [{"name": "paper net" if n == "baseline" else n, "mult_adds": c["mult_adds"],
               "mean": c["errors"]["top1_error"]["mean"], "lo": c["errors"]["top1_error"]["t_lo"],
               "hi": c["errors"]["top1_error"]["t_hi"]} for n, c in nets.items()]
    doc.figure("what_came_after", "Top-1 error against multiply-adds per crop, each net with its t interval "
               "across seeds (this run)", figures.error_vs_cost(points))
    pub = _published()
    shown = [n for n in ("paper", *[c["arch"] for c in nets.values()]) if n in pub["nets"]]
    with doc.details("For context only, NOT this run's result: torchvision's published ImageNet-1K accuracies"):
        _published_table(doc, pub, shown)


def _published_table(doc: Doc, pub: dict, shown: list) -> None:
    doc.p("For context only, NOT this run's result: the ImageNet-1K accuracies published for torchvision's "
          "pretrained weights of each architecture, trained with other recipes on full-size ImageNet at 224 px "
          f"(source: {pub['source']}).")
    doc.table(["architecture", "torchvision weights", "published top-1 acc %", "top-5 acc %", "parameters",
               "GFLOPS", "note"],
              [[n, pub["nets"][n]["weights"], pub["nets"][n]["acc1"], pub["nets"][n]["acc5"],
                f"{pub['nets'][n]['params']:,}", pub["nets"][n]["gflops"], pub["nets"][n].get("note", "")]
               for n in dict.fromkeys(shown)], text_last=True)


# The report's sections in order: (key for Doc.ref and the HTML anchor, title, function writing its body).
SECTIONS = (
    ("scope", "Scope", scope),
    ("verdicts", "Verdicts", verdicts),
    ("reference", "Against the reference runs", reference),
    ("per_seed", "Per seed", per_seed),
    ("ensemble", "Ensembles (softmax averages, paper 6)", ensemble),
    ("pretrained", "Pre-trained CNNs (paper 6: Fall 2011, sixth conv layer, fine-tuned)", pretrained.section),
    ("training", "Training", curves),
    ("per_class", "Per-class error", per_class),
    ("claims", "Every claim of the paper", claims_detail),
    ("ablations", "Ablations", ablations),
    ("cifar10", cifar10.TITLE, cifar10.section),
    ("departures", "Interpretations and departures from the paper", deviations),
    ("environment", "Environment and provenance", provenance),
    ("reproduce", "How to reproduce", reproduce),
    ("performance", "Performance", performance),
    ("reliability", "Reliability", reliability),
    ("towers", "Tower specialisation (paper 6.1, Figure 3)", towers),
    ("plan", "Pilot and costed reproduction plan", pilot_and_plan),
    ("successors", "What came after", successors),
)
