"""The Makefile's torch wheel variant (docs/install.md), read with `make -n` (nothing runs)."""

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


def install_commands(tmp_path, *args: str) -> list[str]:
    out = subprocess.run(["make", "-n", "install", f"VENV={tmp_path / 'venv'}", *args], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    return [ln for ln in out.splitlines() if " pip install " in ln]


def test_default_install_is_unchanged(tmp_path):
    cmds = install_commands(tmp_path)
    assert len(cmds) == 2 and cmds[1].endswith("pip install -q -e '.[test]'")
    assert not any("--index-url" in c or "torch==" in c for c in cmds)  # the pins as pip resolves them here


@pytest.mark.parametrize("variant", ["cpu", "cu126", "cu130"])
def test_a_variant_installs_the_same_pins_from_its_index(tmp_path, variant):
    pins = [d for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
            if d.startswith(("torch==", "torchvision=="))]
    cmds = install_commands(tmp_path, f"TORCH={variant}")
    first = next(c for c in cmds if "--index-url" in c)
    assert f"--index-url https://download.pytorch.org/whl/{variant}" in first
    assert first.split()[-2:] == sorted(pins, key=lambda p: p.startswith("torchvision"))
    assert cmds.index(first) < len(cmds) - 1 and cmds[-1].endswith("-e '.[test]'")  # before the project


def test_remote_extras_are_pinned():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {d.split("==")[0] for d in extras["remote"]} == {"dvc-s3", "dvc-gs"}
    assert all("==" in d for d in extras["remote"])
