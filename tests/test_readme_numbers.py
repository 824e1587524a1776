"""The README's headline block: the renderer fills the marked block of whatever README has
the markers, from results/*.json, and touches nothing else."""

from __future__ import annotations

from pathlib import Path

from benchmarks import common, render, schema

ROOT = Path(__file__).resolve().parents[1]


def test_headline_block_is_filled_and_the_rest_untouched(tmp_path):
    before, after = "# title\n\nintro\n\n", "\n\n## after\nkept as is\n"
    readme = tmp_path / "README.md"
    readme.write_text(before + f"{render.BEGIN}\nold figures 12.34 %\n{render.END}" + after)
    render.render(ROOT / "results", None, readme)
    text = readme.read_text()
    assert text.startswith(before) and text.endswith(after)
    block = text[len(before):len(text) - len(after)]
    assert block.startswith(render.BEGIN) and block.endswith(render.END)
    assert "old figures" not in block
    # the digits line pools the four seed sets of DPAP's default: its numbers are the JSON's
    rows = [r for n in render.HEADLINE["digits"]
            for r in schema.read(ROOT / "results" / f"{n}.json")["rows"]]
    dense = common.mean_interval([r["float_dense"] for r in rows])
    ratio = sum(r["ratio"] for r in rows) / len(rows)
    line = next(ln for ln in block.splitlines() if ln.startswith("| digits |"))
    assert f"| {len(rows)} | {dense['mean']:.2f} [{dense['lo']:.2f}, {dense['hi']:.2f}] |" in line
    assert f"{ratio:.2f}x" in line
    assert "| MNIST (6,000 training samples) | 5 |" in block
    again = readme.read_text()
    render.render(ROOT / "results", None, readme)
    assert readme.read_text() == again                 # re-rendered: the same bytes


def test_a_readme_without_markers_is_left_alone(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no block here\n")
    written = render.render(ROOT / "results", None, readme)
    assert readme.read_text() == "# no block here\n" and readme not in written
