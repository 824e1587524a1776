"""benchmarks/bench_timesteps.py end to end on a tiny sweep: real train / export / simulate /
energy processes; the EDP column is the energy the runs' own energy.json files hold x T."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TAG = "magnitude-target0.6-end1"


@pytest.mark.slow
def test_tiny_sweep_reports_edp_from_the_runs_energy_files(tmp_path):
    out = tmp_path / "sweep"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_timesteps.py"),
           "--timesteps", "2,4", "--seeds", "0", "--epochs", "1", "--limit-train", "96",
           "--limit-test", "30", "--ref-timesteps", "4", "--out", str(out),
           "--prune", "magnitude", "--prune-opt", "target=0.6", "--prune-opt", "end=1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads((out / "timesteps-magnitude-target0.6-end1.json").read_text())
    assert {(s["timesteps"], s["kind"]) for s in res["summary"]} == \
        {(2, "dense"), (2, TAG), (4, "dense"), (4, TAG)}
    assert res["reference"] == {"kind": "dense", "timesteps": 4}
    energies = set()
    for row in res["runs"]:
        run = Path(row["run"])
        en = json.loads((run / "energy.json").read_text())
        cfg = json.loads((run / "config.json").read_text())
        assert cfg["timesteps"] == row["timesteps"] == en["spikes"]["timesteps"]
        assert cfg["prune"] == ("none" if row["kind"] == "dense" else "magnitude")
        assert cfg["qat"] is False                      # the sweep's default: --no-qat
        if row["kind"] == TAG:
            assert cfg["prune_options"] == {"target": 0.6, "end": 1}
            assert row["pruning_rate"] == pytest.approx(0.6, abs=0.01)
        uj = en["totals_per_sample"]["energy_pj"] / 1e6
        energies.add(round(uj, 9))
        assert row["energy_uj"] == pytest.approx(uj, rel=1e-12)
        assert row["edp_uj_steps"] == pytest.approx(uj * cfg["timesteps"], rel=1e-12)
        assert row["synops"] == pytest.approx(en["totals_per_sample"]["ops_effective"])
        assert row["emu"] == json.loads((run / "simulate-loihi-emu.json").read_text())["accuracy"]
        assert row["latency_model_s"] == pytest.approx(cfg["timesteps"] * 1e-3)
    assert len(energies) == 4                       # four runs, four measured energies
    by = {(s["timesteps"], s["kind"]): s for s in res["summary"]}
    assert by[(4, TAG)]["synops"] < by[(4, "dense")]["synops"]      # pruning saves operations
    ref = next(s for s in res["summary"] if s["kind"] == "dense" and s["timesteps"] == 4)
    for s in res["summary"]:
        assert s["edp_uj_steps"] == pytest.approx(s["energy_uj"] * s["timesteps"])
        assert s["edp_uj_steps_vs_ref"] == pytest.approx(s["edp_uj_steps"] / ref["edp_uj_steps"])
        assert s["float_se_pt"] is None                      # one seed: no standard error
    # the markdown table carries the same EDP figures, and the plot exists
    md = (out / "timesteps-magnitude-target0.6-end1.md").read_text()
    assert f"epochs 1 (dense 1, {TAG} 1)" in md               # from the runs' summaries
    for s in res["summary"]:
        assert f"| {s['timesteps']} | {s['kind']} | 1 |" in md
        assert f"| {s['edp_uj_steps']:.3f} |" in md
    assert (out / "timesteps-magnitude-target0.6-end1.png").stat().st_size > 1000
    # a second call reuses every finished run (no new training) and writes the same table
    r2 = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert (out / "timesteps-magnitude-target0.6-end1.md").read_text() == md
    assert "$ spikeship train" not in (out / "dense-T2-e1-s0.log").read_text().split(
        "$ spikeship energy")[-1]
    # --readme: the summary (not the per-seed table) goes into the marked block, with
    # the command; text around the block is untouched
    readme = tmp_path / "README.md"
    readme.write_text("above\n\n<!-- prune-table-timesteps:begin -->\nold\n"
                      "<!-- prune-table-timesteps:end -->\n\nbelow\n")
    r3 = subprocess.run([*cmd, "--readme", str(readme)], capture_output=True, text=True,
                        timeout=300)
    assert r3.returncode == 0, r3.stderr[-2000:]
    text = readme.read_text()
    assert text.startswith("above\n\n<!-- prune-table-timesteps:begin -->\n")
    assert text.endswith("<!-- prune-table-timesteps:end -->\n\nbelow\n")
    assert "\nold\n" not in text and "written by benchmarks/bench_timesteps.py" in text
    for s in res["summary"]:
        assert f"| {s['edp_uj_steps']:.3f} |" in text
    assert "| T | kind | seed |" not in text
    assert "Command: `python benchmarks/bench_timesteps.py --timesteps 2,4" in text


def test_a_run_of_other_qat_settings_is_refused_not_reused(tmp_path):
    """The sweep trains ``--no-qat`` unless ``--qat-epochs N``; a run folder whose
    config.json says otherwise (or, saved before the fields existed, says nothing: float)
    is checked against that, field by field."""
    import argparse

    from tests.bench_loader import load_benchmark

    bt = load_benchmark("bench_timesteps")
    args = argparse.Namespace(dataset="digits", prune_opt=[], limit_train=None,
                              limit_test=None, epochs=None, qat_epochs=None)
    run = tmp_path / "dense-T8-s0"
    run.mkdir()
    old = {"dataset": "digits", "timesteps": 8, "seed": 0, "prune": "none",
           "prune_options": {}, "limit_train": None, "limit_test": None}
    (run / "config.json").write_text(json.dumps(old))          # no qat fields: float
    bt.check_reused(run, bt.expected_config(args, 8, 0, "none"))
    args.qat_epochs = 5
    with pytest.raises(SystemExit, match="qat"):
        bt.check_reused(run, bt.expected_config(args, 8, 0, "none"))
    (run / "config.json").write_text(json.dumps({**old, "qat": True, "qat_epochs": 5}))
    bt.check_reused(run, bt.expected_config(args, 8, 0, "none"))
    args.qat_epochs = None
    with pytest.raises(SystemExit, match="qat"):
        bt.check_reused(run, bt.expected_config(args, 8, 0, "none"))
