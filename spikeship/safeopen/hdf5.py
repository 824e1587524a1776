"""HDF5 files (``model.nir``, ``model.net``): hard links only, no external storage, only
built-in filters, declared sizes within what is stored (see :mod:`spikeship.safeopen`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from spikeship.errors import GraphError, SpikeshipError
from spikeship.safeopen.files import LIMITS, FileLimits, _human, check_file

# HDF5 filter ids built into libhdf5 / registered by h5py itself (never a plugin).
_H5_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 32000: "lzf"}


def check_hdf5(f, path: str | os.PathLike, error: type[SpikeshipError] = GraphError,
               limits: FileLimits = LIMITS) -> None:
    """Walk every link of the open h5py file ``f``; raise ``error`` for anything that
    reads outside the file, needs a plugin, or declares more bytes than it stores."""
    import h5py

    seen: set = set()
    total = [0]

    def walk(group, prefix: str) -> None:
        key = _object_key(group)
        if key in seen:          # a hard-link cycle: every object is checked once
            return
        seen.add(key)
        for name in list(group.keys()):
            where = f"{prefix}/{name}"
            info = group.id.links.get_info(name.encode("utf-8"))
            if info.type == h5py.h5l.TYPE_EXTERNAL:
                target = group.get(name, getlink=True)
                raise error(f"{path}: {where} is an external link to "
                            f"{target.filename}:{target.path}; spikeship reads nothing "
                            f"outside the file it is given")
            if info.type == h5py.h5l.TYPE_SOFT:
                target = group.get(name, getlink=True)
                raise error(f"{path}: {where} is a soft link to {target.path}; spikeship "
                            f"files hold hard links only")
            if info.type != h5py.h5l.TYPE_HARD:
                raise error(f"{path}: {where} is a user-defined link (type {info.type}); "
                            f"refusing to follow it")
            obj = group[name]
            if isinstance(obj, h5py.Group):
                walk(obj, where)
            elif isinstance(obj, h5py.Dataset):
                total[0] += _check_dataset(obj, where, path, error, limits)
                if total[0] > limits.hdf5_bytes * limits.max_compression_ratio:
                    raise error(f"{path}: the datasets declare more than "
                                f"{_human(total[0])} in all; refusing to read them")

    walk(f, "")


def _object_key(obj):
    import h5py

    info = h5py.h5o.get_info(obj.id)
    return (obj.id.fileno, getattr(info, "addr", None), getattr(info, "token", None))


def _check_dataset(ds, where: str, path, error, limits: FileLimits) -> int:
    if ds.is_virtual:
        raise error(f"{path}: dataset {where} is a virtual dataset (its data lives in other "
                    f"files); refusing to read it")
    if ds.external:
        files = ", ".join(str(e[0]) for e in ds.external[:3])
        raise error(f"{path}: dataset {where} stores its data in external raw files ({files}); "
                    f"refusing to read them")
    dcpl = ds.id.get_create_plist()
    filtered = False
    for i in range(dcpl.get_nfilters()):
        code, _flags, _vals, fname = dcpl.get_filter(i)
        if code not in _H5_FILTERS:
            name = fname.decode("ascii", "replace") if isinstance(fname, bytes) else fname
            raise error(f"{path}: dataset {where} uses HDF5 filter {code} ({name or 'unknown'}), "
                        f"which needs a plugin; only {sorted(_H5_FILTERS.values())} are read")
        filtered = filtered or code in (1, 32000)
    import numpy as np

    n = int(np.prod(ds.shape, dtype=np.float64)) if ds.shape else 1
    declared = n * ds.dtype.itemsize
    if declared > limits.array_bytes:
        raise error(f"{path}: dataset {where} declares shape {list(ds.shape)} "
                    f"({_human(declared)}), more than the limit of {_human(limits.array_bytes)} "
                    f"for one array; refusing to read it")
    stored = ds.id.get_storage_size()
    if declared > limits.small_bytes:
        budget = stored * (limits.max_compression_ratio if filtered else 1)
        if declared > budget:
            raise error(f"{path}: dataset {where} declares {_human(declared)} but stores "
                        f"{_human(stored)}; refusing to allocate what the file does not hold")
    return declared


@contextlib.contextmanager
def open_hdf5(path: str | os.PathLike, what: str, error: type[SpikeshipError] = GraphError,
              limits: FileLimits = LIMITS) -> Iterator[Any]:
    """An h5py file opened read-only after :func:`check_file` and :func:`check_hdf5`."""
    import h5py

    check_file(path, what, limits.hdf5_bytes, error)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise error(f"{path} is not a {what} (HDF5): {e}") from e
    with f:
        try:
            check_hdf5(f, path, error, limits)
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as e:
            raise error(f"{path}: cannot walk the HDF5 file (damaged?): "
                        f"{type(e).__name__}: {e}") from e
        yield f
