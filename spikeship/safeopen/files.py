"""Regular files of bounded size: :func:`check_file`, :func:`read_bytes` and the text,
JSON and config readers built on it; the size limits (:class:`FileLimits`) and
:func:`check_alloc` for an array about to be allocated (see :mod:`spikeship.safeopen`)."""

from __future__ import annotations

import json
import os
import stat
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
