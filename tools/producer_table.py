"""The producer x graph x simulator table (issue 35): results/producers.json and the table
block of docs/producers.md, both from one run of every cell.

Run in spikeship's environment (no producer needed)::

    PYTHONPATH=. python tools/producer_table.py

Each cell is :func:`tests.sim.test_producer_fixtures.run_cell` (the test's own runner):
equal output-spike cells / total against the producer's golden spikes, or the named
refusal. The NIR paper's graphs are run against the reference (they carry no producer
spikes). The table between the ``producers-table`` markers of docs/producers.md is
rewritten from the JSON; nothing in it is typed by hand.
"""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.sim.test_producer_fixtures import (  # noqa: E402
    EXACT, FIXED, FLOORS, PAPER, PAPER_GRAPHS, fixtures, golden, paper_cell, run_cell)

TARGETS = EXACT + FIXED
BEGIN, END = "<!-- producers-table begin -->", "<!-- producers-table end -->"


def _cell_text(cell: dict) -> str:
    if "refused" in cell:
        name, _, msg = cell["refused"].partition(": ")
        return f"refused: {name}, {msg.split(':')[0]}"
    if "agree" in cell:
        return f"{cell['agree']}/{cell['total']}"
    return f"{cell['agree_with_reference']:.4f} vs reference"


def measure() -> dict:
    rows = []
    for key in fixtures():
        meta = golden(key)[2]
        row = {"fixture": key, "convention": meta["convention"], "versions": meta["versions"],
               "golden_spikes": meta["output_spikes"], "floor": FLOORS.get(key), "cells": {}}
        for t in TARGETS:
            with tempfile.TemporaryDirectory() as d:
                row["cells"][t] = run_cell(key, t, Path(d))
        rows.append(row)
    paper = []
    for name in sorted(PAPER_GRAPHS) if PAPER.is_dir() else []:
        row = {"fixture": f"nir-paper/{name}", "cells": {}}
        for t in TARGETS:
            with tempfile.TemporaryDirectory() as d:
                row["cells"][t] = paper_cell(name, t, Path(d))
        paper.append(row)
    failures = {p.parent.name: json.loads(p.read_text())
                for p in sorted((ROOT / "tests/fixtures/producers").glob("*/exporter_failures.json"))}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    return {"command": "PYTHONPATH=. python tools/producer_table.py", "commit": commit,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": platform.platform(), "python": platform.python_version(),
            "versions": {n: version(n) for n in ("nir", "torch", "lava-nc", "norse", "numpy")},
            "agreement": "equal output-spike entries (sample x step x neuron) / total",
            "producers": rows, "nir_paper": paper, "exporter_failures": failures}


def markdown(res: dict) -> str:
    head = "| fixture | convention | " + " | ".join(TARGETS) + " |"
    lines = [head, "|" + " --- |" * (len(TARGETS) + 2)]
    for row in res["producers"] + res["nir_paper"]:
        lines.append(f"| {row['fixture']} | {row.get('convention', 'nir')} | "
                     + " | ".join(_cell_text(row["cells"][t]) for t in TARGETS) + " |")
    reasons = sorted({c["refused"] for row in res["producers"] + res["nir_paper"]
                      for c in row["cells"].values() if "refused" in c})
    lines += ["", "The refusals' messages:", ""] + [f"- {r}" for r in reasons]
    lines += ["", "Exporter failures (no file written; the producer's own message):", ""]
    for producer, fails in res["exporter_failures"].items():
        for f in fails:
            lines.append(f"- {producer} `{f['graph']}`: {f['error'][:160]}")
    return "\n".join(lines)


def main() -> None:
    if "--docs-only" in sys.argv:          # re-render the table from the saved JSON
        res = json.loads((ROOT / "results/producers.json").read_text())
    else:
        res = measure()
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results/producers.json").write_text(json.dumps(res, indent=1) + "\n")
    doc = ROOT / "docs/producers.md"
    text = doc.read_text()
    a, b = text.index(BEGIN) + len(BEGIN), text.index(END)
    doc.write_text(text[:a] + "\n" + markdown(res) + "\n" + text[b:])


if __name__ == "__main__":
    main()
