"""The trainer: run-dir artifacts, the pruner life cycle, determinism, losses, schedule."""

import json

import pytest
import torch

from spikeship.errors import ConfigError, RunDirError
from spikeship.io import read_jsonl
from spikeship.train import losses
from spikeship.train.checkpoint import load_checkpoint
from spikeship.train.config import TrainConfig, lr_at
from spikeship.train.pruners import PRUNERS
from spikeship.train.trainer import Trainer, train

TINY = dict(model="tiny-mlp", hidden=7, epochs=2, batch_size=64)


@pytest.fixture
def test_pruners(monkeypatch):
    monkeypatch.setitem(PRUNERS, "test-logging", "tests.train.fixture_pruners:LoggingPruner")
    monkeypatch.setitem(PRUNERS, "test-random", "tests.train.fixture_pruners:RandomStatePruner")


def _run(tmp_path, name="run", **kw):
    cfg = TrainConfig(**{**TINY, **kw})
    t = Trainer(cfg, tmp_path / name, progress=False, quiet=True)
    return t, t.run()


def test_run_dir_artifacts_and_pruner_life_cycle(tmp_path, test_pruners):
    t, summary = _run(tmp_path, prune="test-logging")
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text()) == t.config.to_json()
    assert t.config.to_json()["loss"] == "mse_rate" and t.config.lr == 2e-3
    # life cycle: attach, (after_backward, after_batch) per batch, end_epoch, ..., detach
    ev = t.pruner.events
    per_epoch = ["after_backward", "after_batch"] * t.steps_per_epoch
    assert t.steps_per_epoch == 22                         # ceil(1347 / 64)
    assert ev == ["attach", *per_epoch, "end_epoch:1", *per_epoch, "end_epoch:2", "detach"]
    # gradients are still dense at after_backward; pruned weights are zero after the step
    assert len(t.pruner.dense_grad_seen) == t.steps_per_epoch and any(t.pruner.dense_grad_seen)
    assert t.pruner.zero_after_step and all(t.pruner.zero_after_step)
    metrics = read_jsonl(run / "metrics.jsonl")
    assert [m["epoch"] for m in metrics] == [1, 2]
    total = 64 * 7 + 7 * 10
    for e, m in enumerate(metrics, start=1):
        for k in ("train_loss", "test_accuracy", "params_total", "params_remaining",
                  "pruning_rate", "wall_time_s", "layers", "pruner", "lr"):
            assert k in m
        assert m["params_total"] == total
        hidden = m["layers"][0]
        assert hidden["name"] == "1" and hidden["units_remaining"] == 7 - e
        # a removed hidden unit takes its 64 inputs and its 10 outgoing synapses with it
        assert m["params_remaining"] == total - e * (64 + 10) - 20
        assert m["pruning_rate"] == pytest.approx((e * 74 + 20) / total)
        assert m["pruner"] == {"pruned_unit": e - 1, "as_tensor": [e, 2 * e]}
    s = json.loads((run / "summary.json").read_text())
    assert s == summary
    for k, v in {"dataset": "digits", "model": "tiny-mlp", "pruner": "test-logging", "epochs": 2,
                 "params_total": total, "dense_baseline_accuracy": None,
                 "epochs_to_baseline": None}.items():
        assert s[k] == v
    assert s["test_accuracy"] == metrics[-1]["test_accuracy"]
    # the accuracy reported is the pruned net's, as checkpointed
    ck = load_checkpoint(run)
    assert ck.epoch == 2 and int(ck.masks.units["1"].sum()) == 5
    assert t.evaluate() == metrics[-1]["test_accuracy"]


def test_training_is_deterministic_and_seeded(tmp_path):
    _run(tmp_path, "a", epochs=1)
    _run(tmp_path, "b", epochs=1)
    _run(tmp_path, "c", epochs=1, seed=1)
    a, b, c = (load_checkpoint(tmp_path / n).group("model") for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["1.weight"], c["1.weight"])


def test_snn_and_ann_twin_learn_digits(tmp_path):
    _, s = _run(tmp_path, "snn", epochs=3, hidden=32, batch_size=32)
    assert s["test_accuracy"] > 0.5 and s["loss"] == "mse_rate"
    _, a = _run(tmp_path, "ann", epochs=3, hidden=32, ann=True)
    assert a["test_accuracy"] > 0.8 and a["loss"] == "ce"


def toy_frames(*, data_dir=None, timesteps=3, seed=0):
    """A frames dataset whose class is *when* a pixel is on (step 1 or step 2)."""
    import numpy as np

    from spikeship.data import ArrayDataset, DatasetBundle

    y = np.random.default_rng(seed).integers(0, 2, 60)
    x = np.zeros((60, timesteps, 1, 2, 2), np.float32)
    x[np.arange(60), 1 + y, 0, 0, 0] = 3.0
    return DatasetBundle("toy", ArrayDataset(x, y), ArrayDataset(x, y), (1, 2, 2), 2,
                         "frames", timesteps)


def test_frames_dataset_is_fed_one_frame_per_step(tmp_path, monkeypatch):
    from spikeship.data import DATASETS

    monkeypatch.setitem(DATASETS, "toy", "tests.train.test_trainer:toy_frames")
    # the snntorch engine calls the net once per step (the fast engine: tests/train/test_engines.py)
    t = Trainer(TrainConfig(dataset="toy", model="tiny-mlp", hidden=5, epochs=1, batch_size=7,
                            timesteps=3, engine="snntorch"), tmp_path / "f", progress=False,
                quiet=True)
    t.run()
    x = t.data.test.x[:4]                       # (B, T, C, H, W)
    seen = []
    h = t.model[1].register_forward_hook(lambda m, i, o: seen.append(i[0].detach().clone()))
    t.forward(x)
    h.remove()
    assert len(seen) == 3
    for step in range(3):
        assert torch.equal(seen[step].view(4, -1)[:, 0], x[:, step, 0, 0, 0])


def test_baseline_comparison_in_summary(tmp_path, test_pruners):
    _, dense = _run(tmp_path, "dense", epochs=3, hidden=16)
    cfg = TrainConfig(**{**TINY, "epochs": 3, "hidden": 16, "prune": "test-random"})
    s = train(cfg, tmp_path / "pruned", baseline_dir=tmp_path / "dense", progress=False, quiet=True)
    assert s["dense_baseline_accuracy"] == dense["test_accuracy"]
    accs = [m["test_accuracy"] for m in read_jsonl(tmp_path / "pruned" / "metrics.jsonl")]
    first = next((i + 1 for i, a in enumerate(accs) if a >= dense["test_accuracy"]), None)
    assert s["epochs_to_baseline"] == first
    with pytest.raises(RunDirError, match="no summary.json"):
        train(cfg, tmp_path / "p2", baseline_dir=tmp_path / "missing", progress=False, quiet=True)


def test_existing_run_dir_needs_resume(tmp_path):
    _run(tmp_path, epochs=1)
    with pytest.raises(RunDirError, match="--resume"):
        _run(tmp_path, epochs=1)


def test_progress_bar_and_epoch_lines(tmp_path):
    from rich.console import Console

    con = Console(record=True, width=200, force_terminal=False)
    Trainer(TrainConfig(**{**TINY, "epochs": 2}), tmp_path / "r", console=con).run()
    lines = [ln for ln in con.export_text().splitlines() if ln.startswith("epoch")]
    assert len(lines) == 2 and "test" in lines[0] and "pruned" in lines[0]


def test_cuda_without_cuda_is_a_config_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ConfigError, match="device"):
        Trainer(TrainConfig(device="cuda"), tmp_path)
    assert Trainer(TrainConfig(device="auto"), tmp_path).device.type == "cpu"


# ---- losses --------------------------------------------------------------------------------
def test_mse_rate_is_eq3():
    out = torch.tensor([[[1., 0., 1.]], [[1., 0., 0.]]])       # T=2, B=1, K=3 spikes
    # rate = (1, 0, .5); label 0: (1-1)^2 + 0^2 + (0-.5)^2 = 0.25
    assert losses.mse_rate(out, torch.tensor([0])).item() == pytest.approx(0.25)
    # label 2: 1 + 0 + .25
    assert losses.mse_rate(out, torch.tensor([2])).item() == pytest.approx(1.25)
    assert losses.predict(out).tolist() == [0]


def test_ce_losses_and_mode_checks():
    out = torch.tensor([[[2., 0.]], [[1., 1.]]])
    y = torch.tensor([1])
    assert losses.ce_rate(out, y).item() == pytest.approx(
        torch.nn.functional.cross_entropy(torch.tensor([[3., 1.]]), y).item())
    assert losses.ce_mem(out, y).item() == pytest.approx(
        torch.nn.functional.cross_entropy(torch.tensor([[1.5, .5]]), y).item())
    with pytest.raises(ConfigError, match="'loss'"):
        losses.get_loss("ce", ann=False)
    with pytest.raises(ConfigError, match="'loss'"):
        losses.get_loss("mse_rate", ann=True)


def test_ce_mem_uses_the_output_membrane(tmp_path):
    t = Trainer(TrainConfig(**{**TINY, "epochs": 1, "loss": "ce_mem"}), tmp_path,
                progress=False, quiet=True)
    t.run()
    x = t.data.test.x[:5]
    mem = t.forward(x, membrane=True)
    spk = t.forward(x)
    assert mem.shape == spk.shape == (8, 5, 10)
    # u > V_th exactly where the output fired (Eq 2)
    assert torch.equal((mem > 0.5).float(), spk)


# ---- schedule and config -------------------------------------------------------------------
def test_lr_warmup_then_cosine():
    assert lr_at(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(10, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0) == pytest.approx(0.5)
    assert lr_at(99, 100, 10, 1.0, 0.1) == pytest.approx(0.1, abs=1e-3)
    assert lr_at(0, 5, 10, 1.0) == pytest.approx(0.2)      # warm-up longer than the run


@pytest.mark.parametrize("field,value,msg", [
    ("epochs", 0, "'epochs' must be >= 1|'epochs' must be in"),
    ("timesteps", -1, "'timesteps' must be in"),
    ("lr", 0.0, "'lr' must be in"),
    ("lr", "fast", "'lr' must be a number"),
    ("batch_size", 2.5, "'batch_size' must be an integer"),
    ("ann", "yes", "'ann' must be true or false"),
    ("dataset", "imagenet", "'dataset': unknown"),
    ("model", "resnet", "'model': unknown"),
    ("prune", "oracle", "'prune': unknown"),
    ("device", "tpu", "'device': unknown"),
    ("loss", "ce", "'loss'"),
    ("prune_options", {"a": object()}, "'prune_options'"),
])
def test_config_bad_fields_are_named(field, value, msg):
    with pytest.raises(ConfigError, match=msg):
        TrainConfig(**{field: value})


def test_config_unknown_field_json_round_trip_and_files(tmp_path):
    from spikeship.train.config import load_config_file, parse_prune_option

    with pytest.raises(ConfigError, match="unknown field.*'epohcs'"):
        TrainConfig.from_mapping({"epohcs": 3})
    with pytest.raises(ConfigError, match="ANN twin"):
        TrainConfig(model="lenet-dnn")
    c = TrainConfig(model="lenet-dnn", ann=True, prune_options={"eps": 0.5})
    assert c.lr == 1e-2 and c.loss == "ce"
    assert TrainConfig.from_json(json.loads(json.dumps(c.to_json()))) == c
    f = tmp_path / "c.toml"
    f.write_text('[train]\nepochs = 3\nprune = "none"\n[train.prune_options]\nc = 5\n')
    assert TrainConfig.from_mapping(load_config_file(f)).prune_options == {"c": 5}
    f.write_text("epochs = = 3")
    with pytest.raises(ConfigError, match="malformed"):
        load_config_file(f)
    assert parse_prune_option("eps=0.65") == ("eps", 0.65)
    assert parse_prune_option("mode=neuron") == ("mode", "neuron")
    with pytest.raises(ConfigError, match="key=value"):
        parse_prune_option("novalue")


def test_run_length_defaults_to_what_the_pruner_asks():
    assert TrainConfig().epochs == 20
    assert TrainConfig(prune="dpap").epochs == 50                  # the chip default
    assert TrainConfig(prune="dpap", prune_options={"preset": "paper"}).epochs == 20
    assert TrainConfig(prune="dpap", epochs=7).epochs == 7
    assert TrainConfig.from_json(TrainConfig(prune="dpap").to_json()).epochs == 50


def test_dpap_cut_restarts_the_learning_rate_schedule(tmp_path):
    """DPAP's default cut (epoch floor(0.4 * 5) + 1 = 3 of 5): epochs 1-2 are one
    warm-up + cosine that decays to their end, epochs 3-5 another, as a dense run
    followed by a fine-tuning run would have."""
    from spikeship.train.trainer import Trainer

    cfg = TrainConfig(model="tiny-mlp", hidden=9, epochs=5, timesteps=3, batch_size=128,
                      prune="dpap")
    tr = Trainer(cfg, tmp_path / "r", progress=False, quiet=True)
    tr.run()
    s, w = tr.steps_per_epoch, tr.warmup_steps
    assert tr.restart_step == 2 * s
    seen = [tr._lr(k) for k in range(5 * s)]
    assert seen[:2 * s] == [lr_at(k, 2 * s, w, cfg.lr) for k in range(2 * s)]
    assert seen[2 * s:] == [lr_at(k, 3 * s, w, cfg.lr) for k in range(3 * s)]
    assert seen[2 * s - 1] < 0.05 * cfg.lr and seen[3 * s - 1] == pytest.approx(cfg.lr)
    lines = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [round(x["lr"], 12) for x in lines] == \
        [round(seen[(e + 1) * s - 1], 12) for e in range(5)]
    assert lines[2]["pruner"]["cut"] and lines[1]["pruning_rate"] == 0 < lines[2]["pruning_rate"]


def test_dpap_default_dense_phase_is_the_dense_run(tmp_path):
    """Before DPAP's default cut, the run is the dense run of the same seed, bit for bit:
    the same losses, accuracies and learning rates for epochs 1-2 of a 5-epoch DPAP run
    (cut at epoch 3, schedule restarted there) and a 2-epoch dense run."""
    from spikeship.train.trainer import Trainer

    base = dict(model="tiny-mlp", hidden=9, timesteps=3, batch_size=128, seed=4)
    Trainer(TrainConfig(**base, epochs=5, prune="dpap"), tmp_path / "p", progress=False,
            quiet=True).run()
    Trainer(TrainConfig(**base, epochs=2), tmp_path / "d", progress=False, quiet=True).run()
    keys = ("train_loss", "train_accuracy", "test_accuracy", "lr")
    read = lambda d: [json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text()  # noqa: E731
                      .splitlines()]
    pruned, dense = read("p"), read("d")
    assert [[e[k] for k in keys] for e in pruned[:2]] == [[e[k] for k in keys] for e in dense]
    assert pruned[2]["pruning_rate"] > 0
