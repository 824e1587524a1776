"""benchmarks/bench_prune_energy.py on finished run directories (the script reuses them, so
no command runs): Loihi / Loihi 2 cores in the per-seed table, the "cores halved" line,
and the README block rewritten in a temporary README, nothing else of it touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench_loader import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_prune_energy")


def _finished_run(d: Path, acc: float, ops: float, cores: dict, units: dict,
                  epochs: int = 20, dpap: dict | None = None,
                  qat: tuple[bool, int] = (False, 0)) -> None:
    """The files bench_prune_energy reads from a run that went through train / export /
    simulate / energy (values chosen by the test)."""
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"qat": qat[0], "qat_epochs": qat[1]}))
    (d / "summary.json").write_text(json.dumps({"test_accuracy": acc, "epochs": epochs,
                                                "samples_train": 1347,
                                                "pruning_rate": 0.0 if units["0"] == 15 else 0.7}))
    (d / "model.net").write_bytes(b"")
    # the export keeps fc7's units less those left without synapses (here: 10 fewer)
    (d / "export.json").write_text(json.dumps({"layers": [
        {"layer": "fc7", "before": [300, 160], "after": [units["7"] - 10, 40]}]}))
    (d / "simulate-loihi-emu.json").write_text(json.dumps({"accuracy": acc - 0.002,
                                                           "samples": 450}))
    (d / "energy.json").write_text(json.dumps({
        "totals_per_sample": {"ops_effective": ops, "ops_dense": ops * 1.1,
                              "energy_pj": ops * 24.0},
        "vanish_check": {"passed": True, "summary": "ok"},
        "cores": {chip: {"before_pruning": {"cores": 9}, "after_pruning": {"cores": n}}
                  for chip, n in cores.items()}}))
    (d / "energy.rc").write_text("0")
    # the DPAP options the run's checkpoint records: the current default, resolved
    from spikeship.train.pruners.dpap_config import DPAPConfig

    (d / "checkpoint").mkdir()
    (d / "checkpoint" / "meta.json").write_text(json.dumps(
        {"pruner": {"name": "dpap", "meta": {"config": dpap or DPAPConfig().from_options(
            {}).to_json()}}}))
    totals = {"0": 15, "3": 40, "7": 300}
    (d / "metrics.jsonl").write_text(json.dumps({"epoch": 20, "layers": [
        {"name": k, "units_remaining": v, "units_total": totals[k],
         "synapses_remaining": 3 * v, "synapses_total": 4 * totals[k]}
        for k, v in units.items()]})
        + "\n")


README = """# project

Text above.

<!-- prune-table:begin -->
not generated yet: run `python benchmarks/bench_prune_energy.py --readme README.md`
<!-- prune-table:end -->

Text below stays.
"""


def test_cores_in_table_and_readme_block_rewritten(bench, tmp_path, capsys):
    out = tmp_path / "runs"
    for seed, (pl, pl2, c0) in enumerate([(4, 3, 9), (5, 4, 15)]):
        _finished_run(out / f"dense-s{seed}", 0.97, 500_000.0, {"loihi": 9, "loihi2": 8},
                      {"0": 15, "3": 40, "7": 300})
        _finished_run(out / f"dpap-s{seed}", 0.965, 150_000.0, {"loihi": pl, "loihi2": pl2},
                      {"0": c0, "3": 22, "7": 150}, epochs=50)
    readme = tmp_path / "README.md"
    readme.write_text(README)
    assert bench.main(["--seeds", "0-1", "--out", str(out), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# project\n\nText above.\n\n<!-- prune-table:begin -->\n")
    assert text.endswith("<!-- prune-table:end -->\n\nText below stays.\n")
    assert "not generated yet" not in text
    assert "| Loihi cores dense | Loihi cores pruned | Loihi 2 cores dense | Loihi 2 cores " \
           "pruned |" in text
    assert "| 12.00 | 3.60 | 9 | 4 | 8 | 3 | 0 |" in text          # seed 0: uJ, cores, exit
    assert "| 9/15 | 22/40 | 150/300 (140; 38 %) |" in text        # fc7: 450 of 1,200 synapses
    assert "| 9 | 5 | 8 | 4 | 0 |" in text                          # seed 1
    # seed 1 on Loihi: 9 / 5 = 1.8 < 2, so not halved on both chips
    assert ("cores dense/pruned: Loihi min 1.80, mean 2.02; Loihi 2 min 2.00, mean 2.33; "
            "cores halved on both chips (every seed): False") in text
    assert "epochs (from the runs' summaries): dense 20, pruned 50; training samples 1347" \
        in text
    # seed 1 keeps every conv0 channel: conv channels are still pruned on every seed
    assert "every seed prunes conv channels: True (conv0 not on every seed, conv3 every " \
           "seed)" in text
    assert "Machine: " in text and "Python " in text and " UTC." in text
    assert (f"Command: `python benchmarks/bench_prune_energy.py --seeds 0-1 --out {out} "
            f"--readme {readme}`") in text
    assert "cores halved on both chips" in capsys.readouterr().out
    # the trade-off figure is a real PNG, and --figure copies it
    fig = out / "dpap-tradeoff.png"
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and fig.stat().st_size > 10_000
    copy = tmp_path / "docs" / "fig.png"             # its folder is made
    assert bench.main(["--seeds", "0-1", "--out", str(out), "--figure", str(copy)]) == 0
    assert copy.read_bytes() == fig.read_bytes()
    # a second run replaces the block, it does not add one
    assert bench.main(["--seeds", "0", "--out", str(out), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.count("<!-- prune-table:begin -->") == 1 and "| 1 |" not in text
    assert "cores halved on both chips (every seed): True" in text
    assert "every seed prunes conv channels: True (conv0 every seed, conv3 every seed)" in text
    # a named block (--block) is written, and the default block left as it was
    two = readme.read_text() + "\n<!-- prune-table-l1:begin -->\nold\n<!-- prune-table-l1:end -->\n"
    readme.write_text(two)
    default_block = two[two.index("<!-- prune-table:begin -->"):two.index("<!-- prune-table:end -->")]
    assert bench.main(["--seeds", "0-1", "--out", str(out), "--readme", str(readme),
                       "--block", "l1"]) == 0
    text = readme.read_text()
    assert default_block in text and "\nold\n" not in text
    assert text.count("<!-- prune-table-l1:begin -->") == 1 and "| 1 |" in text


def test_readme_without_a_block_is_refused_before_any_run(bench, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no block\n")
    with pytest.raises(SystemExit, match="exactly one"):
        bench.main(["--seeds", "0", "--out", str(tmp_path / "none"), "--readme", str(readme)])
    assert not (tmp_path / "none").exists()
    assert readme.read_text() == "# no block\n"


def test_a_bad_pruner_option_is_refused_before_any_run(bench, tmp_path, capsys):
    """A typo in --prune-opt fails at once, not after the dense runs have trained."""
    for opts, msg in ((["--prune-opt", "preset=nope"], "preset='nope'"),
                      (["--prune-opt", "bogus=1"], "unknown dpap option(s) ['bogus']"),
                      (["--prune", "l1-filter", "--prune-opt", "objective=synops"],
                       "unknown option(s) ['objective']")):
        with pytest.raises(SystemExit) as e:
            bench.main(["--seeds", "0", "--out", str(tmp_path / "none"), *opts])
        assert e.value.code == 2 and msg in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_from_dense_runs_prune_the_dense_run_of_their_seed(bench, tmp_path):
    """--from-dense: the pruned run of seed S is trained with --init-from the dense run of
    seed S (the --epochs / --pruned-epochs and --dataset given), and the table says so."""
    out = tmp_path / "runs"
    _finished_run(out / "dense-e2-s0", 0.97, 500_000.0, {"loihi": 9, "loihi2": 8},
                  {"0": 15, "3": 40, "7": 300})
    # the pruned run is not there: the benchmark trains it (a real process), then stops at
    # export, which needs the dense run's real checkpoint: the command line is in the log
    with pytest.raises(SystemExit, match="train failed|export failed"):
        bench.main(["--seeds", "0", "--out", str(out), "--epochs", "2", "--pruned-epochs", "1",
                    "--from-dense", "--prune", "l1-filter"])
    log = (out / "fromdense-l1-filter-e2-p1-s0.log").read_text()
    assert f"--init-from {(out / 'dense-e2-s0').resolve()}" in log
    assert "--epochs 1" in log and "--prune l1-filter" in log



def test_paired_interval_from_the_two_runs_predictions(bench, tmp_path):
    """The difference of paired proportions: 3 samples only the pruned run gets right,
    5 only the dense one, of 100: -2 pt, SE sqrt(8 - 4/100)/100 = 2.82 pt."""
    import numpy as np

    labels = np.arange(100) % 10
    dense, pruned = labels.copy(), labels.copy()
    dense[:3] = (labels[:3] + 1) % 10        # only the pruned run right
    pruned[3:8] = (labels[3:8] + 1) % 10     # only the dense run right
    dense[8:10] = pruned[8:10] = (labels[8:10] + 2) % 10    # both wrong
    for name, pred in (("d", dense), ("p", pruned)):
        (tmp_path / name).mkdir()
        np.savez(tmp_path / name / "predictions.npz", predictions=pred, labels=labels,
                 sample_index=np.arange(100))
    lo, hi = bench.paired_ci(tmp_path / "d", tmp_path / "p")
    se = 100 * (8 - 4 / 100) ** 0.5 / 100
    z = 1.959963984540054
    assert abs(lo - (-2 - z * se)) < 1e-9 and abs(hi - (-2 + z * se)) < 1e-9
    np.savez(tmp_path / "p" / "predictions.npz", predictions=pruned, labels=labels,
             sample_index=np.arange(100)[::-1])          # another split order: no interval
    assert bench.paired_ci(tmp_path / "d", tmp_path / "p") is None
    assert bench.paired_ci(tmp_path / "d", tmp_path / "missing") is None


def test_cores_summary_when_only_the_pruned_graph_fits(bench):
    """MNIST's dense fc7 (fan-in 7,840) does not fit a Loihi core at all; pruned it does:
    reported as such and counted as halved; a pruned graph that does not fit is not."""
    rows = [(0, {"cores": {"loihi": None, "loihi2": 83}}, {"cores": {"loihi": 58, "loihi2": 13}})]
    text = bench.cores_summary(rows)
    assert "Loihi: 1 seed(s) where only the pruned graph fits on the chip" in text
    assert "Loihi 2 min 6.38" in text and text.endswith("(every seed): True")
    rows = [(0, {"cores": {"loihi": 9, "loihi2": 8}}, {"cores": {"loihi": None, "loihi2": 4}})]
    assert bench.cores_summary(rows).endswith("(every seed): False")


def test_pooled_interval_sums_the_seeds_pairs(bench):
    """Two seeds of 100 pairs each: b = 5 + 1, c = 3 + 1 of 200 -> -1 pt, SE
    sqrt(10 - 4/200)/200; one seed or a seed without pairs gives no line."""
    line = bench.pooled_paired_line([(5, 3, 100), (1, 1, 100)])
    se = 100 * (10 - 4 / 200) ** 0.5 / 200
    z = 1.959963984540054
    assert "2 seeds' 200 sample pairs: -1.00 pt" in line
    assert f"[{-1 - z * se:+.2f}, {-1 + z * se:+.2f}]" in line
    assert bench.pooled_paired_line([(5, 3, 100)]) == ""
    assert bench.pooled_paired_line([(5, 3, 100), None]) == ""


def test_limit_train_runs_live_in_their_own_folders(bench, tmp_path, capsys):
    """``--limit-train N``: the runs of the subset are ``dense-ltN-sS`` / ``TAG-ltN-sS``
    (never mixed up with full-split runs), and the table says how many samples trained."""
    out = tmp_path / "runs"
    _finished_run(out / "dense-lt300-s0", 0.9, 500_000.0, {"loihi": 9, "loihi2": 8},
                  {"0": 15, "3": 40, "7": 300})
    _finished_run(out / "dpap-lt300-s0", 0.89, 150_000.0, {"loihi": 4, "loihi2": 4},
                  {"0": 9, "3": 14, "7": 300}, epochs=50)
    assert bench.main(["--seeds", "0", "--out", str(out), "--limit-train", "300"]) == 0
    text = (out / "dpap-lt300-table.md").read_text()
    assert "| 0 | 90.00 | 89.00 |" in text and "pruned 50; training samples 1347" in text


def test_a_finished_run_of_other_dpap_options_is_named_not_reused(bench, tmp_path):
    """Runs are found by folder name; a DPAP run whose checkpoint records other options
    than the arguments resolve to now (e.g. an older default) stops the sweep, by name,
    before anything is reused or written; the same options given explicitly pass."""
    from spikeship.train.pruners.dpap_config import DPAPConfig

    old = DPAPConfig.from_options({"unit_budget_first": 0.25}).to_json()
    run = tmp_path / "chip-s0"
    _finished_run(run, 0.97, 1e5, {"loihi": 4}, {"0": 9, "3": 14, "7": 300}, dpap=old)
    with pytest.raises(SystemExit, match="unit_budget_first=0.25.*resolve to "
                                         "unit_budget_first="):
        bench.check_reused(run, ["--prune", "dpap"])
    bench.check_reused(run, ["--prune", "dpap", "--prune-opt", "unit_budget_first=0.25"])
    bench.check_reused(run, ["--prune", "l1-filter"])          # not DPAP: no check
    (run / "checkpoint" / "meta.json").write_text("{}")
    with pytest.raises(SystemExit, match="records no DPAP options"):
        bench.check_reused(run, ["--prune", "dpap"])


def test_a_finished_run_of_other_qat_is_named_not_reused(bench, tmp_path, capsys):
    """The folder suffix says which quantisation-aware training the bench asks for
    (none: --no-qat; -qat: --qat; -qatN: --qat-epochs N); a run in the folder trained
    otherwise (its config.json says) stops the sweep by name instead of being reused."""
    run = tmp_path / "dense-qat5-s0"
    _finished_run(run, 0.97, 1e5, {"loihi": 4}, {"0": 15, "3": 40, "7": 300}, qat=(True, 5))
    bench.check_reused(run, ["--qat", "--qat-epochs", "5"])
    for args, msg in ((["--qat"], "qat_epochs=5.*qat_epochs=0"),
                      (["--no-qat"], "qat=True.*qat=False"),
                      (["--qat", "--qat-epochs", "3"], "qat_epochs=5.*qat_epochs=3")):
        with pytest.raises(SystemExit, match=msg):
            bench.check_reused(run, args)
    # a run of an older bench (no -qat suffix) was --no-qat; --qat-epochs picks its folder
    out = tmp_path / "runs"
    _finished_run(out / "dense-s0", 0.9, 5e5, {"loihi": 9, "loihi2": 8},
                  {"0": 15, "3": 40, "7": 300})
    _finished_run(out / "dpap-s0", 0.89, 1.5e5, {"loihi": 4, "loihi2": 4},
                  {"0": 9, "3": 14, "7": 300}, epochs=50)
    assert bench.main(["--seeds", "0", "--out", str(out)]) == 0
    _finished_run(out / "dense-qat5-s0", 0.9, 5e5, {"loihi": 9}, {"0": 15, "3": 40, "7": 300})
    with pytest.raises(SystemExit, match="dense-qat5-s0 was trained with qat=False"):
        bench.main(["--seeds", "0", "--out", str(out), "--qat-epochs", "5"])


def test_pruned_runs_with_fewer_time_steps_live_in_their_own_folders(bench, tmp_path, capsys):
    """``--pruned-timesteps 4``: the pruned runs are ``TAG-T4-sS`` and train with
    ``--timesteps 4`` while the dense run keeps the CLI's T (its folder has no suffix);
    the summary splits the steps out of "from rates"; a run of another T is named, not
    reused (``--timesteps`` moves both runs to ``-TT`` folders)."""
    out = tmp_path / "runs"
    _finished_run(out / "dense-s0", 0.9, 500_000.0, {"loihi": 9, "loihi2": 8},
                  {"0": 15, "3": 40, "7": 300})
    _finished_run(out / "dpap-T4-s0", 0.89, 50_000.0, {"loihi": 4, "loihi2": 4},
                  {"0": 9, "3": 14, "7": 300}, epochs=50)
    cfg = out / "dpap-T4-s0" / "config.json"
    cfg.write_text(json.dumps({"qat": False, "qat_epochs": 0, "timesteps": 8}))
    with pytest.raises(SystemExit, match="dpap-T4-s0 was trained with 8 time steps; "
                                         "these arguments ask for 4"):
        bench.main(["--seeds", "0", "--out", str(out), "--pruned-timesteps", "4"])
    cfg.write_text(json.dumps({"qat": False, "qat_epochs": 0, "timesteps": 4}))
    assert bench.main(["--seeds", "0", "--out", str(out), "--pruned-timesteps", "4"]) == 0
    text = (out / "dpap-T4-table.md").read_text()
    # ops 500,000 / 50,000 = 10.00; unpruned wiring 55,000: rates 9.09 = 2 (steps) x 4.55
    assert "| 500,000 | 50,000 | 10.00 | 1.10 | 9.09 |" in text
    assert ("time steps dense / pruned: 8 / 4; 'from rates' includes them: from rates = "
            "(T dense / T pruned) x (rates per step, dense / pruned: min 4.55, mean 4.55)"
            in text)
    # --timesteps: the dense run is looked for in dense-T4-s0; one trained with T = 8 there
    # (its config.json says) is named
    _finished_run(out / "dense-T4-s0", 0.9, 5e5, {"loihi": 9}, {"0": 15, "3": 40, "7": 300})
    with pytest.raises(SystemExit, match="dense-T4-s0 was trained with 8 time steps"):
        bench.main(["--seeds", "0", "--out", str(out), "--timesteps", "4"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        bench.main(["--seeds", "0", "--out", str(out), "--pruned-timesteps", "0"])
    assert e.value.code == 2 and "--pruned-timesteps must be >= 1" in capsys.readouterr().err
