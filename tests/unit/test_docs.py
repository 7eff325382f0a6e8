"""The README stays a short front page and every link of the documentation leads somewhere.

The README says what the harness answers, the two commands and where to read on; everything
else lives in docs/. A link to a moved or renamed page, or to a heading that was reworded,
is a dead end for a newcomer, so each relative link and its #anchor is resolved here the way
GitHub renders them.
"""

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PAGES = [README, REPO / "benchmarks" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MAX_README_BYTES = 12_000
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where [x](y) is not a link."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def code(text: str) -> str:
    """The fenced blocks and inline code spans of a page, one per line: what a reader types."""
    return "\n".join([m.group(0) for m in FENCE.finditer(text)] + [s.strip("`") for s in INLINE_CODE.findall(text)])


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())  # a link's text only
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")  # GitHub numbers repeated headings
    return out


def relative_links_of(text: str) -> list[str]:
    return [t for t in LINK.findall(prose(text))
            if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # http:, https:, mailto: leave the repository


def relative_links(page: Path) -> list[str]:
    return relative_links_of(page.read_text())


def test_readme_is_short():
    size = len(README.read_bytes())
    assert size <= MAX_README_BYTES, f"README.md is {size} bytes (at most {MAX_README_BYTES}): move detail to docs/"


def test_the_scan_sees_links_and_anchors():
    links = relative_links(README)
    assert "docs/install.md" in links and "docs/img/report.png" in links
    assert "#1-data-parallel-with-torchrun" in relative_links(REPO / "docs" / "scale-out.md")
    assert slug("## 2. Seeds in parallel on one machine: DVC's experiment queue".lstrip("# ")) == \
        "2-seeds-in-parallel-on-one-machine-dvcs-experiment-queue"
    assert relative_links_of("see [x](a.md#b), `[y](c.md)`, [z](https://e.org)\n```\n[w](d.md)\n```\n") == ["a.md#b"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    bad = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading with anchor #{anchor}")
    assert not bad, f"dead links in {page.relative_to(REPO)}:\n" + "\n".join(bad)


def test_make_targets_named_in_the_docs_exist():
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.MULTILINE))
    named = {(p.relative_to(REPO), t) for p in PAGES for t in re.findall(r"^\s*make ([a-z][\w-]*)", code(p.read_text()), re.MULTILINE)}
    missing = sorted(f"{p}: make {t}" for p, t in named if t not in targets)
    assert not missing, "make targets that the Makefile lacks:\n" + "\n".join(missing)


def test_readme_gives_the_commands_and_no_suite_counts():
    text = README.read_text()
    code_lines = {ln.strip() for m in FENCE.finditer(text) for ln in m.group(0).splitlines()}
    assert "dvc exp show" in code_lines
    for cmd in ("make repro", "make test", "make install TORCH=cpu", "make mlflow-ui"):
        assert cmd in text
    # test counts and suite timings go stale with every commit; docs/testing.md says how to get them
    assert not re.search(r"\b\d[\d,]* tests\b", text), "README.md states a test count"


def test_citations_of_readme_sections_name_a_heading_it_has():
    """`(README, "Performance")` in a comment must not outlive the section it names."""
    hits = subprocess.run(["git", "grep", "-n", "-E", r"README,? \"[^\"]+\"", "--", ".", ":!reports"],
                          cwd=REPO, capture_output=True, text=True).stdout.splitlines()  # exit 1: no hits
    headings = {re.sub(r"^#+\s*", "", ln).lower() for ln in README.read_text().splitlines() if ln.startswith("#")}
    bad = [h for h in hits if "test_docs.py" not in h
           and not any(any(head.startswith(s.lower()) for head in headings)
                       for s in re.findall(r"README,? \"([^\"]+)\"", h))]
    assert not bad, "citations of README sections that moved to docs/:\n" + "\n".join(bad)
