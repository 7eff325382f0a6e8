"""Which files of `harness` a stage script can execute: its transitive imports, read statically.

Used by the dvc.yaml dependency test (a stage's deps must cover every module whose code can
change its outputs, and nothing broader), and runnable to print what each stage needs:
`python tests/import_graph.py`.
"""

from __future__ import annotations

import ast
import re
import shlex
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

# Imported by every stage, yet their code cannot change a stage's results: tracking only logs
# to MLflow, errors only defines the exception type. Editing them must not retrain anything.
CANNOT_CHANGE_OUTPUTS = {"harness/tracking.py", "harness/errors.py"}


def module_file(name: str) -> Path | None:
    """harness.a.b -> harness/a/b.py or harness/a/b/__init__.py (None outside the package)."""
    if not (name == "harness" or name.startswith("harness.")):
        return None
    base = REPO.joinpath(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _imports(path: Path) -> set[str]:
    """Every module name an import statement in `path` may load, at any depth (function-local
    imports included); `from pkg import name` counts pkg.name too, for when name is a module."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _data_files(path: Path) -> set[Path]:
    """Files beside a module that it names in a string literal (e.g. claims.yaml)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"[\w.-]+\.(yaml|json)", node.value):
            candidate = path.parent / node.value
            if candidate.is_file():
                out.add(candidate)
    return out


def closure(script: Path) -> set[Path]:
    """Files of harness that running `script` imports (or reads beside them), transitively."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        for name in _imports(path):
            for parent in _with_parents(name):
                f = module_file(parent)
                if f is not None and f not in seen:
                    seen.add(f)
                    todo.append(f)
    return seen | {d for f in seen for d in _data_files(f)}


def docstring_only(path: Path) -> bool:
    """A module with nothing but a docstring (a package's __init__) cannot change outputs."""
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def needed(script: Path) -> set[str]:
    """Repository-relative files a stage must depend on."""
    return {p.relative_to(REPO).as_posix() for p in closure(script)
            if p.suffix != ".py" or not docstring_only(p)} - CANNOT_CHANGE_OUTPUTS


def stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def params_of(stage: dict) -> list[str]:
    """The params.yaml keys a stage lists, in order: plain entries and `params.yaml: [...]` groups
    (dvc.yaml reuses the training keys as one anchored group)."""
    out: list[str] = []
    for p in stage.get("params", []):
        if isinstance(p, str):
            out.append(p)
        else:
            (path, keys), = p.items()
            assert path == "params.yaml", path
            out += keys
    return out


def script_of(stage: dict) -> Path:
    """The pipelines/<name>.py a stage's cmd runs (python or torchrun)."""
    words = shlex.split(stage["cmd"].replace("\n", " "))
    return REPO / next(w for w in words if w.startswith("pipelines/") and w.endswith(".py"))


def code_deps(stage: dict) -> list[str]:
    """The stage's deps inside harness/ (files or folders), as written in dvc.yaml."""
    deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
    return [d.split("#")[0].strip().rstrip("/") for d in deps if d.startswith("harness")]


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d + "/") for d in deps)


def files_under(dep: str) -> set[str]:
    p = REPO / dep
    if p.is_file():
        return {dep}
    return {f.relative_to(REPO).as_posix() for f in p.rglob("*")
            if f.is_file() and "__pycache__" not in f.parts and (f.suffix == ".py" or f.suffix in (".yaml", ".json"))}


def problems(name: str, stage: dict) -> list[str]:
    """Missing deps (imported, not covered) and broad ones (covered, not imported)."""
    need = needed(script_of(stage))
    deps = code_deps(stage)
    out = [f"{name}: imports {f} but does not depend on it" for f in sorted(need) if not covered(f, deps)]
    for dep in deps:
        if not (REPO / dep).exists():
            out.append(f"{name}: depends on {dep}, which does not exist")
            continue
        extra = {f for f in files_under(dep) - need
                 if f not in CANNOT_CHANGE_OUTPUTS and not (f.endswith(".py") and docstring_only(REPO / f))}
        out += [f"{name}: depends on {f} (through {dep}) but never imports it" for f in sorted(extra)]
    return out


def suggest(stage: dict) -> list[str]:
    """Folders where the stage imports every file of a harness sub-package, files elsewhere."""
    need = needed(script_of(stage))
    out: set[str] = set()
    for f in need:
        parts = f.split("/")
        folder = "/".join(parts[:-1])
        if len(parts) > 2 and all(g in need or g in CANNOT_CHANGE_OUTPUTS or (g.endswith(".py") and docstring_only(REPO / g))
                                  for g in files_under(folder)):
            out.add(folder)
        else:
            out.add(f)
    return sorted(out)


if __name__ == "__main__":
    for name, stage in stages().items():
        print(f"{name}:")
        for d in suggest(stage):
            print(f"      - {d}")
        for p in problems(name, stage):
            print("  !", p, file=sys.stderr)
