"""Checkpoints of an older spikeship: resumed when what they saved still means the same,
refused with :class:`ObsoleteCheckpointError` (naming why) when they used a removed
option or predate the ``qat`` field."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from spikeship.errors import ObsoleteCheckpointError
from spikeship.io import sha256_file
from spikeship.train.checkpoint import load_checkpoint
from spikeship.train.config import TrainConfig
from spikeship.train.trainer import Trainer


def _cfg():
    return TrainConfig(model="tiny-mlp", hidden=9, epochs=2, timesteps=3, batch_size=256,
                       prune="dpap", prune_options={"preset": "paper", "warmup": 0})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run and one stopped after epoch 1 (copied per test)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("obsolete")
    Trainer(_cfg(), root / "full", progress=False, quiet=True).run()
    Trainer(_cfg(), root / "part", progress=False, quiet=True).run(stop_after=1)
    return root


def _copy(runs, tmp_path):
    import shutil

    shutil.copytree(runs / "part", tmp_path / "run")
    return tmp_path / "run"


def _edit_meta(run, change):
    p = run / "checkpoint" / "meta.json"
    meta = json.loads(p.read_text())
    change(meta)
    p.write_text(json.dumps(meta))


def _resume(run):
    Trainer(_cfg(), run, progress=False, quiet=True).run(resume=True)


def test_old_checkpoint_with_removed_options_at_their_inert_values_resumes_exactly(
        runs, tmp_path):
    run = _copy(runs, tmp_path)
    old = {"distill": 0.0, "cut_steps": 1, "cut_every": 1, "budget_start": 0.0,
           "budget_end": 0.0, "run_epochs": 0, "paper_epochs": 60.0}
    _edit_meta(run, lambda m: m["pruner"]["meta"]["config"].update(old))
    _resume(run)
    a, b = load_checkpoint(runs / "full"), load_checkpoint(run)
    assert a.tensors.keys() == b.tensors.keys()
    for k, v in a.tensors.items():
        assert torch.equal(v, b.tensors[k]), k


@pytest.mark.parametrize("key,value", [("distill", 0.5), ("cut_steps", 3),
                                       ("budget_end", 14.0)])
def test_old_checkpoint_that_used_a_removed_option_is_refused(runs, tmp_path, key, value):
    run = _copy(runs, tmp_path)
    _edit_meta(run, lambda m: m["pruner"]["meta"]["config"].update({key: value}))
    with pytest.raises(ObsoleteCheckpointError, match=f"removed \\({key}={value}\\)"):
        _resume(run)


def test_old_checkpoint_with_teacher_outputs_is_refused(runs, tmp_path):
    run = _copy(runs, tmp_path)
    ck = run / "checkpoint"
    tensors = load_file(ck / "tensors.safetensors")
    tensors["teacher/outputs"] = torch.zeros(3, 10)
    save_file(tensors, ck / "tensors.safetensors")
    _edit_meta(run, lambda m: m.update(tensors_sha256=sha256_file(ck / "tensors.safetensors")))
    with pytest.raises(ObsoleteCheckpointError, match="distils from a teacher"):
        _resume(run)


def test_old_checkpoint_saved_before_the_qat_field_is_refused(runs, tmp_path):
    run = _copy(runs, tmp_path)
    _edit_meta(run, lambda m: [m["config"].pop(k) for k in ("qat", "qat_epochs")])
    with pytest.raises(ObsoleteCheckpointError, match="before the 'qat' field"):
        _resume(run)
