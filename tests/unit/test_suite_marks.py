"""Every end-to-end and reliability test is marked slow, so `make test-fast` stays a unit-test run.

The e2e and reliability modules start real pipelines, servers, browsers or subprocesses; an
unmarked one silently turns the fast run into a slow one.
"""

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


def _is_slow_mark(node: ast.expr) -> bool:
    return "mark.slow" in ast.unparse(node)


def _unmarked_tests(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    marks = [node.value for node in tree.body
             if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in node.targets)]
    if marks and _is_slow_mark(marks[-1]):  # the last assignment is the one pytest reads
        return []
    return [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
        and not any(_is_slow_mark(d) for d in node.decorator_list)
    ]


@pytest.mark.parametrize("folder", ["e2e", "reliability"])
def test_every_heavy_test_is_marked_slow(folder):
    unmarked = {
        path.name: names for path in sorted((TESTS / folder).glob("test_*.py")) if (names := _unmarked_tests(path))
    }
    assert not unmarked, f"tests under tests/{folder} without pytest.mark.slow: {unmarked}"


def test_the_check_sees_an_unmarked_test(tmp_path):
    module = tmp_path / "test_x.py"
    module.write_text("import pytest\n\n@pytest.mark.slow\ndef test_a():\n    pass\n\ndef test_b():\n    pass\n")
    assert _unmarked_tests(module) == ["test_b"]
    module.write_text("import pytest\n\npytestmark = pytest.mark.slow\n\ndef test_b():\n    pass\n")
    assert _unmarked_tests(module) == []
