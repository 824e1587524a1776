"""``spikeship compare`` on run directories written to tmp_path (the trainer's file shapes)."""

from __future__ import annotations

import json

import pytest

from spikeship.cli import main
from spikeship.errors import RunDirError
from spikeship.io import append_jsonl, write_json_atomic
from spikeship.report.compare import compare_runs, to_markdown


def make_run(root, name, *, pruner="none", accs=(0.5, 0.8, 0.9), remaining=1000, total=1000,
             options=None, seed=0, timesteps=4, model="dpap-mnist", energy=None):
    d = root / name
    d.mkdir()
    for e, a in enumerate(accs, 1):
        append_jsonl(d / "metrics.jsonl", {"epoch": e, "test_accuracy": a})
    write_json_atomic(d / "config.json", {"dataset": "digits", "model": model, "ann": False,
                                          "timesteps": timesteps, "seed": seed,
                                          "prune": pruner, "prune_options": options or {}})
    write_json_atomic(d / "summary.json", {
        "dataset": "digits", "model": model, "ann": False, "pruner": pruner,
        "prune_options": options or {}, "timesteps": timesteps, "seed": seed,
        "test_accuracy": accs[-1], "params_total": total, "params_remaining": remaining,
        "pruning_rate": 1 - remaining / total, "epochs": len(accs),
        "dense_baseline_accuracy": None, "epochs_to_baseline": None})
    if energy is not None:
        write_json_atomic(d / "energy.json", energy)
    return d


def test_rows_against_the_dense_run(tmp_path):
    dense = make_run(tmp_path, "dense", accs=(0.5, 0.8, 0.9))
    pq = make_run(tmp_path, "pq", pruner="pq-layer", accs=(0.6, 0.92, 0.91), remaining=406,
                  options={"end": 2}, energy={"per": "sample", "totals_per_sample": {
                      "synops_effective": 1.5e5, "synops_dense": 4.0e5,
                      "macs_effective": 800.0, "macs_dense": 1200.0}})
    mag = make_run(tmp_path, "mag", pruner="magnitude", accs=(0.4, 0.7, 0.85), remaining=406)
    rows = compare_runs([dense, pq, mag])
    d, p, m = rows
    assert d.method == "dense" and d.accuracy_change_pct == pytest.approx(0.0)
    assert d.epochs_to_dense_accuracy == 3
    assert p.method == "pq-layer (end=2)"
    assert p.top1_accuracy_pct == pytest.approx(91.0)
    assert p.accuracy_change_pct == pytest.approx(1.0)
    assert p.connectivity_pct == pytest.approx(40.6)
    assert p.epochs_to_dense_accuracy == 2
    assert p.synops_effective_per_sample == 1.5e5 and p.synops_dense_per_sample == 4.0e5
    assert p.macs_effective_per_sample == 800.0 and m.macs_effective_per_sample is None
    assert m.accuracy_change_pct == pytest.approx(-5.0)
    assert m.epochs_to_dense_accuracy is None
    assert "not reached in 3 epochs" in m.notes["epochs_to_dense_accuracy"]
    assert "no energy.json" in m.notes["synops_effective_per_sample"]
    md = to_markdown(rows)
    assert ("| pq-layer (end=2) | dpap-mnist | 4 | 3 | 91.00 | — | — | +1.00 | 40.60 | 406 "
            "| 150 K |") in md  # no samples_test in these summaries: no interval
    assert "no energy.json" in md and "not reached in 3 epochs" in md
    assert "MACs of a first layer" in md


def test_cli_writes_markdown_and_json(tmp_path, capsys):
    dense = make_run(tmp_path, "dense")
    rnd = make_run(tmp_path, "rnd", pruner="random", accs=(0.3, 0.6), remaining=250,
                   energy={"layers": [{"synops_effective": 10.0, "synops_dense": 30.0},
                                      {"synops_effective": 5.0, "synops_dense": 7.0}]})
    out = tmp_path / "tables" / "cmp.md"
    assert main(["compare", str(dense), str(rnd), "--out", str(out), "--rank", "given"]) == 0
    assert "| random |" in capsys.readouterr().out
    md = out.read_text()
    data = json.loads(out.with_suffix(".json").read_text())
    assert sum(line.startswith("| ") for line in md.splitlines()) == 3   # header + 2 rows
    r = data["rows"][1]
    assert r["run"] == "rnd" and r["connectivity_pct"] == pytest.approx(25.0)
    assert r["synops_effective_per_sample"] == 15.0 and r["synops_dense_per_sample"] == 37.0
    assert r["accuracy_change_pct"] == pytest.approx(-30.0)
    assert r["dense_run"] == str(dense)


def test_no_matching_dense_run_says_why(tmp_path):
    dense = make_run(tmp_path, "dense", timesteps=8)
    pq = make_run(tmp_path, "pq", pruner="pq-neuron", timesteps=4)
    rows = compare_runs([dense, pq])
    assert rows[1].accuracy_change_pct is None
    assert "no dense run" in rows[1].notes["accuracy_change_pct"]
    forced = compare_runs([pq], dense=dense)[0]       # --dense overrides the matching
    assert forced.accuracy_change_pct == pytest.approx(0.0)


def test_prefers_the_dense_run_with_the_same_seed(tmp_path):
    d0 = make_run(tmp_path, "d0", accs=(0.7,), seed=0)
    d1 = make_run(tmp_path, "d1", accs=(0.9,), seed=1)
    pq = make_run(tmp_path, "pq", pruner="pq-layer", accs=(0.8,), seed=1)
    assert compare_runs([d0, d1, pq])[2].accuracy_change_pct == pytest.approx(-10.0)


def test_bad_run_dirs(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        compare_runs([tmp_path / "nope"])
    (tmp_path / "half").mkdir()
    with pytest.raises(RunDirError, match="no summary.json"):
        compare_runs([tmp_path / "half"])
    (tmp_path / "half" / "summary.json").write_text("{broken")
    with pytest.raises(RunDirError, match="not valid JSON"):
        compare_runs([tmp_path / "half"])
    assert main(["compare", str(tmp_path / "nope")]) == 1


def test_ranked_by_effective_operations_with_the_dense_runs_energy(tmp_path, capsys):
    def energy(ops, uj):
        return {"hardware": "loihi", "totals_per_sample": {
            "synops_effective": ops - 100.0, "synops_dense": 2 * ops, "macs_effective": 100.0,
            "ops_effective": ops, "energy_pj": uj * 1e6}}

    dense = make_run(tmp_path, "dense", energy=energy(9000.0, 12.0))
    a = make_run(tmp_path, "a", pruner="dpap", remaining=300, energy=energy(3000.0, 4.0))
    b = make_run(tmp_path, "b", pruner="magnitude", remaining=300, energy=energy(4500.0, 6.0))
    c = make_run(tmp_path, "c", pruner="random", remaining=300)
    rows = compare_runs([dense, b, c, a], rank="ops")
    assert [r.run for r in rows] == ["a", "b", "dense", "c"]
    assert rows[0].ops_reduction_vs_dense == pytest.approx(3.0)
    assert rows[0].energy_uj_per_sample == pytest.approx(4.0)
    assert rows[2].ops_reduction_vs_dense == pytest.approx(1.0)
    assert "no energy.json" in rows[3].notes["ops_effective_per_sample"]
    nodense = make_run(tmp_path, "dense2", seed=1)
    d = make_run(tmp_path, "d", pruner="dpap", seed=1, energy=energy(3000.0, 4.0))
    row = compare_runs([nodense, d])[1]
    assert row.ops_reduction_vs_dense is None
    assert "dense2 has no energy.json" in row.notes["ops_reduction_vs_dense"]
    assert main(["compare", str(dense), str(a), str(b)]) == 0
    table = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| ")]
    assert table[1].startswith("| dpap |") and "| 3.00 | 4 |" in table[1]


def _with_predictions(run, correct_mask, n_test):
    """Give a fixture run a test-set size and per-sample predictions (label 0 everywhere;
    a wrong prediction is class 1)."""
    import numpy as np

    from spikeship.train.predictions import save_predictions

    correct = np.asarray(correct_mask, bool)
    save_predictions(run, np.where(correct, 0, 1), np.zeros(n_test, np.int64))
    s = json.loads((run / "summary.json").read_text())
    s.update(samples_test=n_test, test_accuracy=float(correct.mean()))
    write_json_atomic(run / "summary.json", s)


def test_compare_prints_intervals_and_mcnemar_worked_by_hand(tmp_path, capsys):
    import numpy as np

    # 100 test samples. dense right on 0..89 (90); pruned right on 0..79 and 90..98 (89).
    # Discordant: only dense right 80..89 (10), only pruned right 90..98 (9):
    # p = 2 * sum_{i<=9} C(19, i) / 2^19 = 2 * 262144 / 524288 = 1.0 (capped).
    dense = make_run(tmp_path, "dense")
    pruned = make_run(tmp_path, "dpap", pruner="dpap")
    idx = np.arange(100)
    _with_predictions(dense, idx < 90, 100)
    _with_predictions(pruned, (idx < 80) | ((idx >= 90) & (idx < 99)), 100)
    # a third run, right on only 0..69 (70): vs dense b = 20, c = 0 -> p = 2 / 2^20
    worse = make_run(tmp_path, "worse", pruner="random")
    _with_predictions(worse, idx < 70, 100)
    out = tmp_path / "cmp.md"
    assert main(["compare", str(dense), str(pruned), str(worse), "--out", str(out)]) == 0
    md = capsys.readouterr().out
    assert "| 90.00 | [82.56, 94.48] | 100 |" in md
    assert "| 89.00 | [81.37, 93.75] | 100 |" in md
    assert ("dense vs dpap: n = 100, 90 vs 89 correct; only dense right: 10, only dpap right: "
            "9; p = 1 (not significant)") in md
    assert "dense vs worse: n = 100, 90 vs 70 correct; only dense right: 20" in md
    assert f"p = {2 / 2 ** 20:.4g} (significant)" in md
    data = json.loads(out.with_suffix(".json").read_text())
    t = data["mcnemar"][1]
    assert (t["a_only"], t["b_only"], t["significant"]) == (20, 0, True)
    assert t["p_value"] == 2 / 2 ** 20


def test_compare_refuses_mcnemar_on_different_samples_and_reports_seed_spread(tmp_path,
                                                                             capsys):
    import numpy as np

    runs = []
    for seed, acc in ((0, 0.96), (1, 0.98), (2, 0.97)):
        r = make_run(tmp_path, f"s{seed}", seed=seed, accs=(acc,))
        runs.append(r)
    _with_predictions(runs[0], np.arange(10) < 9, 10)
    _with_predictions(runs[1], np.arange(20) < 19, 20)
    assert main(["compare", *map(str, runs[:2])]) == 0
    md = capsys.readouterr().out
    assert "s0 vs s1: no test (s0 and s1 were tested on different samples)" in md
    assert main(["compare", *map(str, runs)]) == 0
    md = capsys.readouterr().out
    assert "Seeds [0, 1, 2] (s0, s1, s2): accuracy" in md


def test_every_rows_energy_is_priced_on_one_chip(tmp_path, capsys):
    """energy.json prices every chip; a column never mixes them: the chip most runs were
    made for (ties: the first run's), or --hardware; a chip without published figures
    (Loihi 2) leaves the cell empty with the reason."""
    def energy(own, uj_loihi):
        chips = {"loihi": {"total_pj": uj_loihi * 1e6, "notes": []},
                 "loihi2": {"total_pj": None,
                            "notes": ["not priced: Intel has published no per-operation "
                                      "energy for Loihi 2"]},
                 "cmos45": {"total_pj": 3 * uj_loihi * 1e6, "notes": []}}
        return {"hardware": own, "energy_pj_per_sample": chips, "totals_per_sample": {
            "synops_effective": 900.0, "synops_dense": 2000.0, "macs_effective": 100.0,
            "ops_effective": 1000.0, "energy_pj": chips[own]["total_pj"]}}

    a = make_run(tmp_path, "a", pruner="dpap", remaining=300, energy=energy("loihi", 4.0))
    b = make_run(tmp_path, "b", pruner="magnitude", remaining=300,
                 energy=energy("cmos45", 6.0))
    c = make_run(tmp_path, "c", pruner="random", remaining=300, energy=energy("cmos45", 5.0))
    rows = compare_runs([a, b, c])                       # cmos45: two of three runs
    assert {r.energy_hardware for r in rows} == {"cmos45"}
    assert [r.energy_uj_per_sample for r in rows] == pytest.approx([12.0, 18.0, 15.0])
    rows = compare_runs([a, b, c], rank="energy", hardware="loihi")
    assert [r.run for r in rows] == ["a", "c", "b"]
    assert [r.energy_uj_per_sample for r in rows] == pytest.approx([4.0, 5.0, 6.0])
    row = compare_runs([a], hardware="loihi2")[0]
    assert row.energy_uj_per_sample is None and row.ops_effective_per_sample == 1000.0
    assert "no per-operation energy for Loihi 2" in row.notes["energy_uj_per_sample"]
    # an energy.json of an older spikeship (its own chip only) cannot be priced elsewhere
    old = make_run(tmp_path, "old", pruner="dpap", remaining=300, energy={
        "hardware": "loihi", "totals_per_sample": {"ops_effective": 1000.0,
                                                   "energy_pj": 4e6}})
    assert compare_runs([old])[0].energy_uj_per_sample == pytest.approx(4.0)
    row = compare_runs([old], hardware="cmos45")[0]
    assert row.energy_uj_per_sample is None
    assert "prices loihi, not cmos45" in row.notes["energy_uj_per_sample"]
    assert main(["compare", str(a), str(b), str(c), "--hardware", "loihi"]) == 0
    out = capsys.readouterr().out
    assert "Energy per sample priced on: loihi (energy.json)." in out
    assert main(["compare", str(a), "--hardware", "nochip"]) == 2
