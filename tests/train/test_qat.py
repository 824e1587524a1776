"""``--qat``: weights on the Loihi quantiser's 8-bit grid in the forward pass, for good at
the end; the grid is the quantiser's own (same values as it stores)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spikeship import cli
from spikeship.errors import ConfigError
from spikeship.targets.loihi.deployment import FORMAT
from spikeship.targets.loihi.quantize import quantize_weights
from spikeship.train import qat
from spikeship.train.checkpoint import load_checkpoint


def test_the_grid_is_the_quantisers():
    """grid(w) in float units = the mantissa the quantiser stores x max|w| / 127."""
    assert qat.WEIGHT_MANT_MAX == FORMAT.weight_mant_max
    rng = np.random.default_rng(0)
    for scale in (1e-3, 0.3, 7.0):
        w = (rng.normal(0, scale, (40, 60)) * (rng.random((40, 60)) < 0.7)).astype(np.float32)
        wmax = float(np.abs(w).max())
        s = 128.0 * FORMAT.weight_mant_max / wmax            # quantize.state_scale's S
        lava, sat = quantize_weights(w, s)                   # Lava values 2 m
        assert sat == 0
        expected = (lava // 2) * 128.0 / s                   # m in float units
        got = qat.on_grid(torch.from_numpy(w)).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7 * wmax)
        assert np.array_equal(got == 0, expected == 0)
        # on the grid already: unchanged (the export quantises it to the same mantissas)
        np.testing.assert_allclose(qat.on_grid(torch.from_numpy(got)).numpy(), got, rtol=1e-6)
    assert torch.equal(qat.on_grid(torch.zeros(3, 4)), torch.zeros(3, 4))


def _mantissas(w: torch.Tensor) -> torch.Tensor:
    return w * (qat.WEIGHT_MANT_MAX / w.abs().max())


def test_qat_run_saves_grid_weights_and_trains_at_them(tmp_path, capsys):
    """A direct-encoded run: conv3, fc7, fc9 end on the grid, conv0 (host) does not; the
    test accuracy training reports is that of the saved weights."""
    out = tmp_path / "q"
    assert cli.main(["train", "--out", str(out), "--epochs", "2", "--limit-train", "150",
                     "--limit-test", "60", "--timesteps", "3", "--no-progress", "--threads",
                     "1", "--qat",
                     "--prune", "l1-filter", "--prune-opt", "start=1", "--prune-opt",
                     "end=1", "--prune-opt", "layers=3:0.5"]) == 0
    ck = load_checkpoint(out)
    for i in (3, 7, 9):
        m = _mantissas(ck.model[i].weight.detach())
        assert torch.allclose(m, torch.round(m), atol=1e-3), i
    m0 = _mantissas(ck.model[0].weight.detach())
    assert not torch.allclose(m0, torch.round(m0), atol=1e-3)      # the host layer: float
    assert json.loads((out / "config.json").read_text())["qat"] is True
    # the saved weights give the accuracy training reported (snntorch target = the model)
    assert cli.main(["simulate", str(out), "--target", "snntorch"]) == 0
    sim = json.loads((out / "simulate-snntorch.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert sim["accuracy"] == pytest.approx(summary["test_accuracy"])


def test_qat_refused_where_it_does_not_apply(tmp_path, capsys):
    rc = cli.main(["train", "--out", str(tmp_path / "a"), "--ann", "--qat", "--epochs", "1"])
    assert rc == ConfigError.exit_code and "qat" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


def test_weights_on_grid_restores_the_float_weights():
    lin = torch.nn.Linear(5, 4)
    before = lin.weight.detach().clone()
    with qat.weights_on_grid([lin]):
        inside = lin.weight.detach().clone()
        m = _mantissas(inside)
        assert torch.allclose(m, torch.round(m), atol=1e-4)
        assert not torch.equal(inside, before)
    assert torch.equal(lin.weight.detach(), before)


def test_models_with_batchnorm_are_refused():
    from spikeship.train.models import ModelSpec, build_model
    from spikeship.train.structure import describe

    spec = ModelSpec("dpap-cifar", (3, 8, 8), 10, pool="avg")
    model = build_model(spec)
    with pytest.raises(ConfigError, match="BatchNorm"):
        qat.chip_layers(model, describe(model, spec.input_shape), "direct")
    spec = ModelSpec("dpap-mnist", (1, 8, 8), 10)
    model = build_model(spec)
    layers = describe(model, spec.input_shape)
    assert qat.chip_layers(model, layers, "direct") == [model[3], model[7], model[9]]
    assert qat.chip_layers(model, layers, "frames") == [model[0], model[3], model[7], model[9]]


def test_qat_run_resumes_exactly(tmp_path):
    """Stopped after epoch 1 (float master weights in the checkpoint) and resumed: the same
    final weights, on the grid, as the run in one go."""
    from spikeship.train.config import TrainConfig
    from tests.train.fixture_pruners import assert_exact_resume

    cfg = TrainConfig(model="dpap-mnist", epochs=2, batch_size=64, limit_train=100,
                      limit_test=30, timesteps=2, qat=True, prune="l1-filter",
                      prune_options={"start": 1, "end": 1, "layers": "3:0.5"})
    ck = assert_exact_resume(cfg, tmp_path)
    m = _mantissas(ck.model[7].weight.detach())
    assert torch.allclose(m, torch.round(m), atol=1e-3)


def _train_stop(out, *extra, stop=None):
    args = ["train", "--out", str(out), "--epochs", "3", "--limit-train", "100",
            "--limit-test", "30", "--timesteps", "2", "--no-progress", "--threads", "1",
            *extra]
    if stop:
        args += ["--stop-after", str(stop)]
    assert cli.main(args) == 0


def test_qat_epochs_trains_in_float_first_then_on_the_grid(tmp_path):
    """``--qat-epochs 1`` of 3: epochs 1-2 are bitwise the float run's (the grid is off),
    epoch 3 is not, and the saved weights end on the grid; full ``--qat`` differs from
    epoch 1 on."""
    _train_stop(tmp_path / "float", "--no-qat", stop=2)
    _train_stop(tmp_path / "last1", "--qat-epochs", "1", stop=2)
    _train_stop(tmp_path / "all", "--qat", stop=2)
    f, l1, a = (load_checkpoint(tmp_path / n).model for n in ("float", "last1", "all"))
    for i in (3, 7, 9):
        assert torch.equal(f[i].weight, l1[i].weight), i
    assert not all(torch.equal(f[i].weight, a[i].weight) for i in (3, 7, 9))
    cfg = json.loads((tmp_path / "last1" / "config.json").read_text())
    assert (cfg["qat"], cfg["qat_epochs"]) == (True, 1)
    # the last epoch: on the grid in the forward pass, so no longer the float run's
    _train_stop(tmp_path / "float", "--resume")
    _train_stop(tmp_path / "last1", "--resume")
    f, l1 = load_checkpoint(tmp_path / "float").model, load_checkpoint(tmp_path / "last1").model
    for i in (3, 7, 9):
        m = _mantissas(l1[i].weight.detach())
        assert torch.allclose(m, torch.round(m), atol=1e-3), i
        assert not torch.equal(f[i].weight, l1[i].weight), i


def test_qat_epochs_needs_qat(tmp_path, capsys):
    from spikeship.train.config import TrainConfig

    with pytest.raises(ConfigError, match="qat_epochs"):
        TrainConfig(qat=False, qat_epochs=3)
    with pytest.raises(ConfigError, match="qat_epochs"):
        TrainConfig(ann=True, qat_epochs=3)
    rc = cli.main(["train", "--out", str(tmp_path / "a"), "--qat-epochs", "-1"])
    assert rc == ConfigError.exit_code and "qat_epochs" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


def test_the_default_is_the_last_epochs_on_the_grid(tmp_path):
    """Unset, an SNN trains its last DEFAULT_QAT_EPOCHS epochs on the grid and an ANN not
    at all; ``--qat`` alone is every epoch (as before the default existed), ``--no-qat``
    none; a run saved before the field existed resumes in float."""
    from spikeship.train.run import resolve_config
    from spikeship.train.config import DEFAULT_QAT_EPOCHS, TrainConfig

    def resolved(**kw):
        c = TrainConfig(**kw)
        return c.qat, c.qat_epochs

    assert resolved() == (True, DEFAULT_QAT_EPOCHS) and DEFAULT_QAT_EPOCHS > 0
    assert resolved(ann=True) == (False, 0)
    assert resolved(qat=True) == (True, 0)
    assert resolved(qat=False) == (False, 0)
    assert resolved(qat_epochs=2) == (True, 2)
    # a run saved before the field existed is refused on resume (test_obsolete.py)
    assert resolve_config({"qat": False}, out=tmp_path / "n", resume=False,
                          config_file=None).qat is False
    # what the saved config records is the resolved value, so a resume keeps it
    out = tmp_path / "d"
    assert cli.main(["train", "--out", str(out), "--epochs", "1", "--limit-train", "40",
                     "--limit-test", "20", "--timesteps", "2", "--no-progress",
                     "--threads", "1"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert (saved["qat"], saved["qat_epochs"]) == (True, DEFAULT_QAT_EPOCHS)
