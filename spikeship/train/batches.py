"""The sample order of an epoch and the batches cut from it.

The order depends only on ``(seed, epoch)``, so a resumed run and every data-parallel
rank (:mod:`spikeship.train.distributed`) compute the same permutation without
exchanging it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from spikeship.data import ArrayDataset

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]   # (indices, x, y)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of ``epoch``: depends only on (seed, epoch), so resume reproduces it."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1)[0]
    g = torch.Generator().manual_seed(int(state))
    return torch.randperm(n, generator=g)


def batches(ds, order: torch.Tensor, batch_size: int, device: torch.device) -> Iterator[Batch]:
    """``(indices, x, y)`` of ``ds`` in ``order``, ``batch_size`` samples at a time, on
    ``device`` (an :class:`ArrayDataset` is sliced, any other dataset read item by item)."""
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        if isinstance(ds, ArrayDataset):
            x, y = ds.x[idx], ds.y[idx]
        else:
            items = [ds[int(j)] for j in idx]
            x = torch.stack([torch.as_tensor(it[0], dtype=torch.float32) for it in items])
            y = torch.tensor([int(it[1]) for it in items], dtype=torch.int64)
        yield idx, x.to(device), y.to(device)


def shard_batches(ds, shards: Iterable[torch.Tensor], device: torch.device) -> Iterator[Batch]:
    """Data-parallel: one batch per shard (this rank's indices of a global batch); an
    empty batch where the last, uneven global batch has no sample for this rank."""
    for idx in shards:
        if len(idx):
            yield next(batches(ds, idx, len(idx), device))
            continue
        x0 = ds.x[:0] if isinstance(ds, ArrayDataset) else \
            torch.as_tensor(ds[0][0], dtype=torch.float32)[None][:0]
        yield idx, x0.to(device), torch.zeros(0, dtype=torch.int64, device=device)
