"""The shape of the harness package, read statically: no import cycles between its modules
(function-level imports included), and no long functions but the named tables."""

from __future__ import annotations

import ast
from pathlib import Path

import import_graph as G

PACKAGE = G.REPO / "harness"

# Functions over MAX_LINES lines that may stay so: tables, read as one. At most two, and each must
# still be long (a name left behind after a split fails the test: remove it here).
MAX_LINES = 60
LONG_TABLES: set[str] = set()  # functions allowed over the limit (at most 2, tables only): none today


def module_imports(path: Path) -> set[Path]:
    """The harness modules an import statement anywhere in `path` names (at any depth).

    `from pkg import mod` names the module pkg.mod, not pkg: a package's __init__ is run before
    any of its modules, so an edge to it would make every package that re-exports its modules
    look cyclic. `from mod import name` names mod."""
    out: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if G.module_file(f"{node.module}.{a.name}") else node.module
                     for a in node.names]
        else:
            continue
        out |= {f for f in map(G.module_file, names) if f is not None and f != path}
    return out


def cycles(graph: dict[Path, set[Path]]) -> list[list[Path]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    stack: list[Path] = []
    on_stack: set[Path] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, edges = work[-1]
            w = next(edges, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def package_graph() -> dict[Path, set[Path]]:
    return {p: module_imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    a, b, c = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"
    assert cycles({a: {b}, b: {c}, c: {a}}) == [sorted([a, b, c])]
    assert cycles({a: {b}, b: {c}, c: set()}) == []
    sources = G.REPO / "harness/prepare/sources.py"
    scan = G.REPO / "harness/prepare/scan.py"
    assert scan in module_imports(sources)  # `from harness.prepare.scan import ...`
    assert G.REPO / "harness/prepare/fall2011.py" in module_imports(sources)  # imported inside list_source


def test_the_harness_package_has_no_import_cycles():
    found = cycles(package_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(str(p.relative_to(G.REPO)) for p in c)
                                                    for c in found)


def test_the_prepare_scan_module_imports_nothing_of_the_project():
    """Every module of the prepare package that reads files builds on it."""
    assert module_imports(G.REPO / "harness/prepare/scan.py") == set()


def long_functions() -> dict[str, int]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    out[f"{path.relative_to(G.REPO).as_posix()}:{node.name}"] = lines
    return out


def test_no_function_is_longer_than_60_lines_but_the_named_tables():
    assert len(LONG_TABLES) <= 2
    found = long_functions()
    too_long = {k: v for k, v in found.items() if k not in LONG_TABLES}
    assert not too_long, f"functions over {MAX_LINES} lines (split them): {too_long}"
    stale = sorted(LONG_TABLES - set(found))
    assert not stale, f"no longer over {MAX_LINES} lines, or gone: remove {stale} from LONG_TABLES"


def test_list_data_starts_without_torch():
    """list_data runs on every `dvc repro` (always_changed): its modules, the stages package and
    the atomic writes, import no torch (about 1 s of each run on 2 cores), through a lazy import
    in harness/stages/__init__.py and the fault switch read in harness/io.py."""
    import subprocess
    import sys
    script = Path(__file__).resolve().parents[2] / "pipelines" / "list_data.py"
    mods = sorted(m.removeprefix("from ").split()[0] for m in
                  (ln.strip() for ln in script.read_text().splitlines()) if m.startswith("from harness"))
    assert "harness.stages.script" in mods and "harness.prepare.listing" in mods
    code = "import sys\n" + "".join(f"import {m}\n" for m in mods) + \
        "from harness.io import atomic_write_text\n" \
        "import tempfile, pathlib\natomic_write_text(pathlib.Path(tempfile.mkdtemp()) / 'x', 'x')\n" \
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('harness.runtime')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
