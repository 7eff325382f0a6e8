"""The report's document model: sections numbered by the builder, cross-references resolved to
those numbers, folded (<details>) content in both formats, and every HTML table in a scroll box."""

from harness.report.render import Doc, to_html, to_markdown
from harness.report.sections import SECTIONS, assemble


def _sections():
    def scope(doc, inp):
        doc.p(f"Each claim's reason is in {Doc.ref('claims')}.")

    def cifar(doc, inp):  # does not apply to this run: writes nothing
        if inp["cifar10"]:
            doc.p("CIFAR-10")

    def claims(doc, inp):
        doc.p("53 not tested.")
        with doc.details("Every claim"):
            doc.table(["claim", "reason"], [["t1-cnn-top1", "other data"]], text_last=True)
        with doc.details("Nothing to fold"):
            pass
    return (("scope", "Scope", scope), ("cifar10", "CIFAR-10", cifar), ("claims", "Every claim", claims))


def test_sections_are_numbered_by_the_builder_and_references_follow():
    doc = assemble(_sections(), {"cifar10": False}, lambda d, inp: d.p("summary"))
    md = to_markdown(doc, "figures")
    heads = [ln for ln in md.splitlines() if ln.startswith("## ")]
    assert heads == ["## 1. Scope", "## 2. Every claim"]  # the empty section left out, the rest renumbered
    assert "Each claim's reason is in section 2." in md and "\x1d" not in md
    assert md.index("summary") < md.index("## 1. Scope")
    with_cifar = to_markdown(assemble(_sections(), {"cifar10": True}, lambda d, inp: None), "figures")
    assert "## 3. Every claim" in with_cifar and "is in section 3." in with_cifar


def test_folded_content_in_markdown_and_html():
    doc = assemble(_sections(), {"cifar10": False}, lambda d, inp: None)
    md, html = to_markdown(doc, "figures"), to_html(doc, "t")
    assert "<details><summary>Every claim</summary>\n\n| claim | reason |" in md and md.count("<details>") == 1
    assert "</details>" in md and "Nothing to fold" not in md  # an empty fold is dropped
    assert "<details><summary>Every claim</summary>" in html and "Nothing to fold" not in html
    assert "<div class='scroll'><table class='text ids'>" in html  # no table runs past the page's edge
    assert "<h2 id='claims'>2. Every claim</h2>" in html and "<script" not in html


def test_no_section_function_numbers_itself():
    keys = [k for k, _, _ in SECTIONS]
    assert len(keys) == len(set(keys))
    for _, title, _ in SECTIONS:
        assert not title[0].isdigit(), title


def test_the_report_says_what_reproduces_bitwise_across_machines():
    """The data on every machine (synthetic: by construction, tests/unit/test_portable_data.py),
    training only on the same CPU type, threads and workers (docs/architecture.md)."""
    from harness.report.sections import bitwise_statement
    synthetic = bitwise_statement("synthetic", {"threads": 2, "num_workers": 0})
    assert "synthetic dataset is bitwise the same on every machine" in synthetic
    assert "same CPU type" in synthetic and "torch threads (2)" in synthetic and "DataLoader workers (0)" in synthetic
    real = bitwise_statement("ilsvrc2012", {"threads": 8, "num_workers": 4})
    assert "every machine" not in real and "same source files" in real and "torch threads (8)" in real
