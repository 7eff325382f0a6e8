"""Security: checkpoints load with weights_only=True, the MLflow UI binds to loopback, dependency
versions are pinned. (Secrets in the environment: tests/reliability/test_kill_stages.py, over real runs;
archive extraction: the data sources' tests.)"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest
import torch

from harness import cli
from harness.errors import UserError
from harness.train import checkpoint

pytestmark = pytest.mark.slow  # real subprocesses, servers or browsers; `make test` runs them

REPO = Path(__file__).resolve().parents[2]


class Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_with_code_is_refused(tmp_path):
    path, marker = tmp_path / "checkpoint.pt", tmp_path / "ran"
    torch.save({"model": {}, "evil": Payload(marker)}, path)
    with pytest.raises(UserError, match="refused.*weights_only=True"):
        checkpoint.load(path)
    assert not marker.exists()


def test_checkpoint_round_trip_and_truncation(tmp_path):
    path = tmp_path / "c.pt"
    checkpoint.save(path, {"w": torch.ones(3), "seed": 1})
    assert torch.equal(checkpoint.load(path)["w"], torch.ones(3))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError, match="corrupt or truncated"):
        checkpoint.load(path)


def test_every_torch_load_uses_weights_only():
    for p in [*REPO.glob("harness/**/*.py"), *REPO.glob("pipelines/*.py")]:
        for call in re.findall(r"torch\.load\([^)]*\)", p.read_text()):
            assert "weights_only=True" in call, (p, call)


def test_mlflow_ui_binds_to_loopback_unless_told(tmp_path, monkeypatch):
    args = cli.build_parser().parse_args(["mlflow-ui"])
    assert args.host == "127.0.0.1"
    assert cli.build_parser().parse_args(["mlflow-ui", "--host", "0.0.0.0"]).host == "0.0.0.0"
    make = (REPO / "Makefile").read_text()
    target = make[make.index("mlflow-ui:"):].split("\n\n")[0]
    assert "0.0.0.0" not in target and "--host" not in target.replace("--host 127.0.0.1", "")
    # what it really starts: `mlflow ui ... --host 127.0.0.1`
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    seen = {}
    monkeypatch.setattr(os, "execvp", lambda prog, argv: seen.update(argv=argv))
    cli.main(["mlflow-ui", "--params", str(tmp_path / "params.yaml")])
    argv = seen["argv"]
    assert argv[argv.index("--host") + 1] == "127.0.0.1"


def test_dependencies_are_pinned():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"]) + [d for group in project.get("optional-dependencies", {}).values()
                                            for d in group]
    assert deps
    loose = [d for d in deps if not re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[0-9][0-9A-Za-z.+\-]*(\s*;.*)?", d.strip())]
    assert loose == [], f"not pinned with ==: {loose}"
