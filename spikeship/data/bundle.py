"""The dataset types every loader returns: :class:`ArrayDataset` (samples in memory) and
:class:`DatasetBundle` (splits, input shape, classes, time encoding)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from spikeship.errors import ConfigError, DatasetError


class ArrayDataset(Dataset):
    """An in-memory dataset over a float32 array ``x`` (N, ...) and int labels ``y`` (N,).

    The trainer batches it by indexing ``x`` directly (no per-item collation).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray):
        if len(x) != len(y):
            raise DatasetError(f"{len(x)} samples but {len(y)} labels")
        self.x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], int(self.y[i])


@dataclass(frozen=True)
class DatasetBundle:
    """A dataset ready for training: splits, input shape, classes and time encoding."""

    name: str
    train: Dataset
    test: Dataset
    input_shape: tuple[int, int, int]     # (C, H, W) of one time step
    num_classes: int
    encoding: str                         # "direct" | "frames"
    timesteps: int

    def __post_init__(self):
        if self.encoding not in ("direct", "frames"):
            raise ConfigError(f"encoding must be 'direct' or 'frames', got '{self.encoding}'")
