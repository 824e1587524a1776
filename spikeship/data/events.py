"""``digits-events``: scikit-learn's digits seen by a simulated DVS sensor on N-MNIST saccades.

N-MNIST (Orchard et al. 2015) was recorded by moving an ATIS sensor in front of a
screen showing each MNIST digit, in three saccades of ~100 ms tracing a triangle
(the image moves by (+3.5, +7), (+3.5, -7), (-7, 0) pixels for a 28-pixel digit).
We do the same in simulation:

1. each 8x8 digit is placed on a 10x10 sensor; the saccade vertices are scaled by
   8/28 to (0, 0) -> (1, 2) -> (2, 0) -> (0, 0) pixels (an upsampled, larger variant
   is one ``DVSParams`` away: ``upsample=2, sensor=20`` with vertices doubled gave
   99.6 % but trains several times slower);
2. intensity ``I = img`` (in [0, 1]) is rendered with bilinear sub-pixel shifts every
   ``dt`` = 1 ms for 300 ms;
3. each pixel compares its log intensity ``L = ln(I + eps)`` with the level of its
   last event ``L_ref``: while ``L - L_ref >= C`` it emits an ON event and raises
   ``L_ref`` by ``C``, while ``L_ref - L >= C`` an OFF event (the standard DVS model,
   Lichtsteiner et al. 2008). ``C`` has a fixed per-pixel mismatch (the sensor's
   fixed-pattern noise); events inside one step get evenly spread timestamps;
4. background-activity noise events (Poisson, ``noise_rate_hz`` per pixel) are added.

Events use tonic's structured dtype ``(x, y, t [us], p)`` (``tonic.io.events_struct``)
and are binned with ``tonic.transforms.ToFrame`` into ``T`` frames of equal duration
and 2 polarities (channel 0 = OFF, 1 = ON), values = event counts. Everything is
deterministic for a seed and cached on disk (atomic writes) in ``data_dir`` or
``$SPIKESHIP_CACHE`` or ``~/.cache/spikeship``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import zoom
from tonic.io import events_struct
from tonic.transforms import ToFrame

from spikeship.data.bundle import ArrayDataset, DatasetBundle
from spikeship.data.digits import digits_arrays, stratified_split
from spikeship.errors import DatasetError
from spikeship.io import write_bytes_atomic

CACHE_VERSION = 1


@dataclass(frozen=True)
class DVSParams:
    """The simulated sensor and saccades (defaults described in the module docstring)."""

    upsample: int = 1                   # digit size = 8 * upsample pixels
    sensor: int = 10                    # sensor width = height (pixels)
    saccade_px: tuple[tuple[float, float], ...] = ((0, 0), (1, 2), (2, 0), (0, 0))
    saccade_ms: float = 100.0           # duration of each saccade
    dt_ms: float = 1.0                  # rendering step
    contrast: float = 0.2               # C, log-intensity threshold
    contrast_sigma: float = 0.02        # per-pixel mismatch of C (fixed pattern)
    eps: float = 0.1                    # ln(I + eps): dark pixels stay finite
    noise_rate_hz: float = 0.1          # background activity per pixel

    @property
    def duration_us(self) -> int:
        return int(round((len(self.saccade_px) - 1) * self.saccade_ms * 1000))

    @property
    def sensor_size(self) -> tuple[int, int, int]:
        """tonic's ``(W, H, P)``."""
        return (self.sensor, self.sensor, 2)


def events_dtype() -> np.dtype:
    """tonic's structured event dtype ``(x int16, y int16, t int64 [us], p bool)``."""
    return events_struct


def _trajectory(params: DVSParams, t_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image offset (dx, dy) in pixels at times ``t_ms`` (piecewise linear saccades)."""
    v = np.asarray(params.saccade_px, dtype=np.float64)
    knots = np.arange(len(v)) * params.saccade_ms
    return np.interp(t_ms, knots, v[:, 0]), np.interp(t_ms, knots, v[:, 1])


def _shift(canvas: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``canvas`` (N, H, W) moved right by ``dx`` and down by ``dy`` pixels, bilinear, zero fill."""
    ix, iy = int(np.floor(dx)), int(np.floor(dy))
    fx, fy = dx - ix, dy - iy
    out = np.zeros_like(canvas)
    for sx, sy, w in ((ix, iy, (1 - fx) * (1 - fy)), (ix + 1, iy, fx * (1 - fy)),
                      (ix, iy + 1, (1 - fx) * fy), (ix + 1, iy + 1, fx * fy)):
        h, wd = canvas.shape[1:]
        if w == 0 or abs(sx) >= wd or abs(sy) >= h:
            continue
        ys, xs = slice(max(sy, 0), min(h, h + sy)), slice(max(sx, 0), min(wd, wd + sx))
        ys0, xs0 = slice(max(-sy, 0), min(h, h - sy)), slice(max(-sx, 0), min(wd, wd - sx))
        out[:, ys, xs] += w * canvas[:, ys0, xs0]
    return out


def simulate_events(images: np.ndarray, seed: int, params: DVSParams = DVSParams()
                    ) -> list[np.ndarray]:
    """DVS events (tonic structured arrays, sorted by t) for ``images`` (N, h, w) in [0, 1]."""
    rng = np.random.default_rng([int(seed), 0xD5])
    n = len(images)
    up = zoom(images.astype(np.float64), (1, params.upsample, params.upsample), order=1)
    up = np.clip(up, 0.0, 1.0)
    s = params.sensor
    if up.shape[1] > s or up.shape[2] > s:
        raise ValueError(f"sensor {s} is smaller than the upsampled image {up.shape[1:]}")
    canvas = np.zeros((n, s, s))
    canvas[:, : up.shape[1], : up.shape[2]] = up
    c_pix = params.contrast + params.contrast_sigma * rng.standard_normal((s, s))
    c_pix = np.maximum(c_pix, 0.25 * params.contrast)
    steps = int(round(params.duration_us / (params.dt_ms * 1000)))
    dt_us = params.dt_ms * 1000
    dx, dy = _trajectory(params, np.arange(steps + 1) * params.dt_ms)
    l_ref = np.log(_shift(canvas, dx[0], dy[0]) + params.eps)
    chunks: list[tuple[np.ndarray, ...]] = []
    for k in range(1, steps + 1):
        level = np.log(_shift(canvas, dx[k], dy[k]) + params.eps)
        diff = level - l_ref
        count = np.floor(np.abs(diff) / c_pix).astype(np.int64)
        if not count.any():
            continue
        l_ref = l_ref + np.sign(diff) * count * c_pix
        idx = np.nonzero(count)
        c = count[idx]
        rep = [np.repeat(a, c) for a in idx]
        # j-th of c events in this step: t = (k - 1 + (j + 1) / (c + 1)) * dt
        j = np.arange(c.sum()) - np.repeat(np.cumsum(c) - c, c)
        t = ((k - 1) + (j + 1) / np.repeat(c + 1, c)) * dt_us
        p = np.repeat(diff[idx] > 0, c)
        chunks.append((rep[0], rep[2], rep[1], t, p))
    # background activity
    lam = params.noise_rate_hz * s * s * params.duration_us * 1e-6
    n_noise = rng.poisson(lam, size=n)
    m = int(n_noise.sum())
    chunks.append((np.repeat(np.arange(n), n_noise), rng.integers(0, s, m), rng.integers(0, s, m),
                   rng.uniform(0, params.duration_us, m), rng.integers(0, 2, m).astype(bool)))
    sample, x, y, t, p = (np.concatenate(a) for a in zip(*chunks))
    t = np.minimum(np.floor(t).astype(np.int64), params.duration_us - 1)
    order = np.lexsort((x, y, t, sample))
    sample, x, y, t, p = sample[order], x[order], y[order], t[order], p[order]
    ev = np.empty(len(t), dtype=events_dtype())
    ev["x"], ev["y"], ev["t"], ev["p"] = x, y, t, p
    bounds = np.searchsorted(sample, np.arange(n + 1))
    return [ev[bounds[i]: bounds[i + 1]] for i in range(n)]


def to_frames(events: np.ndarray, timesteps: int, params: DVSParams = DVSParams()) -> np.ndarray:
    """Bin one sample's events into ``(T, 2, H, W)`` counts with ``tonic.transforms.ToFrame``.

    The T windows tile ``[0, duration)`` exactly (``time_window = duration / T``).
    """
    d = params.duration_us
    events = events[np.argsort(events["t"], kind="stable")]  # ToFrame slices sorted times
    frames = ToFrame(sensor_size=params.sensor_size, time_window=d / timesteps,
                     start_time=0, end_time=d)(events)
    if frames.shape[0] != timesteps:  # float rounding of the last window edge
        fixed = np.zeros((timesteps, *frames.shape[1:]), frames.dtype)
        k = min(timesteps, frames.shape[0])
        fixed[:k] = frames[:k]
        frames = fixed
    return frames


# ---- cache -------------------------------------------------------------------------------
def cache_dir(data_dir=None) -> Path:
    """``data_dir``, else ``$SPIKESHIP_CACHE``, else ``~/.cache/spikeship``."""
    if data_dir is not None:
        p = Path(data_dir)
        if p.exists() and not p.is_dir():
            raise DatasetError(f"data directory {p} is a file, not a directory (the "
                               f"digits-events cache is written there)")
        return p
    return Path(os.environ.get("SPIKESHIP_CACHE") or Path.home() / ".cache" / "spikeship")


def _key(seed: int, params: DVSParams) -> str:
    blob = json.dumps({"v": CACHE_VERSION, "seed": int(seed), **asdict(params)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _save_npz(path: Path, **arrays) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, buf.getvalue())


def _load_npz(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or None when absent; a corrupt file is reported and rebuilt."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in names}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        warnings.warn(f"cache file {path} is unreadable ({e}); rebuilding it", stacklevel=3)
        return None


def load_events(seed: int = 0, data_dir=None, params: DVSParams = DVSParams()
                ) -> tuple[list[np.ndarray], np.ndarray]:
    """Events of all 1797 digits (sklearn's order) and their labels, from the cache or simulated."""
    path = cache_dir(data_dir) / f"digits-events-v{CACHE_VERSION}-{_key(seed, params)}.npz"
    z = _load_npz(path, ("x", "y", "t", "p", "offsets", "labels"))
    if z is None:
        images, labels = digits_arrays()
        evs = simulate_events(images, seed, params)
        cat = np.concatenate(evs)
        offsets = np.concatenate([[0], np.cumsum([len(e) for e in evs])]).astype(np.int64)
        _save_npz(path, x=cat["x"], y=cat["y"], t=cat["t"], p=cat["p"], offsets=offsets,
                  labels=labels)
        return evs, labels
    ev = np.empty(len(z["t"]), dtype=events_dtype())
    for k in ("x", "y", "t", "p"):
        ev[k] = z[k]
    o = z["offsets"]
    return [ev[o[i]: o[i + 1]] for i in range(len(o) - 1)], z["labels"]


def load_frames(seed: int, timesteps: int, data_dir=None, params: DVSParams = DVSParams()
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(N, T, 2, H, W)`` int16 frames of all digits and labels (cached per T)."""
    name = f"digits-events-v{CACHE_VERSION}-{_key(seed, params)}-T{timesteps}.npz"
    path = cache_dir(data_dir) / name
    z = _load_npz(path, ("frames", "labels"))
    if z is not None:
        return z["frames"], z["labels"]
    evs, labels = load_events(seed, data_dir, params)
    frames = np.stack([to_frames(e, timesteps, params) for e in evs]).astype(np.int16)
    _save_npz(path, frames=frames, labels=labels)
    return frames, labels


def load(*, data_dir=None, timesteps: int = 8, seed: int = 0):
    params = DVSParams()
    frames, labels = load_frames(seed, timesteps, data_dir, params)
    tr, te = stratified_split(labels, seed)
    x = frames.astype(np.float32)
    shape = (2, params.sensor, params.sensor)
    return DatasetBundle("digits-events", ArrayDataset(x[tr], labels[tr]),
                         ArrayDataset(x[te], labels[te]), shape, 10, "frames", timesteps)
