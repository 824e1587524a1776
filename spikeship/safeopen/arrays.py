"""``.npy`` and ``.npz`` files: headers checked against the bytes they hold, no pickles
(see :mod:`spikeship.safeopen`)."""

from __future__ import annotations

import os
from typing import Any

from spikeship.errors import GraphError, SpikeshipError
from spikeship.safeopen.files import LIMITS, FileLimits, _human, check_file


def _npy_header(f) -> tuple[tuple[int, ...], Any, int]:
    """(shape, dtype, header length) of the .npy stream ``f`` (nothing else is read)."""
    from numpy.lib import format as npformat

    major, _minor = npformat.read_magic(f)
    if major == 1:
        shape, _fortran, dtype = npformat.read_array_header_1_0(f)
    elif major in (2, 3):
        shape, _fortran, dtype = npformat.read_array_header_2_0(f)
    else:
        raise ValueError(f"unknown .npy format version {major}")
    return shape, dtype, f.tell()


def _declared(shape, dtype) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n * dtype.itemsize


def check_npy(path: str | os.PathLike, what: str, error: type[SpikeshipError] = GraphError,
              max_bytes: int = LIMITS.data_bytes) -> None:
    """A ``.npy`` file: regular, size-limited, object arrays refused, and its declared
    shape no larger than the bytes that follow the header."""
    size = check_file(path, what, max_bytes, error)
    try:
        with open(path, "rb") as f:
            shape, dtype, header = _npy_header(f)
    except (ValueError, OSError, SyntaxError) as e:
        raise error(f"cannot read {what} {path}: not a .npy array ({e})") from e
    if dtype.hasobject:
        raise error(f"cannot read {what} {path}: it holds Python objects (pickles)")
    declared = _declared(shape, dtype)
    if declared > size - header:
        raise error(f"cannot read {what} {path}: it declares shape {list(shape)} "
                    f"({_human(declared)}) but holds {_human(size - header)}")


def load_npy(path: str | os.PathLike, what: str, error: type[SpikeshipError] = GraphError,
             max_bytes: int = LIMITS.data_bytes):
    """The array of a ``.npy`` file after :func:`check_npy` (no pickles)."""
    import numpy as np

    check_npy(path, what, error, max_bytes)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise error(f"cannot read {what} {path}: {e}") from e



def check_npz(path: str | os.PathLike, what: str, error: type[SpikeshipError] = GraphError,
              max_bytes: int = LIMITS.data_bytes, limits: FileLimits = LIMITS) -> None:
    """A ``.npz`` archive: regular, size-limited; every member's declared shape is checked
    against its uncompressed size, which is checked against its compressed size."""
    import zipfile

    check_file(path, what, max_bytes, error)
    total = 0
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if info.file_size > limits.array_bytes or \
                        info.file_size > max(info.compress_size, 1) * limits.max_compression_ratio:
                    raise error(f"{what} {path}: member {info.filename} unpacks to "
                                f"{_human(info.file_size)} from {_human(info.compress_size)}; "
                                f"refusing to unpack it")
                total += info.file_size
                if total > max_bytes:
                    raise error(f"{what} {path} unpacks to more than {_human(max_bytes)}")
                with z.open(info) as f:
                    shape, dtype, header = _npy_header(f)
                if dtype.hasobject:
                    raise error(f"{what} {path}: member {info.filename} holds Python objects")
                if _declared(shape, dtype) > info.file_size - header:
                    raise error(f"{what} {path}: member {info.filename} declares shape "
                                f"{list(shape)} but holds {_human(info.file_size - header)}; "
                                f"refusing to allocate it")
    except (zipfile.BadZipFile, ValueError, OSError, SyntaxError, EOFError) as e:
        raise error(f"{what} {path} is not a readable .npz archive: {e}") from e
