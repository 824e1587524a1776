"""A spikeship run directory as a neurobench benchmark, without custom code.

::

    from spikeship import bench
    from neurobench.metrics.workload import SynapticOperations, ActivationSparsity
    results = bench.run("runs/dpap", workload_metrics=[SynapticOperations, ActivationSparsity])

or, for neurobench's own loop, the two objects it needs::

    model, loader = bench.neurobench_model("runs/dpap"), bench.test_loader("runs/dpap")
    Benchmark(model, loader, [], [], [static_metrics, workload_metrics]).run()

The model is the run's trained snnTorch network (checkpoint, masks made permanent: the
pruned weights are zeros in the tensors and no prune parametrization is attached, which
neurobench's weight copy could not see through), wrapped in neurobench's
``SNNTorchModel`` with a forward that takes neurobench's ``(batch, T, ...)`` data and
returns ``(T, batch, classes)`` spikes. The data are the run's test split (the same
samples ``spikeship simulate`` uses), ``(N, T, ...)`` with the labels.

neurobench's ``SynapticOperations`` counts a layer after a pool once per non-zero
*pooled* value; spikeship's ``energy.json`` reports that number as
``synops_neurobench`` beside its own count (see
:mod:`spikeship.energy.neurobench_convention`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import numpy as np
import torch

from spikeship._optional import require
from spikeship.sim.simulate import test_split
from spikeship.train.checkpoint import load_checkpoint
from spikeship.train.models import forward_sequence


class _TimeFirst(torch.nn.Module):
    """neurobench's ``custom_forward``: ``(B, T, ...)`` -> ``(T, B, classes)``."""

    def __init__(self, seq: torch.nn.Module):
        super().__init__()
        self.seq = seq

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        return forward_sequence(self.seq, data.transpose(0, 1))


def trained_model(run_dir: str | os.PathLike) -> torch.nn.Module:
    """The run's snnTorch model, eval mode, masks permanent (zeros, no parametrizations)."""
    ck = load_checkpoint(run_dir)
    if ck.masks is not None:
        ck.masks.apply()
    return ck.model.eval()


def neurobench_model(run_dir: str | os.PathLike):
    """neurobench's ``SNNTorchModel`` of the run's trained network."""
    return require("neurobench.models").SNNTorchModel(_TimeFirst(trained_model(run_dir)), custom_forward=True)


def test_loader(run_dir: str | os.PathLike, samples: int | None = None, batch_size: int = 64):
    """A ``DataLoader`` of the run's test split: ``(N, T, ...)`` float32 inputs, labels."""
    x, y = test_split(Path(run_dir), samples)
    data = torch.utils.data.TensorDataset(torch.from_numpy(np.asarray(x, np.float32)),
                                          torch.from_numpy(np.asarray(y, np.int64)))
    return torch.utils.data.DataLoader(data, batch_size=batch_size)


@contextlib.contextmanager
def _thread_lock_for_tqdm():
    """neurobench's progress bar (tqdm) would create a multiprocessing lock, which fixes
    the process's start method and breaks a later Lava import; a thread lock avoids it."""
    tqdm = require("tqdm")
    had = "_lock" in vars(tqdm.tqdm)
    if not had:
        tqdm.tqdm.set_lock(threading.RLock())
    try:
        yield
    finally:
        if not had:
            del tqdm.tqdm._lock


def run(run_dir: str | os.PathLike, *, static_metrics=(), workload_metrics=(),
        samples: int | None = None, batch_size: int = 64) -> dict:
    """``neurobench.benchmarks.Benchmark(...).run()`` on the run's model and test split."""
    b = require("neurobench.benchmarks").Benchmark(neurobench_model(run_dir), test_loader(run_dir, samples, batch_size), [], [],
                  [list(static_metrics), list(workload_metrics)])
    with _thread_lock_for_tqdm():
        return b.run(quiet=True)


test_loader.__test__ = False   # not a pytest test
