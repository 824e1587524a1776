"""benchmarks/bench_prune_energy.py on finished run directories (files written by the test):
a row's ratio and its two factors, cores and units from the runs' files; the paired
interval from two runs' predictions; the seeds' pairs pooled; the result schema-checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import bench_prune_energy as bench
from benchmarks import common, schema

Z = 1.959963984540054


def _finished_run(d: Path, acc: float, ops: float, cores: dict, units: dict,
                  timesteps: int = 8) -> Path:
    """The files a run has after train / export / simulate / energy (values from the test)."""
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"timesteps": timesteps}))
    (d / "summary.json").write_text(json.dumps({
        "test_accuracy": acc, "epochs": 20, "samples_train": 1347,
        "pruning_rate": 0.0 if units["0"] == 15 else 0.7}))
    (d / "export.json").write_text(json.dumps({"layers": [
        {"layer": "fc7", "before": [300, 160], "after": [units["7"] - 10, 40]}]}))
    (d / "simulate-loihi-emu.json").write_text(json.dumps({"accuracy": acc - 0.002}))
    (d / "energy.json").write_text(json.dumps({
        "totals_per_sample": {"ops_effective": ops, "ops_dense": ops * 1.25,
                              "energy_pj": ops * 24.0},
        "cores": {chip: {"after_pruning": {"cores": n}} for chip, n in cores.items()}}))
    (d / "energy.rc").write_text("0")
    totals = {"0": 15, "3": 40, "7": 300}
    (d / "metrics.jsonl").write_text(json.dumps({"epoch": 20, "layers": [
        {"name": k, "units_remaining": v, "units_total": totals[k],
         "synapses_remaining": 3 * v, "synapses_total": 4 * totals[k]}
        for k, v in units.items()]}) + "\n")
    return d


def test_a_row_from_two_finished_runs(tmp_path):
    d = bench.measure(_finished_run(tmp_path / "d", 0.97, 500_000.0,
                                    {"loihi": 9, "loihi2": 8}, {"0": 15, "3": 40, "7": 300}))
    p = bench.measure(_finished_run(tmp_path / "p", 0.965, 125_000.0,
                                    {"loihi": None, "loihi2": 4}, {"0": 15, "3": 10, "7": 300}))
    r = bench.row(3, d, p, (5, 3, 450))
    assert r["ratio"] == pytest.approx(4.0)
    # from structure: pruned spikes on the unpruned wiring / on its own = 1.25;
    # from rates: dense ops / pruned on the unpruned wiring = 500k / 156.25k = 3.2
    assert r["from_structure"] == pytest.approx(1.25) and r["from_rates"] == pytest.approx(3.2)
    assert r["from_structure"] * r["from_rates"] == pytest.approx(r["ratio"])
    assert (r["conv3_kept"], r["conv3_total"], r["fc7_deployed"]) == (10, 40, 290)
    assert (r["loihi_cores_pruned"], r["loihi2_cores_pruned"]) == (None, 4)
    assert r["diff_pt"] == pytest.approx(-0.5) and r["energy_uj_dense"] == pytest.approx(12.0)
    lo, hi = r["diff_lo"], r["diff_hi"]
    se = 100 * (8 - 4 / 450) ** 0.5 / 450
    assert lo == pytest.approx(100 * -2 / 450 - Z * se) and hi == pytest.approx(
        100 * -2 / 450 + Z * se)


def test_paired_counts_from_the_two_runs_predictions(tmp_path):
    """3 samples only the pruned run gets right, 5 only the dense one, of 100; another
    sample order or a missing file: no pairs."""
    labels = np.arange(100) % 10
    dense, pruned = labels.copy(), labels.copy()
    dense[:3] = (labels[:3] + 1) % 10
    pruned[3:8] = (labels[3:8] + 1) % 10
    for name, pred in (("d", dense), ("p", pruned)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
        np.savez(tmp_path / name / "predictions.npz", predictions=pred, labels=labels,
                 sample_index=np.arange(100))
    assert bench.paired(tmp_path / "d", tmp_path / "p") == (5, 3, 100)
    np.savez(tmp_path / "p" / "predictions.npz", predictions=pruned, labels=labels,
             sample_index=np.arange(100)[::-1])
    assert bench.paired(tmp_path / "d", tmp_path / "p") is None


def _rows():
    base = {"emu_dense": 97.0, "emu_pruned": 96.0, "energy_uj_dense": 10.0,
            "energy_uj_pruned": 2.5}
    return [{**base, "seed": 0, "diff_pt": -1.0, "float_dense": 97.0, "float_pruned": 96.0,
             "ratio": 4.0, "pairs_only_dense": 5, "pairs_only_pruned": 3, "pairs": 100},
            {**base, "seed": 1, "diff_pt": 0.0, "float_dense": 98.0, "float_pruned": 98.0,
             "ratio": 3.0, "pairs_only_dense": 1, "pairs_only_pruned": 1, "pairs": 100}]


def test_summary_pools_the_seeds_pairs_and_gives_intervals_over_seeds():
    """Two seeds of 100 pairs: b = 6, c = 4 of 200 -> -1 pt, SE sqrt(10 - 4/200)/200."""
    runs_ = [{"float": 97.0, "emu": 96.8, "epochs": 20, "samples_train": 1347,
              "timesteps": 8}] * 2
    s = bench.summarise(_rows(), runs_, runs_)
    se = 100 * (10 - 4 / 200) ** 0.5 / 200
    assert s["pooled_diff_pt"]["mean"] == pytest.approx(-1.0)
    assert s["pooled_diff_pt"]["lo"] == pytest.approx(-1 - Z * se)
    # over seeds: mean -0.5, SE 0.5, t(0.975, 1) = 12.706
    d = s["diff_float_pt"]
    assert d["mean"] == -0.5 and d["se"] == pytest.approx(0.5)
    assert d["hi"] == pytest.approx(-0.5 + 12.7062047 * 0.5, rel=1e-6)
    assert s["ratio"] == {"min": 3.0, "mean": 3.5}
    assert common.mean_interval([1.0])["lo"] is None          # one seed: no interval
    rows = _rows()
    rows[1]["pairs"] = None
    assert "pooled_diff_pt" not in bench.summarise(rows, runs_, runs_)


def test_the_result_is_schema_checked_and_holds_no_absolute_path(tmp_path, monkeypatch):
    import argparse

    args = argparse.Namespace(out=tmp_path / "scratch", results=False)
    path = common.write_result(
        args, name="prune-x", module=bench.MODULE, argv=["--out", str(tmp_path / "scratch")],
        topic="pruning", title="t", description="d", rows=[], summary={"seeds": 0})
    doc = schema.read(path)
    assert path.parent == tmp_path / "scratch" / "results"
    out_arg = doc["command"].split("--out ")[1].split()[0]
    assert not out_arg.startswith("/") and not schema.ABS_PATH.search(doc["command"])
    assert (Path.cwd() / out_arg).resolve() == (tmp_path / "scratch").resolve()
    with pytest.raises(schema.ResultsSchemaError, match="topic"):
        common.write_result(args, name="prune-y", module=bench.MODULE, argv=[], topic="nope",
                            title="t", description="d", rows=[], summary={})
