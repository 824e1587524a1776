"""``spikeship import FILE.net --out model.nir``: a lava-dl netx network as a NIR graph.

The graph carries netx's integers in node metadata (``lava-fixed`` and ``loihi-emu``
run them unchanged, bit for bit) and their real-valued meaning as NIR parameters
(reference, ``lava-float``, Norse); see :mod:`spikeship.targets.loihi.netx_import`.
Networks spikeship cannot run faithfully (sigma-delta, axonal delays, ...) are refused
with the rule's name.
"""

from __future__ import annotations

from pathlib import Path

import click

from spikeship._optional import lazy_import

nir_export = lazy_import("spikeship.export.nir_export")     # loads torch
netx_import = lazy_import("spikeship.targets.loihi.netx_import")


@click.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="NIR file to write (default: FILE with suffix .nir).")
def import_(file: Path, out: Path | None) -> None:
    """Import a lava-dl netx FILE (.net) as a NIR graph."""
    graph = netx_import.netx_to_nir(file)
    out = out or file.with_suffix(".nir")
    nir_export.write_nir(graph, out)
    pops = [n for n, v in graph.nodes.items() if type(v).__name__ in ("LIF", "CubaLIF", "IF")]
    click.echo(f"{file}: {len(pops)} populations ({', '.join(pops)}), "
               f"dt {graph.metadata['dt']} s per step, input {graph.metadata['encoding']}")
    click.echo(f"wrote {out}")
