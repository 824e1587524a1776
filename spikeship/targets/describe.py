"""What a model file holds (``spikeship inspect FILE``): NIR and ONNX files as
:mod:`spikeship.export.describe` describes them; lava-dl netx files per netx layer, with
neurons, synapses and whether spikeship can import them, and other HDF5 files dataset
by dataset (:mod:`spikeship.targets.loihi.netx_describe`)."""

from __future__ import annotations

from pathlib import Path

from spikeship.export import describe as base
from spikeship.targets.loihi.netx_describe import describe


def describe_file(path: str | Path) -> dict:
    """A dict describing ``path``: netx (``.net`` / ``.h5``) files by their layers (any
    other HDF5 file dataset by dataset), the rest as the base does."""
    path = Path(path)
    if path.exists() and path.suffix.lower() in (".net", ".h5", ".hdf5"):
        return describe(path)
    return base.describe_file(path)
