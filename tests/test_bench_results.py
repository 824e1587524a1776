"""results/*.json: the schema refuses bad documents by name, the renderer re-renders the same
bytes and writes the JSON's numbers, the converter's output matches the README blocks it
came from, and the committed results and pages are current and clean."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path

import pytest

from benchmarks import import_readme, render, schema
from spikeship.errors import SpikeshipError

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


def _doc(**over) -> dict:
    """A small valid result (two seeds of a made-up benchmark)."""
    doc = {"schema": 1, "name": "demo-speed", "benchmark": "bench_demo", "topic": "speed",
           "title": "demo", "description": "two seeds", "command": "python -m benchmarks.x --out o",
           "commit": "abc1234", "date": "2026-12-06 10:00 UTC",
           "machine": {"cpu": "a CPU", "cores": 3, "ram_gb": 7.5},
           "versions": {"python": "3.11.7"},
           "rows": [{"seed": 0, "samples_per_s": 123.456}, {"seed": 1, "samples_per_s": 98.7}],
           "summary": {"ratio": {"mean": 1.25, "lo": 1.1, "hi": 1.4}, "held": True}}
    doc.update(over)
    return doc


@pytest.mark.parametrize("change, field", [
    (lambda d: d.pop("commit"), "commit"),
    (lambda d: d.update(command="python -m benchmarks.x --out /home/me/runs"), "command"),
    (lambda d: d.update(description="as issue 16 asked"), "description"),
    (lambda d: d.update(title="what the session found"), "title"),
    (lambda d: d["summary"].update(ratio={"mean": 1.0, "lo": 2.0, "hi": 1.5}), "summary.ratio"),
    (lambda d: d["rows"][0].update(seed=[0, 1]), "rows[0].seed"),
    (lambda d: d.update(date="yesterday"), "date"),
    (lambda d: d.update(topic="misc"), "topic"),
    (lambda d: d["machine"].pop("cores"), "machine.cores"),
    (lambda d: d.update(extra=1), "extra"),
    (lambda d: d.update(imported_from="README.md"), "imported_from"),
])
def test_a_bad_document_is_refused_by_a_named_error(change, field):
    doc = _doc()
    schema.validate(copy.deepcopy(doc))                      # the good one passes
    change(doc)
    with pytest.raises(schema.ResultsSchemaError, match=re.escape(repr(field).strip("'"))) as e:
        schema.validate(doc, "demo-speed.json")
    assert isinstance(e.value, SpikeshipError) and "demo-speed.json" in str(e.value)


def test_write_and_read_check_the_document_and_its_file_name(tmp_path):
    path = schema.write(tmp_path / "demo-speed.json", _doc())
    assert schema.read(path) == _doc()
    with pytest.raises(schema.ResultsSchemaError, match="stem"):
        schema.write(tmp_path / "other.json", _doc())
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(schema.ResultsSchemaError, match="broken.json"):
        schema.read(tmp_path / "broken.json")
    assert not (tmp_path / "other.json").exists()


def test_rendering_unchanged_json_again_gives_the_same_bytes():
    """The pages of the committed results, rendered again in this process, are byte for
    byte the ones an earlier render committed to docs/results (so they are current); so
    is one figure of each kind (the others are drawn by the same code from their JSON)."""
    docs = schema.read_all(RESULTS)
    committed = ROOT / "docs" / "results"
    pages = render.pages(docs, figures=False)
    assert {"index.md", "pruning.md", "timesteps.md", "onnx-latency.md"} <= set(pages)
    for name, text in pages.items():
        assert (committed / name).read_text(encoding="utf-8") == text, \
            f"docs/results/{name} differs: run python -m benchmarks.render"
    for kind, draw in render.FIGURES.items():
        doc = next(d for d in docs if d["benchmark"] == kind)
        assert (committed / f"{doc['name']}.svg").read_text(encoding="utf-8") == draw(doc), \
            doc["name"]
    svgs = {p.stem for p in committed.glob("*.svg")}
    assert svgs == {d["name"] for d in docs if d["benchmark"] in render.FIGURES}


def test_a_pages_numbers_are_the_jsons(tmp_path):
    """Change one number in a copy of a result: the page shows the new number, formatted
    as the renderer writes it, in that result's table."""
    src = schema.read(RESULTS / "prune-digits-deep.json")
    src["rows"][0]["synops_pruned"] = 123457
    src["rows"][0]["float_pruned"] = 91.23
    src["summary"]["ratio"]["mean"] = 7.77
    schema.write(tmp_path / "r" / "prune-digits-deep.json", src)
    render.render(tmp_path / "r", tmp_path / "d", None)
    page = (tmp_path / "d" / "pruning.md").read_text()
    row = next(ln for ln in page.splitlines() if ln.startswith(f"| {src['rows'][0]['seed']} |"))
    assert "| 91.23 |" in row and "| 123,457 |" in row
    assert "mean 7.77" in page and src["command"] in page and src["commit"] in page


def test_pages_and_results_hold_no_absolute_path_nor_tracker_reference():
    texts = [p.read_text() for p in RESULTS.glob("*.json")]
    texts += [p.read_text() for p in (ROOT / "docs" / "results").glob("*.md")]
    assert len(texts) > 10
    for t in texts:
        assert not schema.ABS_PATH.search(t) and not schema.TRACKER.search(t)


def test_every_committed_result_follows_the_schema():
    docs = schema.read_all(RESULTS)
    assert {d["topic"] for d in docs} >= {"pruning", "timesteps", "onnx-latency"}
    assert all(d["imported_from"] == f"README.md@{import_readme.IMPORT_COMMIT}"
               for d in docs if "imported_from" in d)


@pytest.fixture(scope="module")
def readme_then():
    """README.md as it was when its blocks were converted (from git history)."""
    r = subprocess.run(["git", "-C", str(ROOT), "show", f"{import_readme.IMPORT_COMMIT}:README.md"],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"commit {import_readme.IMPORT_COMMIT} not in this clone's history")
    return r.stdout


def test_converter_output_is_the_committed_results_and_matches_its_blocks(readme_then):
    docs = {d["name"]: d for d in import_readme.convert(readme_then, import_readme.IMPORT_COMMIT)}
    for name, doc in docs.items():      # what results/ holds is exactly the conversion
        assert json.loads((RESULTS / f"{name}.json").read_text()) == json.loads(schema.dumps(doc))
    block = import_readme.blocks(readme_then)["prune-table-chip-qat5"]
    d = docs["prune-digits-chip"]
    assert len(d["rows"]) == 10 and d["commit"] == "4f6efa3"
    assert d["date"] == "2026-12-02 03:14 UTC" and "/work" not in d["command"]
    r3 = d["rows"][3]                   # | 3 | 95.78 | 97.33 | +1.56 [-0.34, +3.45] | ...
    assert f"| 3 | {r3['float_dense']:.2f} | {r3['float_pruned']:.2f} | " \
           f"{r3['diff_pt']:+.2f} [{r3['diff_lo']:+.2f}, {r3['diff_hi']:+.2f}] |" in block
    assert f"| {r3['synops_dense']:,} | {r3['synops_pruned']:,} | {r3['ratio']:.2f} |" in block
    s = d["summary"]
    assert (f"float: {s['diff_float_pt']['mean']:+.2f} pt (SE {s['diff_float_pt']['se']:.2f})"
            in block)
    assert f"min {s['ratio']['min']:.2f}, mean {s['ratio']['mean']:.2f}" in block
    onnx = docs["onnx-latency-digits-s0"]["summary"]
    b = import_readme.blocks(readme_then)["onnx-latency-chip"]
    assert f"{onnx['speedup']['median']:.2f}x (IQR {onnx['speedup']['q25']:.2f}-" in b
    assert f"MAC ratio {onnx['mac_ratio']:.2f}x" in b and onnx["criterion_held"] is False


def test_experiment_log_lists_each_superseded_block_with_its_commit(readme_then):
    text = import_readme.experiment_log(readme_then, import_readme.IMPORT_COMMIT, "2026-12-02")
    lines = [ln for ln in text.splitlines() if ln.startswith("- ")]
    assert len(lines) == len(import_readme.SUPERSEDED)
    converted = set(import_readme.CURRENT)
    for (block, _, _), line in zip(import_readme.SUPERSEDED, lines):
        assert f"`{block}`" in line and block not in converted
    assert import_readme.IMPORT_COMMIT in text
