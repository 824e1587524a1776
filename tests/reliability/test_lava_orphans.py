"""Lava's workers die with spikeship (:mod:`spikeship.sim.lava.orphans`), real processes.

``spikeship simulate RUN --target lava-float`` is killed with SIGKILL once its Lava
workers run: none of them (identified by pid and start time) may outlive it. A stale
worker recorded by a dead spikeship process is ended by the next session only with
proof of identity; a live process whose pid matches but whose start time does not is
left alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def stat_fields(pid: int) -> list[bytes] | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return data[data.rfind(b")") + 2:].split()


def start_of(pid: int) -> int | None:
    f = stat_fields(pid)
    return None if f is None else int(f[19])


def descendants(pid: int) -> set[int]:
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = {int(x) for x in (task / "children").read_text().split()}
            except OSError:
                continue
            todo.extend(kids - out)
            out |= kids
    return out


def alive(ident: tuple[int, int]) -> bool:
    f = stat_fields(ident[0])
    return f is not None and int(f[19]) == ident[1] and f[0] != b"Z"


def test_sigkill_of_a_lava_simulation_leaves_no_worker(run, tmp_path):
    # TMPDIR: the killed process's worker record goes to this test's folder, not /tmp
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "spikeship", "simulate", run, "--target",
                             "lava-float", "--samples", "200"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[tuple[int, int]] = set()
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120 and proc.poll() is None:
            kids = descendants(proc.pid)
            if len(kids) >= 4:          # Lava's runtime has started its actors
                time.sleep(1.0)
                kids = descendants(proc.pid)
                workers = {(p, s) for p in kids if (s := start_of(p)) is not None}
                break
            time.sleep(0.1)
        assert workers, "Lava never started its workers"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(w) for w in workers):
            time.sleep(0.1)
        left = [w for w in workers if alive(w)]
        assert not left, f"{len(left)} of {len(workers)} Lava workers outlived spikeship"
        records = list(tmp_path.glob("spikeship-lava-*/*.json"))   # with proof of identity
        assert len(records) == 1 and f"{proc.pid}-" in records[0].name
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for w in workers:               # clean up after a failure, by identity only
            if alive(w):
                os.kill(w[0], signal.SIGKILL)


def orphan_sleep(seconds: int = 120) -> tuple[tuple[int, int], tuple[int, int]]:
    """A ``sleep`` whose parent has exited: ((parent pid, start), (sleep pid, start))."""
    code = ("import subprocess, sys, time\n"
            f"p = subprocess.Popen(['sleep', '{seconds}'])\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(0.5)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    parent_start = start_of(parent.pid)
    pid = int(parent.stdout.readline())
    ident = (pid, start_of(pid))
    parent.wait()
    return (parent.pid, parent_start), ident


def test_a_stale_worker_is_ended_only_with_proof_of_identity(tmp_path, monkeypatch):
    from spikeship.sim.lava import orphans

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead_parent, stale = orphan_sleep()
    _, innocent = orphan_sleep()
    try:
        d = orphans.registry_dir()
        assert d is not None and d.parent == tmp_path
        (d / "a.json").write_text(json.dumps({
            "parent": {"pid": dead_parent[0], "start": dead_parent[1]},
            "workers": [{"pid": stale[0], "start": stale[1]},
                        # same pid as a live process, another start time: a reused pid
                        {"pid": innocent[0], "start": innocent[1] + 1}]}))
        # a record whose parent still runs (this test) is not touched either
        (d / "b.json").write_text(json.dumps({
            "parent": {"pid": os.getpid(), "start": start_of(os.getpid())},
            "workers": [{"pid": innocent[0], "start": innocent[1]}]}))
        assert orphans.end_stale() == [stale[0]]
        deadline = time.monotonic() + 5
        while alive(stale) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(stale) and alive(innocent)
        assert sorted(p.name for p in d.iterdir()) == ["b.json"]
    finally:
        for ident in (stale, innocent):
            if alive(ident):
                os.kill(ident[0], signal.SIGKILL)


@pytest.mark.parametrize("field", ["parent", "workers"])
def test_a_damaged_record_ends_nothing(tmp_path, monkeypatch, field):
    from spikeship.sim.lava import orphans

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    _, innocent = orphan_sleep()
    try:
        d = orphans.registry_dir()
        rec = {"parent": {"pid": 999999999, "start": 1},
               "workers": [{"pid": innocent[0], "start": innocent[1]}]}
        rec[field] = "garbage"
        (d / "c.json").write_text(json.dumps(rec))
        assert orphans.end_stale() == []
        assert alive(innocent)
    finally:
        if alive(innocent):
            os.kill(innocent[0], signal.SIGKILL)
