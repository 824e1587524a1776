"""--limit-train / --limit-test: stratified, seeded subsets (quotas by largest remainder)."""

import numpy as np
import pytest

from spikeship.errors import ConfigError
from spikeship.data import load_dataset, load_run_dataset
from spikeship.data.subset import class_quotas, stratified_subset


def test_quotas_by_largest_remainder_worked_by_hand():
    # classes 0, 1, 2 with 5, 3, 2 samples; n = 4: exact 2.0, 1.2, 0.8 -> 2, 1, 1
    labels = np.array([0] * 5 + [1] * 3 + [2] * 2)
    assert class_quotas(labels, 4) == {0: 2, 1: 1, 2: 1}
    # n = 5: exact 2.5, 1.5, 1.0 -> floors 2, 1, 1 (4); the 5th to the tie's lower class, 0
    assert class_quotas(labels, 5) == {0: 3, 1: 1, 2: 1}


def test_subset_is_stratified_sorted_seeded_and_whole_when_large():
    labels = np.repeat(np.arange(10), [98, 113, 103, 101, 98, 89, 96, 103, 97, 101])
    a = stratified_subset(labels, 100, seed=0)
    assert len(a) == 100 and np.all(np.diff(a) > 0)
    assert np.bincount(labels[a]).tolist() == [10, 11, 10, 10, 10, 9, 10, 10, 10, 10]
    assert np.array_equal(a, stratified_subset(labels, 100, seed=0))
    assert not np.array_equal(a, stratified_subset(labels, 100, seed=1))
    assert np.array_equal(stratified_subset(labels, 5000, seed=0), np.arange(len(labels)))


def test_load_dataset_limits_digits_and_keeps_source_indices():
    full = load_dataset("digits", seed=0)
    b = load_dataset("digits", seed=0, limit_train=50, limit_test=30)
    assert (len(b.train), len(b.test)) == (50, 30)
    idx = b.test.source_indices
    assert np.array_equal(b.test.x.numpy(), full.test.x.numpy()[idx])
    assert np.array_equal(b.test.y.numpy(), full.test.y.numpy()[idx])
    same = load_run_dataset({"dataset": "digits", "limit_train": 50, "limit_test": 30})
    assert np.array_equal(same.test.source_indices, idx)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_bad_limits_are_config_errors(bad):
    with pytest.raises(ConfigError, match="limit_test"):
        load_dataset("digits", limit_test=bad)
