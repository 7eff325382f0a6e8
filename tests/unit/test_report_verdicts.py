"""The report's verdict table (section 2) and claim rows (section 8) from a real compare.json dict."""

import json
from types import SimpleNamespace

import numpy as np

from harness.analysis.claims import RunContext, load_claims
from harness.analysis.compare import CompareInputs, CompareSettings, build_compare
from harness.report.render import Doc, fmt_ci, fmt_pp, to_html, to_markdown
from harness.report.sections import claims_detail, reference, verdicts

CLAIMS = load_claims()


def _results(values5, dataset="ilsvrc2012", n=50_000):
    return [{"seed": i + 1, "dataset": dataset, "split": "val", "num_classes": 1000, "n_images": n,
             "protocols": {"ten_patch": {"top1_error": t1, "top5_error": t5},
                           "center": {"top1_error": t1 + 1.4, "top5_error": t5 + 1.1}}}
            for i, (t1, t5) in enumerate(values5)]


def _compare():
    res = _results([(40.6, 18.1), (40.9, 18.3), (40.7, 18.2), (40.5, 18.0), (41.0, 18.4)])
    ctx = RunContext("ilsvrc2012", "val", 1000, 5, ("center", "ten_patch"), True)
    out = build_compare(CompareInputs(res, measured={"n_parameters": 60_965_224, "n_neurons": 659_272,
                                                "max_conv_layer_param_share": 1.4518,
                                                "conv_param_shares": {"conv1": 0.06, "conv3": 1.45}}),
                        ctx, CLAIMS, CompareSettings())
    return json.loads(json.dumps(out))


def _render(section, compare) -> str:
    doc = Doc()
    section(doc, SimpleNamespace(compare=compare))
    md = to_markdown(doc, "figures")
    to_html(doc, "t")  # renders without error
    return md


def test_verdict_table_shows_counts_rule_and_every_decided_claim():
    cmp = _compare()
    md = _render(verdicts, cmp)
    v = cmp["counts"]["verdicts"]
    assert (f"Reproduced: {v['reproduced']}. Not reproduced: {v['not reproduced']}. "
            f"Inconclusive: {v['inconclusive']}. Not tested: {v['not tested']}") in md
    assert "Why not tested: " in md and "context" in md
    assert cmp["decision_rule"]["family_size"] == 2  # the two single-CNN claims; no ensembles were formed
    assert "Holm across the 2 claims" in md and "docs/statistics.md" in md
    header = next(ln for ln in md.splitlines() if ln.startswith("| claim | quantity"))
    for col in ("paper", "estimate", "90% interval", "band (tolerance)", "p reproduced raw / adj",
                "p not reproduced raw / adj", "seeds needed", "verdict", "direction"):
        assert col in header, col
    tested = [r for r in cmp["claims"] if r["tested"]]
    for r in tested:
        assert f"| {r['id']} |" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| t2-1cnn-top5-val |"))
    assert "17.40 – 19.00" in row and "reproduced" in row
    neurons = next(ln for ln in md.splitlines() if ln.startswith("| neurons |"))
    assert "not reproduced" in neurons and "659,272" in neurons
    assert "Model checks (not claims)" in md and "conv3 1.45" in md
    assert "10-patch vs centre crop" in md


def test_the_verdicts_state_their_assumptions():
    # docs/statistics.md, printed effects and seeds needed: n fixed in advance; the paper's numbers as one noisy run each
    md = _render(verdicts, _compare())
    assert "number of seeds was fixed before the results were seen" in md
    assert "printed ablation effects alike, are one training run (per arm)" in md


def test_every_claim_has_a_row_with_what_it_needs():
    cmp = _compare()
    md = _render(claims_detail, cmp)
    for c in CLAIMS:
        assert f"| {c.id} |" in md, c.id
    assert "Protocol inferred" in md and "t2-1cnn-top5-val" in md
    assert "what it needs" in md and "why this band" in md
    assert "two significant figures" in md  # the precision reading of '60 million', reported


def test_html_marks_the_labels():
    doc = Doc()
    verdicts(doc, SimpleNamespace(compare=_compare()))
    html = to_html(doc, "t")
    assert 'class="not-reproduced"' in html and 'class="reproduced"' in html


def test_reference_section_says_when_it_cannot_decide():
    ours = [71.1, 73.9, 76.5]
    res = [{"seed": i + 1, "dataset": "synthetic", "split": "val", "num_classes": 20, "n_images": 1000,
            "protocols": {"center": {"top1_error": v, "top5_error": 20.0}}} for i, v in enumerate(ours)]
    ref = {"profile": "default", "dataset": "synthetic", "protocol": "center", "seeds": [101, 102, 103, 104, 105],
           "top1_error": [77.0, 74.5, 72.7, 79.3, 74.9]}
    cmp = build_compare(CompareInputs(res, reference=ref), RunContext("synthetic", "val", 20, 3, ("center",), False),
                        CLAIMS, CompareSettings(n_boot=200))
    md = _render(reference, json.loads(json.dumps(cmp)))
    assert "cannot decide at this n" in md and "TOST power" in md and np.isfinite(
        cmp["reference"]["metrics"]["top1_error"]["power"])
    # the effect cell: estimate and interval at the same two decimals (the reference is ~2 pp off)
    diff = cmp["reference"]["metrics"]["top1_error"]
    assert f"{diff['diff']:.2f} [{diff['lo']:.2f}, {diff['hi']:.2f}]" in md


def test_an_interval_reads_at_one_precision():
    # fmt alone gives "0.5" beside "1.60": an effect cell mixed the two
    assert fmt_ci(-0.5, -1.6, 0.6) == "-0.50 [-1.60, 0.60]"
    assert fmt_ci(10.8, 8.8, 12.75) == "10.80 [8.80, 12.75]"
    assert fmt_ci(0.0, None, None) == "0.00 [–, –]" and fmt_pp(None) == "–"


def test_architecture_checks_are_counted_apart_from_the_experiments():
    """the default report opened with "Not reproduced: 2" for arithmetic facts of
    the architecture. On a synthetic run only the size claims are decided: the experiments' counts
    show no verdict, the architecture checks have their own line and table, and summary.json
    keeps them apart too."""
    from harness.analysis.compare import headline
    res = [{"seed": i, "dataset": "synthetic", "split": "val", "num_classes": 20, "n_images": 1000,
            "protocols": {"center": {"top1_error": 70.0 + i, "top5_error": 20.0 + i}}} for i in (1, 2, 3)]
    ctx = RunContext("synthetic", "val", 20, 3, ("center",), False)
    cmp = json.loads(json.dumps(build_compare(CompareInputs(res, measured={
        "n_parameters": 60_965_224, "n_neurons": 659_272, "max_conv_layer_param_share": 1.4518,
        "conv_param_shares": {"conv3": 1.4518}}), ctx, CLAIMS, CompareSettings())))
    v = cmp["counts"]["verdicts"]
    assert v["reproduced"] == v["not reproduced"] == v["inconclusive"] == 0
    assert cmp["architecture_counts"]["verdicts"]["not reproduced"] == 3
    md = _render(verdicts, cmp)
    assert "Experimental claims: Reproduced: 0. Not reproduced: 0. Inconclusive: 0." in md
    assert "Architecture checks" in md and "0 of 3 as printed" in md
    assert "conv3 0.73" in md  # the per-GPU reading of conv-param-share
    h = headline(cmp)
    assert h["not_reproduced"] == 0 and h["arch_not_as_printed"] == 3
