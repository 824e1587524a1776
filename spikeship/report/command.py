"""``spikeship report RUN_DIR``: plots, report.md and a self-contained report.html."""

from __future__ import annotations

from pathlib import Path

import click

from spikeship.report.report import build_report


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--baseline", type=click.Path(path_type=Path), default=None,
              help="Dense baseline run directory (default: RUN_DIR/baseline if it exists).")
@click.option("--comparison", type=click.Path(path_type=Path), default=None,
              help="A Markdown comparison table (from `spikeship compare`) to include.")
def report(run_dir: Path, baseline: Path | None, comparison: Path | None) -> None:
    """Write plots/*.png, report.md and report.html for RUN_DIR."""
    if baseline is None and (run_dir / "baseline" / "metrics.jsonl").exists():
        baseline = run_dir / "baseline"
    if comparison is None and (run_dir / "comparison.md").exists():
        comparison = run_dir / "comparison.md"
    table = comparison.read_text() if comparison else None
    out = build_report(run_dir, baseline, table)
    click.echo(f"report: {out['html']} ({len(out) - 2} plots)")
