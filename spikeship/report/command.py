"""``spikeship report RUN_DIR``: plots, report.md and a self-contained report.html."""

from __future__ import annotations

from pathlib import Path

import click

from spikeship.errors import RunDirError
from spikeship.safeopen import read_text


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--baseline", type=click.Path(path_type=Path), default=None,
              help="Dense baseline run directory (default: RUN_DIR/baseline if it exists).")
@click.option("--comparison", type=click.Path(path_type=Path), default=None,
              help="A Markdown comparison table (from `spikeship compare`) to include.")
def report(run_dir: Path, baseline: Path | None, comparison: Path | None) -> None:
    """Write plots/*.png, report.md and report.html for RUN_DIR."""
    out = report_run(run_dir, baseline, comparison)
    click.echo(f"report: {out['html']} ({len(out) - 2} plots)")


def report_run(run_dir: str | Path, baseline: str | Path | None = None,
               comparison: str | Path | None = None) -> dict:
    """Build RUN_DIR's report (baseline: RUN_DIR/baseline and comparison:
    RUN_DIR/comparison.md when they exist and none is given); returns the written paths."""
    run_dir = Path(run_dir)
    if baseline is None and (run_dir / "baseline" / "metrics.jsonl").exists():
        baseline = run_dir / "baseline"
    if comparison is None and (run_dir / "comparison.md").exists():
        comparison = run_dir / "comparison.md"
    from spikeship.report.report import build_report

    table = read_text(comparison, "comparison table", RunDirError) if comparison else None
    return build_report(run_dir, None if baseline is None else Path(baseline), table)
