"""``spikeship import FILE.net --out model.nir``: a lava-dl netx network as a NIR graph.

The graph carries netx's integers in node metadata (``lava-fixed`` and ``loihi-emu``
run them unchanged, bit for bit) and their real-valued meaning as NIR parameters
(reference, ``lava-float``, Norse); see :mod:`spikeship.targets.loihi.netx_import`.
Networks spikeship cannot run faithfully (sigma-delta, axonal delays, ...) are refused
with the rule's name.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from spikeship.errors import RunDirError


def import_netx(file: str | os.PathLike, out: str | os.PathLike | None = None, *,
                force: bool = False):
    """Write ``file``'s NIR graph to ``out`` (default: ``file`` with suffix ``.nir``);
    an existing ``out`` is left alone (a :class:`~spikeship.errors.RunDirError`) unless
    ``force``. Returns (graph, out)."""
    from spikeship.export.nir_export import write_nir
    from spikeship.targets.loihi.netx_import import netx_to_nir

    file = Path(file)
    out = Path(out) if out is not None else file.with_suffix(".nir")
    if not force and os.path.lexists(out):     # refused before the file is even read
        raise RunDirError(f"{out} exists; refusing to replace it (pass --force to "
                          f"overwrite it)")
    graph = netx_to_nir(file)
    write_nir(graph, out, replace=force)
    return graph, out


@click.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="NIR file to write (default: FILE with suffix .nir).")
def import_(file: Path, out: Path | None) -> None:
    """Import a lava-dl netx FILE (.net) as a NIR graph."""
    graph, out = import_netx(file, out)
    pops = [n for n, v in graph.nodes.items() if type(v).__name__ in ("LIF", "CubaLIF", "IF")]
    click.echo(f"{file}: {len(pops)} populations ({', '.join(pops)}), "
               f"dt {graph.metadata['dt']} s per step, input {graph.metadata['encoding']}")
    click.echo(f"wrote {out}")
