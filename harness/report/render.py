"""The reproducibility report: Markdown and self-contained HTML from the result files.

It computes nothing new: every number comes from the metrics JSON written by the stages.
The document is a list of blocks rendered twice, so the two formats cannot drift.
"""

from __future__ import annotations

import base64
import html
import re
from contextlib import contextmanager
from dataclasses import dataclass, field

# A reference to a section by key (Doc.ref), replaced by its number when rendered: the builder
# numbers the sections, so a section that is left out or moved renumbers every reference to it.
_REF = re.compile("\x1dsec:([a-z0-9_]+)\x1d")


@dataclass
class Doc:
    blocks: list = field(default_factory=list)
    numbers: dict = field(default_factory=dict)  # section key -> its number, set by the builder

    @staticmethod
    def ref(key: str) -> str:
        """'section N' of the section `key`, once the builder has numbered it."""
        return f"\x1dsec:{key}\x1d"

    @contextmanager
    def details(self, summary: str):
        """Secondary content, collapsed in HTML (<details>, no script) and in Markdown alike."""
        self.blocks.append(("details", summary))
        yield
        if self.blocks[-1] == ("details", summary):  # nothing was written inside: no empty box
            self.blocks.pop()
        else:
            self.blocks.append(("/details",))

    @contextmanager
    def box(self, cls: str):
        """A layout group in HTML only (the summary beside the headline figure); Markdown ignores it."""
        self.blocks.append(("box", cls))
        yield
        self.blocks.append(("/box",))

    def h(self, level: int, text: str, anchor: str | None = None) -> None:
        """anchor: the id of the heading in HTML (a section's key), so #key links to it."""
        self.blocks.append(("h", level, text, anchor))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, headers: list[str], rows: list[list], text_last: bool = False) -> None:
        """text_last: the last column holds sentences (reasons), so it gets the width."""
        self.blocks.append(("table", headers, rows, text_last))

    def figure(self, name: str, caption: str, png: bytes) -> None:
        self.blocks.append(("fig", name, caption, png))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))


@dataclass(frozen=True)
class Link:
    text: str
    url: str


def _md_cell(v) -> str:
    if isinstance(v, Link):
        return f"[{v.text}]({v.url})"
    return fmt(v).replace("|", "\\|")


def fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float) and v.is_integer() and abs(v) >= 1000:
        return f"{int(v):,}"  # counts such as 60,965,224 parameters
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10000:
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.2f}" if abs(v) >= 1 or v == 0 else f"{v:.3g}"
    return str(v)


def fmt_pp(v) -> str:
    """A figure at a fixed two decimals (percentage points, or a ratio such as the ReLU speed-up),
    so that an estimate and its interval read alike (fmt gives 0.5 but 1.60)."""
    return "–" if v is None else f"{v:.2f}"


def fmt_ci(estimate, lo, hi) -> str:
    """`estimate [lo, hi]`, all three at two decimals, in the estimate's own unit."""
    return f"{fmt_pp(estimate)} [{fmt_pp(lo)}, {fmt_pp(hi)}]"


def _section_name(numbers: dict, key: str) -> str:
    return f"section {numbers[key]}" if key in numbers else "its section"


def _resolve(v, numbers: dict):
    """A block's strings (table cells too) with every Doc.ref replaced by the section's number."""
    if isinstance(v, str):
        return _REF.sub(lambda m: _section_name(numbers, m.group(1)), v)
    if isinstance(v, list):
        return [_resolve(x, numbers) for x in v]
    return v


def to_markdown(doc: Doc, figure_dir_rel: str) -> str:
    out = []
    for b in doc.blocks:
        b = tuple(_resolve(x, doc.numbers) for x in b)
        if b[0] == "h":
            out.append("#" * b[1] + " " + b[2])
        elif b[0] == "p":
            out.append(b[1])
        elif b[0] == "table":
            out.append("| " + " | ".join(b[1]) + " |")
            out.append("|" + "---|" * len(b[1]))
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b[2]]
        elif b[0] == "fig":
            out.append(f"![{b[2]}]({figure_dir_rel}/{b[1]}.png)\n\n*{b[2]}*")
        elif b[0] == "code":
            out.append("```\n" + b[1] + "\n```")
        elif b[0] == "details":  # GitHub renders the Markdown inside when blank lines surround it
            out.append(f"<details><summary>{html.escape(b[1], quote=False)}</summary>")
        elif b[0] == "/details":
            out.append("</details>")
        else:  # box, /box: layout only
            continue
        out.append("")
    return "\n".join(out)


# Every table sits in its own scroll box (.scroll), so none runs past the page's right edge; long
# cells wrap. .head puts the summary beside the headline figure on the first screen.
CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:1.5em auto;padding:0 1em;color:#222;line-height:1.4}
.scroll{overflow-x:auto;max-width:100%;margin:.8em 0}table{border-collapse:collapse;font-size:.88em}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;overflow-wrap:break-word}th{background:#f2f2f2}td{vertical-align:top}
table.text td:last-child{min-width:14em}table.ids td:first-child{white-space:nowrap}img{max-width:100%}figure{margin:1em 0}figcaption{font-style:italic;color:#555}
pre{background:#f6f6f6;padding:1em;overflow-x:auto}.reproduced,.consistent{color:#080}.not-reproduced,.differs{color:#b00}
.inconclusive{color:#a60}.not-tested{color:#777}h2{margin:1.4em 0 .5em;border-bottom:1px solid #ddd}
details{margin:.6em 0;padding:.2em .6em;border-left:3px solid #ddd}summary{cursor:pointer;color:#345}
.head{display:flex;gap:1.5em;align-items:flex-start}.head>div{flex:1 1 0;min-width:0}.head figure{flex:0 1 640px;margin:0}"""


ID_COLUMNS = ("claim", "arm", "parameter")  # first columns of identifiers such as t2-1cnn-top1-val: kept on one line


def _html_cell(v) -> str:
    if isinstance(v, Link):
        return f'<a href="{html.escape(v.url)}">{html.escape(v.text)}</a>'
    text = html.escape(fmt(v))
    if text in ("reproduced", "not reproduced", "inconclusive", "not tested", "consistent", "differs"):
        return f'<span class="{text.replace(" ", "-")}">{text}</span>'
    return text


def to_html(doc: Doc, title: str) -> str:
    """Self-contained: CSS inline, figures as data: URIs, no script, nothing fetched."""
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{CSS}</style></head><body>"]
    for b in doc.blocks:
        b = tuple(_resolve(x, doc.numbers) for x in b)
        if b[0] == "h":
            anchor = f" id='{html.escape(b[3])}'" if len(b) > 3 and b[3] else ""
            out.append(f"<h{b[1]}{anchor}>{html.escape(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            out.append(f"<p>{html.escape(b[1])}</p>")
        elif b[0] == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in r) + "</tr>" for r in b[2])
            cls = " ".join(c for c, on in (("text", b[3]), ("ids", b[1][0] in ID_COLUMNS)) if on)
            cls = f" class='{cls}'" if cls else ""
            out.append(f"<div class='scroll'><table{cls}><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>")
        elif b[0] == "details":
            out.append(f"<details><summary>{html.escape(b[1])}</summary>")
        elif b[0] == "/details":
            out.append("</details>")
        elif b[0] == "box":
            out.append(f"<div class='{html.escape(b[1])}'>")
        elif b[0] == "/box":
            out.append("</div>")
        elif b[0] == "fig":
            data = base64.b64encode(b[3]).decode()
            out.append(f"<figure><img alt='{html.escape(b[2])}' src='data:image/png;base64,{data}'>"
                       f"<figcaption>{html.escape(b[2])}</figcaption></figure>")
        elif b[0] == "code":
            out.append(f"<pre>{html.escape(b[1])}</pre>")
    out.append("</body></html>")
    return "\n".join(out)
