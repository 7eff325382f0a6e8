"""Tracking faults against real stores: a SQLite store locked by another process is waited for;
a tracking server that goes away mid-run costs no metric (calls are buffered in a local file and
replayed once it answers again); one that is unreachable at start fails within seconds."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from servers import stop_process_group

from harness import tracking


@pytest.mark.slow
def test_sqlite_store_locked_by_another_process_is_retried(tmp_path):
    uri = tracking.default_uri(tmp_path)
    exp = tracking.ensure_experiment(uri, "e", tmp_path)
    parent = tracking.parent_run(uri, exp, "k", {}, tmp_path)
    with tracking.child_run(uri, exp, parent, "train-seed1", {}, {}) as rid:
        holder = subprocess.Popen(  # another process holds an exclusive lock on the database
            [sys.executable, "-c", "import sqlite3, sys, time\n"
             f"c = sqlite3.connect({str(tmp_path / 'mlflow.db')!r}, isolation_level=None)\n"
             "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(6); c.execute('COMMIT')"],
            stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.time()
        tracking.log_metrics(uri, rid, {"val_top1_error": 50.0}, step=1)  # sqlite's own wait is 5 s
        waited = time.time() - t0
        holder.wait()
    assert waited > 3  # it did wait for the lock instead of failing
    assert [m.value for m in MlflowClient(uri).get_metric_history(rid, "val_top1_error")] == [50.0]
    assert MlflowClient(uri).get_run(rid).info.status == "FINISHED"


class Cable:
    """A TCP forwarder in front of the server: cut() drops every connection and refuses new
    ones (the client sees connection refused/reset, as with a lost server); mend() restores it."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.up = True
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.listener.listen(32)
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            client, _ = self.listener.accept()
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        self.up = False
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.conns.clear()

    def mend(self):
        self.up = True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    port = _free_port()
    mlflow = str(Path(sys.executable).parent / "mlflow")  # the environment's, active or not
    proc = subprocess.Popen([mlflow, "server", "--backend-store-uri", f"sqlite:///{tmp / 'server.db'}",
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            tracking.check_reachable(f"http://127.0.0.1:{port}", timeout_s=1)
            break
        except tracking.TrackingError:
            time.sleep(0.3)
    else:
        stop_process_group(proc)
        pytest.fail("mlflow server did not start")
    yield port
    stop_process_group(proc)


@pytest.mark.slow
def test_server_lost_mid_run_loses_no_metric(server, tmp_path, monkeypatch, capsys):
    cable = Cable(server)
    uri = f"http://127.0.0.1:{cable.port}"
    exp = tracking.ensure_experiment(uri, "lost-server", tmp_path)
    parent = tracking.parent_run(uri, exp, "k", {}, tmp_path)
    t0 = time.time()
    with tracking.child_run(uri, exp, parent, "train-seed1", {"train.lr": 0.01}, {}) as rid:
        tracking.log_metrics(uri, rid, {"val_top1_error": 90.0}, step=1)
        cable.cut()  # the server goes away in the middle of training
        for epoch in (2, 3, 4):
            tracking.log_series(uri, rid, "step_loss", [(epoch * 10 + i, 1.0 / epoch) for i in range(10)])
            tracking.log_metrics(uri, rid, {"val_top1_error": 90.0 - epoch}, step=epoch)
        tracking.set_tags(uri, rid, {"note": "offline"})
    calls_s = time.time() - t0
    assert calls_s < 30  # a few seconds for the first failure, then straight to the buffer
    assert (tmp_path / tracking.BUFFER_NAME).is_file()  # kept locally: the server is still down
    assert "not answering" in capsys.readouterr().err
    assert tracking.buffer_for(uri).down_until > time.monotonic()  # calls skip the server for a while
    cable.mend()  # it comes back; the next stage (a new buffer, as in a new process) replays
    tracking.ensure_experiment(uri, "lost-server", tmp_path)
    assert not (tmp_path / tracking.BUFFER_NAME).exists()
    client = MlflowClient(uri)
    run = client.get_run(rid)
    assert run.info.status == "FINISHED" and run.data.tags["note"] == "offline"
    assert sorted(m.step for m in client.get_metric_history(rid, "val_top1_error")) == [1, 2, 3, 4]
    assert len(client.get_metric_history(rid, "step_loss")) == 30


@pytest.mark.slow
def test_unreachable_server_fails_fast(tmp_path):
    t0 = time.time()
    with pytest.raises(tracking.TrackingError, match=r"http://127.0.0.1:9 is not reachable"):
        tracking.ensure_experiment("http://127.0.0.1:9", "e", tmp_path)
    assert time.time() - t0 < 10
