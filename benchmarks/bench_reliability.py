"""Hostile cases by class: each reliability test case run, its outcome counted (tried/good/bad).

What runs: the test files of :data:`CLASSES` under pytest in this process; every test case
(a parametrized case counts once) is one hostile case of its file's class: "good" when it
passed (the command refused by name, wrote nothing it did not own, or stopped in time),
"bad" when it failed. The rows are the cases; the summary counts them per class.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks import common

#: test file (tests/reliability/) -> the class of hostile inputs its cases try
CLASSES = {"test_write_rules.py": "1 writing outside what the command owns",
           "test_markdown_escape.py": "5 Markdown injection",
           "test_dist_hang.py": "6 distributed hangs",
           "test_lava_orphans.py": "8 orphaned simulator processes"}


class _Outcomes:
    """A pytest plugin: the outcome of each test case's call (or failed set-up)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}

    def pytest_runtest_logreport(self, report) -> None:
        file, _, case = report.nodeid.partition("::")
        if report.when == "call" or report.failed:
            good = report.passed and report.nodeid not in self.rows
            self.rows[report.nodeid] = {"class": CLASSES[Path(file).name], "case": case,
                                        "outcome": "good" if good else "bad"}


def main(argv: list[str] | None = None) -> int:
    ap = common.parser(__doc__)
    args = ap.parse_args(argv)
    files = [str(common.ROOT / "tests" / "reliability" / f) for f in CLASSES]
    plugin = _Outcomes()
    code = pytest.main(["-q", "-p", "no:cacheprovider", *files], plugins=[plugin])
    rows = list(plugin.rows.values())
    summary = {}
    for cls in CLASSES.values():
        mine = [r for r in rows if r["class"] == cls]
        summary["class " + cls.split()[0]] = {
            "tried": len(mine), "good": sum(r["outcome"] == "good" for r in mine),
            "bad": sum(r["outcome"] == "bad" for r in mine)}
    common.write_result(
        args, name="reliability", module="benchmarks.bench_reliability",
        argv=argv, topic="reliability",
        title="Hostile cases by class: tried, good, bad",
        description="Each case is one test of tests/reliability run by this benchmark: "
                    "good = the command refused by name, changed nothing it does not own, "
                    "or stopped in time; bad = it did not.",
        rows=rows, summary=summary)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
