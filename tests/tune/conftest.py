"""A tiny dense run (tiny-mlp on digits, one epoch) that every tune test starts from,
and the worker command line (a real ``spikeship tune`` process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import spikeship

ROOT = Path(__file__).resolve().parents[2]
# the smallest study that still exercises everything: tiny-mlp, pruned runs of 2 epochs
# (the cut epoch and one of fine-tuning), no hopeless rule
TINY = ("--epochs", "2-2", "--floor", "0", "--threads", "1")


@pytest.fixture(scope="session")
def dense_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tune") / "dense"
    spikeship.train(out, dataset="digits", model="tiny-mlp", epochs=1, threads=1)
    return out


def worker(run: Path, out: Path, trials: int, *extra: str) -> subprocess.Popen:
    """A ``spikeship tune`` worker process (joins the study: ``--resume``)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "spikeship", "tune", str(run), "--out",
                             str(out), "--trials", str(trials), "--resume", *TINY, *extra],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def load(out: Path):
    """The study in ``out``, its storage opened as a worker opens it (under the study
    folder's storage lock: opening creates the schema when it is missing, and a worker
    creating it at that moment would fail)."""
    import optuna

    from spikeship.tune.study import STUDY_NAME
    from spikeship.tune.workers import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=STUDY_NAME, storage=open_storage(None, out))
