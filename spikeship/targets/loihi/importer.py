"""``spikeship import``: a lava-dl netx file written as a NIR file, never over another file."""

from __future__ import annotations

import os
from pathlib import Path

import nir

from spikeship.errors import RunDirError
from spikeship.export.nir_export import write_nir
from spikeship.targets.loihi.netx_import import netx_to_nir


def import_netx(file: str | os.PathLike, out: str | os.PathLike | None = None, *,
                force: bool = False) -> tuple[nir.NIRGraph, Path]:
    """Write ``file``'s NIR graph to ``out`` (default: ``file`` with suffix ``.nir``).
    An existing ``out`` is left alone (:class:`~spikeship.errors.RunDirError`, before the
    netx file is read; a file appearing meanwhile is not replaced either) unless
    ``force``. Returns (graph, out)."""
    file = Path(file)
    out = Path(out) if out is not None else file.with_suffix(".nir")
    if not force and os.path.lexists(out):
        raise RunDirError(f"{out} exists; refusing to replace it (pass --force to "
                          f"overwrite it)")
    graph = netx_to_nir(file)
    write_nir(graph, out, replace=force)
    return graph, out
