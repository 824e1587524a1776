"""Datasets for training and simulation, all read from local files (nothing is downloaded).

``load_dataset(name)`` returns a :class:`DatasetBundle` whose ``train`` / ``test``
datasets yield ``(x float32 tensor, y int)`` items:

- ``encoding="direct"``: ``x`` is a static ``(C, H, W)`` image, fed to the SNN at
  every one of ``timesteps`` steps (direct encoding, as the DPAP paper does).
- ``encoding="frames"``: ``x`` is ``(T, C, H, W)``, one frame per time step (event
  counts per polarity, binned with ``tonic.transforms.ToFrame``).

Names (see :data:`DATASETS`):

============== ============================================== ===========================
name           source                                         input (C, H, W), classes
============== ============================================== ===========================
digits         scikit-learn's 8x8 handwritten digits          (1, 8, 8), 10
digits-events  the same digits through a simulated DVS sensor (2, 10, 10), 10
               on N-MNIST-style saccades (cached on disk)
mnist          IDX files in ``data_dir``, else the checked    (1, 28, 28), 10
               copy in the data cache (``data fetch mnist``)
mnist-events   MNIST through the simulated DVS sensor on      (2, 34, 34), 10
               N-MNIST saccades (cached on disk)
cifar10        ``cifar-10-batches-py`` pickle batches          (3, 32, 32), 10
nmnist         tonic ``NMNIST`` layout in ``data_dir``        (2, 34, 34), 10
dvs-gesture    tonic ``DVSGesture`` layout in ``data_dir``    (2, 32, 32), 11
============== ============================================== ===========================
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import numpy as np

from spikeship.data.bundle import ArrayDataset, DatasetBundle
from spikeship.data.subset import carve_split, check_carve, check_limit, limit_split
from spikeship.data.validate import validate_bundle
from spikeship.errors import ConfigError

__all__ = ["DATASETS", "ArrayDataset", "DatasetBundle", "load_dataset", "load_run_dataset",
           "splits_read", "test_inputs"]

# (dataset, split) of every split this process was handed by load_dataset, in order:
# "train", and "test" or, with a validation carve, "validation" (see splits_read)
_HANDED_OUT: list[tuple[str, str]] = []


# name -> "module:function"; each function is (data_dir, timesteps, seed) -> DatasetBundle
DATASETS: dict[str, str] = {
    "digits": "spikeship.data.digits:load",
    "digits-events": "spikeship.data.events:load",
    "mnist": "spikeship.data.mnist:load",
    "mnist-events": "spikeship.data.mnist_events:load",
    "cifar10": "spikeship.data.cifar:load",
    "nmnist": "spikeship.data.neuromorphic:load_nmnist",
    "dvs-gesture": "spikeship.data.neuromorphic:load_dvs_gesture",
}


def load_dataset(name: str, *, data_dir=None, timesteps: int = 8, seed: int = 0,
                 limit_train: int | None = None, limit_test: int | None = None,
                 validation_carve: float | None = None) -> DatasetBundle:
    """Load dataset ``name`` (see the module docstring) with ``timesteps`` steps per sample.

    ``seed`` fixes the train/test split where the dataset has none of its own
    (``digits``, ``digits-events``) and the simulated sensor noise of ``digits-events``.
    ``data_dir`` is where the files are (``mnist``, ``cifar10``, ``nmnist``,
    ``dvs-gesture``) or the cache directory (``digits-events``, ``mnist-events``).
    ``limit_train`` / ``limit_test`` keep a stratified subset drawn with ``seed``
    (:mod:`~spikeship.data.subset`); None keeps the whole split.
    ``validation_carve`` (a share in (0, 1)) holds that stratified, seeded share of the
    training split out: the bundle's ``train`` is the rest and its ``test`` the carve,
    so the test split is not handed out at all (:func:`splits_read` records it).
    """
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset '{name}'; choose one of {sorted(DATASETS)}")
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise ConfigError(f"timesteps must be an integer >= 1, got {timesteps!r}")
    limits = (check_limit("limit_train", limit_train), check_limit("limit_test", limit_test))
    carve = check_carve(validation_carve)
    module, attr = DATASETS[name].split(":")
    loader = getattr(importlib.import_module(module), attr)
    if "limits" in inspect.signature(loader).parameters:  # simulates only what is kept
        b = loader(data_dir=data_dir, timesteps=timesteps, seed=seed, limits=limits)
    else:
        b = loader(data_dir=data_dir, timesteps=timesteps, seed=seed)
        if limits != (None, None):
            b = dataclasses.replace(b, train=limit_split(b.train, limits[0], seed, "train"),
                                    test=limit_split(b.test, limits[1], seed, "test"))
    if carve is not None:
        rest, held_out = carve_split(b.train, carve, seed)
        b = dataclasses.replace(b, train=rest, test=held_out)
    validate_bundle(b)           # empty splits, shapes, NaN/Inf, labels: DatasetError
    _HANDED_OUT.extend([(name, "train"), (name, "test" if carve is None else "validation")])
    return b


def splits_read() -> list[tuple[str, str]]:
    """``(dataset, split)`` of every split :func:`load_dataset` handed out in this
    process, in order (``validation``: a carve of the training split, in place of the
    test split); a search shows with it that it never read a test split."""
    return list(_HANDED_OUT)


def load_run_dataset(config: dict) -> DatasetBundle:
    """The dataset a run was trained on, from its resolved config (``config.json`` or
    ``Checkpoint.config``): same name, files, time steps, split (``data_seed``) and
    sample limits."""
    return load_dataset(config["dataset"], data_dir=config.get("data_dir"),
                        timesteps=int(config.get("timesteps", 8)),
                        seed=int(config.get("data_seed", 0)),
                        limit_train=config.get("limit_train"), limit_test=config.get("limit_test"),
                        validation_carve=config.get("validation_carve"))


def test_inputs(bundle: DatasetBundle, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``limit`` test samples as ``(N, T, C, H, W)`` float32 and labels ``(N,)``.

    Direct-encoded images are repeated over the ``T`` steps, exactly as the trainer
    feeds them, so a simulator given these inputs sees what the trained net saw.
    """
    ds = bundle.test
    n = len(ds) if limit is None else min(int(limit), len(ds))
    if n < 0:
        raise ConfigError(f"limit must be >= 0, got {limit}")
    if isinstance(ds, ArrayDataset):
        x, y = ds.x[:n].numpy(), ds.y[:n].numpy()
    else:
        items = [ds[i] for i in range(n)]
        x = np.stack([np.asarray(it[0], dtype=np.float32) for it in items]) if items else \
            np.zeros((0, bundle.timesteps, *bundle.input_shape), np.float32)
        y = np.array([int(it[1]) for it in items], dtype=np.int64)
    if bundle.encoding == "direct":
        x = np.repeat(x[:, None], bundle.timesteps, axis=1)
    return np.ascontiguousarray(x, dtype=np.float32), y


test_inputs.__test__ = False  # not a pytest test despite the name
