"""Named errors: a bad objective, storage URL or pick expression, a folder that is not a
study; and the carve."""

from __future__ import annotations

import numpy as np
import pytest

from spikeship import api
from spikeship.data import load_dataset
from spikeship.dirkind import TUNE, dir_kind
from spikeship.errors import ConfigError, RunDirError
from spikeship.tune.pick import PickError, parse, select
from spikeship.tune.study import claim_folder


def test_bad_objective_is_named(dense_run, tmp_path):
    with pytest.raises(ConfigError, match="--objective 'speed'"):
        api.tune(dense_run, tmp_path / "s", trials=1, objective="speed")
    assert not (tmp_path / "s").exists()


def test_bad_storage_url_is_named(dense_run, tmp_path):
    with pytest.raises(ConfigError, match="--storage 'nosuchdb://h/x'"):
        api.tune(dense_run, tmp_path / "s", trials=1, storage="nosuchdb://h/x")


def _files(d):
    return {p: p.stat().st_mtime_ns for p in d.rglob("*")}


def test_a_folder_that_is_not_a_study_is_refused_before_anything_is_written(dense_run,
                                                                              tmp_path):
    before = _files(dense_run)
    with pytest.raises(RunDirError, match="holds a training run"):
        api.tune(dense_run, dense_run, trials=1)
    assert _files(dense_run) == before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("mine")
    with pytest.raises(RunDirError, match="files spikeship did not write"):
        api.tune(dense_run, other, trials=1)
    assert sorted(p.name for p in other.iterdir()) == ["todo.txt"]


def test_a_new_study_folder_is_marked_and_an_old_one_is_recognised(tmp_path):
    claim_folder(tmp_path / "a" / "study")
    assert dir_kind(tmp_path / "a" / "study") == TUNE
    claim_folder(tmp_path / "a" / "study")          # a second worker joins
    old = tmp_path / "old"                          # a study from before the marker
    old.mkdir()
    (old / "study.db").write_bytes(b"")
    claim_folder(old)
    assert dir_kind(old) == TUNE and not (old / ".spikeship-dir").exists()


@pytest.mark.parametrize("expr, part", [
    ("max accurcy", "needs a metric"),
    ("ops >= five", "'five' is not a number"),
    ("ops => 3", "cannot read ' => 3'"),
    ("ops 3 <=", "expected 'metric <op> value'"),
    ("__import__('os').system('x')", "cannot read"),
    ("accuracy >= 90x", "takes a plain number"),
    ("ops >= 2x,", "missing at the end"),
    ("max accuracy ops <= 3", "expected 'with'"),
])
def test_bad_pick_expression_is_named(expr, part):
    with pytest.raises(PickError, match=part):
        parse(expr)


def test_pick_grammar_chooses_by_the_conditions():
    doc = {"dense": {"accuracy": 98.0, "ops": 1000.0, "energy_pj": 1.0, "cores": 4},
           "points": [{"trial": 1, "accuracy": 90.0, "ops": 100.0, "cores": 2},
                      {"trial": 2, "accuracy": 97.8, "ops": 250.0, "cores": 2},
                      {"trial": 3, "accuracy": 98.1, "ops": 600.0, "cores": 3}]}
    assert select(doc, parse("max accuracy with ops <= 0.3*dense"), "")["trial"] == 2
    assert select(doc, parse("ops>=4x,drop<=0.3"), "")["trial"] == 2
    assert select(doc, parse("ops >= 3x and drop <= 0.3"), "")["trial"] == 2
    assert select(doc, parse("min ops with accuracy >= 98"), "")["trial"] == 3
    assert select(doc, parse("min ops"), "")["trial"] == 1
    assert select(doc, parse("ops <= 25%"), "")["trial"] == 2
    with pytest.raises(PickError, match="no point of the front"):
        select(doc, parse("ops >= 20x"), "")


def test_validation_carve_is_a_stratified_seeded_part_of_the_training_split():
    full = load_dataset("digits")
    a = load_dataset("digits", validation_carve=0.2)
    b = load_dataset("digits", validation_carve=0.2)
    idx = a.test.source_indices
    assert np.array_equal(idx, b.test.source_indices)             # seeded
    assert len(idx) == round(0.2 * len(full.train))
    assert not set(idx) & set(a.train.source_indices)             # disjoint
    assert len(a.train) + len(a.test) == len(full.train)
    assert np.array_equal(a.test.x.numpy(), full.train.x[idx].numpy())
    counts = np.bincount(a.test.y.numpy(), minlength=10)
    assert counts.max() - counts.min() <= 1                       # stratified
    with pytest.raises(ConfigError, match="validation_carve"):
        load_dataset("digits", validation_carve=1.5)
