"""Checks every dataset passes before training or simulation starts (:class:`DatasetError`).

A loader may read files from anywhere; what it returns is checked here, once, so the
trainer never trains on NaN pixels and no evaluation divides by an empty split:

- both splits hold at least one sample;
- every sample has the bundle's input shape (``(C, H, W)``, or ``(T, C, H, W)`` for
  frames), in both splits (an IDX test file with other image sizes is caught here);
- every input value is finite (no NaN / Inf);
- labels are integers in ``0 .. num_classes - 1``.

In-memory splits (:class:`ArrayDataset`) are checked whole; lazily read splits (event
recordings) by their first sample, the rest by the loader that reads them.
"""

from __future__ import annotations

import numpy as np
import torch

from spikeship.data.bundle import ArrayDataset
from spikeship.errors import DatasetError


def validate_bundle(bundle) -> None:
    """Raise :class:`DatasetError` unless ``bundle`` (a DatasetBundle) is fit to train on."""
    want = tuple(bundle.input_shape)
    if bundle.encoding == "frames":
        want = (bundle.timesteps, *want)
    for split in ("train", "test"):
        ds = getattr(bundle, split)
        n = len(ds)
        if n == 0:
            raise DatasetError(f"dataset '{bundle.name}': the {split} split is empty; "
                               f"nothing to {'train on' if split == 'train' else 'test with'}")
        if isinstance(ds, ArrayDataset):
            x, y = ds.x, ds.y
            if tuple(x.shape[1:]) != want:
                raise DatasetError(f"dataset '{bundle.name}': {split} samples have shape "
                                   f"{tuple(x.shape[1:])}, expected {want} (as the training "
                                   f"split)")
            bad = ~torch.isfinite(x)
            if bool(bad.any()):
                i = int(bad.reshape(len(x), -1).any(dim=1).nonzero()[0])
                raise DatasetError(f"dataset '{bundle.name}': {split} sample {i} holds "
                                   f"{int(bad[i].sum())} NaN/Inf values; clean the data first")
            labels = y.numpy()
        else:
            x0, y0 = ds[0]
            shape = tuple(np.shape(x0))
            if shape != want:
                raise DatasetError(f"dataset '{bundle.name}': {split} sample 0 has shape "
                                   f"{shape}, expected {want}")
            if not np.all(np.isfinite(np.asarray(x0, dtype=np.float64))):
                raise DatasetError(f"dataset '{bundle.name}': {split} sample 0 holds NaN/Inf")
            labels = np.asarray([y0])
        if labels.size and (labels.min() < 0 or labels.max() >= bundle.num_classes):
            raise DatasetError(f"dataset '{bundle.name}': {split} labels span "
                               f"{labels.min()}..{labels.max()}, outside 0..{bundle.num_classes - 1}")
