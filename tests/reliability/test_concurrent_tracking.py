"""Seeds trained in parallel log at once to the default SQLite store: six real processes start
together and write one shared parent, their child runs, params, the same dataset inputs, tags,
step series and per-epoch metrics in many small calls. Nothing is lost or doubled (the SQLite lock is waited for and
retried, as is MLflow's dataset insert race: tracking._retry_locked), and there is one parent
run, not one per writer."""

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real subprocesses, servers or browsers; `make test` runs them

REPO = Path(__file__).resolve().parents[2]
WRITERS, STEPS, EPOCHS = 6, 200, 5


def test_concurrent_writers_lose_nothing(tmp_path):
    start_at = time.time() + 12  # after every writer has imported mlflow
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "PYTHONPATH": str(REPO),
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "HOME": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, str(REPO / "tests" / "tracking_writer.py"), str(tmp_path), str(seed),
                               str(start_at), str(STEPS), str(EPOCHS)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in range(1, WRITERS + 1)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    db = sqlite3.connect(tmp_path / "mlflow.db")
    parents = db.execute("SELECT run_uuid FROM runs WHERE name LIKE 'pipeline-%'").fetchall()
    assert len(parents) == 1, parents  # the parent is created once, under the file lock
    children = dict(db.execute("SELECT name, run_uuid FROM runs WHERE name LIKE 'train-seed%' AND status='FINISHED'"))
    assert sorted(children) == sorted(f"train-seed{s}" for s in range(1, WRITERS + 1))
    assert db.execute("SELECT count(*) FROM datasets").fetchone()[0] == 2  # stored once, not once per writer
    for name, run in children.items():
        seed = int(name.removeprefix("train-seed"))
        parent = db.execute("SELECT value FROM tags WHERE run_uuid=? AND key='mlflow.parentRunId'", (run,)).fetchall()
        assert parent == [(parents[0][0],)]
        steps = db.execute("SELECT step, value FROM metrics WHERE run_uuid=? AND key='step_loss'", (run,)).fetchall()
        assert sorted(s for s, _ in steps) == list(range(STEPS)), name  # every point once
        assert all(abs(v - (seed + s / 1000)) < 1e-9 for s, v in steps)
        epochs = db.execute("SELECT step FROM metrics WHERE run_uuid=? AND key='val_top1_error'", (run,)).fetchall()
        assert sorted(e for (e,) in epochs) == list(range(1, EPOCHS + 1))
        tags = {k for (k,) in db.execute("SELECT key FROM tags WHERE run_uuid=?", (run,))}
        assert {f"epoch{e}" for e in range(1, EPOCHS + 1)} | {"seed"} <= tags
        assert db.execute("SELECT count(*) FROM params WHERE run_uuid=?", (run,)).fetchone()[0] == 30
        inputs = db.execute("SELECT count(*) FROM inputs WHERE destination_id=?", (run,)).fetchone()[0]
        assert inputs == 2  # the shared train and val datasets, linked to every run
        latest = dict(db.execute("SELECT key, step FROM latest_metrics WHERE run_uuid=?", (run,)))
        assert latest["step_loss"] == STEPS - 1 and latest["val_top1_error"] == EPOCHS
