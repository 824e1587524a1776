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

importer = lazy_import("spikeship.targets.loihi.importer")     # loads torch


@click.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="NIR file to write (default: FILE with suffix .nir).")
@click.option("--force", is_flag=True, help="Replace --out if it exists (default: refuse).")
def import_(file: Path, out: Path | None, force: bool) -> None:
    """Import a lava-dl netx FILE (.net) as a NIR graph."""
    graph, out = importer.import_netx(file, out, force=force)
    pops = [n for n, v in graph.nodes.items() if type(v).__name__ in ("LIF", "CubaLIF", "IF")]
    click.echo(f"{file}: {len(pops)} populations ({', '.join(pops)}), "
               f"dt {graph.metadata['dt']} s per step, input {graph.metadata['encoding']}")
    click.echo(f"wrote {out}")
