"""The pruning and the time-step benchmarks on their smallest setting, end to end (real
train / export / simulate / energy): their results are the runs' own figures, and the
runs one made are the runs the other reads (made once in the scratch folder)."""

from __future__ import annotations

import json

import pytest

from benchmarks import bench_prune_energy, bench_timesteps, runs, schema

TINY = ["--epochs", "1", "--limit-train", "96", "--prune", "magnitude",
        "--prune-opt", "target=0.6", "--prune-opt", "end=1"]


@pytest.mark.slow
def test_two_benchmarks_share_their_runs_and_report_the_runs_figures(tmp_path):
    scratch = tmp_path / "scratch"
    assert bench_prune_energy.main(["--out", str(scratch), "--timesteps", "2", *TINY]) == 0
    made = sorted(p.name for p in (scratch / "runs").iterdir())
    assert len(made) == 2 and all("-T2-s0-" in n for n in made)
    stamps = {n: (scratch / "runs" / n / "summary.json").stat().st_mtime_ns for n in made}
    assert bench_timesteps.main(["--out", str(scratch), "--timesteps", "2", *TINY]) == 0
    # the sweep at T = 2 needed exactly these two runs: none trained again, none added
    assert sorted(p.name for p in (scratch / "runs").iterdir()) == made
    assert all((scratch / "runs" / n / "summary.json").stat().st_mtime_ns == t
               for n, t in stamps.items())
    res = {d["name"]: d for d in schema.read_all(scratch / "results")}
    pe, ts = res["prune-digits-magnitude-target0.6-end1"], res["timesteps-digits-t2-s0"]
    by_kind = {r["kind"]: r for r in ts["rows"]}
    for kind, prune in (("dense", "none"), ("magnitude", "magnitude")):
        run = scratch / "runs" / next(n for n in made if f"digits-{prune}-" in n)
        en = json.loads((run / "energy.json").read_text())
        uj = en["totals_per_sample"]["energy_pj"] / 1e6
        assert by_kind[kind]["energy_uj"] == pytest.approx(uj, rel=1e-12)
        assert by_kind[kind]["edp_uj_steps"] == pytest.approx(2 * uj, rel=1e-12)
        side = "dense" if kind == "dense" else "pruned"
        assert pe["rows"][0][f"energy_uj_{side}"] == pytest.approx(uj, rel=1e-12)
        assert pe["rows"][0][f"synops_{side}"] == en["totals_per_sample"]["ops_effective"]
    assert by_kind["magnitude"]["pruned_pct"] == pytest.approx(60, abs=1)
    means = ts["summary"]["T2-dense-means"]
    assert means["energy_uj_vs_ref"] is None          # the reference (T = 8) is not swept
    assert not schema.ABS_PATH.search(pe["command"] + " " + ts["command"])


def test_a_run_is_named_by_every_setting():
    a = runs.settings(seed=0, timesteps=None)
    assert a == runs.settings(seed=0, timesteps=8)             # the CLI's T, said or not
    names = {runs.run_name(runs.settings(**kw)) for kw in (
        {}, {"seed": 1}, {"timesteps": 4}, {"prune": "dpap"}, {"limit_train": 96},
        {"prune": "dpap", "prune_options": {"preset": "deep"}}, {"epochs": 3})}
    assert len(names) == 7
    assert runs.run_name(runs.settings(prune="none", prune_options={"x": 1})) == \
        runs.run_name(runs.settings())                         # dense runs take no options
