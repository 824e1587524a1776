"""``spikeship export``: the click shell over :func:`spikeship.export`."""

from __future__ import annotations

from pathlib import Path

import click

from spikeship import api


@click.command(name="export")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--formats", default=None,
              help="Comma-separated: nir, onnx, netx. Default: all three, netx skipped with a "
                   "note when the graph is one netx cannot express.")
@click.option("--dt", "dt_s", type=float, default=1e-3, show_default=True,
              help="Time step of the exported graph, seconds.")
@click.option("--onnx-mode", type=click.Choice(["step", "unrolled"]), default="step",
              show_default=True, help="Stateful single-step or unrolled T-step ONNX graph.")
def export(run_dir: Path, formats: str | None, dt_s: float, onnx_mode: str) -> None:
    """Export RUN_DIR's checkpoint with pruned units physically removed."""
    fmts = None if formats is None else tuple(f.strip() for f in formats.split(",") if f.strip())
    result = api.export(run_dir, fmts, dt_s=dt_s, onnx_mode=onnx_mode, progress=click.echo)
    for row in result.document["layers"]:
        click.echo(f"  {row['layer']:10s} {str(tuple(row['before'])):>20s} -> "
                   f"{str(tuple(row['after'])):<20s} synapses {row['synapses']}")
