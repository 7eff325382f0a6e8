"""The bad-input corpus: each case runs a real entry point (pipelines/*.py or `dvc repro`) as a
subprocess on a tiny copy of the repository and expects a non-zero exit, one clear message that
names the problem, and no Python traceback (the image and dataset cases live with the data
sources' tests). Cases that need no prepared data run side by side to keep the suite short.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from repo_utils import copy_repo, deep_update, env_for, get_params

pytestmark = pytest.mark.slow  # real pipelines in subprocesses; `make test` runs them

PY = sys.executable


def _params(repo: Path, name: str, patch: dict | None = None, text: str | None = None) -> Path:
    path = repo / f"{name}.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(deep_update(get_params(repo), patch or {})))
    return path


def _train(repo: Path, params: Path, tmp: str, data: str = "artifacts/data") -> list[str]:
    return [PY, "pipelines/train.py", "--params", str(params), "--seed", "1", "--data", data,
            "--out", f"{tmp}/m", "--metrics", f"{tmp}/t.json", "--plots", f"{tmp}/t.csv"]


def _evaluate(params: Path, tmp: str, model: str) -> list[str]:
    return [PY, "pipelines/evaluate.py", "--params", str(params), "--seed", "1", "--data", "artifacts/data",
            "--model", model, "--out", f"{tmp}/p", "--metrics", f"{tmp}/e.json"]


def tracked_env(repo: Path) -> dict:
    """The module's copy runs untracked (copy_repo tracking=False); the tracking cases turn it on."""
    return {k: v for k, v in env_for(repo).items() if k != "HARNESS_TRACKING"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory, shared_dvc_cache):
    repo = copy_repo(tmp_path_factory.mktemp("bad"), cache=shared_dvc_cache, tracking=False)
    proc = subprocess.run(["dvc", "repro", "prepare"], cwd=repo, env=env_for(repo), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return repo


# name -> (params patch or raw YAML text, words the message must contain); the train entry point
CONFIG_CASES = {
    "unknown_key": ({"train": {"lrr": 0.01}}, ["train.lrr", "unknown key", "did you mean train.lr"]),
    "mistyped_section": ({"trian": {"lr": 0.01}}, ["trian", "unknown key", "did you mean train"]),
    "wrong_type": ({"train": {"epochs": "ten"}}, ["train.epochs", "expected an integer"]),
    "negative_lr": ({"train": {"lr": -0.01}}, ["train.lr", "must be > 0"]),
    "empty_seeds": ({"train": {"seeds": []}}, ["train.seeds", "at least one seed"]),
    "duplicate_seeds": ({"train": {"seeds": [1, 1]}}, ["train.seeds", "duplicate seeds"]),
    "bad_yaml": ("train: [1, 2\nmodel: {", ["not valid YAML"]),
    "lr_step_before_first_epoch": ({"train": {"lr_steps": [0]}}, ["train.lr_steps", "epoch number >= 1"]),
    "unreachable_tracking_server": ({"tracking": {"uri": "http://127.0.0.1:9"}},
                                    ["http://127.0.0.1:9", "not reachable", "tracking.uri"]),
}


@pytest.fixture(scope="module")
def config_results(repo, tmp_path_factory):
    """Run every config case at once (each is a fresh interpreter that stops before any work)."""
    tmp = tmp_path_factory.mktemp("cfg")
    procs = {}
    for name, (patch, _) in CONFIG_CASES.items():
        params = _params(repo, name, text=patch) if isinstance(patch, str) else _params(repo, name, patch)
        procs[name] = (time.time(), subprocess.Popen(_train(repo, params, str(tmp / name)), cwd=repo,
                                                     env=tracked_env(repo) if "tracking" in name else env_for(repo),
                                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    out = {}
    for name, (t0, p) in procs.items():
        stdout, stderr = p.communicate(timeout=120)
        out[name] = (p.returncode, stdout, stderr, time.time() - t0, tmp / name)
    return out


def assert_user_error(rc: int, stderr: str, words: list[str]) -> None:
    assert rc == 2, (rc, stderr[-2000:])
    assert "Traceback" not in stderr, stderr[-3000:]
    line = [ln for ln in stderr.splitlines() if ln.startswith("error: ")]
    assert line, stderr[-2000:]
    for w in words:
        assert w in line[-1], (w, line[-1])


@pytest.mark.parametrize("name", list(CONFIG_CASES))
def test_bad_params_stop_before_any_work(config_results, name):
    rc, _, stderr, seconds, out = config_results[name]
    assert_user_error(rc, stderr, CONFIG_CASES[name][1])
    assert not out.exists()  # nothing written: the stage stopped before any work


def test_unreachable_server_from_the_environment_fails_fast(repo, tmp_path):
    env = {**tracked_env(repo), "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    t0 = time.time()
    p = subprocess.run(_train(repo, repo / "params.yaml", str(tmp_path)), cwd=repo, env=env,
                       capture_output=True, text=True)
    assert_user_error(p.returncode, p.stderr, ["http://127.0.0.1:9", "not reachable", "MLFLOW_TRACKING_URI"])
    assert time.time() - t0 < 30  # MLflow's own retries would take minutes
    assert not (tmp_path / "m").exists()


def test_bad_params_through_dvc(repo):
    params = (repo / "params.yaml").read_text()
    try:
        (repo / "params.yaml").write_text(params.replace("train:\n", "train:\n  epochz: 3\n", 1))
        p = subprocess.run(["dvc", "repro", "prepare", "--force"], cwd=repo, env=env_for(repo),
                           capture_output=True, text=True)
    finally:
        (repo / "params.yaml").write_text(params)
    assert p.returncode != 0
    assert "error: train.epochz: unknown key (did you mean train.epochs?)" in p.stdout + p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    # the validate stage stopped the run before DVC touched prepare's output (tests/e2e/test_params_validate.py);
    # the next repro finds the finished dataset in place and prepares nothing
    again = subprocess.run(["dvc", "repro", "prepare"], cwd=repo, env=env_for(repo), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Running stage 'prepare'" not in again.stdout, again.stdout[-2000:]
    assert (repo / "artifacts/data/manifest.json").is_file()


def test_missing_params_file(repo, tmp_path):
    p = subprocess.run(_train(repo, tmp_path / "nope.yaml", str(tmp_path)), cwd=repo, env=env_for(repo),
                       capture_output=True, text=True)
    assert_user_error(p.returncode, p.stderr, ["params file not found", "nope.yaml"])


def test_nonexistent_data_root(repo, tmp_path):
    params = _params(repo, "root", {"data": {"source": "imagefolder", "root": "/nonexistent/imagenet"}})
    p = subprocess.run([PY, "pipelines/prepare.py", "--params", str(params), "--out", str(tmp_path / "d")],
                       cwd=repo, env=env_for(repo), capture_output=True, text=True)
    assert_user_error(p.returncode, p.stderr, ["/nonexistent/imagenet", "does not exist"])


def test_missing_prepared_data(repo, tmp_path):
    p = subprocess.run(_train(repo, repo / "params.yaml", str(tmp_path), data=str(tmp_path / "nodata")),
                       cwd=repo, env=env_for(repo), capture_output=True, text=True)
    assert_user_error(p.returncode, p.stderr, ["prepared data not found", "nodata", "prepare stage"])


def test_missing_model_for_evaluate(repo, tmp_path):
    (tmp_path / "model").mkdir()
    p = subprocess.run(_evaluate(repo / "params.yaml", str(tmp_path), str(tmp_path / "model")), cwd=repo,
                       env=env_for(repo), capture_output=True, text=True)
    assert_user_error(p.returncode, p.stderr, ["model weights not found", "model.pt", "train stage"])


def test_corrupt_model_checkpoint(repo, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model/model.pt").write_bytes(b"PK\x03\x04" + os.urandom(2000))  # a zip header, then junk
    p = subprocess.run(_evaluate(repo / "params.yaml", str(tmp_path), str(tmp_path / "model")), cwd=repo,
                       env=env_for(repo), capture_output=True, text=True)
    assert_user_error(p.returncode, p.stderr, ["model.pt", "corrupt or truncated"])
    assert not (tmp_path / "e.json").exists()


class Exploit:
    """A pickle that would run a command when loaded without weights_only."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_that_would_run_code_is_refused(repo, tmp_path):
    import torch
    (tmp_path / "model").mkdir()
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "num_classes": 6, "x": Exploit(marker)}, tmp_path / "model/model.pt")
    p = subprocess.run(_evaluate(repo / "params.yaml", str(tmp_path), str(tmp_path / "model")), cwd=repo,
                       env=env_for(repo), capture_output=True, text=True)
    assert_user_error(p.returncode, p.stderr, ["model.pt", "refused", "weights_only=True"])
    assert not marker.exists()  # the payload never ran


@contextlib.contextmanager
def read_only_folder(path: Path):
    """A folder nobody may write to: a read-only tmpfs as root (root ignores modes), else chmod."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)]).returncode:
            pytest.skip("cannot mount a read-only tmpfs here")
        try:
            yield
        finally:
            subprocess.run(["umount", str(path)])
    else:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)


def test_unwritable_output_folder(repo, tmp_path):
    out = tmp_path / "ro"
    with read_only_folder(out):
        t0 = time.time()
        p = subprocess.run(_train(repo, repo / "params.yaml", str(out)), cwd=repo, env=env_for(repo),
                           capture_output=True, text=True)
    assert_user_error(p.returncode, p.stderr, [str(out), "cannot write"])
    assert "read-only" in p.stderr or "permission" in p.stderr
    assert "epoch 1/" not in p.stdout  # it failed before training, not after
    assert time.time() - t0 < 60


def test_full_disk(repo, tmp_path):
    """A real ENOSPC from a 1 MiB tmpfs (root); elsewhere RLIMIT_FSIZE gives the same EFBIG path."""
    out = tmp_path / "small"
    out.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(out)]).returncode == 0
    limit = None if mounted else (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20)))
    try:
        p = subprocess.run(_train(repo, repo / "params.yaml", str(out)), cwd=repo, env=env_for(repo),
                           capture_output=True, text=True, preexec_fn=limit)
        left = sorted(x.name for x in out.rglob("*") if x.is_file())
    finally:
        if mounted:
            subprocess.run(["umount", str(out)])
    assert_user_error(p.returncode, p.stderr, ["cannot write", "checkpoint.pt"])
    assert ("disk is full" if mounted else "size limit") in p.stderr
    assert "checkpoint.pt" not in left and not [x for x in left if x.endswith(".tmp")]  # nothing partial left


def test_batch_too_large_for_memory(repo, tmp_path):
    """A real allocation failure: the child's address space is capped (RLIMIT_AS) a little above
    what the interpreter with torch needs, so the first big batch cannot be allocated."""
    params = _params(repo, "big", {"train": {"batch_size": 144, "epochs": 1, "lr_steps": []},
                                   "model": {"width": 1.0}})
    probe = subprocess.run([PY, "-c", "import harness.stages.train, harness.tracking\n"  # what the stage loads
                            "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmSize')))"],
                           cwd=repo, env=env_for(repo), capture_output=True, text=True, check=True)
    cap = int(probe.stdout.split()[-1]) * 1024 + 1024**3  # room for data and model, not for this batch
    p = subprocess.run(_train(repo, params, str(tmp_path)), cwd=repo, env=env_for(repo), capture_output=True,
                       text=True, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)))
    assert_user_error(p.returncode, p.stderr, ["train.batch_size", "144", "does not fit in memory"])


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(repo, tmp_path):
    """lr 10 without warm-up diverges within a few steps: the stage stops with a clear message, and
    the checkpoint on disk is the last one whose weights were all finite."""
    import torch
    params = _params(repo, "nan", {"train": {"lr": 10.0, "warmup_epochs": 0.0, "checkpoint_every": 1,
                                             "momentum": 0.99}})
    p = subprocess.run(_train(repo, params, str(tmp_path)), cwd=repo, env=env_for(repo), capture_output=True, text=True)
    assert_user_error(p.returncode, p.stderr, ["NaN or Inf", "train.lr"])
    ck = next((tmp_path / "m.work").glob("train/*/seed-1/checkpoint.pt"), None)  # the default work folder
    assert "last good checkpoint" in p.stderr and ck is not None, p.stderr[-1000:]
    state = torch.load(ck, map_location="cpu", weights_only=True)
    assert state["state"]["global_step"] >= 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (tmp_path / "m/model.pt").exists() and not (tmp_path / "t.json").exists()
