"""One writer per run directory (:mod:`spikeship.runlock`), with real concurrent processes.

A long ``spikeship train`` holds the lock of its ``--out``; while it runs, a second
``train``, an ``export``, a ``simulate``, an ``energy``, a ``report`` and a
``compare --out`` into the same directory each fail at once with RunLockedError
(exit 75) naming the holder's pid, and change nothing. Reading (``inspect``,
loading the checkpoint) is allowed and changes nothing, so a running trainer's
``checkpoint.new/`` survives. The holder is then killed with SIGKILL: its lock file
stays behind, but it is no lock: the next writer proceeds, says the previous writer
did not finish, and cleans what that writer left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spikeship.errors import RunLockedError
from spikeship.runlock import LOCK_NAME, run_lock
from spikeship.train.checkpoint import checkpoint_dir, load_checkpoint, recover_checkpoint
from tests.reliability.conftest import run_cli, snapshot

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ["train", "--model", "tiny-mlp", "--dataset", "digits", "--batch-size", "8",
         "--threads", "1", "--no-progress"]


def spikeship(*args, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "spikeship.cli", *map(str, args)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def wait_for_holder(run: Path, proc: subprocess.Popen, epochs: int = 1, timeout_s=120) -> dict:
    """Wait until ``proc`` holds the lock of ``run`` and has checkpointed ``epochs``."""
    t0 = time.monotonic()
    while True:
        assert proc.poll() is None, f"the writer ended early (exit {proc.returncode})"
        assert time.monotonic() - t0 < timeout_s, "the writer never took the lock"
        try:
            rec = json.loads((run / LOCK_NAME).read_text().splitlines()[0])
            epoch = json.loads((run / "checkpoint" / "meta.json").read_text())["epoch"]
            if epoch >= epochs and (run / "metrics.jsonl").exists():
                return rec
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)


@pytest.mark.slow
def test_second_writers_are_refused_while_a_trainer_runs_and_a_dead_one_is_no_lock(
        tmp_path, capsys, exported_run):
    run = tmp_path / "run"
    holder = spikeship(*TRAIN, "--epochs", "5000", "--out", run, log=tmp_path / "holder.log")
    try:
        rec = wait_for_holder(run, holder)
        assert rec["pid"] == holder.pid and "train" in rec["command"]
        # a checkpoint.new/ as the trainer leaves it mid-write: readers must not touch it
        (run / "checkpoint.new").mkdir(exist_ok=True)
        watched = tmp_path / "watched"
        for argv in (
                [*TRAIN, "--epochs", "3", "--out", run],
                [*TRAIN, "--epochs", "3", "--out", run, "--resume"],
                ["export", run], ["simulate", run, "--target", "reference"],
                ["energy", run, "--assume-rate", "0.1", "--no-lava-check"],
                ["report", run], ["compare", exported_run, "--out", run / "comparison.md"]):
            before = {p.name for p in run.iterdir()}
            res = run_cli(capsys, argv)
            assert res.rc == RunLockedError.exit_code == 75, (argv, res.rc, res.err)
            lines = res.err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("spikeship: error: "), res.err
            assert f"pid {holder.pid}" in lines[0] and "being written" in lines[0], lines[0]
            # only what the running trainer itself writes may have appeared meanwhile
            assert {p.name for p in run.iterdir()} <= before | {
                "checkpoint.new", "checkpoint.old", "metrics.jsonl"}, argv
            assert not watched.exists()
        # readers: inspect and the checkpoint loader read, and change nothing
        before = sorted(p.name for p in run.iterdir())
        assert load_checkpoint(run).epoch >= 1
        assert checkpoint_dir(run).name in ("checkpoint", "checkpoint.new", "checkpoint.old")
        assert holder.poll() is None, "reading the checkpoint killed the trainer"
        assert (run / LOCK_NAME).exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=30) == -signal.SIGKILL
    # the dead holder's lock file stays behind, with its record: it is not a lock
    assert json.loads((run / LOCK_NAME).read_text().splitlines()[0])["pid"] == holder.pid
    # hidden files the killed writer did not journal in its lock file are not its own
    (run / ".model.nir.abc123.tmp").write_bytes(b"half")
    (run / ".netx-xyz").mkdir()
    (run / ".netx-xyz" / "model.net").write_bytes(b"half")
    res = run_cli(capsys, [*TRAIN, "--epochs", "1", "--out", run, "--resume"])
    # --resume with a smaller epoch count than trained is refused, but only after the lock
    # was taken: the note about the dead writer comes first; what it did not write stays
    assert f"previous writer of {run}" in res.err and f"pid {holder.pid}" in res.err, res.err
    assert "did not finish" in res.err
    assert (run / ".model.nir.abc123.tmp").exists() and (run / ".netx-xyz").exists()
    assert not (run / LOCK_NAME).exists()
    # and a normal writer now runs to the end, leaving no lock file and no checkpoint.new/
    epoch = load_checkpoint(run).epoch
    res = run_cli(capsys, [*TRAIN, "--epochs", str(epoch + 1), "--out", run, "--resume"])
    assert res.rc == 0, res.err
    assert "did not finish" not in res.err
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(("checkpoint", "."))) \
        == [".model.nir.abc123.tmp", ".netx-xyz", ".spikeship-dir", "checkpoint"]


@pytest.mark.slow
def test_two_trainers_started_together_one_wins(tmp_path):
    """Two ``train`` processes on one new ``--out`` started at the same moment: exactly one
    runs, the other exits 75 at once naming it; the run is the winner's, whole."""
    run = tmp_path / "run"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [spikeship(*TRAIN, "--epochs", "2", "--seed", str(i), "--out", run, log=logs[i])
             for i in range(2)]
    codes = [p.wait(timeout=120) for p in procs]
    assert sorted(codes) == [0, 75], [(c, l.read_text()) for c, l in zip(codes, logs)]
    winner = codes.index(0)
    loser_log = logs[1 - winner].read_text()
    assert f"pid {procs[winner].pid}" in loser_log and "Traceback" not in loser_log
    cfg = json.loads((run / "config.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert cfg["seed"] == summary["seed"] == winner
    assert [json.loads(l)["epoch"] for l in (run / "metrics.jsonl").read_text().splitlines()] \
        == [1, 2]
    assert load_checkpoint(run).config["seed"] == winner
    assert not (run / LOCK_NAME).exists()


def test_lock_is_reentrant_in_one_process_and_refused_across_processes(tmp_path):
    run = tmp_path / "r"
    with run_lock(run, "outer", create=True) as outer:
        with run_lock(run, "inner") as inner:
            assert inner is outer
        probe = subprocess.run(
            [sys.executable, "-c", "import sys; from spikeship.runlock import run_lock\n"
             f"with run_lock({str(run)!r}, 'probe'): pass"],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert probe.returncode != 0 and "RunLockedError" in probe.stderr
        assert f"pid {os.getpid()}" in probe.stderr
        assert (run / LOCK_NAME).exists()
    assert not (run / LOCK_NAME).exists() and run.is_dir()


def test_a_failing_writer_removes_the_directory_it_created(tmp_path, capsys):
    out = tmp_path / "new" / "run"
    res = run_cli(capsys, [*TRAIN, "--dataset", "mnist", "--data-dir", tmp_path / "nothing",
                           "--epochs", "1", "--out", out])
    assert res.rc == 1 and "Traceback" not in res.err and "error:" in res.err, res.err
    assert not (tmp_path / "new").exists()


def test_lock_file_that_is_a_symlink_is_refused(tmp_path, capsys, exported_run):
    run = tmp_path / "run"
    shutil.copytree(exported_run, run)
    (tmp_path / "elsewhere").write_text("precious")
    (run / LOCK_NAME).symlink_to(tmp_path / "elsewhere")
    before = snapshot(run, tmp_path / "elsewhere")
    res = run_cli(capsys, ["export", run])
    assert res.rc == 1 and "lock file" in res.err and "Traceback" not in res.err, res.err
    assert snapshot(run, tmp_path / "elsewhere") == before


def test_checkpoint_recovery_happens_in_the_writer_not_the_reader(tmp_path, exported_run):
    run = tmp_path / "run"
    shutil.copytree(exported_run, run)
    os.replace(run / "checkpoint", run / "checkpoint.old")     # killed mid-swap
    (run / "checkpoint.new").mkdir()                           # and mid-write
    before = snapshot(run)
    names = sorted(p.name for p in run.iterdir())
    assert load_checkpoint(run).path == run / "checkpoint.old"
    assert snapshot(run) == before and sorted(p.name for p in run.iterdir()) == names
    with run_lock(run, "test"):
        done = recover_checkpoint(run)
    assert done and (run / "checkpoint").is_dir()
    assert not (run / "checkpoint.new").exists() and not (run / "checkpoint.old").exists()
    assert recover_checkpoint(run) == []


_SLOW_HOLDER = r"""
import fcntl, json, os, sys, time
path, delay = sys.argv[1], float(sys.argv[2])
fd = os.open(path, os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)
time.sleep(delay)                      # the window between taking the lock and recording
os.ftruncate(fd, 0)
os.pwrite(fd, (json.dumps({"pid": os.getpid(), "host": os.uname().nodename,
                           "command": "slow holder", "what": "test",
                           "started": time.time()}) + "\n").encode(), 0)
sys.stdin.read()                       # hold until the test closes stdin
"""


@pytest.mark.parametrize("stale", [False, True], ids=["empty-file", "dead-writer-record"])
def test_loser_of_a_close_race_names_the_holder(tmp_path, stale):
    """A writer that loses the lock in the moment between the holder's lock and its record
    (an empty lock file, or one still holding a dead writer's record) waits for the
    record and names the live holder, not "an unknown process" or the dead one."""
    run = tmp_path / "r"
    run.mkdir()
    if stale:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        (run / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename,
                                                 "command": "dead"}) + "\n")
    holder = subprocess.Popen([sys.executable, "-c", _SLOW_HOLDER, str(run / LOCK_NAME), "0.4"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError) as e:
            with run_lock(run, "test"):
                pass
        assert f"pid {holder.pid}" in str(e.value) and "slow holder" in str(e.value), e.value
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
