"""Seeds trained on separate machines, collected into one comparison (docs/scale-out.md).

Each machine runs `dvc repro evaluate@N` for its own seed, `dvc push`es the outputs to a shared
DVC remote and commits dvc.lock with its metrics files to a git branch. The collector merges
the dvc.lock entries of those branches (a stage that two branches both ran, such as prepare,
must be identical: same code, params and data), checks out the git-tracked outputs of the
stages it takes (metrics and plots, `cache: false`), and then `dvc pull --allow-missing` fetches the
rest (the fan-in stages have not run, so their outputs have no hash yet) and
`dvc repro` runs only ensemble, compare and report.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from harness.errors import UserError
from harness.io import atomic_write_text


def merge_locks(base: dict | None, branches: dict[str, dict]) -> tuple[dict, dict[str, list[str]]]:
    """Union of the `stages` of several dvc.lock documents, over `base` (the collector's own).

    Returns the merged document and, per branch, the stages taken from it. A branch's entry
    replaces base's (the branch ran that stage); a stage present in two branches with different
    entries (other code, params or outputs) is an error naming it.
    """
    schema = (base or {}).get("schema", "2.0")
    stages: dict = {}
    origin: dict[str, str] = {}
    taken: dict[str, list[str]] = {}
    for rev, lock in branches.items():
        if lock.get("schema", "2.0") != schema:
            raise UserError(f"{rev}: dvc.lock schema {lock.get('schema')} differs from {schema}")
        taken[rev] = []
        for name, entry in (lock.get("stages") or {}).items():
            if name not in stages:
                stages[name], origin[name] = entry, rev
                taken[rev].append(name)
            elif stages[name] != entry:
                raise UserError(f"stage {name} differs between {origin[name]} and {rev} (other code, params "
                                f"or outputs); run it with the same commit and params everywhere")
    for name, entry in ((base or {}).get("stages") or {}).items():
        stages.setdefault(name, entry)
    return {"schema": schema, "stages": stages}, taken


def stage_out_paths(entry: dict) -> list[str]:
    return [o["path"] for o in entry.get("outs", [])]


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=check)


def read_lock_at(repo: Path, rev: str) -> dict:
    proc = _git(repo, "show", f"{rev}:dvc.lock", check=False)
    if proc.returncode:
        raise UserError(f"{rev}: no dvc.lock at that revision ({proc.stderr.strip()[:200]})")
    return yaml.safe_load(proc.stdout) or {}


def collect(repo: Path, revs: list[str]) -> dict[str, list[str]]:
    """Merge the dvc.lock of each rev into repo's dvc.lock and check out the git-tracked outputs
    (metrics, plots) of the stages taken from it. Returns the stages taken per rev."""
    lock_path = repo / "dvc.lock"
    base = yaml.safe_load(lock_path.read_text()) if lock_path.is_file() else None
    merged, taken = merge_locks(base, {rev: read_lock_at(repo, rev) for rev in revs})
    for rev, stages in taken.items():
        paths = [p for s in stages for p in stage_out_paths(merged["stages"][s])
                 if _git(repo, "cat-file", "-e", f"{rev}:{p}", check=False).returncode == 0]
        if paths:
            _git(repo, "checkout", rev, "--", *paths)
    atomic_write_text(lock_path, yaml.safe_dump(merged, sort_keys=False))
    return taken
