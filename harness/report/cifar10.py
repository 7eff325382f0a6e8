"""Report section: the paper's own CIFAR-10 experiments (paper 3.1 Figure 1, paper 3.3).

Everything comes from the result files: compare.json (which arm measured relu-speed and
lrn-cifar10, iterations to the target per seed, effects, the claims' verdicts), the train metrics
(the learning-rate selection, where the run stopped), the window step series (Figure 1; the
per-epoch curves where none was written) and the evaluations, and
reports/cifar10_costs.json (python -m benchmarks.cifar10) for the measured costs. The arms are
found through the claims' rows, not by name, so any arm names work (docs/cifar10.md).
"""

from __future__ import annotations

from harness.analysis.handover import ClaimRow, Convergence
from harness.report import figures
from harness.report.render import Doc, fmt, fmt_ci, fmt_pp

TITLE = "CIFAR-10: Figure 1 and local response normalisation (paper 3.1, 3.3)"  # numbered by sections.build


def section(doc: Doc, inp) -> None:
    if inp.params["data"]["source"] != "cifar10":
        return
    gaps = inp.compare.get("protocol_gaps") or []
    if gaps:  # harness/stages/compare.py cifar10_protocol_gaps: decided from what the run did
        doc.p(f"Cut-down experiment (profile '{inp.params['profile']}'): "
              + "; ".join(f"{g['reason']} ({'all claims' if g['claims'] == '*' else g['claims']})" for g in gaps)
              + ". Indicative only: the numbers below are measured on this run, and the claims these gaps "
                "touch are not tested (presets/cifar10.yaml on the CIFAR-10 archive runs the experiments in full).")
    claims = {r["id"]: r for r in inp.compare["claims"]}
    figure1(doc, inp, claims.get("relu-speed"))
    lrn(doc, inp, claims.get("lrn-cifar10"))
    readings(doc, inp)
    costs(doc, inp)


def readings(doc: Doc, inp) -> None:
    """Where the paper and the authors' code leave something open, the reading this run took and
    the alternative (docs/cifar10.md); shown on every CIFAR-10 run, defaults included."""
    m, t = inp.params["model"], inp.params["train"]
    lrn_arm = _measured_arm({r["id"]: r for r in inp.compare["claims"]}.get("lrn-cifar10"))
    lrn_net = _arm_value(inp.params, lrn_arm, "model", "arch") if lrn_arm else "not run"
    schedule = "not run"
    if lrn_arm:  # the full preset: 450 epochs (the file's 350 + 150 + 10 + 10 at 40,000 / 50,000), drops at 430, 440
        epochs, steps = (_arm_value(inp.params, lrn_arm, "train", k) for k in ("epochs", "lr_steps"))
        schedule = f"{epochs} epoch{'s' * (epochs != 1)}, lr / 10 at epochs {', '.join(map(str, steps)) or 'none'}"
    factors = t["lr_select_factors"]
    rows = [
        ["Figure 1 net", "a four-layer CNN, not named (paper 3.1)", m["arch"],
         "another layer file: model.arch cuda_convnet_18pct / _13pct / _11pct", "harness/model/cuda_convnet.py NETS"],
        ["no regularization of any kind", "paper 3.1",
         (f"weight decay x{t['weight_decay']:g} of the files' wc, crops/flips {'on' if t['crop_flip'] else 'off'}, "
          f"PCA colour {'on' if t['pca_colour'] else 'off'}, no dropout, lr drops at {t['lr_steps'] or 'none'}"),
         "train.weight_decay 0.004 (the files' wc), train.crop_flip true", "harness/train/recipe.py, harness/data/transforms.py"],
        ["the tanh net", "'an equivalent network with tanh neurons'", "every neuron=relu becomes f(x) = tanh(x)",
         "cuda-convnet's scaled tanh[a,b] (not offered)", "harness/model/cuda_convnet.py _neuron"],
        ["learning rates 'chosen independently'", "to make training as fast as possible (paper 3.1)",
         (f"per run: x{', x'.join(f'{f:g}' for f in factors)} of train.lr, lowest training error over the first "
          f"{t['lr_select_steps']} steps, " + (f"extended at the grid's spacing while the best is at an edge, up to "
                                               f"x{t['lr_select_limit']:g} and x1/{t['lr_select_limit']:g}"
                                               if t.get("lr_select_limit") else "the grid alone")
          + "; a choice at the limit leaves relu-speed undecided") if factors else "off: the layer file's rates",
         "train.lr_select_factors (other factors; [] = off), train.lr_select_limit", "harness/train/lr_select.py"],
        ["iterations to the target", "25% training error (paper 3.1, Figure 1)",
         ("the training batches' error per window of 20 steps, smoothed over 5 windows and interpolated where it "
          "crosses the target; runs stop after the first epoch at or below it, or at train.epochs (censored)"),
         "the per-epoch curves (epoch resolution), for runs without a step series",
         "harness/stages/train.py steps_csv, harness/analysis/ablation.py crossing"],
        ["with vs without normalisation", ("13% without, 11% with (paper 3.3); the two published files also differ "
                                           "in local3 width, fc10 decay and schedule"),
         f"the same net with and without its normalisation: {lrn_net}",
         "the two files as published: an arm with model.arch cuda_convnet_13pct (and its schedule), base lrn",
         "harness/analysis/compare.py _comparison_group"],
        ["normalisation constants", "the code's (paper 3.3), not the ImageNet section's k=2, n=5, alpha=1e-4",
         "cmrnorm: k=1, alpha = scale / size = 0.001 / 9, beta 0.75; rnorm: scale / size^2", "–",
         "harness/model/cuda_convnet.py"],
        ["11% net's schedule", "350 epochs on batches 1-4, 150 on 1-5, 10 at lr/10, 10 at lr/100",
         f"all 50,000 images from the start: {schedule}", "train.epochs, train.lr_steps",
         "presets/cifar10.yaml"],
        ["mean subtraction of crops", "cifar-cropped subtracts the mean image's centre 24x24 from every crop",
         "the mean image at the crop's own position (departure)", "–", "harness/data/transforms.py Normaliser"],
        ["test protocol", "the quoted 11% / 13% are 10-patch (--multiview-test)",
         (f"evaluated: {', '.join(inp.params['evaluate']['protocols'])}; ablation effects in compare.json use "
          f"{(inp.compare.get('ablations') or {}).get('protocol') or 'center'}"), "evaluate.protocols",
         "harness/stages/evaluate.py"],
    ]
    with doc.details("Readings of the paper and the authors' code that this run takes (docs/cifar10.md)"):
        doc.table(["what", "paper / authors' code", "this run", "alternative", "where in code"], rows, text_last=True)


def _measured_arm(row: ClaimRow | None) -> str | None:
    if not row:
        return None
    return (row if row.get("tested") else row.get("measured_on_run") or {}).get("arm")


def _run(inp, name: str) -> dict:
    """train metrics, curves and evaluations of the baseline seeds or of an arm."""
    if name == "baseline":
        return {"train": inp.train, "curves": inp.curves, "steps": inp.steps or {}, "evaluations": inp.evaluations}
    return (inp.arms or {}).get(name, {"train": {}, "curves": {}, "steps": {}, "evaluations": {}})


def _arm_value(params: dict, arm: str, section: str, key: str):
    """The value an arm trains with: its override, else the params' (as config.apply_arm has it;
    params["ablations"]["arms"] is the resolved list of ArmConfigs)."""
    if arm != "baseline":
        for dotted, value in {a["name"]: a for a in params["ablations"]["arms"]}[arm]["overrides"]:
            if dotted == f"{section}.{key}":
                return value
    return params[section][key]


def _verdict(row: ClaimRow) -> str:
    if row.get("tested"):
        return row["verdict"]
    return f"not tested: {row.get('reason', '')}"


def _series(run: dict, seed, steps_per_epoch: int) -> tuple[list, list]:
    """(iterations, training error %) of one seed: the train stage's window series (every 20 steps,
    seed-N.steps.csv) where it was written, else the per-epoch curve at epoch ends."""
    steps = (run.get("steps") or {}).get(seed)
    if steps is not None:
        return list(steps["step"]), list(steps["train_top1_error"])
    df = run["curves"][seed]
    return list(df["epoch"] * steps_per_epoch), list(df["train_top1_error"])


def _claim_value(row: ClaimRow | None) -> str:
    """The claim row's estimate and interval (tested, or measured on this run's arm)."""
    m = (row if row.get("tested") else row.get("measured_on_run")) if row else None
    if not m or m.get("estimate") is None:
        return "–"
    level = f" ({m['interval_level']:.0%})" if m.get("interval_level") else ""
    return fmt_ci(m["estimate"], m.get("lo"), m.get("hi")) + level


def figure1(doc: Doc, inp, row: ClaimRow | None) -> None:
    doc.h(3, "Figure 1: ReLU vs tanh, iterations to the target training error (paper 3.1)")
    arm = _measured_arm(row)
    if arm is None:
        doc.p("Not run: no enabled arm switches model.activation to tanh"
              + (f" ({row['reason']})." if row and row.get("reason") else "."))
        return
    res = inp.compare["ablation_results"][arm]
    # .get throughout: the convergence fields are the compare stage's (harness/analysis/ablation.py)
    conv = res.get("convergence") or {}
    target = conv.get("target_train_error", inp.params["ablations"]["target_train_error"])
    groups, rows, picks, edge = _figure1_runs(inp, conv, res.get("base", "baseline"), arm)
    _figure1_method(doc, inp, arm, conv, target)
    with doc.details("Learning-rate selection per run, and each run's iterations to the target"):
        _lr_selection(doc, picks, edge)
        doc.table(["net", "run", "seed", "lr trained", "epochs", f"iterations to {target:g}%", "reached target",
                   "lr selection s", "training s"], rows)
    if edge:  # the fastest rate may lie outside what was tried
        doc.p(f"Chosen at the limit of the search ({', '.join(edge)}): the best rate is still at an edge of "
              "those tried, so a faster one may lie beyond them, and claim relu-speed is not decided on this "
              "run (its row says why). A short pilot also favours rates that start fast, whether or not they "
              "keep going (docs/cifar10.md).")
    doc.figure("figure1", f"Figure 1 redrawn: training error against iterations, every seed, each net at the "
               f"learning rate(s) its selection chose (legend); dotted line: {target:g}% target",
               figures.training_error_vs_iterations(groups, target))
    ratio = (f"{fmt(conv['ratio'])} [{fmt(conv.get('ratio_lo'))}, {fmt(conv.get('ratio_hi'))}]"
             + (f", a {conv['bound']} bound (censored seeds)" if conv.get("bound") else "")
             if conv.get("tested") else f"– ({conv.get('reason')})")
    doc.table(["claim", "paper", "ratio tanh / ReLU [95%]", "claim's estimate [interval]", "band", "result"],
              [[row["id"], f"{row['paper_value']:g}x", ratio, _claim_value(row), _band(row), _verdict(row)]],
              text_last=True)


def _figure1_runs(inp, conv: Convergence, base: str, arm: str) -> tuple[dict, list, list, list]:
    """Per net (ReLU = base, tanh = arm): the seeds' series for the figure, a row per run, the lr
    selections (picks) and the runs whose choice sits at the limit of the search (edge)."""
    groups, rows, picks, edge = {}, [], [], []
    for name, label, key in ((base, "ReLU", "baseline"), (arm, "tanh", "arm")):
        run = _run(inp, name)
        its = conv.get(f"{key}_iterations") or {}
        censored = {str(x) for x in (conv.get("not_reached") or {}).get(key, [])}
        spe = next((t["stopped_at_target"]["steps_per_epoch"] for t in run["train"].values()
                    if "steps_per_epoch" in t.get("stopped_at_target", {})), 1)  # 1: epochs on the x axis
        chosen = sorted({t["lr_selection"]["lr"] for t in run["train"].values() if t.get("lr_selection")})
        lrs = f", lr {', '.join(f'{v:.3g}' for v in chosen)}" if chosen else ""  # each activation's own rate(s)
        groups[f"{label} ({name}){lrs}"] = {int(s): _series(run, s, spe) for s in run["curves"]}
        for seed, t in sorted(run["train"].items()):
            sel = t.get("lr_selection")
            it = its.get(str(seed), its.get(seed))
            rows.append([label, name, seed, "–" if sel is None else sel["lr"], t["epochs"],
                         None if it is None else round(it), "no (censored)" if str(seed) in censored else
                         "–" if it is None else "yes", t.get("lr_select_time_s"), t.get("train_time_s")])
            if sel:
                picks.append([label, seed, *_selection_cells(sel)])
                if _at_limit(sel):
                    edge.append(f"{label} seed {seed}: x{sel['chosen_factor']:g}")
    return groups, rows, picks, edge


def _figure1_method(doc: Doc, inp, arm: str, conv: Convergence, target: float) -> None:
    t, res_steps = inp.params["train"], conv.get("resolution_steps")
    doc.p(f"Net: cuda-convnet {_arm_value(inp.params, arm, 'model', 'arch').removeprefix('cuda_convnet_')} layer files "
          f"({inp.params['model']['input_size']} px inputs), ReLU for the baseline seeds and tanh in arm '{arm}'; "
          f"weight decay {t['weight_decay']:g}, random crops and flips {'on' if t['crop_flip'] else 'off'}, PCA colour "
          f"{'on' if t['pca_colour'] else 'off'} (paper 3.1: no regularisation of any kind). "
          f"Training error = the top-1 error of the training batches per window of steps (the train stage's "
          f"seed-N.steps.csv{f', every {res_steps:g} steps' if res_steps else ''}); the iterations to {target:g}% are "
          f"where the smoothed series crosses it (harness/analysis/ablation.py). A run stops after the first epoch "
          f"at or below {target:g}% (train.stop_at_train_error) or at train.epochs; a seed that never gets there "
          f"is censored at the steps it ran.")


def _lr_selection(doc: Doc, picks: list, edge: list) -> None:
    if not picks:
        return
    doc.p("Learning-rate selection, per run (train.lr_select_factors, extended past an edge winner up to "
          "train.lr_select_limit; harness/train/lr_select.py): training top-1 error (%) over the run's first "
          "steps at each multiple of train.lr tried, from the run's own initial weights; * = chosen (the "
          "lowest), after which the run trains from scratch at that rate. The neighbours are the factors tried "
          "next below and above the chosen one.")
    doc.table(["net", "seed", "steps", "train.lr", "lr chosen", "lower neighbour", "higher neighbour",
               "at the limit", "training error at each factor tried (%)"], picks, text_last=True)


def _at_limit(sel: dict) -> bool:
    """harness/train/lr_select.py at_limit, for records written before the field too."""
    return bool(sel.get("at_limit", sel["chosen_factor"] in (min(sel["factors"]), max(sel["factors"]))))


def _selection_cells(sel: dict) -> list:
    """steps, train.lr, lr chosen, its neighbours' pilot errors, at the limit, every factor tried
    (in factor order; the ones beyond the declared grid marked +)."""
    pairs = sorted(zip(sel["factors"], sel["pilot_train_top1_error"]))
    grid = set(sel.get("grid", sel["factors"]))
    err = lambda e: "diverged" if e is None else fmt(e)  # noqa: E731
    i = [f for f, _ in pairs].index(sel["chosen_factor"])
    side = lambda j: f"x{pairs[j][0]:g}: {err(pairs[j][1])}" if 0 <= j < len(pairs) else "none tried"  # noqa: E731
    tried = ", ".join(f"x{f:g}{'' if f in grid else '+'}: {err(e)}" + ("*" if f == sel["chosen_factor"] else "")
                      for f, e in pairs)
    return [sel["steps"], fmt(sel["base_lr"]), f"{fmt(sel['lr'])} (x{sel['chosen_factor']:g})", side(i - 1),
            side(i + 1), "yes" if _at_limit(sel) else "no", tried]


def _band(row: ClaimRow) -> str:
    band = row.get("band")
    return "–" if not band else f"[{fmt_pp(band[0]) if band[0] is not None else '-inf'}, " \
                                 f"{fmt_pp(band[1]) if band[1] is not None else 'inf'}]"


def lrn(doc: Doc, inp, row: ClaimRow | None) -> None:
    doc.h(3, "Local response normalisation on CIFAR-10: 13% without, 11% with (paper 3.3)")
    arm = _measured_arm(row)
    if arm is None:
        doc.p("Not run: no enabled arm switches model.lrn to none"
              + (f" ({row['reason']})." if row and row.get("reason") else "."))
        return
    res = inp.compare["ablation_results"][arm]
    base = res.get("base", "baseline")
    with_, without = _run(inp, base), _run(inp, arm)
    protos = list(res.get("protocols") or {})
    rows = []
    for seed in sorted(set(with_["evaluations"]) | set(without["evaluations"])):
        cells = [seed]
        for run in (with_, without):
            e = run["evaluations"].get(seed, {}).get("protocols", {})
            cells += [e.get(p, {}).get("top1_error") for p in protos]
        rows.append(cells)
    diff = res.get("differs_from_base") or {}
    doc.p(f"With = run '{base}', without = arm '{arm}'; they train differently in "
          + (", ".join(f"{k} ({v[0]} -> {v[1]})" for k, v in diff.items()) or "nothing (a control)")
          + ". Test error on the 10,000 CIFAR-10 test images per seed (10-patch = cuda-convnet's "
          "--multiview-test, which the authors' methodology used for the quoted 11% and 13%).")
    with doc.details("Test error per seed, with and without normalisation"):
        doc.table(["seed"] + [f"with, {p} %" for p in protos] + [f"without, {p} %" for p in protos], rows)
    effects = [[p, f"{fmt(e['baseline']['mean'])} (n {e['baseline']['n']})", f"{fmt(e['arm']['mean'])} (n {e['arm']['n']})",
                fmt_ci(e['diff'], e['lo'], e['hi']), e["p_value"], e.get("method", "")]
               for p, ms in (res.get("protocols") or {}).items() for m, e in ms.items() if m == "top1_error"]
    doc.table(["protocol", "with LRN mean %", "without mean %", "reduction (without - with) [95% CI]", "p", "test"],
              effects, text_last=True)
    doc.table(["claim", "paper", "estimate [interval]", "band", "result"],
              [[row["id"], f"{row.get('paper_value'):g} pp (13% -> 11%)", _claim_value(row), _band(row),
                _verdict(row)]], text_last=True)


def costs(doc: Doc, inp) -> None:
    c = inp.cifar10_costs
    doc.h(3, "What these experiments cost on this kind of machine")
    if not c:
        doc.p("Not measured: run `python -m benchmarks.cifar10` to write reports/cifar10_costs.json.")
        return
    m = c["machine"]
    doc.p(f"Measured {c['measured_at']} by `python -m benchmarks.cifar10` on {m['cpu']} ({m['cpu_count']} cores, "
          f"{m['threads']} torch threads, load average {m['load_average_before'][0]:.1f} before, "
          f"{m['load_average_after'][0]:.1f} after): one training step of each net (batch "
          f"{next(iter(c['nets'].values()))['batch_size']}), in rounds alternating with the Figure 1 ReLU net's "
          f"step; ms / step = the median ratio to that step times its median over all rounds "
          f"({1000 * c['baseline_step_s_all_rounds']['median']:.1f} ms)"
          + (" (quick mode: indicative only)." if c.get("quick") else "."))
    doc.table(["net", "parameters", "ms / step", "training images/s", "step vs Figure 1 ReLU net",
               "evaluation images/s"],
              [[k, n["n_parameters"], 1000 * n["projected_step_s"], round(n["train_images_per_s"]),
                f"{n['step_ratio_to_baseline']['median']:.2f}x", round(1 / n["eval_s_per_image"])]
               for k, n in c["nets"].items()])
    self_ratio = c["nets"][c["baseline_net"]]["step_ratio_to_baseline"]["median"]
    doc.p(f"The Figure 1 ReLU net paired with a copy of itself comes out at {self_ratio:.2f}x: the size of this "
          "method's own error on this machine.")
    fig = c["paper_figure1_epochs_assumed"]
    doc.p(f"Projected wall time, all seeds (lr-selection pilots, training with a validation pass per epoch, "
          f"evaluation). Expected: the convergence runs stop where the paper's Figure 1 crosses 25% "
          f"(ReLU {fig['relu']}, tanh {fig['tanh']} epochs); worst case: they run to train.epochs. The authors "
          "quote 25 minutes (13% net) and 75 minutes (11% net) on one GTX 580.")
    doc.table(["preset", "experiment", "runs", "expected hours", "worst-case hours"],
              [[name, exp, ", ".join(e["runs"]), e["expected_h"], e["worst_case_h"]]
               for name, p in c["presets"].items() for exp, e in p["experiments"].items()])
