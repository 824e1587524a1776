"""Datasets: the digits split, the bundle contract, test_inputs, and the one error per failure."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from spikeship.errors import ConfigError, DatasetError
from spikeship.data import (ArrayDataset, DatasetBundle, load_dataset, load_run_dataset,
                                  test_inputs)
from spikeship.data.digits import digits_arrays, stratified_split


def test_digits_bundle_contract():
    b = load_dataset("digits", timesteps=5, seed=0)
    assert (b.name, b.input_shape, b.num_classes, b.encoding, b.timesteps) == \
        ("digits", (1, 8, 8), 10, "direct", 5)
    assert len(b.train) + len(b.test) == 1797
    x, y = b.train[0]
    assert x.dtype == torch.float32 and tuple(x.shape) == (1, 8, 8)
    assert isinstance(y, int) and 0 <= y <= 9
    assert float(b.train.x.min()) == 0.0 and float(b.train.x.max()) == 1.0


def test_digits_split_is_stratified_disjoint_and_seeded():
    _, labels = digits_arrays()
    tr, te = stratified_split(labels, seed=3)
    assert len(np.intersect1d(tr, te)) == 0
    assert len(tr) + len(te) == len(labels) == 1797
    for c in range(10):
        n = int((labels == c).sum())
        assert int((labels[te] == c).sum()) == round(n * 0.25)
    tr2, te2 = stratified_split(labels, seed=3)
    assert np.array_equal(tr, tr2) and np.array_equal(te, te2)
    _, te_other = stratified_split(labels, seed=4)
    assert not np.array_equal(np.sort(te), np.sort(te_other))


def test_digits_images_match_sklearn_pixels():
    from sklearn.datasets import load_digits

    d = load_digits()
    b = load_dataset("digits", seed=1)
    x, y = b.test[7]
    matches = np.flatnonzero(np.all(np.isclose(d.images / 16.0, x.numpy()[0]), axis=(1, 2)))
    assert len(matches) >= 1 and d.target[matches[0]] == y


def test_digits_arrays_are_load_digits_exactly_without_importing_sklearn():
    from sklearn.datasets import load_digits

    x, y = digits_arrays()
    d = load_digits()
    assert np.array_equal(x, (d.images / 16.0).astype(np.float32))
    assert np.array_equal(y, d.target) and x.dtype == np.float32 and y.dtype == np.int64
    code = ("import sys; from spikeship.data import load_dataset; load_dataset('digits'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_test_inputs_repeats_direct_images_over_time():
    b = load_dataset("digits", timesteps=3)
    x, y = test_inputs(b, limit=11)
    assert x.shape == (11, 3, 1, 8, 8) and x.dtype == np.float32
    assert y.shape == (11,) and y.dtype == np.int64
    for t in range(3):
        np.testing.assert_array_equal(x[:, t], b.test.x[:11].numpy())
    assert np.array_equal(y, b.test.y[:11].numpy())
    xa, _ = test_inputs(b)
    assert len(xa) == len(b.test)


def test_test_inputs_of_frames_dataset_keeps_frames():
    x = np.arange(2 * 4 * 2 * 3 * 3, dtype=np.float32).reshape(2, 4, 2, 3, 3)
    ds = ArrayDataset(x, np.array([1, 0]))
    b = DatasetBundle("f", ds, ds, (2, 3, 3), 2, "frames", 4)
    xi, yi = test_inputs(b)
    np.testing.assert_array_equal(xi, x)
    assert yi.tolist() == [1, 0]


def test_unknown_dataset_and_bad_timesteps_are_config_errors():
    with pytest.raises(ConfigError, match="unknown dataset 'digitz'"):
        load_dataset("digitz")
    with pytest.raises(ConfigError, match="timesteps"):
        load_dataset("digits", timesteps=0)


def test_bad_encoding_and_mismatched_arrays():
    with pytest.raises(ConfigError, match="encoding"):
        DatasetBundle("x", None, None, (1, 1, 1), 2, "rate", 1)
    with pytest.raises(DatasetError, match="3 samples but 2 labels"):
        ArrayDataset(np.zeros((3, 1)), np.zeros(2))


def test_run_dataset_uses_the_split_seed_not_the_training_seed(tmp_path):
    from spikeship.train.config import TrainConfig

    cfg = TrainConfig(seed=5, data_seed=2, timesteps=3).to_json()
    b = load_run_dataset(cfg)
    ref = load_dataset("digits", timesteps=3, seed=2)
    assert b.timesteps == 3 and torch.equal(b.test.y, ref.test.y)
    assert not torch.equal(b.test.y, load_dataset("digits", seed=5).test.y)
