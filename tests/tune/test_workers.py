"""Several workers on one SQLite study; a worker killed mid-trial; the test split."""

from __future__ import annotations

import json
import os
import signal
import tomllib
import time
from pathlib import Path

import optuna
import pytest

from spikeship import api
from spikeship.pipeline.config import PipelineConfig
from tests.tune.conftest import load, worker

DONE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def _finish(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-2000:]
    return out


def test_two_workers_share_one_study_and_never_read_the_test_split(dense_run, tmp_path):
    out = tmp_path / "study"
    procs = [worker(dense_run, out, 8), worker(dense_run, out, 8)]
    for p in procs:
        _finish(p)
    study = load(out)
    done = study.get_trials(states=DONE)
    assert 8 <= len(done) <= 9                  # one extra when both start the last at once
    trained = [t for t in study.trials if "same_as" not in t.user_attrs]
    paths = [t.user_attrs["path"] for t in trained]
    assert len(set(paths)) == len(paths)        # distinct trials, each its own run directory
    assert all((p and os.path.isdir(p)) for p in paths)
    pids = {t.user_attrs["worker"]["pid"] for t in done}
    assert pids == {p.pid for p in procs}       # both workers ran trials
    # two worker slots, so two sampler seeds; the presets enqueued once
    assert {t.user_attrs["worker"]["slot"] for t in done} == {0, 1}
    assert sorted(t.user_attrs.get("preset", "") for t in study.trials
                  if t.user_attrs.get("preset")) == ["chip", "deep"]
    front = json.loads((out / "pareto.json").read_text())
    assert sorted(p["trial"] for p in front["points"]) == sorted(
        t.number for t in study.best_trials if "same_as" not in t.user_attrs)
    assert {p["preset"] for p in front["presets"]} == {"chip", "deep"}
    for p in front["points"]:                   # each point as a pipeline configuration
        cfg = PipelineConfig.from_mapping(tomllib.loads(
            (out / "points" / f"trial-{p['trial']}.toml").read_text()))
        assert cfg.from_dense and cfg.prune == "dpap" and cfg.model == "tiny-mlp"
        assert f"synapse_budgets={cfg.prune_options['synapse_budgets']}" in p["prune_opt"]
    # the search read the training split and its validation carve, never the test split
    dense = json.loads((out / "dense.json").read_text())
    assert dense["splits_read"] == ["digits:train", "digits:validation"]
    for t in done:
        read = [] if "same_as" in t.user_attrs else ["digits:train", "digits:validation"]
        assert t.user_attrs["splits_read"] == read, t.number
    # the record is real: --pick (retrain on the whole training split, test once) reads it
    r = api.tune(dense_run, out, trials=8, epochs=(2, 2), floor=None, threads=1, resume=True,
                 pick="max accuracy with ops <= 1.0*dense")
    assert "digits:test" in r.pick["splits_read"]
    assert r.pick["dense"]["samples"] == 450 and r.pick["pruned"]["samples"] == 450
    lo, hi = r.pick["difference_ci95_pt"]
    assert lo <= r.pick["difference_pt"] <= hi


def test_killed_worker_loses_only_its_trial_and_resume_completes(dense_run, tmp_path):
    out = tmp_path / "study"
    proc = worker(dense_run, out, 4)
    running = study = None
    deadline = time.monotonic() + 90
    while running is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
        if (out / "study.db").exists():
            try:   # one storage connection, polled (each load_study takes a while)
                study = study or load(out)
                trials = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
            except Exception:   # noqa: BLE001 - the study is still being created
                continue
            running = next((t for t in trials if "path" in t.user_attrs and t.number >= 1),
                           None)
    if running is None:
        proc.kill()
        out_, err = proc.communicate(timeout=30)
        pytest.fail(f"no trial was caught running (worker exit {proc.returncode}):\n"
                    f"{out_[-2000:]}\n{err[-2000:]}")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    resumed = worker(dense_run, out, 4)
    log = _finish(resumed)
    study = load(out)
    killed = study.trials[running.number]
    assert killed.state == optuna.trial.TrialState.FAIL
    assert f"pid {proc.pid}" in killed.user_attrs["failed_because"]
    assert f"[{running.number}]" in log
    assert len(study.get_trials(states=DONE)) == 4
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert (out / "pareto.json").exists()


def test_a_point_sampled_again_takes_its_twins_outcome_without_training(dense_run, tmp_path):
    out = tmp_path / "study"
    api.tune(dense_run, out, trials=2, epochs=(2, 2), floor=None, threads=1)
    first = load(out).trials[0]
    load(out).enqueue_trial(first.params)         # the sampler proposes trial 0's point again
    api.tune(dense_run, out, trials=3, epochs=(2, 2), floor=None, threads=1, resume=True)
    again = load(out).trials[2]
    assert again.params == first.params and again.user_attrs["same_as"] == 0
    assert again.values == first.values and again.constraints == first.constraints
    assert again.user_attrs["splits_read"] == [] and "path" not in again.user_attrs
    assert not (out / "trials" / "0002").exists()
    doc = json.loads((out / "pareto.json").read_text())
    assert doc["trials"]["repeated"] == 1 and doc["trials"]["complete"] == 3
    assert 2 not in [p["trial"] for p in doc["points"]]


@pytest.mark.parametrize("pid_shift", [0, 1])
def test_a_live_worker_is_not_taken_for_dead(pid_shift):
    from spikeship.tune.workers import identity, is_gone

    me = identity()
    who = {**me, "started": me["started"] + pid_shift}   # a reused pid: other start time
    assert is_gone(who) is bool(pid_shift)


def test_hopeless_rule_stops_a_trial_below_the_floor_after_its_first_finetuning_epoch(
        dense_run, tmp_path):
    from spikeship.tune.trial import epoch_accuracy

    out = tmp_path / "study"
    api.tune(dense_run, out, trials=2, epochs=(3, 3), floor=0.99, threads=1)
    floor = 0.99 * json.loads((out / "dense.json").read_text())["float_accuracy"]
    for t in load(out).trials:
        acc = epoch_accuracy(Path(t.user_attrs["path"]), 2)
        if t.state == optuna.trial.TrialState.PRUNED:
            assert acc < floor and "below the floor" in t.user_attrs["hopeless"]
            assert not (Path(t.user_attrs["path"]) / "summary.json").exists()   # stopped
        else:
            assert t.state == optuna.trial.TrialState.COMPLETE and acc >= floor
