"""``spikeship report``: the click shell over :func:`spikeship.report`."""

from __future__ import annotations

from pathlib import Path

import click

from spikeship import api


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--baseline", type=click.Path(path_type=Path), default=None,
              help="Dense baseline run directory (default: RUN_DIR/baseline if it exists).")
@click.option("--comparison", type=click.Path(path_type=Path), default=None,
              help="A Markdown comparison table (from `spikeship compare`) to include.")
def report(run_dir: Path, baseline: Path | None, comparison: Path | None) -> None:
    """Write plots/*.png, report.md and report.html for RUN_DIR."""
    api.report(run_dir, baseline=baseline, comparison=comparison, progress=click.echo)
