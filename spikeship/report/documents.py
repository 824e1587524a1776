"""What ``report`` and ``compare`` accept in a run's ``summary.json`` and ``metrics.jsonl``.

Both read files anyone can edit, then compute with their numbers and draw their names,
so each field is checked for its meaning when the file is read (a
:class:`~spikeship.errors.RunDirError` naming the file and the field), not deep inside
a plot or a table:

- accuracies and rates: real numbers in [0, 1]; losses, times, rates: finite reals;
- counts (parameters, synapses, units, epochs, samples): integers >= 0, a layer's units at
  most :data:`spikeship.ranges.MAX_POPULATION`, its ``units_kept_hex`` exactly that many bits;
- names (dataset, model, pruner, layers): strings of at most
  :data:`spikeship.ranges.MAX_NAME_CHARS` characters (:func:`spikeship.ranges.name`).

A field that is absent or null is left to the reader (older runs lack some).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from spikeship import ranges
from spikeship.errors import RunDirError

SHARES = ("test_accuracy", "best_test_accuracy", "dense_baseline_accuracy", "pruning_rate",
          "train_accuracy")
REALS = ("train_loss", "wall_time_s", "elapsed_s", "lr")
COUNTS = ("params_total", "params_remaining", "units_total", "units_remaining", "epochs",
          "epoch", "epochs_to_baseline", "samples_train", "samples_test", "timesteps",
          "synapses_total", "synapses_remaining", "synapses_pruned", "units_pruned")
NAMES = ("dataset", "model", "pruner")
MAX_COUNT = 2 ** 53          # exact in a float64 (JSON readers elsewhere)


def _check(where: str, key: str, v: Any) -> None:
    if key in SHARES or key in REALS:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise RunDirError(f"{where}: {key} must be a finite number, got {str(v)[:40]!r}")
        if key in SHARES and not 0.0 <= v <= 1.0:
            raise RunDirError(f"{where}: {key} must be in [0, 1], got {v}")
    elif key in COUNTS:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_COUNT:
            raise RunDirError(f"{where}: {key} must be an integer in [0, {MAX_COUNT}], got "
                              f"{str(v)[:40]!r}")
    elif key in NAMES:
        ranges.name(v, f"{where}: {key}", RunDirError)


def _fields(where: str, d: dict) -> None:
    for key, v in d.items():
        if v is not None:
            _check(where, key, v)


def check_summary(d: dict, path: Path) -> dict:
    """``summary.json`` (see the module docstring); returns ``d``."""
    _fields(str(path), d)
    return d


def check_metrics(rows: list, path: Path) -> list:
    """``metrics.jsonl`` rows and their per-layer entries; returns ``rows``."""
    for i, row in enumerate(rows, 1):
        where = f"{path} line {i}"
        if not isinstance(row, dict):
            raise RunDirError(f"{where}: every line must be a JSON object")
        _fields(where, {k: v for k, v in row.items() if k not in ("layers", "pruner")})
        layers = row.get("layers") or []
        if not isinstance(layers, list) or not all(isinstance(x, dict) for x in layers):
            raise RunDirError(f"{where}: layers must be a list of objects")
        for layer in layers:
            _layer(where, layer)
    return rows


def _layer(where: str, layer: dict) -> None:
    ranges.name(layer.get("name"), f"{where}: layer name", RunDirError)
    where = f"{where}: layer {layer['name'][:40]!r}"
    _fields(where, layer)
    total = layer.get("units_total")
    if isinstance(total, int) and total > ranges.MAX_POPULATION:
        raise RunDirError(f"{where}: units_total {total} is more than {ranges.MAX_POPULATION} "
                          "units in one layer")
    hexed = layer.get("units_kept_hex")
    if hexed is None:
        return
    digits = 2 * math.ceil(total / 8) if isinstance(total, int) else None
    if not isinstance(hexed, str) or len(hexed) != digits \
            or any(c not in "0123456789abcdefABCDEF" for c in hexed):
        raise RunDirError(f"{where}: units_kept_hex must be the {total} units' bits as "
                          f"{digits} hex digits")
