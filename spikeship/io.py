"""Atomic file writing: a crash never leaves a truncated file under the final name.

Every artifact is written to a temporary file in the same directory, flushed and
fsynced, then renamed over the final name (``os.replace`` is atomic on POSIX).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from spikeship.errors import RunDirError
from spikeship.runlock import own_temp
from spikeship.safeopen import read_text


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's content, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def safe_component(name: str, max_len: int = 64) -> str:
    """``name`` (a layer or run name read from a file) as one harmless path component:
    letters, digits, ``.``, ``_``, ``-`` kept, anything else (``/``, ``..``, NUL, a
    leading dot) replaced by ``_``; a name that had to change gets a short hash of the
    original, so two different names never map to the same file."""
    text = str(name)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", text).lstrip(".")[:max_len] or "_"
    if safe != text:
        safe += "-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return safe


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and check it is a writable directory."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise RunDirError(f"output path {p} exists and is not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"cannot create output directory {p}: {e.strerror}") from e
    if not p.is_dir():
        raise RunDirError(f"output path {p} exists and is not a directory")
    if not os.access(p, os.W_OK | os.X_OK):
        raise RunDirError(f"output directory {p} is not writable")
    return p


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it over ``final`` on success.

    For writers that want a file name (h5py, onnx.save, safetensors). On any
    exception the temporary file is removed and ``final`` is left untouched.
    ``replace=False``: an existing ``final`` (or one that appears meanwhile: the file is
    hard-linked into place, which fails if the name exists) is a :class:`RunDirError`.
    """
    final = Path(final)
    ensure_writable_dir(final.parent)
    if not replace and os.path.lexists(final):
        raise RunDirError(f"{final} exists; refusing to replace it (pass --force to "
                          f"overwrite it)")
    if final.is_dir():
        raise RunDirError(f"cannot write {final}: a directory of that name is in the way")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    except OSError as e:
        raise RunDirError(f"cannot write in {final.parent}: {e.strerror}") from e
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        own_temp(tmp_path)       # journalled: removed by the next writer if this one dies
        try:
            yield tmp_path
        except OSError as e:     # disk full, I/O error in the writer: a named error
            raise RunDirError(f"cannot write {final}: {e.strerror or e} (the previous "
                              f"{final.name}, if any, is intact)") from e
        try:
            with open(tmp_path, "rb") as f:
                os.fsync(f.fileno())
            if replace:
                os.replace(tmp_path, final)
            else:
                os.link(tmp_path, final)
                tmp_path.unlink()
        except FileExistsError:
            raise RunDirError(f"{final} exists; refusing to replace it (pass --force to "
                              f"overwrite it)") from None
        except OSError as e:
            raise RunDirError(f"cannot write {final}: {e.strerror or e}") from e
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
    finally:
        own_temp(tmp_path, done=True)


@contextlib.contextmanager
def atomic_hdf5(final: str | os.PathLike) -> Iterator[Any]:
    """An h5py file built in memory, written to ``final`` atomically on success.

    HDF5 is assembled in RAM and written with one plain ``write``: libhdf5 hitting a
    full disk mid-file can crash the process, a plain write fails with ENOSPC.
    """
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        yield f
    write_bytes_atomic(final, buf.getvalue())


def write_bytes_atomic(final: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``final`` atomically."""
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(final: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``final`` atomically."""
    write_bytes_atomic(final, text.encode("utf-8"))


def write_json_atomic(final: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``final`` atomically."""
    write_text_atomic(final, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def append_jsonl(path: str | os.PathLike, obj: Any) -> None:
    """Append one JSON line to ``path`` and fsync it (a line is written whole or not at all
    for the reader, which ignores a trailing partial line: see :func:`read_jsonl`)."""
    line = (json.dumps(obj, default=_json_default) + "\n").encode("utf-8")
    size = os.path.getsize(path) if os.path.exists(path) else 0
    try:
        with open(path, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:         # disk full: take back the partial line, name the error
        with contextlib.suppress(OSError):
            os.truncate(path, size)
        raise RunDirError(f"cannot append to {path}: {e.strerror or e}") from e


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSON-lines file (regular file, size-limited: :mod:`spikeship.safeopen`).

    A last line without its newline that does not parse is the partial line a crash
    leaves (:func:`append_jsonl` writes line and newline together) and is ignored; any
    other line that does not parse is a :class:`RunDirError` naming the file and line.
    """
    out = []
    p = Path(path)
    if not p.exists():
        return out
    text = read_text(p, "JSON-lines file", RunDirError)
    lines = text.split("\n")
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except (json.JSONDecodeError, RecursionError) as e:
            if i == len(lines):          # no newline after it: a write cut short
                break
            raise RunDirError(f"{p}, line {i}: not a JSON object ({e}); the file is damaged "
                              f"(fix or remove that line)") from None
    return out


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
