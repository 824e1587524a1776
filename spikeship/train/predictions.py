"""Per-sample predictions of a test pass: ``predictions.npz`` in the run directory.

Arrays (``allow_pickle=False``): ``predictions`` and ``labels`` (int64, one per test
sample, in test order), ``sample_index`` (each sample's position in the full test split:
``--limit-test`` keeps a subset), ``epoch`` (the training epoch of the test pass).
Written after every epoch's test pass (the file holds the last one); ``compare``
pairs two runs' files for the McNemar test.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from spikeship.errors import RunDirError
from spikeship.io import write_bytes_atomic

FILENAME = "predictions.npz"


def save_predictions(run_dir, predictions, labels, sample_index=None, epoch: int = 0) -> Path:
    pred = np.asarray(predictions, dtype=np.int64)
    lab = np.asarray(labels, dtype=np.int64)
    idx = np.arange(len(pred)) if sample_index is None else np.asarray(sample_index, np.int64)
    if not pred.shape == lab.shape == idx.shape or pred.ndim != 1:
        raise ValueError(f"predictions {pred.shape}, labels {lab.shape}, index {idx.shape}")
    buf = io.BytesIO()
    np.savez_compressed(buf, predictions=pred, labels=lab, sample_index=idx,
                        epoch=np.int64(epoch))
    path = Path(run_dir) / FILENAME
    write_bytes_atomic(path, buf.getvalue())
    return path


def load_predictions(path) -> dict[str, np.ndarray]:
    """The arrays of a predictions file (``predictions.npz`` or ``simulate-<t>.npz``)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in ("predictions", "labels") if k in z.files}
            if "sample_index" in z.files:
                d["sample_index"] = z["sample_index"]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise RunDirError(f"predictions file {path} is unreadable: {e}") from e
    if "predictions" not in d or "labels" not in d or d["predictions"].shape != d["labels"].shape:
        raise RunDirError(f"{path} holds no matching predictions and labels")
    d.setdefault("sample_index", np.arange(len(d["labels"])))
    return d
