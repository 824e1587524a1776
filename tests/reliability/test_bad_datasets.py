"""Datasets that would train on garbage or divide by an empty split, and metrics files
with a damaged line: named errors before anything runs, nothing written to ``--out``.

MNIST is built as real IDX files (the format spikeship reads), one defect at a time.
"""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest

from spikeship.errors import DatasetError, RunDirError
from tests.reliability.conftest import expect_error, run_cli

TYPES = {np.dtype("uint8"): 0x08, np.dtype(">f4"): 0x0D}


def write_idx(path, arr: np.ndarray) -> None:
    arr = np.asarray(arr)
    dt = np.dtype(">f4") if arr.dtype.kind == "f" else np.dtype("uint8")
    head = bytes([0, 0, TYPES[dt], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(head + arr.astype(dt).tobytes())


def mnist(d, *, train=None, test=None, train_labels=None, test_labels=None):
    rng = np.random.default_rng(0)
    x_tr = rng.integers(0, 255, (20, 28, 28)).astype(np.uint8) if train is None else train
    x_te = rng.integers(0, 255, (10, 28, 28)).astype(np.uint8) if test is None else test
    y_tr = rng.integers(0, 10, len(x_tr)) if train_labels is None else train_labels
    y_te = rng.integers(0, 10, len(x_te)) if test_labels is None else test_labels
    d.mkdir(parents=True, exist_ok=True)
    write_idx(d / "train-images-idx3-ubyte", x_tr)
    write_idx(d / "train-labels-idx1-ubyte", np.asarray(y_tr, np.uint8))
    write_idx(d / "t10k-images-idx3-ubyte", x_te)
    write_idx(d / "t10k-labels-idx1-ubyte", np.asarray(y_te, np.uint8))
    return d


def _float_images(n, bad):
    x = np.random.default_rng(1).random((n, 28, 28)).astype(np.float32)
    x[n // 2, 3, 4] = bad
    return x


CASES = {
    "nan-train": (dict(train=_float_images(20, np.nan)), "train sample 10 holds 1 NaN/Inf"),
    "inf-test": (dict(test=_float_images(10, np.inf)), "test sample 5 holds 1 NaN/Inf"),
    "neg-inf-train": (dict(train=_float_images(20, -np.inf)), "NaN/Inf"),
    "empty-train": (dict(train=np.zeros((0, 28, 28), np.uint8)), "train split is empty"),
    "empty-test": (dict(test=np.zeros((0, 28, 28), np.uint8)), "test split is empty"),
    "test-other-size": (dict(test=np.zeros((10, 20, 20), np.uint8)), "shape (1, 20, 20)"),
    "labels-short": (dict(train_labels=np.zeros(19)), "labels"),
    "label-out-of-range": (dict(test_labels=np.full(10, 12)), "labels must be 0..9"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_mnist_is_refused_before_training_and_nothing_is_written(tmp_path, capsys, case):
    kw, match = CASES[case]
    data = mnist(tmp_path / "data", **kw)
    out = tmp_path / "runs" / "out"
    expect_error(capsys, ["train", "--dataset", "mnist", "--data-dir", data, "--model",
                          "tiny-mlp", "--epochs", "1", "--no-progress", "--out", out],
                 DatasetError, match, watch=(out, tmp_path / "runs"))


def test_bad_dataset_is_refused_by_simulate_too(tmp_path, capsys, run):
    data = mnist(tmp_path / "data", test=_float_images(10, np.nan))
    cfg = json.loads((run / "config.json").read_text())
    cfg.update(dataset="mnist", data_dir=str(data))
    (run / "config.json").write_text(json.dumps(cfg))
    expect_error(capsys, ["simulate", run, "--target", "reference"], DatasetError, "NaN",
                 watch=(run,))


def test_idx_that_is_a_symlink_to_dev_zero(tmp_path, capsys):
    data = mnist(tmp_path / "data")
    (data / "t10k-images-idx3-ubyte").unlink()
    (data / "t10k-images-idx3-ubyte").symlink_to("/dev/zero")
    out = tmp_path / "out"
    expect_error(capsys, ["train", "--dataset", "mnist", "--data-dir", data, "--model",
                          "tiny-mlp", "--epochs", "1", "--no-progress", "--out", out],
                 DatasetError, "character device", watch=(out,))


def test_gzip_bomb_idx_is_refused_before_unpacking(tmp_path, capsys):
    """A 1 MB .gz whose header declares 10^12 images: refused from the header."""
    data = mnist(tmp_path / "data")
    p = data / "train-images-idx3-ubyte"
    p.unlink()
    head = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 10**9, 28, 28)
    (data / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(head + b"\0" * (1 << 20)))
    out = tmp_path / "out"
    expect_error(capsys, ["train", "--dataset", "mnist", "--data-dir", data, "--model",
                          "tiny-mlp", "--epochs", "1", "--no-progress", "--out", out],
                 DatasetError, "refusing to unpack", watch=(out,))


def test_good_mnist_still_trains(tmp_path, capsys):
    data = mnist(tmp_path / "data")
    res = run_cli(capsys, ["train", "--dataset", "mnist", "--data-dir", data, "--model",
                           "tiny-mlp", "--epochs", "1", "--no-progress", "--out",
                           tmp_path / "out"])
    assert res.rc == 0, res.err


# ---- metrics.jsonl -------------------------------------------------------------------------
def _metrics_run(run):
    lines = [json.dumps({"epoch": e, "test_accuracy": 0.1 * e, "train_loss": 1.0 / e,
                         "params_total": 10, "params_remaining": 10}) for e in (1, 2, 3)]
    (run / "summary.json").write_text(json.dumps({"test_accuracy": 0.3}))
    return lines


@pytest.mark.parametrize("cmd", [["report", "{run}"], ["compare", "{run}"]])
def test_garbled_metrics_line_is_named_not_dropped(run, capsys, cmd):
    lines = _metrics_run(run)
    lines[1] = lines[1][:17] + "\x00garbage"
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    expect_error(capsys, [str(a).format(run=run) for a in cmd], RunDirError,
                 "metrics.jsonl, line 2", watch=(run,) if cmd[0] == "compare" else ())


def test_trailing_partial_line_of_a_crash_is_tolerated(run):
    from spikeship.io import read_jsonl

    lines = _metrics_run(run)
    (run / "metrics.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:10])
    assert [m["epoch"] for m in read_jsonl(run / "metrics.jsonl")] == [1, 2]
    (run / "metrics.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:10] + "\n")
    with pytest.raises(RunDirError, match="line 3"):      # with its newline: not a crash
        read_jsonl(run / "metrics.jsonl")
