"""Training killed with SIGKILL mid-epoch, twice, then resumed, ends bit for bit where an
uninterrupted run with the same seed ends: weights, masks, AdamW state, pruner state
(including its own random generator) and every random-generator state.

Real processes: ``python -m spikeship.cli train`` on tiny-mlp / 401 digits (51 batches
of 8 per epoch) with the ``random`` pruner updating its masks every 10 batches (so a kill lands between mask
updates of an epoch). The victim is killed about 40 % into an epoch (timed from the
previous epoch's wall time), resumed, killed again in a later epoch, resumed to the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from spikeship.io import read_jsonl
from spikeship.train.checkpoint import checkpoint_dir, load_checkpoint

pytestmark = pytest.mark.slow

EPOCHS = 5
TRAIN = ["train", "--model", "tiny-mlp", "--dataset", "digits", "--epochs", str(EPOCHS),
         "--limit-train", "401", "--batch-size", "8", "--seed", "3", "--prune", "random", "--prune-opt", "start=0",
         "--prune-opt", f"end={EPOCHS}", "--prune-opt", "interval=10", "--prune-opt",
         "target=0.8", "--prune-opt", "seed=11", "--threads", "1", "--no-progress"]


def spikeship(*args, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    return subprocess.Popen([sys.executable, "-m", "spikeship.cli", *map(str, args)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            cwd=Path(__file__).resolve().parents[2])


def checkpoint_epoch(run: Path) -> int:
    try:
        return int(json.loads((run / "checkpoint" / "meta.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def kill_mid_epoch(proc: subprocess.Popen, run: Path, after_epoch: int, timeout_s=240) -> None:
    """Wait for the checkpoint of ``after_epoch``, then SIGKILL ~40 % into the next epoch."""
    t0 = time.monotonic()
    while checkpoint_epoch(run) < after_epoch:
        assert proc.poll() is None, f"training ended early (exit {proc.returncode})"
        assert time.monotonic() - t0 < timeout_s, "no checkpoint in time"
        time.sleep(0.01)
    walls = [m["wall_time_s"] for m in read_jsonl(run / "metrics.jsonl")] or [1.0]
    time.sleep(0.4 * walls[-1])
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def test_sigkill_twice_then_resume_is_bitwise_identical(tmp_path):
    full, victim = tmp_path / "full", tmp_path / "victim"
    ref = spikeship(*TRAIN, "--out", full, log=tmp_path / "full.log")
    try:
        proc = spikeship(*TRAIN, "--out", victim, log=tmp_path / "victim-1.log")
        kill_mid_epoch(proc, victim, after_epoch=1)
        first = load_checkpoint(victim).epoch     # a complete checkpoint survived (recovered
        assert 1 <= first < EPOCHS                # if the kill hit the directory swap)
        assert not (victim / "summary.json").exists()

        proc = spikeship("train", "--out", victim, "--resume", "--threads", "1", "--no-progress",
                         log=tmp_path / "victim-2.log")
        kill_mid_epoch(proc, victim, after_epoch=first + 1)
        second = load_checkpoint(victim).epoch
        assert first < second < EPOCHS and not (victim / "summary.json").exists()

        proc = spikeship("train", "--out", victim, "--resume", "--threads", "1", "--no-progress",
                         log=tmp_path / "victim-3.log")
        assert proc.wait(timeout=300) == 0, (tmp_path / "victim-3.log").read_text()
    finally:
        assert ref.wait(timeout=300) == 0, (tmp_path / "full.log").read_text()

    a, b = load_checkpoint(full), load_checkpoint(victim)
    assert a.epoch == b.epoch == EPOCHS
    assert set(a.tensors) == set(b.tensors)
    groups = {k.split("/")[0] for k in a.tensors}
    assert {"model", "mask", "optim", "pruner", "rng"} <= groups
    for k in a.tensors:                   # weights, masks, AdamW moments, pruner RNG, RNGs
        assert torch.equal(a.tensors[k], b.tensors[k]), k
    assert a.pruner_state()[1] == b.pruner_state()[1]
    assert a.meta["scheduler"] == b.meta["scheduler"]
    assert 0 < b.masks.pruning_rate() < 1                 # the pruner really pruned
    ma, mb = read_jsonl(full / "metrics.jsonl"), read_jsonl(victim / "metrics.jsonl")
    assert [m["epoch"] for m in mb] == list(range(1, EPOCHS + 1))
    for key in ("train_loss", "test_accuracy", "params_remaining", "pruner"):
        assert [m[key] for m in ma] == [m[key] for m in mb], key
    sa = json.loads((full / "summary.json").read_text())
    sb = json.loads((victim / "summary.json").read_text())
    for key in ("test_accuracy", "params_remaining", "pruning_rate", "epochs"):
        assert sa[key] == sb[key], key
    assert checkpoint_dir(victim) == victim / "checkpoint"
    assert sorted(p.name for p in victim.iterdir() if p.name.startswith("checkpoint")) == \
        ["checkpoint"]
