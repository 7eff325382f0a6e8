"""dvc.yaml: each stage depends on every harness module it can execute, and on nothing broader.

A stale cache is a wrong result: if the train stage did not depend on the JPEG decoder, a
changed decoder would reuse old weights. The import graph is read statically from the stage
scripts (tests/import_graph.py); tests/e2e/test_pipeline_e2e.py checks the same with
`dvc status` after real edits.
"""

import import_graph as G
import pytest

STAGES = G.stages()


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_cover_its_imports_and_nothing_more(name):
    assert G.problems(name, STAGES[name]) == []


def test_train_depends_on_the_decoder_and_the_defaults_but_not_on_the_report():
    need = G.needed(G.script_of(STAGES["train"]))
    assert {"harness/data/imaging.py", "harness/config.py", "harness/io.py", "harness/runtime.py",
            "harness/model/layers.py", "harness/train/recipe.py"} <= need
    assert not any(f.startswith(("harness/report/", "harness/prepare/")) for f in need)
    assert "harness/analysis/claims.yaml" in G.needed(G.script_of(STAGES["compare"]))


def test_the_checker_finds_a_missing_and_a_broad_dep():
    stage = dict(STAGES["ensemble"])
    stage["deps"] = [d for d in stage["deps"] if d != "harness/analysis/stats.py"] + ["harness/report"]
    found = "\n".join(G.problems("ensemble", stage))
    assert "imports harness/analysis/stats.py but does not depend on it" in found
    assert "depends on harness/report/render.py (through harness/report) but never imports it" in found


def test_no_stage_script_imports_another_stage_module():
    for name, stage in STAGES.items():
        own = G.script_of(stage).stem
        others = {f for f in G.needed(G.script_of(stage)) if f.startswith("harness/stages/")}
        assert others <= {f"harness/stages/{own}.py", "harness/stages/__init__.py", "harness/stages/script.py"}, name


def test_bytecode_caches_are_not_part_of_a_folder_deps_hash():
    """A folder dep (harness/analysis, ...) is hashed by DVC over its files: without .dvcignore's
    __pycache__ entry the hash counted whichever .pyc files the last imports left, so a fresh clone
    saw changed deps. DVC's own ignore filter must drop them and keep the sources."""
    from dvc.repo import Repo
    repo = Repo(str(G.REPO))
    path = lambda rel: repo.fs.join(repo.root_dir, rel)  # noqa: E731
    assert repo.dvcignore.is_ignored(repo.fs, path("harness/analysis/__pycache__/stats.cpython-311.pyc"))
    assert repo.dvcignore.is_ignored(repo.fs, path("harness/model/layers.pyc"))
    assert not repo.dvcignore.is_ignored(repo.fs, path("harness/analysis/stats.py"))
