"""One rule for writing (:mod:`spikeship.runlock`): a command writes only what it owns.

Real files and real processes: a hard link planted as the lock file, hostile layer names
in ``metrics.jsonl``, a standalone ``--out`` into an unrelated folder and into a training
run, ``import`` over an existing file, ``compare --out`` next to other people's hidden
files, a writer killed with SIGKILL in the middle of writing a plot, and a checkpoint
reached through a symlink.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import nir
import numpy as np
import pytest

from spikeship.errors import CheckpointError, RunDirError
from spikeship.runlock import LOCK_NAME, run_lock
from spikeship.train.checkpoint import load_checkpoint
from tests.reliability.conftest import expect_error, run_cli, snapshot

ROOT = Path(__file__).resolve().parents[2]
MARKER_NAME = ".spikeship-dir"       # runlock.MARKER_NAME, spelled out: a stable name


def tiny_nir(path: Path) -> Path:
    """A 3 -> 2 LIF network with dt metadata, written with NIR's own writer."""
    rng = np.random.default_rng(0)
    nodes = {"input": nir.Input(np.array([3])),
             "fc": nir.Affine(rng.normal(size=(2, 3)).astype(np.float32),
                              np.zeros(2, np.float32)),
             "lif": nir.LIF(tau=np.full(2, 2e-3), r=np.ones(2), v_leak=np.zeros(2),
                            v_threshold=np.full(2, 0.5)),
             "output": nir.Output(np.array([2]))}
    g = nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
                     metadata={"dt": 1e-3})
    nir.write(path, g)
    np.save(path.with_name("x.npy"), rng.random((2, 4, 3)).astype(np.float32))
    return path


@pytest.mark.parametrize("plant", ["hard-link", "symlink", "fifo"])
def test_a_lock_file_that_is_not_a_single_link_regular_file_is_not_written(
        run, tmp_path, capsys, plant):
    outside = tmp_path / "precious.txt"
    outside.write_text("do not touch\n")
    if plant == "hard-link":
        os.link(outside, run / LOCK_NAME)
    elif plant == "symlink":
        (run / LOCK_NAME).symlink_to(outside)
    else:
        os.mkfifo(run / LOCK_NAME)
    expect_error(capsys, ["energy", run, "--assume-rate", "0.1", "--no-lava-check"],
                 RunDirError, "lock file", watch=(run,))
    assert outside.read_text() == "do not touch\n"


def test_a_plots_folder_that_is_a_symlink_is_refused(run, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / "plots").symlink_to(elsewhere)
    expect_error(capsys, ["report", run], RunDirError, "symlink", watch=(run, elsewhere))
    assert not list(elsewhere.iterdir())


def test_layer_names_from_metrics_never_leave_the_plots_folder(run, tmp_path, capsys):
    names = ["../../../escaped", "/abs/olute", "..", "a\x00b/" + "x" * 300]
    rows = [{"epoch": e, "test_accuracy": 0.5, "layers": [
        {"name": n, "kind": "fc", "units_total": 8, "units_remaining": 8,
         "synapses_total": 10, "synapses_remaining": 10, "units_kept_hex": "ff"}
        for n in names]} for e in (1, 2)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    outside_before = sorted(str(p) for p in tmp_path.rglob("*") if run not in p.parents)
    res = run_cli(capsys, ["report", run])
    assert res.rc == 0, res.err
    pngs = sorted((run / "plots").glob("units-*.png"))
    assert len(pngs) == len(names)                       # distinct names: distinct files
    assert all(p.parent == run / "plots" for p in pngs)
    assert sorted(str(p) for p in tmp_path.rglob("*") if run not in p.parents) == \
        outside_before


def test_standalone_out_into_an_unrelated_folder_or_a_run_is_refused(run, tmp_path, capsys):
    model = tiny_nir(tmp_path / "net.nir")
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "labels.npy").write_bytes(b"my labels")
    (folder / "model.nir").write_bytes(b"my model")
    # a planted "dead writer" lock file whose journal names the folder's own hidden file
    (folder / ".mine.tmp").write_bytes(b"mine")
    (folder / LOCK_NAME).write_text(json.dumps({"pid": 999999999}) + "\n" +
                                    json.dumps({"tmp": ".mine.tmp"}) + "\n")
    for cmd in (["simulate", "--target", "reference"], ["energy"]):
        argv = [*cmd, model, "--input", tmp_path / "x.npy", "--out"]
        expect_error(capsys, [*argv, folder], RunDirError, "writes only into an empty",
                     watch=(folder,))
        expect_error(capsys, [*argv, run], RunDirError, "training run", watch=(run,))
    # an empty folder becomes a standalone output, and a second run there is welcome
    out = tmp_path / "out"
    for _ in range(2):
        res = run_cli(capsys, ["simulate", model, "--target", "reference", "--input",
                               tmp_path / "x.npy", "--out", out])
        assert res.rc == 0, res.err
    assert json.loads((out / MARKER_NAME).read_text())["kind"] == "standalone output"


def test_standalone_out_waits_for_the_run_lock(tmp_path, capsys):
    """A standalone output held by another writer (a real process) is not written."""
    model = tiny_nir(tmp_path / "net.nir")
    out = tmp_path / "out"
    res = run_cli(capsys, ["simulate", model, "--target", "reference", "--input",
                           tmp_path / "x.npy", "--out", out])
    assert res.rc == 0, res.err
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from spikeship.runlock import run_lock\n"
         f"with run_lock({str(out)!r}, 'holder'):\n print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        from spikeship.errors import RunLockedError

        expect_error(capsys, ["simulate", model, "--target", "reference", "--input",
                              tmp_path / "x.npy", "--out", out], RunLockedError,
                     f"pid {holder.pid}", watch=(out,))
    finally:
        holder.kill()
        holder.wait()


def test_import_never_replaces_an_existing_file_without_force(run, capsys):
    expect_error(capsys, ["import", run / "model.net"], RunDirError, "exists", watch=(run,))
    expect_error(capsys, ["import", run / "model.net", "--out", run / "config.json"],
                 RunDirError, "exists", watch=(run,))
    (run / "model.nir").write_bytes(b"stale")
    res = run_cli(capsys, ["import", run / "model.net", "--force"])
    assert res.rc == 0, res.err
    assert (run / "model.nir").read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"   # replaced, whole


def test_compare_out_leaves_other_hidden_files_alone(run, tmp_path, capsys):
    (run / "summary.json").write_text(json.dumps({"dataset": "digits", "model": "dpap-mnist",
                                                  "pruner": "dpap", "test_accuracy": 0.5}))
    d = tmp_path / "cmp"
    d.mkdir()
    (d / ".draft.md.tmp").write_text("someone's draft")
    (d / ".netx-mine").mkdir()
    (d / ".netx-mine" / "model.net").write_bytes(b"mine")
    # a dead writer's lock file there, whose journal names those files: compare --out
    # writes its FILE and FILE.json, and removes nothing
    (d / LOCK_NAME).write_text("".join(json.dumps(x) + "\n" for x in (
        {"pid": 999999999, "command": "x"}, {"tmp": ".draft.md.tmp"}, {"tmp": ".netx-mine"})))
    res = run_cli(capsys, ["compare", run, "--out", d / "cmp.md"])
    assert res.rc == 0, res.err
    assert (d / ".draft.md.tmp").read_text() == "someone's draft"
    assert (d / ".netx-mine" / "model.net").read_bytes() == b"mine"
    assert sorted(p.name for p in d.iterdir()) == [".draft.md.tmp", ".netx-mine",
                                                   "cmp.json", "cmp.md"]


KILLED_WRITER = """
import os, signal, sys
from spikeship.io import atomic_path
from spikeship.runlock import run_lock
run = sys.argv[1]
with run_lock(run, "report"):
    with atomic_path(os.path.join(run, "plots", "accuracy.png")) as tmp:
        tmp.write_bytes(b"half a png")
        print(tmp, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_writers_plot_temp_is_removed_by_the_next_report(run, capsys):
    (run / "plots").mkdir()
    planted = run / "plots" / ".mine.png.abc.tmp"        # not spikeship's: must survive
    planted.write_bytes(b"mine")
    p = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(run)], capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert p.returncode == -signal.SIGKILL, p.stderr
    left = Path(p.stdout.strip())
    assert left.parent == run / "plots" and left.exists()       # the dead writer's temp
    res = run_cli(capsys, ["report", run])
    assert res.rc == 0, res.err
    assert "did not finish" in res.err
    assert not left.exists()
    assert planted.read_bytes() == b"mine"
    assert sorted(x.name for x in (run / "plots").glob(".*.tmp")) == [planted.name]


def test_a_checkpoint_reached_through_a_symlink_is_refused(exported_run, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_bytes((exported_run / "config.json").read_bytes())
    (other / "checkpoint").symlink_to(exported_run / "checkpoint")
    with pytest.raises(CheckpointError, match="symlink"):
        load_checkpoint(other)
    # the directory is real, the tensors a symlink to another run's (same hash): refused
    (other / "checkpoint").unlink()
    (other / "checkpoint").mkdir()
    shutil.copy(exported_run / "checkpoint" / "meta.json", other / "checkpoint")
    (other / "checkpoint" / "tensors.safetensors").symlink_to(
        exported_run / "checkpoint" / "tensors.safetensors")
    with pytest.raises(CheckpointError, match="symlink"):
        load_checkpoint(other)


def test_a_directory_of_another_kind_is_refused_before_anything_is_written(tmp_path):
    d = tmp_path / "study"
    d.mkdir()
    (d / MARKER_NAME).write_text(json.dumps({"kind": "tune study"}))
    with pytest.raises(RunDirError, match="tune study"):
        with run_lock(d, "train", create=True, kind="training run"):
            (d / "config.json").write_text("{}")
    assert sorted(p.name for p in d.iterdir()) == [MARKER_NAME]
    new = tmp_path / "a" / "b"
    with pytest.raises(ValueError):
        with run_lock(new, "train", create=True, kind="training run"):
            assert json.loads((new / MARKER_NAME).read_text())["kind"] == "training run"
            raise ValueError("the command failed")
    assert not (tmp_path / "a").exists()                 # marker and directories undone


def _claim_after(barrier, d: str, results) -> None:
    from spikeship import dirkind

    barrier.wait()
    try:
        results.put(dirkind.claim(Path(d), "spikeship tune", dirkind.TUNE, (), "tune", set()))
    except Exception as e:  # noqa: BLE001 - reported to the test
        results.put(repr(e))


def test_processes_claiming_one_empty_directory_together_mark_it_once(tmp_path):
    """Eight real processes claim the same empty directory at once: one marks it, the
    others find it marked (never half written), none is refused, no temporary is left."""
    import multiprocessing

    from spikeship.dirkind import MARKER_NAME, TUNE, dir_kind

    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(8), ctx.Queue()
    procs = [ctx.Process(target=_claim_after, args=(barrier, str(tmp_path), results))
             for _ in range(8)]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert sorted(got, key=repr) == [False] * 7 + [True], got
    assert dir_kind(tmp_path) == TUNE and os.listdir(tmp_path) == [MARKER_NAME]
