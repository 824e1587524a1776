"""Shared helpers of the file-based datasets: where to look, and the one "missing" error."""

from __future__ import annotations

from pathlib import Path

from spikeship.errors import DatasetError

DEFAULT_DATA_DIR = "data"


def data_root(data_dir) -> Path:
    """``data_dir`` or ``./data`` (never downloaded into: files must be put there)."""
    return Path(data_dir if data_dir is not None else DEFAULT_DATA_DIR).expanduser()


def find_dir(root: Path, candidates: list[str], required: list[str]) -> Path | None:
    """The first of ``root/<candidate>`` holding every name in ``required``."""
    for c in candidates:
        d = root / c if c else root
        if all(_exists_any(d / name) for name in required):
            return d
    return None


def _exists_any(p: Path) -> bool:
    return p.exists() or p.with_name(p.name + ".gz").exists()   # safeopen judges the kind


def missing(dataset: str, root: Path, layout: str) -> DatasetError:
    """The error for a dataset that is not on disk: names the directory and the files."""
    where = f"{root}" + ("" if root.is_dir() else " (does not exist)")
    return DatasetError(f"dataset '{dataset}' not found in {where}; nothing is downloaded. "
                        f"Expected {layout}. Point --data-dir at the directory that holds them.")
