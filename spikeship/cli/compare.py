"""``spikeship compare``: the click shell over :func:`spikeship.compare`."""

from __future__ import annotations

import click

from spikeship import api
from spikeship.report.compare import RANKS
from spikeship.targets.registry import CHIPS


@click.command("compare")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out", type=click.Path(), default=None,
              help="Write the Markdown table to FILE and the JSON next to it (FILE.json).")
@click.option("--dense", type=click.Path(), default=None,
              help="The dense reference run (default: the input run with --prune none).")
@click.option("--rank", type=click.Choice(RANKS), default="ops", show_default=True,
              help="Row order: effective operations per sample (cheapest first), energy "
                   "per sample, or as given.")
@click.option("--hardware", type=click.Choice(sorted(CHIPS)), default=None,
              help="Chip that prices every row's energy (energy.json prices them all; "
                   "default: the chip most of the runs' energy.json were made for).")
def compare(runs: tuple[str, ...], out: str | None, dense: str | None, rank: str,
            hardware: str | None) -> None:
    """Compare run directories in a paper-style table (Markdown + JSON), ranked by the
    effective operations of the deployed graph."""
    notes: list[str] = []              # "wrote ..." to stderr, after the table
    result = api.compare(runs, out=out, dense=dense, rank=rank, hardware=hardware,
                         progress=notes.append)
    click.echo(result.markdown, nl=False)
    for line in notes:
        click.echo(line, err=True)
