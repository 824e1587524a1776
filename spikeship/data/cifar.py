"""CIFAR-10 from the official "python version" (``cifar-10-batches-py``), safely.

Each batch file (``data_batch_1`` .. ``data_batch_5``, ``test_batch``) is a pickled
dict: ``b"data"`` a uint8 array (N, 3072) holding the R, G, B planes of a 32x32
image row by row, ``b"labels"`` a list of N ints in 0..9. Pickle can run arbitrary
code, so the files are read with :class:`SafeUnpickler`, which resolves only the
globals numpy needs to rebuild an array (``_reconstruct``, ``ndarray``, ``dtype``,
``_frombuffer`` and, for Python-3 protocol-2 pickles of bytes, ``_codecs.encode``);
any other global (``os.system``, ``builtins.eval``, ...) is refused before it is
imported or called, and the file is reported as a :class:`DatasetError`.
Pixels are scaled to [0, 1].
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path

import numpy as np

try:
    from numpy._core import multiarray, numeric
except ImportError:  # numpy < 2
    from numpy.core import multiarray, numeric

from spikeship.errors import DatasetError
from spikeship.safeopen import LIMITS, read_bytes
from spikeship.data.bundle import ArrayDataset, DatasetBundle
from spikeship.data.files import data_root, find_dir, missing

TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
TEST = ["test_batch"]
LAYOUT = ("the CIFAR-10 python batches " + ", ".join(TRAIN + TEST)
          + " in DIR/cifar-10-batches-py or DIR")


def _allowed() -> dict[tuple[str, str], object]:
    ok = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        ok[(mod, "_reconstruct")] = multiarray._reconstruct
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        ok[(mod, "_frombuffer")] = numeric._frombuffer
    return ok


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays, lists, dicts, strings and numbers only."""

    _ALLOWED = None

    def find_class(self, module: str, name: str):
        if SafeUnpickler._ALLOWED is None:
            SafeUnpickler._ALLOWED = _allowed()
        try:
            return SafeUnpickler._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed")


def safe_load(data: bytes, where: str = "pickle"):
    """Unpickle ``data`` with :class:`SafeUnpickler` (``encoding="bytes"``, as CIFAR needs)."""
    try:
        obj = SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, UnicodeDecodeError, MemoryError) as e:
        raise DatasetError(f"{where} is not a safe CIFAR batch: {e}") from e
    return obj


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` of one batch file."""
    path = Path(path)
    raw = read_bytes(path, "CIFAR batch", LIMITS.data_bytes, DatasetError)  # regular, bounded
    d = safe_load(raw, str(path))
    if not isinstance(d, dict):
        raise DatasetError(f"{path}: a CIFAR batch is a dict, found {type(d).__name__}")
    d = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}
    data, labels = d.get("data"), d.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3072:
        raise DatasetError(f"{path}: 'data' must be a uint8 array (N, 3072), found "
                           f"{getattr(data, 'dtype', type(data).__name__)} "
                           f"{getattr(data, 'shape', '')}")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"{path}: 'labels' must be a list of ints") from e
    if y.shape != (len(data),) or (y.size and (y.min() < 0 or y.max() > 9)):
        raise DatasetError(f"{path}: need {len(data)} labels in 0..9, found shape {y.shape}")
    return data.reshape(-1, 3, 32, 32), y


def load(*, data_dir=None, timesteps: int = 8, seed: int = 0):  # noqa: ARG001
    root = data_root(data_dir)
    d = find_dir(root, ["cifar-10-batches-py", ""], TRAIN + TEST)
    if d is None:
        raise missing("cifar10", root, LAYOUT)
    parts = {}
    for split, names in (("train", TRAIN), ("test", TEST)):
        xs, ys = zip(*(read_batch(d / n) for n in names))
        parts[split] = ArrayDataset(np.concatenate(xs).astype(np.float32) / 255.0,
                                    np.concatenate(ys))
    return DatasetBundle("cifar10", parts["train"], parts["test"], (3, 32, 32), 10, "direct",
                         timesteps)
