"""A run's report: plots, report.md and a self-contained report.html (``spikeship report``)."""

from __future__ import annotations

from pathlib import Path

from spikeship.errors import RunDirError
from spikeship.report.report import build_report
from spikeship.safeopen import read_text


def report_run(run_dir: str | Path, baseline: str | Path | None = None,
               comparison: str | Path | None = None) -> dict:
    """Build RUN_DIR's report (baseline: RUN_DIR/baseline and comparison:
    RUN_DIR/comparison.md when they exist and none is given); returns the written paths."""
    run_dir = Path(run_dir)
    if baseline is None and (run_dir / "baseline" / "metrics.jsonl").exists():
        baseline = run_dir / "baseline"
    if comparison is None and (run_dir / "comparison.md").exists():
        comparison = run_dir / "comparison.md"
    table = read_text(comparison, "comparison table", RunDirError) if comparison else None
    return build_report(run_dir, None if baseline is None else Path(baseline), table)
