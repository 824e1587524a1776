"""Ranges of the numbers that enter spikeship from the command line and from files.

Each check raises :class:`~spikeship.errors.ConfigError` (a flag or option) naming the
value and its allowed range, before the number reaches torch, onnxruntime or a writer:
a huge ``--threads`` would make torch spawn threads until it crashes, a huge seed
overflows torch's 64-bit generator, ``--dt 1e300`` overflows every time constant.

========================  ===================  =============================================
value                     range                why
========================  ===================  =============================================
threads                   1 .. 256             more than any CPU this runs on; torch/ORT pools
seed, data_seed           0 .. 2**63 - 1       torch.manual_seed takes a signed 64-bit int
dt (seconds)              1e-9 .. 1            ns to s: every neuron model here stays finite
timesteps                 1 .. 10,000          as TrainConfig (state and inputs scale with T)
========================  ===================  =============================================
"""

from __future__ import annotations

import math
from typing import Any

from spikeship.errors import ConfigError

MAX_THREADS = 256
MAX_SEED = 2**63 - 1
DT_MIN_S, DT_MAX_S = 1e-9, 1.0
MAX_TIMESTEPS = 10_000


def _int(value: Any, name: str, low: int, high: int, error=ConfigError) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    if not low <= value <= high:
        raise error(f"{name} must be in [{low}, {high}], got {value}")
    return value


def threads(value: Any, name: str = "--threads") -> int:
    """A thread count: 1 .. :data:`MAX_THREADS`."""
    return _int(value, name, 1, MAX_THREADS)


def seed(value: Any, name: str = "seed") -> int:
    """A random seed: 0 .. :data:`MAX_SEED`."""
    return _int(value, name, 0, MAX_SEED)


def timesteps(value: Any, name: str = "timesteps", error=ConfigError) -> int:
    """Time steps per sample: 1 .. :data:`MAX_TIMESTEPS`."""
    return _int(value, name, 1, MAX_TIMESTEPS, error)


def dt_s(value: Any, name: str = "--dt") -> float:
    """A time step in seconds: finite, ``DT_MIN_S`` .. ``DT_MAX_S``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not DT_MIN_S <= value <= DT_MAX_S:
        raise ConfigError(f"{name} must be a time step in seconds in [{DT_MIN_S:g}, "
                          f"{DT_MAX_S:g}], got {value!r}")
    return float(value)
