"""scikit-learn's 8x8 handwritten digits (1797 real samples, embedded in scikit-learn).

Pixels (0..16) are scaled to [0, 1]; a fixed stratified split (``TEST_FRACTION`` of
each class to the test set) is drawn with ``seed``. The static image is fed to the
SNN at every time step (direct encoding).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from spikeship.data.bundle import ArrayDataset, DatasetBundle
from spikeship.errors import MissingDependencyError

TEST_FRACTION = 0.25
# the file behind sklearn.datasets.load_digits: 1797 rows of 64 pixels (0..16) and the label
CSV = Path("datasets", "data", "digits.csv.gz")


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as float32 ``(N, 8, 8)`` in [0, 1] and int64 labels, sklearn's order.

    Read from scikit-learn's own ``digits.csv.gz`` as ``load_digits`` does, located
    without importing scikit-learn: that import costs every command started on
    digits more time than the whole file takes to read.
    """
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.submodule_search_locations[0], CSV) if spec else None
    if path is None or not path.is_file():
        raise MissingDependencyError("the digits data set ships with scikit-learn, and no "
                                     f"sklearn/{CSV.as_posix()} was found: pip install "
                                     "scikit-learn")
    data = np.loadtxt(path, delimiter=",")
    return (data[:, :-1].reshape(-1, 8, 8) / 16.0).astype(np.float32), data[:, -1].astype(np.int64)


def stratified_split(labels: np.ndarray, seed: int,
                     test_fraction: float = TEST_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)``: per class, a seeded shuffle sends ``round(n*f)`` to test.

    Pure numpy (independent of scikit-learn's version); both index arrays are then
    shuffled with the same seed so batches and the first test samples mix classes.
    """
    rng = np.random.default_rng([int(seed), 1797])
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        k = int(round(len(idx) * test_fraction))
        test.append(idx[:k])
        train.append(idx[k:])
    train_idx, test_idx = np.concatenate(train), np.concatenate(test)
    rng.shuffle(train_idx)
    rng.shuffle(test_idx)
    return train_idx, test_idx


def load(*, data_dir=None, timesteps: int = 8, seed: int = 0):  # noqa: ARG001
    x, y = digits_arrays()
    tr, te = stratified_split(y, seed)
    x = x[:, None]  # (N, 1, 8, 8)
    return DatasetBundle("digits", ArrayDataset(x[tr], y[tr]), ArrayDataset(x[te], y[te]),
                         (1, 8, 8), 10, "direct", timesteps)
