"""The producer x graph x simulator table: results/producers.json and the table
block of docs/producers.md, both from one run of every cell.

Run in spikeship's environment (no producer needed)::

    python tools/producer_table.py [--docs-only]

Each cell is :func:`tests.sim.test_producer_fixtures.run_cell` (the test's own runner):
equal output-spike cells / total against the producer's golden spikes, or the named
refusal. The NIR paper's graphs are run against the reference (they carry no producer
spikes). The table between the ``producers-table`` markers of docs/producers.md is
rewritten from the JSON; nothing in it is typed by hand.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import common, schema  # noqa: E402
from tests.sim.test_producer_fixtures import (  # noqa: E402
    EXACT, FIXED, FLOORS, PAPER, PAPER_GRAPHS, fixtures, golden, paper_cell, run_cell)

TARGETS = EXACT + FIXED
BEGIN, END = "<!-- producers-table begin -->", "<!-- producers-table end -->"


def _short(refused: str) -> str:
    """``ConventionError at node '1'`` from a refusal message."""
    name, _, msg = refused.partition(": ")
    return f"{name} at {msg.split(':')[0]}"


def _row(fixture: str, convention: str, target: str, cell: dict) -> dict:
    return {"fixture": fixture, "convention": convention, "simulator": target,
            "agree": cell.get("agree"), "total": cell.get("total"),
            "agree_with_reference": cell.get("agree_with_reference"),
            "output_spikes": cell.get("spikes"), "golden_spikes": cell.get("golden_spikes"),
            "refused": _short(cell["refused"]) if "refused" in cell else None}


def measure() -> tuple[list[dict], list[str]]:
    """One flat row per (fixture, simulator), and the notes (refusals, exporter failures)."""
    rows, refusals = [], set()
    for key in fixtures():
        conv = golden(key)[2]["convention"]
        for t in TARGETS:
            with tempfile.TemporaryDirectory() as d:
                cell = run_cell(key, t, Path(d))
            rows.append(_row(key, conv, t, cell))
            refusals.update([cell["refused"]] if "refused" in cell else [])
    for name in sorted(PAPER_GRAPHS) if PAPER.is_dir() else []:
        for t in TARGETS:
            with tempfile.TemporaryDirectory() as d:
                rows.append(_row(f"nir-paper/{name}", "nir", t, paper_cell(name, t, Path(d))))
    notes = [f"Refusal: {r}" for r in sorted(refusals)]
    for p in sorted((ROOT / "tests/fixtures/producers").glob("*/exporter_failures.json")):
        notes += [f"Exporter failure, {p.parent.name} {f['graph']} ({f['where']}): "
                  f"{f['error'][:200]}" for f in json.loads(p.read_text())]
    return rows, notes


def summary(rows: list[dict]) -> dict:
    prod = [r for r in rows if not r["fixture"].startswith("nir-paper/")]
    ran = [r for r in prod if r["refused"] is None]
    exact = [r for r in ran if r["simulator"] in EXACT]
    fixed = [r for r in ran if r["simulator"] in FIXED]
    return {"cells": len(prod), "refused_by_name": len(prod) - len(ran),
            "float_cells_exact": sum(r["agree"] == r["total"] for r in exact),
            "float_cells": len(exact),
            "fixed_point_min_share": min(r["agree"] / r["total"] for r in fixed),
            "fixed_point_floor_failures": sum(
                r["agree"] / r["total"] < FLOORS[r["fixture"]] for r in fixed)}


def _cell_text(r: dict) -> str:
    if r["refused"]:
        return f"refused: {r['refused']}"
    if r["agree"] is not None:
        return f"{r['agree']}/{r['total']}"
    return f"{r['agree_with_reference']:.4f} vs reference"


def markdown(doc: dict) -> str:
    lines = ["| fixture | convention | " + " | ".join(TARGETS) + " |",
             "|" + " --- |" * (len(TARGETS) + 2)]
    cells = {(r["fixture"], r["simulator"]): r for r in doc["rows"]}
    for fx in dict.fromkeys(r["fixture"] for r in doc["rows"]):
        conv = cells[(fx, TARGETS[0])]["convention"]
        lines.append(f"| {fx} | {conv} | "
                     + " | ".join(_cell_text(cells[(fx, t)]) for t in TARGETS) + " |")
    return "\n".join(lines + [""] + [f"- {n}" for n in doc.get("notes", [])])


def main() -> None:
    path = ROOT / "results/producers.json"
    if "--docs-only" in sys.argv:          # re-render the table from the saved result
        doc = schema.read(path)
    else:
        rows, notes = measure()
        doc = {"schema": schema.VERSION, "name": "producers", "benchmark": "producer_table",
               "topic": "conformance",
               "title": "NIR files from snnTorch, Norse, Sinabs and Rockpool on every simulator",
               "description": "Each producer's own export run with its convention; equal "
                              "output-spike entries (sample x step x neuron) / total against "
                              "the producer's own spikes, or the named refusal; the NIR "
                              "paper's graphs against the reference.",
               "command": "python tools/producer_table.py", "commit": common.git_commit(),
               "date": common.now(), "machine": common.machine(),
               "versions": common.versions(), "rows": rows, "summary": summary(rows),
               "config": {"float_simulators": ", ".join(EXACT),
                          "fixed_point_simulators": ", ".join(FIXED)},
               "notes": notes}
        schema.write(path, doc)
    md = ROOT / "docs/producers.md"
    text = md.read_text()
    a, b = text.index(BEGIN) + len(BEGIN), text.index(END)
    md.write_text(text[:a] + "\n" + markdown(doc) + "\n" + text[b:])


if __name__ == "__main__":
    main()
