"""Distillation after DPAP's cut: the loss by hand, the teacher taken at the right time
from the right network, resume bit for bit, and a checkpoint without its teacher refused."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from spikeship.errors import CheckpointError, ConfigError
from spikeship.io import sha256_file
from spikeship.train.losses import distill_loss, mse_rate, teacher_stat
from spikeship.train.pruners.dpap import DPAPPruner


def test_distill_loss_by_hand():
    out = torch.tensor([[[1.0, 0.0]], [[0.0, 0.0]]])          # T=2, B=1, K=2: rate [0.5, 0]
    teacher = torch.tensor([[0.2, 0.6]])
    assert torch.equal(teacher_stat("mse_rate", out), torch.tensor([[0.5, 0.0]]))
    assert teacher_stat("ce_rate", out).tolist() == [[1.0, 0.0]]   # counts
    assert distill_loss("mse_rate", out, teacher).item() == pytest.approx(0.3**2 + 0.6**2)
    # cross-entropy towards the teacher's softmax: -sum p log q
    p = torch.softmax(teacher[0], -1)
    q = torch.log_softmax(torch.tensor([1.0, 0.0]), -1)
    assert distill_loss("ce_rate", out, teacher).item() == pytest.approx(float(-(p * q).sum()))


def test_mixed_mse_is_eq3_towards_the_blended_target():
    """(1 - a) * Eq 3 + a * ||t - rate||^2 has the gradient of Eq 3 towards
    (1 - a) * onehot + a * t (the two differ by a constant)."""
    torch.manual_seed(0)
    a = 0.3
    out = torch.rand(4, 5, 3, requires_grad=True)
    y = torch.tensor([0, 2, 1, 1, 0])
    t = torch.rand(5, 3)
    mixed = (1 - a) * mse_rate(out, y) + a * distill_loss("mse_rate", out, t)
    (g1,) = torch.autograd.grad(mixed, out)
    target = (1 - a) * F.one_hot(y, 3).float() + a * t
    blended = ((target - out.mean(0)) ** 2).sum(-1).mean()
    (g2,) = torch.autograd.grad(blended, out)
    assert torch.allclose(g1, g2, atol=1e-7)


def test_distill_option_validated_and_only_in_cut_mode():
    with pytest.raises(ConfigError, match="distill acts after the cut"):
        DPAPPruner({"preset": "paper", "distill": 0.5})
    with pytest.raises(ConfigError, match="distill must be in"):
        DPAPPruner({"distill": 1.5})
    pr = DPAPPruner({"distill": 0.5})
    pr.set_run(10)                     # cut_at 0.4: the cut in epoch 5
    assert (pr.teacher_epoch(), pr.distill_weight()) == (5, 0.5)
    pr = DPAPPruner({"distill": 0.0})
    pr.set_run(10)
    assert (pr.teacher_epoch(), pr.distill_weight()) == (0, 0.0)


def _cfg(**prune):
    from spikeship.train.config import TrainConfig

    return TrainConfig(model="tiny-mlp", hidden=9, epochs=4, timesteps=3, batch_size=128,
                       prune="dpap", prune_options=prune)


@pytest.mark.slow
def test_teacher_is_the_network_at_the_start_of_the_cut_epoch_and_resume_is_exact(tmp_path):
    """tiny-mlp on digits, 4 epochs, the cut in epoch 2 (cut_at 0.4): the teacher's outputs
    are the rates of the network saved after epoch 1, on every training sample in order;
    stop + resume before and after the teacher was taken gives the run bit for bit; the
    run equals the one without distillation until the teacher teaches, and not after."""
    from spikeship.data import load_dataset
    from spikeship.train.checkpoint import load_checkpoint
    from spikeship.train.models import build_model, forward_sequence
    from spikeship.train.trainer import Trainer

    cfg = _cfg(distill=0.5)
    full = Trainer(cfg, tmp_path / "full", progress=False, quiet=True)
    full.run()
    assert full.teacher_epoch == 2
    for stop in (1, 2):
        d = tmp_path / f"part{stop}"
        Trainer(cfg, d, progress=False, quiet=True).run(stop_after=stop)
        assert ("teacher/outputs" in load_checkpoint(d).tensors) == (stop >= 2)
        Trainer(cfg, d, progress=False, quiet=True).run(resume=True)
        a, b = load_checkpoint(tmp_path / "full"), load_checkpoint(d)
        assert a.tensors.keys() == b.tensors.keys()
        for k, v in a.tensors.items():
            assert torch.equal(v, b.tensors[k]), (stop, k)

    # the teacher, recomputed by hand from the epoch-1 network
    Trainer(cfg, tmp_path / "e1", progress=False, quiet=True).run(stop_after=1)
    e1 = load_checkpoint(tmp_path / "e1")
    model = build_model(e1.spec)
    model.load_state_dict(e1.group("model"))
    data = load_dataset("digits", timesteps=3)
    with torch.no_grad():
        rates = forward_sequence(model, data.train.x, timesteps=3).mean(0)
    teacher = load_checkpoint(tmp_path / "full").tensors["teacher/outputs"]
    assert teacher.shape == (len(data.train), 10)
    assert torch.allclose(teacher, rates, atol=1e-6)
    assert 0 < float(teacher.sum()) and set(torch.unique(teacher * 3).round().tolist()) <= {
        0.0, 1.0, 2.0, 3.0}

    plain = Trainer(_cfg(distill=0.0), tmp_path / "plain", progress=False, quiet=True)
    plain.run()
    m_kd = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    m_pl = [json.loads(x) for x in (tmp_path / "plain" / "metrics.jsonl").read_text().splitlines()]
    assert m_kd[0]["train_loss"] == m_pl[0]["train_loss"]      # epoch 1: nobody teaches
    assert m_kd[1]["train_loss"] != m_pl[1]["train_loss"]      # epoch 2: the teacher does
    assert not torch.equal(load_checkpoint(tmp_path / "full").group("model")["1.weight"],
                           load_checkpoint(tmp_path / "plain").group("model")["1.weight"])


@pytest.mark.slow
def test_checkpoint_past_the_teacher_without_its_outputs_is_refused(tmp_path):
    from spikeship.train.trainer import Trainer

    cfg = _cfg(distill=0.5)
    Trainer(cfg, tmp_path, progress=False, quiet=True).run(stop_after=2)
    ck = tmp_path / "checkpoint"
    tensors = load_file(ck / "tensors.safetensors")
    del tensors["teacher/outputs"]
    save_file(tensors, ck / "tensors.safetensors")
    meta = json.loads((ck / "meta.json").read_text())
    meta["tensors_sha256"] = sha256_file(ck / "tensors.safetensors")
    (ck / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="holds no teacher outputs"):
        Trainer(cfg, tmp_path, progress=False, quiet=True).run(resume=True)
