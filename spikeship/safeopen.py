"""One safe-open policy for every file spikeship reads (HDF5, ONNX, JSON, data files).

A file handed to spikeship may come from anyone, so before anything is read:

- only a **regular file** is accepted where a file is expected (a symlink is followed,
  but to a regular file only: ``/dev/zero``, a FIFO or a directory is refused);
- its **size** is checked against the limit of its kind (:data:`LIMITS`, below) before a
  byte is read, and at most that many bytes are ever read (a file growing meanwhile
  does not get past it);
- **HDF5** (``model.nir``, ``model.net``): every object must be reachable by hard links
  inside the file: no external links, no soft or user-defined links, no virtual
  datasets, no external raw storage (``Dataset.external``), and only the filters HDF5
  and h5py build in (deflate, shuffle, Fletcher-32, LZF): anything else would load a
  plugin from ``HDF5_PLUGIN_PATH``, i.e. run code. Every dataset's declared size is
  checked against the limit of one array and against the bytes it really stores
  (unfiltered: all of them; filtered: at most :attr:`FileLimits.max_compression_ratio`
  times as many), so nothing is allocated for bytes that are not there;
- **ONNX**: never any external data (an initializer, sparse initializer or attribute
  tensor whose bytes live in another file is a :class:`GraphError`, whatever the path),
  and, for simulation and energy, only the operator set spikeship itself writes
  (:data:`ONNX_OPS`, default domain): control flow (``Loop``, ``If``, ``Scan``),
  custom domains and anything else is refused by name.

The limits (bytes) and their reasons:

=====================  ========  ==========================================================
``json_bytes``         64 MiB    config.json, summary.json, meta.json, energy.json, ...
``text_bytes``         256 MiB   metrics.jsonl (one line per epoch), comparison tables
``hdf5_bytes``         4 GiB     model.nir / model.net of the largest model in the zoo is < 100 MiB
``onnx_bytes``         2 GiB     protobuf's own hard limit for one message
``data_bytes``         8 GiB     one dataset file (CIFAR-10 batches 30 MiB, MNIST 47 MiB)
``checkpoint_bytes``   8 GiB     tensors.safetensors (VGG16 with AdamW state ~ 0.5 GiB)
``array_bytes``        2 GiB     one array declared in an HDF5 file
=====================  ========  ==========================================================
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spikeship.errors import GraphError, SpikeshipError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


@dataclass(frozen=True)
class FileLimits:
    """Size limits, in bytes, checked before a file is read (see the module docstring)."""

    json_bytes: int = 64 * MiB
    text_bytes: int = 256 * MiB
    hdf5_bytes: int = 4 * GiB
    onnx_bytes: int = 2 * GiB
    data_bytes: int = 8 * GiB
    checkpoint_bytes: int = 8 * GiB
    array_bytes: int = 2 * GiB
    max_compression_ratio: int = 1100     # deflate cannot exceed ~1032:1
    small_bytes: int = 1 * MiB            # a dataset this small may store fewer bytes (fill)


LIMITS = FileLimits()

# The operators spikeship's ONNX writer emits (spikeship.export.onnx_export), default domain.
ONNX_OPS = frozenset({"Add", "AveragePool", "Cast", "Concat", "ConstantOfShape", "Conv",
                      "Flatten", "Gather", "Gemm", "Greater", "Identity", "Mul", "ScatterND",
                      "Sub", "Unsqueeze", "Where"})

# HDF5 filter ids built into libhdf5 / registered by h5py itself (never a plugin).
_H5_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 32000: "lzf"}


def _human(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def check_file(path: str | os.PathLike, what: str, max_bytes: int,
               error: type[SpikeshipError] = GraphError) -> int:
    """Check that ``path`` is a regular file of at most ``max_bytes``; return its size."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"no {what} at {path}") from None
    except OSError as e:
        raise error(f"cannot open {what} {path}: {e.strerror}") from e
    if not stat.S_ISREG(st.st_mode):
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else
                "a character device" if stat.S_ISCHR(st.st_mode) else
                "a block device" if stat.S_ISBLK(st.st_mode) else
                "a FIFO" if stat.S_ISFIFO(st.st_mode) else
                "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        link = f" (a symlink to {os.path.realpath(path)})" if path.is_symlink() else ""
        raise error(f"{what} {path}{link} is {kind}, not a regular file; refusing to read it")
    if st.st_size > max_bytes:
        raise error(f"{what} {path} is {_human(st.st_size)}, more than the limit of "
                    f"{_human(max_bytes)} for a {what}; refusing to read it")
    return st.st_size


def read_bytes(path: str | os.PathLike, what: str, max_bytes: int,
               error: type[SpikeshipError] = GraphError) -> bytes:
    """The content of a regular file of at most ``max_bytes`` (see :func:`check_file`)."""
    size = check_file(path, what, max_bytes, error)
    chunks, total = [], 0
    try:
        with open(path, "rb") as f:
            # the size seen by stat, then whatever the file grew by, never past the limit
            while chunk := f.read(min(max(size + 1 - total, 1 << 16), max_bytes + 1 - total)):
                chunks.append(chunk)
                total += len(chunk)
                if total > max_bytes:
                    break
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror}") from e
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise error(f"{what} {path} grew past the limit of {_human(max_bytes)} while it was "
                    f"read; refusing it")
    return data


def read_text(path: str | os.PathLike, what: str, error: type[SpikeshipError] = GraphError,
              max_bytes: int = LIMITS.text_bytes) -> str:
    """A UTF-8 text file, size-checked; a file that is not text is a named error."""
    data = read_bytes(path, what, max_bytes, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{what} {path} is not UTF-8 text (byte {e.start}: {e.reason})") from e


def read_json(path: str | os.PathLike, what: str, error: type[SpikeshipError] = GraphError,
              max_bytes: int = LIMITS.json_bytes) -> Any:
    """A JSON document, size-checked; malformed JSON is a named error naming the place."""
    text = read_text(path, what, error, max_bytes)
    try:
        return json.loads(text)
    except ValueError as e:
        raise error(f"{what} {path} is not valid JSON: {e}") from e
    except RecursionError:
        raise error(f"{what} {path} nests too deeply to be a spikeship file") from None


def read_config(path: str | os.PathLike, table: str, error: type[SpikeshipError] = GraphError,
                max_bytes: int = LIMITS.json_bytes) -> dict:
    """A TOML (or, for ``*.json``, JSON) config file: a table of fields, the ``[table]``
    section if present. Malformed, too deeply nested (RecursionError) or not a table:
    a named ``error``."""
    import tomllib

    path = Path(path)
    text = read_text(path, "config file", error, max_bytes)
    try:
        d = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise error(f"config file {path} is malformed: {e}") from e
    except RecursionError:
        raise error(f"config file {path} nests too deeply to be a config") from None
    if not isinstance(d, dict):
        raise error(f"config file {path} must hold a table of fields, got a "
                    f"{type(d).__name__}")
    d = d.get(table, d)
    if not isinstance(d, dict):
        raise error(f"config file {path}: [{table}] must be a table of fields, got a "
                    f"{type(d).__name__}")
    return d


# ---- numpy files ----------------------------------------------------------------------------
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


def check_alloc(shape, itemsize: int, what: str, error: type[SpikeshipError] = GraphError,
                max_bytes: int = LIMITS.array_bytes) -> None:
    """Refuse to allocate an array of ``shape`` x ``itemsize`` bytes above ``max_bytes``
    (one array, :data:`LIMITS` ``array_bytes``), before it is allocated."""
    n = itemsize
    for d in shape:
        n *= int(d)
    if n > max_bytes:
        raise error(f"{what} of shape {list(map(int, shape))} would take {_human(n)}, more "
                    f"than the limit of {_human(max_bytes)} for one array; refusing it")


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


# ---- HDF5 ----------------------------------------------------------------------------------
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


# ---- ONNX ----------------------------------------------------------------------------------
def load_onnx(path: str | os.PathLike, *, ops: frozenset[str] | None = ONNX_OPS,
              error: type[SpikeshipError] = GraphError, limits: FileLimits = LIMITS):
    """The ``onnx.ModelProto`` of ``path``: size-checked, no external data anywhere, and
    (unless ``ops`` is None) only operators in ``ops`` of the default domain."""
    import onnx
    from google.protobuf.message import DecodeError

    data = read_bytes(path, "ONNX file", limits.onnx_bytes, error)
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise error(f"cannot read ONNX file {path}: {e}") from e
    check_onnx(model, path, ops=ops, error=error)
    return model


def check_onnx(model, path, *, ops: frozenset[str] | None = ONNX_OPS,
               error: type[SpikeshipError] = GraphError) -> None:
    """Refuse external data (anywhere in the model) and operators outside ``ops``."""
    from onnx import TensorProto

    def external(t, where: str) -> None:
        if t.data_location == TensorProto.EXTERNAL or len(t.external_data):
            loc = {e.key: e.value for e in t.external_data}.get("location", "?")
            raise error(f"{path}: {where} {t.name!r} keeps its data in an external file "
                        f"({loc}); spikeship reads no ONNX external data")

    def graph(g, where: str) -> None:
        for t in g.initializer:
            external(t, f"{where}initializer")
        for sp in g.sparse_initializer:
            external(sp.values, f"{where}sparse initializer")
            external(sp.indices, f"{where}sparse initializer indices")
        for node in g.node:
            if ops is not None and (node.domain not in ("", "ai.onnx") or node.op_type not in ops):
                dom = f" (domain {node.domain!r})" if node.domain else ""
                raise error(f"{path}: node {node.name!r} is a {node.op_type}{dom}, an operator "
                            f"spikeship does not write; accepted: {', '.join(sorted(ops))}")
            for a in node.attribute:
                if a.HasField("t"):
                    external(a.t, f"{where}attribute {a.name} of node")
                for t in a.tensors:
                    external(t, f"{where}attribute {a.name} of node")
                if a.HasField("sparse_tensor"):
                    external(a.sparse_tensor.values, f"{where}attribute {a.name} of node")
                if a.HasField("g"):
                    graph(a.g, f"{where}subgraph {a.name}: ")
                for sub in a.graphs:
                    graph(sub, f"{where}subgraph {a.name}: ")

    graph(model.graph, "")
    _check_onnx_sparse(model.graph, path, error)
    for fn in model.functions:
        if ops is not None:
            raise error(f"{path}: the model defines function {fn.name!r}; spikeship writes none")


def check_coordinates(values, indices, shape, where: str, path, error=GraphError,
                      max_bytes: int = LIMITS.array_bytes) -> tuple[int, ...]:
    """A coordinate-form tensor (``values`` (nnz,), ``indices`` (nnz, rank) or linear
    (nnz,), dense ``shape``): sizes within ``max_bytes`` before the dense tensor is
    allocated, every index inside the shape, no coordinate twice (a scatter would keep
    one of the duplicates, silently). Returns the shape."""
    import numpy as np

    shape, idx = np.asarray(shape), np.asarray(indices)
    if shape.ndim != 1 or shape.dtype.kind not in "iu" or np.any(shape < 0):
        raise error(f"{path}: {where} shape {shape.tolist()} is not a list of sizes")
    dims = tuple(int(d) for d in shape)
    check_alloc(dims, max(np.asarray(values).dtype.itemsize, 1), f"{path}: {where}", error,
                max_bytes)
    nnz = int(np.asarray(values).size)
    linear = idx.ndim == 1
    if idx.dtype.kind not in "iu" or idx.shape != ((nnz,) if linear else (nnz, len(dims))):
        raise error(f"{path}: {where} indices {list(idx.shape)} do not fit {nnz} values of "
                    f"a rank-{len(dims)} tensor")
    if not nnz:
        return dims
    bound = np.asarray([int(np.prod(dims, dtype=np.float64))] if linear else dims)
    if np.any(idx < 0) or np.any(idx.reshape(nnz, -1) >= bound):
        raise error(f"{path}: {where} indices point outside the shape {list(dims)}")
    flat = idx.astype(np.int64) if linear else np.ravel_multi_index(idx.astype(np.int64).T, dims)
    if np.unique(flat).size != nnz:
        raise error(f"{path}: {where} lists a coordinate more than once "
                    f"({nnz - np.unique(flat).size} duplicate(s)); each synapse is stored once")
    return dims


def _check_onnx_sparse(g, path, error) -> None:
    """Every sparse initializer and spikeship coordinate form (``<w>.values``,
    ``<w>.indices``, ``<w>.shape``) of graph ``g``: :func:`check_coordinates`."""
    for sp in g.sparse_initializer:
        check_coordinates(_onnx_array(sp.values, path, error), _onnx_array(sp.indices, path,
                          error), list(sp.dims), f"sparse initializer {sp.values.name!r}",
                          path, error)
    inits = {t.name: t for t in g.initializer}
    for name in inits:
        if not name.endswith(".values"):
            continue
        base = name[: -len(".values")]
        parts = [inits.get(f"{base}.{k}") for k in ("indices", "shape")]
        if any(p is None for p in parts):
            continue
        check_coordinates(_onnx_array(inits[name], path, error),
                          _onnx_array(parts[0], path, error),
                          _onnx_array(parts[1], path, error), f"coordinate form {base!r}",
                          path, error)


def _onnx_array(t, path, error):
    """``numpy_helper.to_array`` of a tensor, its declared size checked first."""
    import numpy as np
    from onnx import numpy_helper

    n = float(np.prod(np.asarray(t.dims, dtype=np.float64))) if t.dims else 1.0
    if n * 8 > LIMITS.array_bytes:
        raise error(f"{path}: tensor {t.name!r} declares {list(t.dims)} = {n:.0f} elements, "
                    f"more than the limit of {_human(LIMITS.array_bytes)} for one array; "
                    f"refusing to read it")
    try:
        return numpy_helper.to_array(t)
    except (ValueError, TypeError, KeyError) as e:
        raise error(f"{path}: tensor {t.name!r} is malformed: {e}") from e


__all__ = ["FileLimits", "LIMITS", "ONNX_OPS", "check_alloc", "check_coordinates",
           "check_file", "check_hdf5", "check_npy", "check_npz", "check_onnx",
           "load_npy", "load_onnx", "open_hdf5", "read_bytes", "read_config", "read_json",
           "read_text"]
