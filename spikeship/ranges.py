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
input values (abs)        0 .. 2**24           Loihi's a_in is 24 bits; float32 (ONNX, Norse)
                                               holds every integer up to 2**24 exactly, and
                                               W x stays far from overflow in every target
labels                    0 .. classes - 1     an index of an output neuron (no wrap-around)
neurons of one population 1 .. 2**26           as nir.read.Limits.max_node_elements
conv stride, dilation     >= 1                 0 has no meaning (a division by the stride)
conv padding              >= 0
conv groups               divides C_in, C_out  and the kernel reads C_in / groups channels
a name (node, layer, run) 1 .. 1,024 chars     a name becomes an npz key (zip: < 65,536 bytes),
                                               a file name (255 bytes) once sanitised, a label
========================  ===================  =============================================

:func:`dt_s` and :func:`timesteps` take an ``error`` class, so a value read from a file
(NIR metadata ``dt``) is a :class:`~spikeship.errors.GraphError` with the same range.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from spikeship.errors import ConfigError, GraphError

MAX_THREADS = 256
MAX_SEED = 2**63 - 1
DT_MIN_S, DT_MAX_S = 1e-9, 1.0
MAX_TIMESTEPS = 10_000
MAX_INPUT_ABS = 2 ** 24
MAX_POPULATION = 2 ** 26
MAX_NAME_CHARS = 1024


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


def dt_s(value: Any, name: str = "--dt", error=ConfigError) -> float:
    """A time step in seconds: finite, ``DT_MIN_S`` .. ``DT_MAX_S``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not DT_MIN_S <= value <= DT_MAX_S:
        raise error(f"{name} must be a time step in seconds in [{DT_MIN_S:g}, "
                          f"{DT_MAX_S:g}], got {value!r}")
    return float(value)


def input_values(x: np.ndarray, name: str, error=ConfigError) -> None:
    """Finite input values of magnitude at most :data:`MAX_INPUT_ABS`."""
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise error(f"{name} contains NaN or Inf")
    if x.size and x.dtype.kind in "iuf":
        top = max(abs(float(x.max())), abs(float(x.min())))   # no wrap of int64 / uint64
        if top > MAX_INPUT_ABS:
            raise error(f"{name} holds a value of magnitude {top:g}; inputs must lie in "
                        f"[-{MAX_INPUT_ABS}, {MAX_INPUT_ABS}] (2**24: Loihi's 24-bit a_in, "
                        "float32's exact integers)")


def labels(y: np.ndarray, classes: int, name: str = "labels", error=ConfigError) -> np.ndarray:
    """Integer labels in ``0 .. classes - 1`` as int64, checked before any cast (a uint64
    2**64 - 1 must not become -1)."""
    if y.dtype.kind not in "iu":
        raise error(f"{name} must be integers, got dtype {y.dtype}")
    if y.size:
        low, high = int(y.min()), int(y.max())       # Python ints: exact for uint64
        if low < 0 or high >= classes:
            bad = low if low < 0 else high
            raise error(f"{name} holds label {bad}; labels are class indices in "
                        f"[0, {classes - 1}] ({classes} output neurons)")
    return y.astype(np.int64)


def population_shape(shape: Any, name: str, error=GraphError) -> tuple[int, ...]:
    """A population's declared shape: positive sizes, at most :data:`MAX_POPULATION`
    neurons, checked before any array of that shape is made."""
    s = tuple(int(v) for v in np.asarray(shape).ravel())
    if not s or any(v < 1 for v in s):
        raise error(f"{name}: missing or bad shape {list(s)}")
    if math.prod(s) > MAX_POPULATION:
        raise error(f"{name}: shape {list(s)} declares more than {MAX_POPULATION} neurons "
                    "(the limit of one population); refusing it")
    return s


def conv_geometry(stride, padding, dilation, groups: int, c_in: int, kernel: tuple,
                  name: str, error=GraphError) -> None:
    """A convolution's geometry has a meaning: stride and dilation >= 1, padding >= 0,
    ``groups`` dividing the input and output channels, and a kernel ``(C_out, C_in /
    groups, kH, kW)``."""
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise error(f"{name}: conv stride {list(stride)} and dilation {list(dilation)} must "
                    f"be >= 1, padding {list(padding)} >= 0")
    c_out = int(kernel[0])
    if not 1 <= groups <= c_in or c_in % groups or c_out % groups \
            or int(kernel[1]) * groups != c_in:
        raise error(f"{name}: conv groups={groups} does not fit {c_in} input channels, "
                    f"{c_out} output channels and a kernel {list(kernel)}")


def name(value: Any, what: str, error=GraphError) -> str:
    """A name read from a file (node, layer, pruner): a string of 1 ..
    :data:`MAX_NAME_CHARS` characters."""
    if not isinstance(value, str) or not value:
        raise error(f"{what} must be a non-empty name, got {str(value)[:80]!r}")
    if len(value) > MAX_NAME_CHARS:
        raise error(f"{what} {value[:40]!r}... is {len(value)} characters long; names are at "
                    f"most {MAX_NAME_CHARS}")
    return value
