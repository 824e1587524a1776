"""N-MNIST and DVS-Gesture through tonic's classes, from tiny files in tonic's on-disk formats."""

import numpy as np
import pytest

from spikeship.errors import DatasetError
from spikeship.data import load_dataset, test_inputs


def write_nmnist_bin(path, events):
    """N-MNIST .bin: 5 bytes per event: x, y, p<<7 | t[22:16], t[15:8], t[7:0] (t in us)."""
    out = bytearray()
    for x, y, t, p in events:
        out += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))


def make_nmnist(root):
    base = root / "NMNIST"
    write_nmnist_bin(base / "Train" / "3" / "00001.bin",
                     [(1, 2, 0, 1), (33, 0, 100, 0), (5, 5, 60, 1)])
    write_nmnist_bin(base / "Train" / "7" / "00002.bin", [(0, 0, 10, 1), (0, 1, 20, 1)])
    write_nmnist_bin(base / "Test" / "0" / "00003.bin", [(4, 4, 0, 0), (4, 4, 8000, 1)])


def test_nmnist_through_tonic(tmp_path):
    make_nmnist(tmp_path)
    b = load_dataset("nmnist", data_dir=tmp_path, timesteps=2)
    assert (b.input_shape, b.num_classes, b.encoding) == ((2, 34, 34), 10, "frames")
    assert len(b.train) == 2 and len(b.test) == 1
    x, y = b.train[0]
    assert y == 3 and tuple(x.shape) == (2, 2, 34, 34)
    # t in [0, 100]: window = ceil(101 / 2) = 51 us -> bins [0, 51), [51, 102)
    assert x[0, 1, 2, 1] == 1              # (x=1, y=2, t=0, ON)
    assert x[1, 1, 5, 5] == 1              # (x=5, y=5, t=60, ON)
    assert x[1, 0, 0, 33] == 1             # (x=33, y=0, t=100, OFF)
    assert float(x.sum()) == 3
    assert b.train[1][1] == 7
    xs, ys = test_inputs(b)
    assert xs.shape == (1, 2, 2, 34, 34) and ys.tolist() == [0]
    assert xs[0, 0, 0, 4, 4] == 1 and xs[0, 1, 1, 4, 4] == 1


def make_gesture(root):
    base = root / "DVSGesture"
    rows = {"ibmGestureTrain/user01_fluorescent/4.npy": [[100, 8, 1, 0], [127, 127, 0, 30]],
            "ibmGestureTrain/user02_led/10.npy": [[0, 0, 1, 5], [1, 1, 1, 6]],
            "ibmGestureTest/user24_natural/0.npy": [[64, 32, 0, 1], [64, 32, 1, 2]]}
    for rel, ev in rows.items():
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        np.save(p, np.array(ev, dtype=np.int64))


def test_dvs_gesture_through_tonic_downsampled(tmp_path):
    make_gesture(tmp_path)
    b = load_dataset("dvs-gesture", data_dir=tmp_path, timesteps=3)
    assert (b.input_shape, b.num_classes) == ((2, 32, 32), 11)
    items = sorted((b.train[i][1], b.train[i][0]) for i in range(len(b.train)))
    assert [lab for lab, _ in items] == [4, 10]
    x = dict(items)[4]
    assert tuple(x.shape) == (3, 2, 32, 32) and float(x.sum()) == 2
    assert x[0, 1, 2, 25] == 1             # x=100//4, y=8//4, ON, first window
    assert x[2, 0, 31, 31] == 1            # last event (t=30 ms) in the last window
    xt, yt = b.test[0]
    assert yt == 0 and x.dtype == xt.dtype


@pytest.mark.parametrize("name,expect", [("nmnist", "NMNIST/Train/<digit>/*.bin"),
                                         ("dvs-gesture", "ibmGestureTrain")])
def test_missing_neuromorphic_dataset_is_one_clear_error(tmp_path, name, expect):
    with pytest.raises(DatasetError) as e:
        load_dataset(name, data_dir=tmp_path)
    assert str(tmp_path) in str(e.value) and expect in str(e.value)
    assert "nothing is downloaded" in str(e.value)


def test_partial_nmnist_without_test_split_is_an_error(tmp_path):
    make_nmnist(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "NMNIST" / "Test")
    with pytest.raises(DatasetError, match="NMNIST/Test"):
        load_dataset("nmnist", data_dir=tmp_path)
