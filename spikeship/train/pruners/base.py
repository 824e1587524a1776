"""The pruner interface the trainer talks to, without knowing which pruner it is.

Life cycle, driven by :class:`spikeship.train.trainer.Trainer`::

    pruner = PrunerClass(options)                 # options: a dict of pruner settings
    pruner.set_run(E)                             # the run's length in epochs
    pruner.attach(model, masks, layers, ann=...)  # register hooks; masks is the MaskSet
    record = pruner.engine_activity()             # fast engine only; None: no callback
    inputs = pruner.engine_inputs()
    for epoch in 1..E:
        for batch:                                # model.train()
            forward (hooks collect activity while model.training; the fast engine
                     calls record(name, pre, post) and inputs(name, x, repeat))
            loss.backward()
            pruner.after_backward()               # dense gradients still visible here
            masks.mask_grads(); optimizer.step(); masks.apply(optimizer)
            pruner.after_batch()
        metrics = pruner.end_epoch(epoch)         # may prune: mutate masks
        masks.apply(optimizer)                    # trainer enforces at once
        checkpoint: pruner.state() saved, load_state() on resume
    pruner.detach()

Statistics a pruner accumulates are *sums* over batches and samples, exposed by
:meth:`Pruner.reducible_stats` so they can be all-reduced across data-parallel
workers (:func:`all_reduce_stats`) and every worker takes the same decision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from spikeship.train.distributed import sum_across_workers
from spikeship.train.masks import MaskSet
from spikeship.train.structure import LayerInfo


class Pruner:
    """Base class: does nothing (a dense run). Subclasses override what they need."""

    name = "none"

    def __init__(self, options: dict[str, Any] | None = None):
        self.options = dict(options or {})
        self.model: nn.Sequential | None = None
        self.masks: MaskSet | None = None
        self.layers: list[LayerInfo] = []
        self.ann = False

    @classmethod
    def default_epochs(cls, options: dict[str, Any] | None) -> int | None:
        """Run length this pruner's options ask for when ``--epochs`` is not given
        (None: the CLI's default)."""
        return None

    def lr_restart_epoch(self) -> int:
        """1-based epoch at whose start the learning-rate schedule restarts (warm-up and
        cosine afresh over the rest of the run; the part before decays to its end);
        0: one schedule over the whole run. Valid after :meth:`set_run`."""
        return 0

    def set_run(self, epochs: int) -> None:
        """The run's length in epochs (called before :meth:`attach`); raise
        ``ConfigError`` when the options cannot work in a run that long."""

    def attach(self, model: nn.Sequential, masks: MaskSet, layers: list[LayerInfo],
               ann: bool = False) -> None:
        """Bind to a model; register forward hooks here (remove them in :meth:`detach`)."""
        self.model, self.masks, self.layers, self.ann = model, masks, layers, ann

    def engine_activity(self) -> Callable[[str, torch.Tensor, torch.Tensor], None] | None:
        """For the fast engine, which bypasses forward hooks: the callback that takes each
        prunable layer's activity in a training batch, ``(name, pre, post)``, ``(T, B, N)``
        each (its input and its neuron's output, conv maps summed over H, W); asking for
        it removes the pruner's own hooks. None: the pruner learns no activity."""
        return None

    def engine_inputs(self) -> Callable[..., None] | None:
        """For the fast engine: the callback ``(name, x, repeat=1)`` that takes each
        prunable layer's input (folded ``(T*B, ...)``, or ``(B, ...)`` fed at every step
        with ``repeat = T``) when the pruner measures on-chip cost (a ``SynopsMeter`` in
        ``self.meter``, ``objective=synops``); None otherwise."""
        meter = getattr(self, "meter", None)
        return None if meter is None else meter.record_input

    def after_backward(self) -> None:
        """Called after ``loss.backward()``, before gradients are masked."""

    def after_batch(self) -> None:
        """Called after the optimizer step of a training batch."""

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        """Update masks at the end of ``epoch`` (1-based); return JSON-able metrics."""
        return {}

    def reducible_stats(self) -> dict[str, torch.Tensor]:
        """Accumulated statistics that are sums over samples (all-reducible)."""
        return {}

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(tensors for safetensors, JSON-able rest) to resume exactly."""
        return {}, {}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""

    def detach(self) -> None:
        """Remove hooks."""


class NoPruner(Pruner):
    """``--prune none``: the dense baseline."""


def all_reduce_stats(pruner: Pruner) -> None:
    """Sum the pruner's statistics across data-parallel workers (no-op when single); see
    :mod:`spikeship.train.distributed`."""
    sum_across_workers(list(pruner.reducible_stats().values()))
