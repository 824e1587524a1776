"""N-MNIST and DVS-Gesture read through tonic's dataset classes from a local directory.

tonic's classes download their archive when the extracted files are not complete;
here they never do: :func:`_offline` subclasses them so that ``download`` raises a
:class:`DatasetError` and the presence check is ours (done before tonic is asked).
Layouts (tonic's, under ``--data-dir DIR``):

- ``nmnist``: ``DIR/NMNIST/Train/<digit>/*.bin`` and ``DIR/NMNIST/Test/<digit>/*.bin``
  (the N-MNIST binary format: 5 bytes per event, x, y, then polarity in bit 7 and a
  23-bit microsecond timestamp, big-endian). Sensor 34x34, 2 polarities.
- ``dvs-gesture``: ``DIR/DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy``
  and ``.../ibmGestureTest/...`` (tonic's preprocessed recordings: (N, 4) arrays of
  x, y, p, t [ms]). Sensor 128x128 downsampled by 4 to 32x32 (``tonic.transforms.
  Downsample``), 2 polarities, 11 classes.

Each recording is binned with ``tonic.transforms.ToFrame`` into ``T`` windows of equal
duration spanning its first to last event (``(T, 2, H, W)`` counts, float32).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from tonic.datasets import NMNIST, DVSGesture
from tonic.transforms import Downsample, ToFrame
from torch.utils.data import Dataset

from spikeship.errors import DatasetError
from spikeship.safeopen import LIMITS, check_file, check_npy
from spikeship.data.bundle import DatasetBundle
from spikeship.data.files import data_root, missing


def _offline(cls):
    """``cls`` (a tonic dataset) that never downloads; same class name (tonic's folder)."""

    def download(self):
        raise DatasetError(f"{cls.__name__} files are incomplete in {self.location_on_system} "
                           f"and nothing is downloaded")

    def _check_exists(self):
        return True  # checked by _require before tonic is called

    return type(cls.__name__, (cls,), {"download": download, "_check_exists": _check_exists})


def frames_of(events: np.ndarray, sensor_size: tuple[int, int, int], timesteps: int) -> np.ndarray:
    """``(T, P, H, W)`` event counts in T equal windows from the first to the last event."""
    w, h, p = sensor_size
    if len(events) == 0:
        return np.zeros((timesteps, p, h, w), np.float32)
    events = events[np.argsort(events["t"], kind="stable")]  # ToFrame slices sorted times
    t0, t1 = int(events["t"][0]), int(events["t"][-1])
    win = max(1, math.ceil((t1 - t0 + 1) / timesteps))
    frames = ToFrame(sensor_size=sensor_size, time_window=win, start_time=t0,
                     end_time=t0 + win * timesteps)(events)
    out = np.zeros((timesteps, p, h, w), np.float32)
    k = min(timesteps, len(frames))
    out[:k] = frames[:k]
    return out


class TonicFrames(Dataset):
    """Items ``(frames (T, 2, H, W) float32, label)`` of a tonic event dataset."""

    def __init__(self, ds, sensor_size: tuple[int, int, int], timesteps: int,
                 spatial_factor: float = 1.0):
        self.ds, self.timesteps, self.spatial_factor = ds, timesteps, spatial_factor
        w, h, p = sensor_size
        self.sensor_size = (int(w * spatial_factor), int(h * spatial_factor), p)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path = str(self.ds.data[i])
        if path.endswith(".npy"):   # regular file, declared shape vs bytes, no pickles
            check_npy(path, "recording", DatasetError)
        else:
            check_file(path, "recording", LIMITS.data_bytes, DatasetError)
        try:
            events, target = self.ds[i]
        except (OSError, ValueError, IndexError, KeyError) as e:
            raise DatasetError(f"cannot read recording {self.ds.data[i]}: {e}") from e
        if self.spatial_factor != 1.0:
            events = Downsample(spatial_factor=self.spatial_factor)(events)
        return torch.from_numpy(frames_of(events, self.sensor_size, self.timesteps)), int(target)


def _require(root: Path, dataset: str, folders: list[Path], pattern: str, layout: str) -> None:
    for f in folders:
        if not f.is_dir() or next(f.rglob(pattern), None) is None:
            raise missing(dataset, root, layout)


def load_nmnist(*, data_dir=None, timesteps: int = 8, seed: int = 0):  # noqa: ARG001
    root = data_root(data_dir)
    base = root / "NMNIST"
    _require(root, "nmnist", [base / "Train", base / "Test"], "*.bin",
             "tonic's N-MNIST layout DIR/NMNIST/Train/<digit>/*.bin and "
             "DIR/NMNIST/Test/<digit>/*.bin")
    cls = _offline(NMNIST)
    try:
        train, test = cls(str(root), train=True), cls(str(root), train=False)
    except (OSError, ValueError) as e:
        raise DatasetError(f"cannot read N-MNIST in {base}: {e}") from e
    sensor = NMNIST.sensor_size
    return DatasetBundle("nmnist", TonicFrames(train, sensor, timesteps),
                         TonicFrames(test, sensor, timesteps), (2, sensor[1], sensor[0]), 10,
                         "frames", timesteps)


def load_dvs_gesture(*, data_dir=None, timesteps: int = 8, seed: int = 0):  # noqa: ARG001
    root = data_root(data_dir)
    base = root / "DVSGesture"
    _require(root, "dvs-gesture", [base / "ibmGestureTrain", base / "ibmGestureTest"], "*.npy",
             "tonic's DVS-Gesture layout DIR/DVSGesture/ibmGestureTrain/user<NN>_<lighting>/"
             "<label>.npy and DIR/DVSGesture/ibmGestureTest/...")
    cls = _offline(DVSGesture)
    try:
        train, test = cls(str(root), train=True), cls(str(root), train=False)
    except (OSError, ValueError) as e:
        raise DatasetError(f"cannot read DVS-Gesture in {base}: {e}") from e
    factor = 0.25
    tr = TonicFrames(train, DVSGesture.sensor_size, timesteps, factor)
    te = TonicFrames(test, DVSGesture.sensor_size, timesteps, factor)
    w, h, p = tr.sensor_size
    return DatasetBundle("dvs-gesture", tr, te, (p, h, w), len(DVSGesture.classes), "frames",
                         timesteps)
