"""PQ pruners with ``objective=synops``, and the on-chip cost meter fed by the fast engine.

Fixture nets: ``tiny-mlp`` 7 -> 5 -> 3 (0 Flatten, 1 Linear(7,5), 2 Leaky, 3 Linear(5,3),
4 Leaky; layer "1" reads the graded input, layer "3" the spikes of layer 1) and
``dpap-mnist`` on 1x8x8 inputs (conv0 -> pool -> conv3 -> pool -> fc7 -> fc9).
"""

from __future__ import annotations

import json

import pytest
import torch

from spikeship.errors import ConfigError
from spikeship.train import multistep
from spikeship.train.masks import MaskSet
from spikeship.train.models import ModelSpec, build_model, forward_sequence
from spikeship.train.pruners.cost import SynopsMeter
from spikeship.train.pruners.pq import PQLayerPruner, PQNeuronPruner
from spikeship.train.structure import describe

T = 4


def tiny(seed=0):
    torch.manual_seed(seed)
    spec = ModelSpec("tiny-mlp", (1, 1, 7), 3, hidden=5)
    model = build_model(spec)
    layers = describe(model, spec.input_shape)
    return model, MaskSet(model, layers), layers


def sparse_input(n=8):
    """Only input element 0 is ever non-zero: layer 1 performs T MACs per sample per
    synapse of column 0 and none elsewhere, so its synapses are cheap on average."""
    x = torch.zeros(n, 1, 1, 7)
    x[:, 0, 0, 0] = 1.0
    return x


def loud_hidden(model):
    """Layer 1's five neurons fire at every step on ``sparse_input``: each synapse of
    layer 3 performs T operations per sample, the network's costliest."""
    with torch.no_grad():
        model[1].weight[:, 0] = 3.0
        model[1].bias.zero_()


def measured(cls, opts, prepare=None, seed=0):
    """A pruner attached to the tiny net, with one training batch measured by the fast
    engine (hooks bypassed: the input reaches the meter through ``engine_inputs``)."""
    model, masks, layers = tiny(seed)
    loud_hidden(model)
    if prepare is not None:
        prepare(model, masks)
    pr = cls({"start": 1, "end": 1, **opts})
    pr.attach(model, masks, layers)
    model.train()
    with torch.no_grad():
        multistep.run(model, sparse_input(), T, layers=layers,
                      inputs=pr.engine_inputs())
    pr.after_batch()
    return pr, model, masks


# ---- the meter through the fast engine ----------------------------------------------
def test_fast_engine_feeds_the_meter_what_the_hooks_see():
    """dpap-mnist: activity maps from the fast engine (one call per batch, first conv once
    per sample with repeat = T) equal those the hooks sum over T snntorch steps."""
    torch.manual_seed(0)
    spec = ModelSpec("dpap-mnist", (1, 8, 8), 4)
    model = build_model(spec)
    with torch.no_grad():
        model[0].weight.mul_(3.0)
        model[3].weight.mul_(3.0)
    layers = describe(model, spec.input_shape)
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    x[x < 0.4] = 0.0
    meter = SynopsMeter()
    meter.attach(model, layers, (1, 8, 8))
    model.train()
    with torch.no_grad():
        forward_sequence(model, x, T)                   # hooks, one step at a time
    hooked = {k: v.clone() for k, v in meter.t.items()}
    assert all(float(hooked[f"cost_act.{n}"].sum()) > 0 for n in ("0", "3", "7", "9"))
    meter.reset()
    with torch.no_grad():
        multistep.run(model, x, T)                      # no hooks fire here
    assert all(float(v.sum()) == 0 for v in meter.t.values())
    with torch.no_grad():
        multistep.run(model, x, T, layers=layers, inputs=meter.record_input)
    for k, v in hooked.items():
        torch.testing.assert_close(meter.t[k], v, rtol=1e-9, atol=1e-9)


# ---- objective=synops in PQ's two stages --------------------------------------------
def test_pq_layer_rewires_the_costlier_layer_more():
    """Layer 3's synapses each carry T spikes per sample, layer 1's on average T/7: with
    the same weights, objective=synops prunes more of layer 3 and less of layer 1 than
    objective=params, following rho = clip(kbar_layer / kbar)."""
    pruned = {}
    for objective in ("params", "synops"):
        pr, _, masks = measured(PQLayerPruner, {"objective": objective, "cost_cap": 4})
        m = pr.end_epoch(1)
        pruned[objective] = {n: int((~masks.weight[n]).sum()) for n in ("1", "3")}
        json.dumps(m)
    assert pruned["synops"]["3"] > pruned["params"]["3"]
    assert pruned["synops"]["1"] < pruned["params"]["1"]
    # the rho's the metrics report: kbar = (35 * T/7 + 15 * T) / 50 = 0.4 T per sample
    assert m["objective"] == "synops"
    assert m["layers"]["1"]["cost_rho"] == pytest.approx((1 / 7) / 0.4)
    assert m["layers"]["3"]["cost_rho"] == pytest.approx(1 / 0.4)


def test_pq_neuron_rewires_the_neuron_on_busy_inputs_more_and_drops_busy_synapses_first():
    """Layer 1 silent (bias -10: layer 3 costs nothing); only input 0 is ever non-zero.
    Rows 0 and 1 have the same three active weights [2.0, 0.05, 0.1], row 0 on columns
    0-2 (column 0 busy), row 1 on columns 1-3 (all quiet). kbar = 4 busy synapses x 32
    ops / 42 active; rho_0 = clip((32/3) / kbar = 3.5) = cap = 2, rho_1 = 1/cap. params
    rewires one weight in each; synops two in row 0, none in row 1. Row 2 (all active): params
    drops its smallest weight (column 1), synops the busy column 0 (|w| / rho_e:
    0.35 / cap < 0.3 * cap; the default cap, 2)."""
    def prepare(model, masks):
        with torch.no_grad():
            w = model[1].weight
            model[1].bias.fill_(-10.0)
            w[0, :3] = torch.tensor([2.0, 0.05, 0.1])
            w[1, 1:4] = torch.tensor([2.0, 0.05, 0.1])
            w[2] = torch.tensor([0.35, 0.3, 0.31, 2.0, 2.1, 2.2, 2.3])
        gone = torch.zeros(5, 7, dtype=torch.bool)
        gone[0, 3:] = True
        gone[1, 0] = True
        gone[1, 4:] = True
        masks.prune_weights("1", gone)
        masks.apply()

    res = {}
    for objective in ("params", "synops"):
        pr, model, masks = measured(PQNeuronPruner, {"objective": objective}, prepare)
        pr.end_epoch(1)
        res[objective] = masks.weight["1"].clone()
    p, s = res["params"], res["synops"]
    assert p[0].tolist() == [True, False, True] + [False] * 4
    assert p[1].tolist() == [False, True, False, True] + [False] * 3
    assert s[0].tolist() == [True] + [False] * 6              # rho_0 = 2: c = 2
    assert s[1].tolist() == [False, True, True, True] + [False] * 3  # rho_1 = 1/2: c = 0
    assert p[2].tolist() == [True, False] + [True] * 5
    assert s[2].tolist() == [False] + [True] * 6


def test_params_default_has_no_meter_and_is_unchanged():
    pr_default, _, m_default = measured(PQNeuronPruner, {})
    pr_params, _, m_params = measured(PQNeuronPruner, {"objective": "params"})
    assert pr_default.meter is None and pr_default.engine_inputs() is None
    pr_default.end_epoch(1)
    pr_params.end_epoch(1)
    for n in ("1", "3"):
        assert torch.equal(m_default.weight[n], m_params.weight[n])


def test_no_measurement_means_no_weighting():
    """A synops pruner that has seen no spike yet decides as params does."""
    model, masks, layers = tiny()
    a = PQLayerPruner({"start": 1, "end": 1, "objective": "synops"})
    a.attach(model, masks, layers)
    a.end_epoch(1)
    model2, masks2, layers2 = tiny()
    b = PQLayerPruner({"start": 1, "end": 1})
    b.attach(model2, masks2, layers2)
    b.end_epoch(1)
    assert all(torch.equal(masks.weight[n], masks2.weight[n]) for n in ("1", "3"))


def test_options_are_validated():
    with pytest.raises(ConfigError, match="objective"):
        PQNeuronPruner({"objective": "joules"})
    with pytest.raises(ConfigError, match="cost_cap"):
        PQLayerPruner({"cost_cap": "0.5"})
    with pytest.raises(ConfigError, match="cost_power"):
        PQLayerPruner({"cost_power": "-1"})


def test_cli_rejects_an_unknown_objective_with_a_config_error(tmp_path, capsys):
    """One line naming the option, no traceback, ConfigError's exit code (1: a bad
    configuration value, as for every pruner option, also from a --config file)."""
    from spikeship.cli import main

    code = main(["train", "--out", str(tmp_path / "run"), "--prune", "pq-neuron",
                 "--prune-opt", "objective=joules", "--epochs", "1", "--limit-train", "40",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == ConfigError.exit_code, err
    assert err.startswith("spikeship: error: pruner 'pq-neuron': option objective=")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoint").exists()


@pytest.mark.slow
def test_trainer_fast_engine_measures_costs_and_resumes_exactly(tmp_path):
    """Through the real trainer (fast engine): the weighting is applied (rho != 1 in the
    metrics), the meter's partial sums survive a checkpoint, resume is exact."""
    from spikeship.train.config import TrainConfig
    from tests.train.fixture_pruners import assert_exact_resume

    torch.set_num_threads(1)
    cfg = TrainConfig(dataset="digits", model="dpap-mnist", epochs=2, timesteps=2,
                      batch_size=64, limit_train=200, limit_test=40, prune="pq-neuron",
                      prune_options={"interval": 3, "start": 0.2, "end": 2,
                                     "objective": "synops"}, seed=5)
    assert_exact_resume(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").open()]
    rho = {n: v["cost_rho"] for n, v in rows[-1]["pruner"]["layers"].items()}
    assert set(rho) == {"0", "3", "7", "9"}
    assert rho["0"] > 1.0 > rho["9"]          # conv0's entries do far more ops than fc9's
