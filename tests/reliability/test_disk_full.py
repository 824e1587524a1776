"""A full disk and stale artifacts: real processes on a real small filesystem.

Each test mounts its own 8 MiB tmpfs (skipped, with the reason, where the test may
not mount one), copies a run into it and fills what is left but a few KiB. Every
writer then fails with one named error (RunDirError, exit 1: no crash inside h5py, no
exit 70), the previous artifacts are intact and load, and no hidden temporary file
(``.*.tmp``, ``.netx-*/``, ``checkpoint.new/``) is left behind. Also: an export that
skips a format removes that format's stale file, and an export is checked by reading
it back before it replaces the old one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spikeship.errors import RunDirError
from spikeship.train.checkpoint import load_checkpoint
from tests.reliability.conftest import run_cli, snapshot
from tests.reliability.test_bad_runs import rewrite_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_fs(tmp_path):
    d = tmp_path / "fs"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(d)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip() or r.returncode}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def fill(fs: Path, leave: int) -> None:
    """Fill ``fs`` until only ``leave`` bytes are free."""
    st = os.statvfs(fs)
    free = st.f_bavail * st.f_frsize
    with open(fs / "filler", "wb") as f:
        f.write(b"\0" * max(free - leave, 0))


def spikeship(*args, timeout=180) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "spikeship.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)


def hidden_leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()
                  if (p.name.startswith(".")
                      and p.name not in (".spikeship.lock", ".spikeship-dir"))
                  or p.name in ("checkpoint.new", "checkpoint.old"))


def assert_named_failure(r: subprocess.CompletedProcess, match: str) -> None:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == RunDirError.exit_code, (r.returncode, r.stderr[-2000:])
    assert lines and lines[-1].startswith("spikeship: error: "), r.stderr[-2000:]
    assert "Traceback" not in r.stderr and match in lines[-1], lines[-1]


@pytest.mark.slow
@pytest.mark.parametrize("leave", [4 << 10, 200 << 10, 600 << 10])
def test_export_on_a_full_disk(small_fs, exported_run, leave):
    """With 4 KiB, 200 KiB or 600 KiB left, the export fails at a different file."""
    run = small_fs / "run"
    shutil.copytree(exported_run, run)
    fill(small_fs, leave)
    before = snapshot(run)
    r = spikeship("export", run)
    assert_named_failure(r, "No space left on device")
    assert snapshot(run) == before
    assert hidden_leftovers(run) == []
    (small_fs / "filler").unlink()
    assert spikeship("export", run).returncode == 0         # and with room again, it works


@pytest.mark.slow
def test_training_on_a_full_disk_keeps_the_last_checkpoint(small_fs):
    run = small_fs / "run"
    r = spikeship("train", "--model", "tiny-mlp", "--epochs", "3", "--stop-after", "1",
                  "--no-progress", "--threads", "1", "--out", run)
    assert r.returncode == 0, r.stderr
    metrics = (run / "metrics.jsonl").read_bytes()
    fill(small_fs, 8 << 10)
    r = spikeship("train", "--model", "tiny-mlp", "--epochs", "3", "--no-progress",
                  "--threads", "1", "--out", run, "--resume")
    assert_named_failure(r, "No space left on device")
    assert load_checkpoint(run).epoch == 1
    assert (run / "metrics.jsonl").read_bytes() == metrics           # no partial line
    assert hidden_leftovers(run) == []
    (small_fs / "filler").unlink()
    r = spikeship("train", "--model", "tiny-mlp", "--epochs", "3", "--no-progress",
                  "--threads", "1", "--out", run, "--resume")
    assert r.returncode == 0, r.stderr
    assert [json.loads(l)["epoch"] for l in (run / "metrics.jsonl").read_text().splitlines()] \
        == [1, 2, 3]


@pytest.mark.parametrize("cmd", [
    ["simulate", "{run}", "--target", "reference", "--samples", "50"],
    ["energy", "{run}", "--assume-rate", "0.1", "--no-lava-check",
     "--allow-explicit-zeros", "netx", "--allow-explicit-zeros", "netx-sparse"],
    ["report", "{run}"],
], ids=["simulate", "energy", "report"])
@pytest.mark.parametrize("leave", [0, 8 << 10], ids=["no-room-for-the-lock", "8KiB"])
def test_other_writers_on_a_full_disk(small_fs, exported_run, cmd, leave):
    run = small_fs / "run"
    shutil.copytree(exported_run, run)
    (run / "summary.json").write_text(json.dumps({"test_accuracy": 0.5}))
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "test_accuracy": 0.5}) + "\n")
    fill(small_fs, leave)
    before = snapshot(run)
    r = spikeship(*[str(a).format(run=run) for a in cmd])
    assert_named_failure(r, "No space left on device")
    assert snapshot(run) == before and hidden_leftovers(run) == []


# ---- export: skipped formats, read-back ----------------------------------------------------
def test_a_skipped_netx_removes_the_stale_model_net(run, capsys):
    """A layer whose weights are all zero is one netx cannot express: the default export
    skips netx with a note, and the model.net of the earlier export must not survive it
    (lava-netx would run that older network)."""
    import torch

    def zero(t):
        t["model/7.weight"] = torch.zeros_like(t["model/7.weight"])
    rewrite_checkpoint(run, tensors=zero)
    assert (run / "model.net").exists()
    res = run_cli(capsys, ["export", run])
    assert res.rc == 0, res.err
    assert "netx skipped" in res.out and "stale model.net" in res.out
    assert not (run / "model.net").exists()
    doc = json.loads((run / "export.json").read_text())
    assert "netx" not in doc["formats"]
    res = run_cli(capsys, ["simulate", run, "--target", "lava-netx", "--samples", "2"])
    assert res.rc == 1 and "model.net does not exist" in res.err, res.err


@pytest.mark.parametrize("name,key", [("model.nir", "nir"), ("model.onnx", "onnx"),
                                      ("model.net", "netx")])
def test_export_read_back_refuses_what_the_readers_refuse(run, name, key):
    """The read-back step before the renames: a file the readers refuse (truncated here)
    is an ExportError, so it never replaces the previous export."""
    from spikeship.errors import ExportError
    from spikeship.targets.export import validate_written

    bad = run / f".{name}.check.tmp"
    bad.write_bytes((run / name).read_bytes()[:1000])
    with pytest.raises(ExportError, match="does not read back"):
        validate_written({key: bad})
    validate_written({key: run / name})          # the good one passes
