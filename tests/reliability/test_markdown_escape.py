"""``compare`` writes Markdown in which run names and other text from files stay text.

Run directories with hostile names (real directories on disk: HTML, a ``|``, a newline
followed by a heading and a ``javascript:`` link, a backtick) and a hostile method name
in ``summary.json`` are compared with ``spikeship compare --out``; the Markdown file is
parsed back: every table row has exactly the header's columns, no line outside the
table starts a heading or a link definition, and no raw ``<script>`` or link survives.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.reliability.conftest import run_cli

HOSTILE = ["<script>alert(1)", "a|b|c", "x\n# Owned\n[click](javascript:alert(1))",
           "tick`<b>bold<\\b>`", "back\\|slash"]


def make_run(root: Path, name: str, accuracy: float, pruner: str = "dpap") -> Path:
    d = root / name
    d.mkdir()
    cfg = {"dataset": "digits", "model": "dpap-mnist", "timesteps": 4, "seed": 0,
           "pruner": pruner}
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "summary.json").write_text(json.dumps({**cfg, "test_accuracy": accuracy,
                                                "params_total": 100, "params_remaining": 40}))
    return d


def table_rows(md: str) -> list[list[str]]:
    """The cells of each table line, split at unescaped ``|`` (GFM)."""
    rows = []
    for line in md.splitlines():
        if line.startswith("|"):
            cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
            rows.append(cells)
    return rows


@pytest.mark.parametrize("name, method", [
    *((n, "dpap") for n in HOSTILE),
    ("plain", "m|x\n## h <img src=x onerror=alert(1)>"),     # from summary.json
    ("plain", "[x](javascript:alert(1))"),
], ids=["script", "pipe", "newline-heading-link", "backtick-html", "backslash-pipe",
        "method-newline-img", "method-link"])
def test_hostile_names_stay_text_in_comparison_md(tmp_path, capsys, name, method):
    runs = [make_run(tmp_path, name, 0.5), make_run(tmp_path, "dense", 0.9, pruner="none")]
    summary = json.loads((runs[0] / "summary.json").read_text())
    (runs[0] / "summary.json").write_text(json.dumps({**summary, "pruner": method}))
    out = tmp_path / "cmp.md"
    res = run_cli(capsys, ["compare", *runs, "--out", out, "--rank", "given"])
    assert res.rc == 0, res.err
    md = out.read_text()
    rows = table_rows(md)
    assert len(rows) == 2 + len(runs)                       # header, rule, one per run
    assert {len(r) for r in rows} == {len(rows[0])}, [len(r) for r in rows]
    outside = [ln for ln in md.splitlines() if not ln.startswith("|")]
    assert not [ln for ln in outside if ln.lstrip().startswith("#")]
    assert not [ln for ln in md.splitlines() if re.match(r"\s*\[[^\]]*\]:", ln)]
    for bad in ("<script", "<img", "<b>"):
        assert bad not in md, bad
    assert not re.search(r"(?<!\\)\[[^\]]*(?<!\\)\]\(", md), "an unescaped link"
    assert res.out == md                                      # stdout: the same Markdown
