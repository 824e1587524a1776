"""Stratified, seeded subsets of a split: ``--limit-train N`` / ``--limit-test N``.

Class ``c`` with ``n_c`` of the split's ``n`` samples gets ``q_c = N * n_c / n`` of the
``N`` places, rounded by largest remainder (``floor(q_c)`` each, then one more to the
classes with the largest fractional parts, ties to the lower class); its samples are
drawn without replacement with ``numpy.random.default_rng([seed, N, 0x5B])``. The
indices are returned sorted, so the subset keeps the split's order. A limit at or
above the split's size keeps the whole split.
"""

from __future__ import annotations

import numpy as np
import torch

from spikeship.data.bundle import ArrayDataset
from spikeship.errors import ConfigError


def class_quotas(labels: np.ndarray, n: int) -> dict[int, int]:
    """How many samples of each class a stratified subset of ``n`` takes (largest remainder)."""
    classes, counts = np.unique(np.asarray(labels), return_counts=True)
    exact = n * counts / counts.sum()
    base = np.floor(exact).astype(np.int64)
    rest = n - int(base.sum())
    order = np.lexsort((classes, -(exact - base)))  # largest remainder first, then class
    base[order[:rest]] += 1
    return {int(c): int(k) for c, k in zip(classes, base)}


def stratified_subset(labels, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a stratified subset of ``n`` samples (all of them if ``n >= len``)."""
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng([int(seed), int(n), 0x5B])
    picked = []
    for c, k in class_quotas(labels, n).items():
        idx = np.flatnonzero(labels == c)
        picked.append(rng.choice(idx, size=k, replace=False))
    return np.sort(np.concatenate(picked))


def check_limit(name: str, value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def limit_split(ds, n: int | None, seed: int, split: str):
    """``ds`` cut to a stratified subset of ``n``; the result's ``source_indices`` are the
    positions in the full split (kept with every prediction file)."""
    if n is None or n >= len(ds):
        return ds
    labels = getattr(ds, "y", None)
    if labels is None:
        raise ConfigError(f"--limit-{split}: this dataset reads its samples lazily and has "
                          f"no labels in memory to stratify by")
    labels = labels.numpy() if torch.is_tensor(labels) else np.asarray(labels)
    return _take(ds, labels, stratified_subset(labels, n, seed), f"--limit-{split}")


def check_carve(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(f"validation_carve must be a share in (0, 1), got {value!r}")
    return float(value)


def carve_split(ds, share: float, seed: int):
    """``ds`` as ``(rest, carve)``: a stratified, seeded ``share`` of it held out
    (``carve``) and the other samples (``rest``), each in the split's order."""
    labels = getattr(ds, "y", None)
    if labels is None:
        raise ConfigError("validation_carve: this dataset reads its samples lazily and has "
                          "no labels in memory to stratify by")
    labels = labels.numpy() if torch.is_tensor(labels) else np.asarray(labels)
    n = round(share * len(labels))
    if not 1 <= n < len(labels):
        raise ConfigError(f"validation_carve={share}: {n} of {len(labels)} training samples "
                          f"is no carve; choose a larger or smaller share")
    idx = stratified_subset(labels, n, seed)
    rest = np.setdiff1d(np.arange(len(labels)), idx)
    parts = (_take(ds, labels, rest, "validation_carve"),
             _take(ds, labels, idx, "validation_carve"))
    base = getattr(ds, "source_indices", None)      # positions in the full split
    if base is not None:
        for part in parts:
            part.source_indices = np.asarray(base)[part.source_indices]
    return parts


def _take(ds, labels: np.ndarray, idx: np.ndarray, what: str):
    if isinstance(ds, ArrayDataset):
        sub = ArrayDataset(ds.x[idx].numpy(), labels[idx])
    elif hasattr(ds, "take"):
        sub = ds.take(idx)
    else:
        raise ConfigError(f"{what}: dataset {type(ds).__name__} cannot be subset")
    sub.source_indices = idx
    return sub
