"""Data-parallel workers never hang past ``--dist-timeout`` (real processes, real sockets).

A worker launched as torchrun would (``RANK=1``, ``WORLD_SIZE=2``) meets a "rank 0"
that accepts its TCP connection and never answers: the worker must stop with a named
:class:`~spikeship.errors.DistributedError` within the timeout plus a small margin, not
wait forever in the first connection to the store. And ``--nproc`` above the cores is
refused by name unless ``oversubscribe`` is asked for.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from spikeship.errors import ConfigError, DistributedError
from spikeship.train.launch import launch

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 3.0


@pytest.fixture
def silent_peer():
    """A TCP server on 127.0.0.1 that accepts every connection and never sends a byte."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    conns = []

    def accept() -> None:
        while True:
            try:
                conns.append(srv.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield srv.getsockname()[1]
    srv.close()
    for c in conns:
        c.close()


def test_a_peer_that_accepts_and_never_answers_ends_the_worker_in_time(tmp_path, silent_peer):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "RANK": "1",
           "LOCAL_RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(silent_peer)}
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "spikeship", "train", "--model", "tiny-mlp",
                        "--epochs", "1", "--threads", "1", "--no-progress", "--out",
                        tmp_path / "run", "--dist-timeout", str(TIMEOUT_S)],
                       capture_output=True, text=True, env=env, timeout=120)
    took = time.monotonic() - t0
    assert p.returncode == DistributedError.exit_code, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert lines[-1].startswith("spikeship: error: rank 1/2: rendezvous"), p.stderr
    assert "--dist-timeout" in lines[-1] and "Traceback" not in p.stderr
    # start-up (imports, data) is a few seconds here; the wait itself is bounded
    assert took < TIMEOUT_S + 30, took


def test_nproc_above_the_cores_is_refused_unless_oversubscribed(tmp_path, capsys):
    from tests.reliability.conftest import expect_error

    cores = len(os.sched_getaffinity(0))
    expect_error(capsys, ["train", "--model", "tiny-mlp", "--nproc", cores + 1, "--out",
                          tmp_path / "run"], ConfigError, "--oversubscribe",
                 watch=(tmp_path / "run",))
    with pytest.raises(ConfigError, match=f"--nproc {cores + 1} is more than the {cores}"):
        launch(["--version"], cores + 1)
    # asked for explicitly, the workers start (each fails at once: no such option)
    with pytest.raises(DistributedError, match="worker rank"):
        launch(["no-such-command"], cores + 1, timeout_s=1.0, oversubscribe=True)
