"""Checkpoints: exact resume, atomic directory swap and recovery, no pickles, misfits named."""

import json
import os
import pickle
import shutil

import pytest
import torch

from spikeship.errors import CheckpointError, ConfigError, MaskError
from spikeship.io import read_jsonl
from spikeship.io import sha256_file as _sha256
from spikeship.train.checkpoint import (META, TENSORS, checkpoint_dir, load_checkpoint,
                                        recover_checkpoint,
                                        save_checkpoint)
from spikeship.train.config import TrainConfig
from spikeship.train.masks import MaskSet
from spikeship.train.models import ModelSpec, build_model
from spikeship.train.pruners import PRUNERS
from spikeship.train.structure import describe
from spikeship.train.trainer import train

CFG = dict(model="tiny-mlp", hidden=9, epochs=4, batch_size=48, prune="test-random",
           prune_options={"per_epoch": 30})


@pytest.fixture(autouse=True)
def _register(monkeypatch):
    monkeypatch.setitem(PRUNERS, "test-random", "tests.train.fixture_pruners:RandomStatePruner")


def _tensors(run):
    return load_checkpoint(run).tensors


def test_resume_reproduces_an_uninterrupted_run_bit_for_bit(tmp_path):
    cfg = TrainConfig(**CFG)
    full = train(cfg, tmp_path / "full", progress=False, quiet=True)
    assert train(cfg, tmp_path / "split", stop_after=2, progress=False, quiet=True) == {}
    assert not (tmp_path / "split" / "summary.json").exists()
    assert load_checkpoint(tmp_path / "split").epoch == 2
    resumed = train(cfg, tmp_path / "split", resume=True, progress=False, quiet=True)
    a, b = _tensors(tmp_path / "full"), _tensors(tmp_path / "split")
    assert set(a) == set(b)
    assert any(k.startswith("optim/") for k in a) and "pruner/seen" in a
    for k in a:   # weights, masks, AdamW moments, pruner tensors, RNG states
        assert torch.equal(a[k], b[k]), k
    assert int(a["pruner/seen"]) == 4 * 29            # ceil(1347 / 48) batches per epoch
    ma, mb = read_jsonl(tmp_path / "full" / "metrics.jsonl"), \
        read_jsonl(tmp_path / "split" / "metrics.jsonl")
    assert [m["train_loss"] for m in ma] == [m["train_loss"] for m in mb]
    assert [m["pruner"] for m in ma] == [m["pruner"] for m in mb]
    assert [m["params_remaining"] for m in ma] == [m["params_remaining"] for m in mb]
    assert ma[-1]["params_remaining"] < ma[0]["params_total"]
    for k in ("test_accuracy", "params_remaining", "pruning_rate", "epochs"):
        assert full[k] == resumed[k]
    assert load_checkpoint(tmp_path / "split").pruner_state()[1]["history"] == \
        load_checkpoint(tmp_path / "full").pruner_state()[1]["history"]


def test_resume_drops_metrics_written_after_the_checkpoint(tmp_path):
    cfg = TrainConfig(**{**CFG, "epochs": 2})
    train(cfg, tmp_path / "r", stop_after=1, progress=False, quiet=True)
    with open(tmp_path / "r" / "metrics.jsonl", "a") as f:      # a line from a lost epoch
        f.write(json.dumps({"epoch": 2, "train_loss": 9.9}) + "\n")
    train(cfg, tmp_path / "r", resume=True, progress=False, quiet=True)
    m = read_jsonl(tmp_path / "r" / "metrics.jsonl")
    assert [x["epoch"] for x in m] == [1, 2] and m[1]["train_loss"] != 9.9


def test_resume_refuses_other_settings_but_may_extend(tmp_path):
    cfg = TrainConfig(**{**CFG, "epochs": 2})
    train(cfg, tmp_path / "r", progress=False, quiet=True)
    with pytest.raises(ConfigError, match="field 'hidden'"):
        train(cfg.replace(hidden=5), tmp_path / "r", resume=True, progress=False, quiet=True)
    with pytest.raises(ConfigError, match="field 'model'"):
        train(cfg.replace(model="dpap-mnist", prune="none"), tmp_path / "r", resume=True,
              progress=False, quiet=True)
    s = train(cfg.replace(epochs=3), tmp_path / "r", resume=True, progress=False, quiet=True)
    assert s["epochs"] == 3 and len(read_jsonl(tmp_path / "r" / "metrics.jsonl")) == 3
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train(cfg, tmp_path / "nothing", resume=True, progress=False, quiet=True)


def _small_checkpoint(run, hidden=5, epoch=1, spec_hidden=None):
    torch.manual_seed(0)
    spec = ModelSpec("tiny-mlp", (1, 7, 5), 3, hidden=hidden)
    model = build_model(spec)
    masks = MaskSet(model, describe(model, spec.input_shape))
    masks.prune_units("1", torch.tensor([False, True, False, False, False]))
    masks.apply()
    if spec_hidden is not None:
        spec = ModelSpec("tiny-mlp", (1, 7, 5), 3, hidden=spec_hidden)
    save_checkpoint(run, model=model, spec=spec, masks=masks, config={"x": 1}, epoch=epoch)
    return model


def test_loaded_checkpoint_has_masks_applied_and_eval_mode(tmp_path):
    model = _small_checkpoint(tmp_path)
    ck = load_checkpoint(tmp_path)
    assert not ck.model.training and ck.epoch == 1 and ck.config == {"x": 1}
    assert ck.spec.hidden == 5 and [li.name for li in ck.layers] == ["1", "3"]
    assert ck.model[1].weight[1].abs().sum() == 0 and ck.model[3].weight[:, 1].abs().sum() == 0
    assert torch.equal(ck.model[1].weight, model[1].weight)
    assert sorted(os.listdir(tmp_path / "checkpoint")) == [META, TENSORS]


def test_loading_never_unpickles(tmp_path, monkeypatch):
    _small_checkpoint(tmp_path)

    def refuse(*a, **k):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert load_checkpoint(tmp_path).epoch == 1


def test_interrupted_swaps_recover(tmp_path):
    """The reader finds the complete checkpoint and changes nothing; the writer's
    :func:`recover_checkpoint` puts it back under checkpoint/."""
    _small_checkpoint(tmp_path, epoch=1)
    cur, new, old = (tmp_path / n for n in ("checkpoint", "checkpoint.new", "checkpoint.old"))
    # 1. crash after checkpoint/ was moved aside, before checkpoint.new/ was renamed
    _small_checkpoint(tmp_path / "x", epoch=2)
    shutil.copytree(tmp_path / "x" / "checkpoint", new)
    os.replace(cur, old)
    assert load_checkpoint(tmp_path).epoch == 2
    assert new.is_dir() and old.is_dir() and not cur.exists()     # the reader changed nothing
    assert recover_checkpoint(tmp_path)
    assert cur.is_dir() and not new.exists() and not old.exists()
    assert load_checkpoint(tmp_path).epoch == 2
    # 2. crash while writing checkpoint.new/ (no meta.json yet): the old one stays
    new.mkdir()
    (new / TENSORS).write_bytes(b"partial")
    assert load_checkpoint(tmp_path).epoch == 2 and new.exists()
    recover_checkpoint(tmp_path)
    assert load_checkpoint(tmp_path).epoch == 2 and not new.exists()
    # 3. only the moved-aside old checkpoint survived
    os.replace(cur, old)
    assert load_checkpoint(tmp_path).epoch == 2 and not cur.is_dir()
    recover_checkpoint(tmp_path)
    assert cur.is_dir() and not old.exists()


def test_corrupt_or_misfit_checkpoints_are_named_errors(tmp_path):
    _small_checkpoint(tmp_path / "a")
    t = tmp_path / "a" / "checkpoint" / TENSORS
    t.write_bytes(t.read_bytes()[:-7] + b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "a")
    # another architecture: weights of hidden=5 under a spec saying hidden=4
    _small_checkpoint(tmp_path / "b", spec_hidden=4)
    with pytest.raises(CheckpointError, match="does not fit the model.*1.weight"):
        load_checkpoint(tmp_path / "b")
    # masks that do not fit their weights
    _small_checkpoint(tmp_path / "c")
    d = tmp_path / "c" / "checkpoint"
    from safetensors.torch import load_file, save_file

    tens = load_file(str(d / TENSORS))
    tens["mask/weight.3"] = tens["mask/weight.3"][:, :2].contiguous()
    save_file(tens, str(d / TENSORS))
    meta = json.loads((d / META).read_text())
    meta["tensors_sha256"] = _sha256(d / TENSORS)
    (d / META).write_text(json.dumps(meta))
    with pytest.raises(MaskError, match="weight.3"):
        load_checkpoint(tmp_path / "c")
    meta["format_version"] = 99
    (d / META).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="format 99"):
        load_checkpoint(tmp_path / "c")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        checkpoint_dir(tmp_path / "empty")
