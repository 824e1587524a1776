"""A real (tiny) training run on real MNIST with --limit-train/--limit-test: the summary
records the sample counts and the interval, predictions.npz holds every test sample, and
a simulation of the run tests on the same limited samples."""

import json

import numpy as np
import pytest

from spikeship.cli import main
from spikeship.stats import wilson_interval
from spikeship.data.subset import stratified_subset
from spikeship.train.predictions import load_predictions
from tests.train.conftest import read_mnist_once


@pytest.mark.slow
def test_limited_mnist_run_records_counts_interval_and_predictions(tmp_path, capsys,
                                                                  monkeypatch):
    arrays = read_mnist_once(monkeypatch)     # train and simulate get copies of these
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--model", "tiny-mlp", "--epochs", "1",
                 "--limit-train", "300", "--limit-test", "120", "--timesteps", "2",
                 "--no-progress", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert (s["samples_train"], s["samples_test"]) == (300, 120)
    p = load_predictions(out / "predictions.npz")
    _, labels = arrays["test"]
    idx = stratified_subset(labels, 120, seed=0)
    assert np.array_equal(p["sample_index"], idx) and np.array_equal(p["labels"], labels[idx])
    correct = int((p["predictions"] == p["labels"]).sum())
    assert s["test_accuracy"] == correct / 120
    assert s["test_accuracy_ci95"] == list(wilson_interval(correct, 120))
    capsys.readouterr()
    assert main(["simulate", str(out), "--target", "snntorch"]) == 0
    sim = json.loads((out / "simulate-snntorch.json").read_text())
    assert sim["samples"] == 120 and sim["accuracy"] == s["test_accuracy"]
    assert sim["accuracy_ci95"] == list(wilson_interval(correct, 120))
