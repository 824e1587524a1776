"""MNIST (IDX) and CIFAR-10 (pickle batches) from tiny files written in the real formats."""

import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from spikeship.errors import DatasetError
from spikeship.data import load_dataset
from spikeship.data.cifar import read_batch, safe_load
from spikeship.data.mnist import read_idx


# ---- MNIST ---------------------------------------------------------------------------------
def write_idx(path, arr, code=0x08):
    head = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
    data = head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    with open(path, "wb") as f:
        f.write(data)


def make_mnist(d, n_train=5, n_test=3, gz=False):
    rng = np.random.default_rng(0)
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 7, 5), dtype=np.uint8)  # odd sizes on purpose
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        sfx = ".gz" if gz else ""
        write_idx(d / f"{prefix}-images-idx3-ubyte{sfx}", x)
        write_idx(d / f"{prefix}-labels-idx1-ubyte{sfx}", y)
        out[prefix] = (x, y)
    return out


@pytest.mark.parametrize("gz,sub", [(False, ""), (True, "MNIST/raw")])
def test_mnist_idx_round_trip(tmp_path, gz, sub):
    ref = make_mnist(tmp_path / sub if sub else tmp_path, gz=gz)
    b = load_dataset("mnist", data_dir=tmp_path, timesteps=4)
    assert (b.input_shape, b.num_classes, b.encoding, len(b.train), len(b.test)) == \
        ((1, 7, 5), 10, "direct", 5, 3)
    np.testing.assert_allclose(b.train.x.numpy()[:, 0], ref["train"][0] / 255.0, rtol=1e-6)
    assert b.test.y.tolist() == ref["t10k"][1].tolist()


def test_idx_other_types_and_bad_files(tmp_path):
    a = np.arange(6, dtype=np.int16).reshape(2, 3) - 3
    write_idx(tmp_path / "a.idx", a, code=0x0B)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), a)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00")
    with pytest.raises(DatasetError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((4, 2, 2), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-3])
    with pytest.raises(DatasetError, match="header says shape"):
        read_idx(tmp_path / "short")


def test_mnist_missing_names_directory_and_files(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist", data_dir=tmp_path / "nowhere")
    msg = str(e.value)
    assert str(tmp_path / "nowhere") in msg and "t10k-labels-idx1-ubyte" in msg
    assert "nothing is downloaded" in msg


def test_mnist_label_count_mismatch(tmp_path):
    make_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(DatasetError, match="expected \\(N, H, W\\) images and N labels"):
        load_dataset("mnist", data_dir=tmp_path)


# ---- CIFAR-10 ------------------------------------------------------------------------------
class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for the official batches: protocol 2, ``str``
    as BINSTRING, arrays through ``numpy.core.multiarray._reconstruct``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2str(self, obj):
        if isinstance(obj, str):
            obj = obj.encode("latin1")
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2str
    dispatch[str] = save_py2str


def py2_pickle(obj) -> bytes:
    import io

    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    data = buf.getvalue()
    return data.replace(b"cnumpy._core.multiarray\n_reconstruct\n",
                        b"cnumpy.core.multiarray\n_reconstruct\n")


def make_cifar(d, n=4):
    d.mkdir(parents=True)
    rng = np.random.default_rng(1)
    ref = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        obj = {b"batch_label": b"testing batch 1 of 1", b"labels": labels, b"data": data,
               b"filenames": [b"x_%d.png" % i for i in range(n)]}
        (d / name).write_bytes(py2_pickle(obj))
        ref[name] = (data, labels)
    return ref


def test_cifar_batches_round_trip(tmp_path):
    ref = make_cifar(tmp_path / "cifar-10-batches-py")
    raw = (tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes()
    assert b"cnumpy.core.multiarray\n_reconstruct" in raw and b"_codecs" not in raw
    b = load_dataset("cifar10", data_dir=tmp_path)
    assert (b.input_shape, len(b.train), len(b.test)) == ((3, 32, 32), 20, 4)
    data, labels = ref["test_batch"]
    x, y = b.test[2]
    # R plane first, row by row
    np.testing.assert_allclose(x.numpy()[0, 0, :5], data[2, :5] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(x.numpy()[2, 31, 31], data[2, 3071] / 255.0, rtol=1e-6)
    assert y == labels[2]
    assert b.train.y.tolist()[:4] == ref["data_batch_1"][1]


def test_cifar_python3_protocols_also_load(tmp_path):
    data = np.arange(3072 * 2, dtype=np.uint8).reshape(2, 3072)
    for proto in (2, 5):
        p = tmp_path / f"b{proto}"
        p.write_bytes(pickle.dumps({b"data": data, b"labels": [3, 4]}, protocol=proto))
        x, y = read_batch(p)
        assert x.shape == (2, 3, 32, 32) and y.tolist() == [3, 4]
        np.testing.assert_array_equal(x.reshape(2, -1), data)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_rejected_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "data_batch_1"
    evil.write_bytes(pickle.dumps({b"data": _Evil(marker), b"labels": []}, protocol=2))
    with pytest.raises(DatasetError, match="(posix|os).system' is not allowed"):
        read_batch(evil)
    assert not marker.exists()
    eval_pickle = b"cbuiltins\neval\n(S'1+1'\ntR."
    with pytest.raises(DatasetError, match="builtins.eval' is not allowed"):
        safe_load(eval_pickle)
    # in a dataset directory the same file fails the whole load, naming it
    d = tmp_path / "c"
    make_cifar(d)
    (d / "data_batch_3").write_bytes(evil.read_bytes())
    with pytest.raises(DatasetError, match="data_batch_3"):
        load_dataset("cifar10", data_dir=d)
    assert not marker.exists()


def test_cifar_wrong_content_and_missing(tmp_path):
    p = tmp_path / "b"
    p.write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [1, 2]}))
    with pytest.raises(DatasetError, match="\\(N, 3072\\)"):
        read_batch(p)
    p.write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="not a safe CIFAR batch"):
        read_batch(p)
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar10", data_dir=tmp_path / "empty")
    assert "data_batch_5" in str(e.value) and "test_batch" in str(e.value)
