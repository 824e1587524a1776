"""What a model file holds (``spikeship inspect FILE``): NIR and ONNX files as
:mod:`spikeship.export.describe` describes them; lava-dl netx files per netx layer, with
neurons, synapses and whether spikeship can import them
(:mod:`spikeship.targets.loihi.netx_describe`)."""

from __future__ import annotations

from pathlib import Path

from spikeship.export import describe as base
from spikeship.targets.loihi.netx_describe import describe_netx, is_netx


def describe_file(path: str | Path) -> dict:
    """A dict describing ``path``: netx files by their layers, the rest as the base does."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in (".net", ".h5", ".hdf5") and is_netx(path):
        return describe_netx(path)
    return base.describe_file(path)
