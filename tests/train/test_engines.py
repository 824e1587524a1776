"""The fast engine against the snntorch reference: same spikes, gradients, DPAP
statistics, masks, checkpoints and exported NIR.

Fixture net: ``dpap-mnist`` on an odd 1 x 9 x 7 input with 3 classes (9x7 -> pool
4x3 -> pool 2x1, so 40 * 2 * 1 = 80 inputs to the 300-unit FC layer), weights
scaled up so every layer fires a fair share (checked: a test of spike equality on
a silent net would prove nothing).
"""

from __future__ import annotations

import copy

import nir
import numpy as np
import pytest
import torch

from spikeship.errors import ConfigError
from spikeship.train import multistep
from spikeship.train.checkpoint import load_checkpoint
from spikeship.train.config import TrainConfig
from spikeship.data import ArrayDataset, DatasetBundle
from spikeship.train.fused_lif import lif_sequence
from spikeship.train.losses import mse_rate
from spikeship.train.masks import MaskSet
from spikeship.train.models import ModelSpec, build_model, forward_sequence
from spikeship.train.pruners.dpap import DPAPPruner
from spikeship.train.structure import describe
from spikeship.train.trainer import Trainer

SHAPE = (1, 9, 7)
T = 5


def firing_net(seed=0, preset="dpap-mnist", shape=SHAPE, classes=3, gain=2.5):
    torch.manual_seed(seed)
    spec = ModelSpec(preset, shape, classes)
    model = build_model(spec)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(gain)
        last = [m for m in model if isinstance(m, torch.nn.Linear)][-1]
        last.weight.abs_().mul_(0.12)                  # the output layer fires too, unsaturated
    return spec, model


def spikes_per_layer(model, x, steps):
    """The snntorch engine's spikes of every Leaky, (T, B, ...) each, via hooks."""
    import snntorch as snn

    seen: dict[int, list] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, k=k: seen.setdefault(k, []).append(o))
             for k, m in enumerate(model) if isinstance(m, snn.Leaky)]
    try:
        out = forward_sequence(model, x, steps)
    finally:
        for h in hooks:
            h.remove()
    return out, {k: torch.stack(v) for k, v in seen.items()}


@pytest.mark.parametrize("static", [True, False], ids=["direct", "frames"])
def test_same_spikes_membranes_and_gradients(static):
    _, model = firing_net()
    torch.manual_seed(1)
    x = torch.rand(6, *SHAPE) * 2 if static else torch.rand(T, 6, *SHAPE) * 2
    ref, per_layer = spikes_per_layer(model, x, T)
    for k, s in per_layer.items():                     # every layer fires, none saturates
        assert 0.02 < float(s.detach().mean()) < 0.9, (k, float(s.mean()))
    fast = multistep.run(model, x, T)
    assert fast.shape == ref.shape == (T, 6, 3)
    assert torch.equal(fast, ref)
    # membranes of the output layer (ce_mem reads them): snntorch's Leaky.mem per step
    mems = []
    h = model[-1].register_forward_hook(lambda m, i, o: mems.append(m.mem.detach().clone()))
    forward_sequence(model, x, T)
    h.remove()
    torch.testing.assert_close(multistep.run(model, x, T, membrane=True).detach(),
                               torch.stack(mems), rtol=1e-5, atol=1e-6)
    # gradients of Eq 3's loss w.r.t. every parameter, surrogate included
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    g_ref = torch.autograd.grad(mse_rate(forward_sequence(model, x, T), y), model.parameters())
    g_fast = torch.autograd.grad(mse_rate(multistep.run(model, x, T), y), model.parameters())
    assert any(float(g.abs().sum()) > 0 for g in g_ref)
    for a, b in zip(g_ref, g_fast):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_fused_lif_against_a_hand_trace():
    # lambda 0.2, V_th 0.5: 0.45 fires at step 2 only (0.45, 0.54 -> reset, 0.45, 0.54)
    cur = torch.tensor([[0.45], [0.6], [0.3]]).T.expand(4, 1, 3).contiguous()
    spk, mem = lif_sequence(cur, 4, torch.tensor(0.2), torch.tensor(0.5), 1.0)
    assert spk[:, 0].tolist() == [[0, 1, 0], [1, 1, 0], [0, 1, 0], [1, 1, 0]]
    torch.testing.assert_close(mem[:, 0, 0], torch.tensor([0.45, 0.54, 0.45, 0.54]))
    # static current: the same spikes, gradient summed over the steps
    c = torch.tensor([[0.45, 0.6, 0.3]], requires_grad=True)
    s2, _ = lif_sequence(c, 4, torch.tensor(0.2), torch.tensor(0.5), 1.0, static=True)
    assert torch.equal(s2, spk)
    s2.sum().backward()
    # d spikes / d I through the rectangle (|u - 0.5| < 0.5 everywhere here) and the decay
    assert c.grad is not None and bool((c.grad > 0).all())


def test_batchnorm_running_statistics_and_maxpool_match():
    spec, model = firing_net(preset="dpap-cifar", shape=(3, 4, 4), classes=4, gain=1.0)
    ref_model = copy.deepcopy(model)
    torch.manual_seed(2)
    x = torch.rand(3, 3, 4, 4)
    model.train(), ref_model.train()
    ref = forward_sequence(ref_model, x, 3)
    fast = multistep.run(model, x, 3)
    torch.testing.assert_close(fast, ref)
    for a, b in zip(ref_model.modules(), model.modules()):
        if isinstance(a, torch.nn.BatchNorm2d):
            torch.testing.assert_close(b.running_mean, a.running_mean)
            torch.testing.assert_close(b.running_var, a.running_var)
            assert int(b.num_batches_tracked) == int(a.num_batches_tracked) == 3


def _dpap(model, spec):
    layers = describe(model, spec.input_shape)
    masks = MaskSet(model, layers)
    pr = DPAPPruner()
    pr.attach(model, masks, layers)
    return pr, layers


@pytest.mark.parametrize("criterion", ["bcm", "stdp"])
def test_dpap_statistics_equal_between_engines(criterion):
    spec, model = firing_net()
    ref_model = copy.deepcopy(model)
    hooks, _ = _dpap(ref_model, spec)
    hooks.config = type(hooks.config).from_options({"criterion": criterion})
    fast, layers = _dpap(model, spec)
    fast.config = hooks.config
    record = fast.engine_activity()
    model.train(), ref_model.train()
    torch.manual_seed(3)
    for _ in range(2):                     # two batches: theta of the 2nd is not zero
        x = torch.rand(5, *SHAPE) * 2
        forward_sequence(ref_model, x, T)
        hooks.after_batch()
        multistep.run(model, x, T, layers=layers, record=record)
        fast.after_batch()
    assert set(fast.t) == set(hooks.t)
    for k in hooks.t:
        torch.testing.assert_close(fast.t[k], hooks.t[k], rtol=1e-5, atol=1e-4, msg=k)
    assert float(hooks.t["trace_epoch.7"].sum()) > 0           # FC layer's post traces
    assert float(hooks.t["n_epoch"]) == 10


def test_an_empty_batch_records_empty_activity_for_dpap():
    """A data-parallel rank can get no sample of a short last batch: the fast engine
    still runs (and DPAP's recorder gets (T, 0, N) activity) instead of failing to split
    a 0-element tensor into (T, 0, -1)."""
    spec, model = firing_net()
    fast, layers = _dpap(model, spec)
    seen = {}
    record = fast.engine_activity()

    def spy(name, pre, post):
        seen[name] = (tuple(pre.shape), tuple(post.shape))
        record(name, pre, post)

    out = multistep.run(model, torch.rand(0, *SHAPE), T, layers=layers, record=spy)
    assert out.shape[:2] == (T, 0) and seen
    for pre, post in seen.values():
        assert pre[:2] == (T, 0) and post[:2] == (T, 0) and len(post) == 3


def toy_bundle(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.random((n, *SHAPE)).astype(np.float32) * 0.5
    x[np.arange(n), 0, y * 3, :] += 1.0                     # a bright row per class
    return DatasetBundle("toy", ArrayDataset(x, y), ArrayDataset(x[:48], y[:48]), SHAPE, 3,
                         "direct", T)


def test_masks_respected_and_removed_units_silent_in_fast_engine(tmp_path):
    cfg = TrainConfig(timesteps=T, batch_size=16, epochs=1)
    tr = Trainer(cfg, tmp_path / "r", data=toy_bundle(), progress=False, quiet=True)
    tr._build()
    with torch.no_grad():
        for p in tr.model.parameters():
            p.mul_(2.5)
    gone_ch = torch.zeros(15, dtype=torch.bool)
    gone_ch[::3] = True                                   # conv1 channels 0, 3, ...
    gone_fc = torch.zeros(300, dtype=torch.bool)
    gone_fc[:150] = True
    tr.masks.prune_units("0", gone_ch)
    tr.masks.prune_units("7", gone_fc)
    tr.masks.prune_weights("3", torch.rand(40, 15, 3, 3) < 0.5)
    tr.masks.apply(tr.optimizer)
    seen = {}
    tr._record = lambda name, pre, post: seen.__setitem__(name, post)
    tr.model.train()
    for i in range(4):
        x, y = tr.data.train.x[i * 16:(i + 1) * 16], tr.data.train.y[i * 16:(i + 1) * 16]
        tr.train_step(x, y, 2e-3)
        for name in ("0", "3", "7"):
            eff = tr.masks.effective(name)
            assert float(tr.model[int(name)].weight.detach()[~eff].abs().sum()) == 0.0
        assert float(tr.model[0].bias[gone_ch].abs().sum()) == 0.0
        assert float(seen["0"][:, :, gone_ch].sum()) == 0.0     # removed channels never fire
        assert float(seen["0"][:, :, ~gone_ch].sum()) > 0.0
        assert float(seen["7"][:, :, gone_fc].sum()) == 0.0


def test_engines_give_the_same_step_and_interchange_checkpoints(tmp_path):
    base = dict(timesteps=T, batch_size=16, epochs=2, prune="dpap",
                prune_options={"warmup": 0})
    runs = {}
    for engine in ("fast", "snntorch"):
        tr = Trainer(TrainConfig(**base, engine=engine), tmp_path / engine, data=toy_bundle(),
                     progress=False, quiet=True)
        runs[engine] = tr
        tr.run(stop_after=1)
    a, b = (load_checkpoint(tmp_path / e) for e in ("fast", "snntorch"))
    assert set(a.tensors) == set(b.tensors)
    for k, v in a.group("model").items():               # one epoch, two engines: same weights
        torch.testing.assert_close(v, b.group("model")[k], rtol=1e-4, atol=1e-5, msg=k)
    # resume the fast run's checkpoint with the snntorch engine, and the other way round
    for src, other in (("fast", "snntorch"), ("snntorch", "fast")):
        tr = Trainer(TrainConfig(**base, engine=other), tmp_path / src, data=toy_bundle(),
                     progress=False, quiet=True)
        s = tr.run(resume=True)
        assert s["epochs"] == 2
        acc_other = tr.evaluate()
        tr.multistep = src == "fast"           # evaluate the same weights with the other engine
        assert tr.evaluate() == acc_other
    # exported NIR of the two runs: same graph, same parameters (float tolerance)
    from spikeship.targets.export import export_run

    graphs = []
    for e in ("fast", "snntorch"):
        export_run(tmp_path / e, formats=("nir",))
        graphs.append(nir.read(tmp_path / e / "model.nir"))
    ga, gb = graphs
    assert sorted(ga.nodes) == sorted(gb.nodes) and sorted(ga.edges) == sorted(gb.edges)
    for name, node in ga.nodes.items():
        other = gb.nodes[name]
        assert type(node) is type(other)
        for field, val in vars(node).items():
            if isinstance(val, np.ndarray):
                np.testing.assert_allclose(val, getattr(other, field), rtol=1e-4, atol=1e-5,
                                           err_msg=f"{name}.{field}")


def test_engine_choices_and_bf16_needs_the_fast_engine(tmp_path):
    with pytest.raises(ConfigError, match="engine"):
        TrainConfig(engine="turbo")
    with pytest.raises(ConfigError, match="eval_every"):
        TrainConfig(eval_every=0)
    tr = Trainer(TrainConfig(engine="snntorch", precision="bf16"), tmp_path / "x",
                 data=toy_bundle(), progress=False, quiet=True)
    with pytest.raises(ConfigError, match="bf16"):
        tr._build()


def test_eval_every_skips_test_passes_but_not_the_last(tmp_path):
    cfg = TrainConfig(timesteps=T, batch_size=32, epochs=3, eval_every=2)
    s = Trainer(cfg, tmp_path / "e", data=toy_bundle(), progress=False, quiet=True).run()
    from spikeship.io import read_jsonl

    accs = [m["test_accuracy"] for m in read_jsonl(tmp_path / "e" / "metrics.jsonl")]
    assert accs[0] is None and accs[1] is not None and accs[2] is not None
    assert s["test_accuracy"] == accs[2]


def test_bf16_trains_and_keeps_spikes_binary(tmp_path):
    cfg = TrainConfig(timesteps=T, batch_size=16, epochs=1, precision="bf16")
    tr = Trainer(cfg, tmp_path / "b", data=toy_bundle(), progress=False, quiet=True)
    tr._build()
    tr.model.train()
    x, y = tr.data.train.x[:16] * 3, tr.data.train.y[:16]
    loss, out = tr.train_step(x, y, 2e-3)
    assert out.dtype == torch.float32 and set(out.unique().tolist()) <= {0.0, 1.0}
    assert tr.model[0].weight.dtype == torch.float32 and torch.isfinite(loss)


def test_gradients_agree_at_trained_weights(tmp_path):
    """Not only at initial weights: after an epoch of training (membranes now sit near the
    threshold, where the surrogate window and the reset decide), both engines give the
    same output spikes and the same weight gradients, batch after batch."""
    cfg = TrainConfig(timesteps=T, batch_size=16, epochs=3)
    tr = Trainer(cfg, tmp_path / "r", data=toy_bundle(n=192), progress=False, quiet=True)
    tr._build()
    with torch.no_grad():
        for p in tr.model.parameters():
            p.mul_(2.5)
    tr.model.train()
    x_all, y_all = tr.data.train.x, tr.data.train.y
    for i in range(8):                                   # train with the fast engine
        tr.train_step(x_all[i * 16:(i + 1) * 16], y_all[i * 16:(i + 1) * 16], 2e-3)
    compared = 0
    for i in range(8, 12):
        x, y = x_all[i * 16:(i + 1) * 16], y_all[i * 16:(i + 1) * 16]
        grads, outs = {}, {}
        for engine in ("fast", "snntorch"):
            tr.multistep = engine == "fast"
            tr.model.zero_grad(set_to_none=True)
            out = tr.forward(x)
            tr.loss_fn(out, y).backward()
            outs[engine] = out.detach()
            grads[engine] = [p.grad.detach().clone() for p in tr.model.parameters()]
        assert torch.equal(outs["fast"], outs["snntorch"])
        assert float(outs["fast"].sum()) > 0
        for gf, gs in zip(grads["fast"], grads["snntorch"]):
            torch.testing.assert_close(gf, gs, rtol=1e-4, atol=1e-6)
            compared += int(gs.abs().gt(0).sum())
    assert compared > 1000                               # gradients were not all zero
