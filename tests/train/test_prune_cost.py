"""On-chip cost of synapses and units measured in training; cost-weighted and structured
pruners (objective=synops, magnitude granularity=channel, l1-filter), DPAP presets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from spikeship.errors import ConfigError
from spikeship.energy.fanout import conv_fanout, pool_backward
from spikeship.train.masks import MaskSet
from spikeship.train.models import ModelSpec, build_model, forward_sequence
from spikeship.train.pruners import get_pruner_class
from spikeship.train.pruners.cost import SynopsMeter
from spikeship.train.pruners.dpap import DPAPPruner
from spikeship.train.pruners.dpap_config import DPAPConfig
from spikeship.train.structure import describe

SHAPE = (1, 8, 8)


def conv_net(seed=0):
    torch.manual_seed(seed)
    spec = ModelSpec("dpap-mnist", SHAPE, 4)
    model = build_model(spec)
    with torch.no_grad():
        model[0].weight.mul_(3.0)            # make conv0 fire
        model[3].weight.mul_(3.0)
    layers = describe(model, spec.input_shape)
    return model, layers, MaskSet(model, layers)


def batch(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *SHAPE, generator=g)
    x[x < 0.4] = 0.0                           # some input elements are zero
    return x


def spikes_per_layer(model, x, timesteps=4):
    """Spike maps of the LIF after conv0 and conv3, summed over batch and time."""
    rec = {}

    def hook(name):
        def f(module, args, out):
            y = out[0] if isinstance(out, tuple) else out
            rec[name] = rec.get(name, 0) + y.detach().double().sum(0)
        return f
    hs = [model[1].register_forward_hook(hook("lif1")), model[4].register_forward_hook(hook("lif4"))]
    model.train()
    with torch.no_grad():
        forward_sequence(model, x, timesteps)
    for h in hs:
        h.remove()
    return rec


def test_meter_counts_synops_as_the_energy_estimator(tmp_path):
    """sum over presynaptic spikes x deployed fan-out (the estimator's formula, with its
    own fan-out maps through the pool) equals the meter's sum of synapse cost x mask."""
    model, layers, masks = conv_net()
    masks.prune_units("0", torch.tensor([i in (2, 5) for i in range(15)]))
    w = masks.weight["3"].clone()
    w[7, :, 0, :] = False                     # unstructured taps inside conv3 kernels
    masks.weight["3"] = w
    masks.apply()
    meter = SynopsMeter()
    meter.attach(model, layers, SHAPE)
    x = batch()
    rec = spikes_per_layer(model, x)
    costs = meter.layer_costs(masks)
    # conv3 is fed by lif1 (15 x 8 x 8) through AvgPool2d(2): estimator fan-out per neuron
    eff3 = masks.effective("3").numpy()
    f_pooled = conv_fanout(eff3, (15, 4, 4), stride=1, padding=1)
    f_neuron = pool_backward(f_pooled, (15, 8, 8), (2, 2), (2, 2), 0)
    expected3 = float((rec["lif1"].numpy() * f_neuron).sum())
    assert float(costs["3"]["synops"]) == pytest.approx(expected3, rel=1e-9)
    # fc7 is fed by lif4 (40 x 4 x 4) through AvgPool2d(2) and Flatten
    eff7 = masks.effective("7").numpy()
    f_cols = eff7.sum(0).reshape(40, 2, 2)
    f_neuron7 = pool_backward(f_cols, (40, 4, 4), (2, 2), (2, 2), 0)
    expected7 = float((rec["lif4"].numpy() * f_neuron7).sum())
    assert float(costs["7"]["synops"]) == pytest.approx(expected7, rel=1e-9)
    # conv0 reads the graded input: MACs = non-zero input elements x fan-out, every step
    f0 = conv_fanout(masks.effective("0").numpy(), SHAPE, stride=1, padding=1)
    expected0 = 4 * float(((x != 0).double().sum(0).numpy() * f0).sum())
    assert float(costs["0"]["synops"]) == pytest.approx(expected0, rel=1e-9)
    # a removed unit costs nothing more; a unit's cost = its incoming + outgoing synops
    assert float(costs["0"]["unit"][2]) == 0.0
    c0 = costs["0"]["unit"][0]
    inc = (costs["0"]["synapse"] * masks.effective("0"))[0].sum()
    out = (costs["3"]["synapse"] * masks.effective("3"))[:, 0].sum()
    assert float(c0) == pytest.approx(float(inc + out))


def test_presets_and_explicit_options():
    paper = DPAPConfig.from_options({"preset": "paper"})
    assert (paper.eps_conv, paper.c_conv, paper.eta_conv, paper.objective) == \
        (0.65, 5.0, 12.0, "params")
    assert DPAPConfig.from_options({"preset": "paper", "eps_conv": 0.9}).eps_conv == 0.9
    assert DPAPConfig.from_options({"preset": "paper", "scale": 2}).scale == 2.0
    with pytest.raises(ConfigError, match="preset"):
        DPAPConfig.from_options({"preset": "nope"})
    # "deep" is the default cut made deeper (the README's moonshot runs spell it out)
    deep = DPAPConfig.from_options({"preset": "deep"})
    spelled = DPAPConfig.from_options({"cut_rank": "l1", "unit_budget_first": 0.47,
                                       "unit_budget_conv": 0.8, "synapse_budget_fc": 0.9})
    assert deep == dataclasses.replace(spelled, preset="deep")
    chip = DPAPConfig.from_options({})
    assert deep.unit_budget_conv > chip.unit_budget_conv and deep.cut_at == chip.cut_at
    assert DPAPConfig.from_options({"preset": "deep", "unit_budget_first": 0.3}
                                   ).unit_budget_first == 0.3
    with pytest.raises(ConfigError, match="objective"):
        DPAPConfig.from_options({"objective": "joules"})


def test_synops_objective_decays_a_costly_unit_faster():
    """Same network, same batch: the unit made 4x as costly as the mean loses more
    survival under objective=synops than under objective=params; the others' eps
    follows their own relative cost."""
    x = batch()
    f = {}
    for objective in ("params", "synops"):
        model, layers, masks = conv_net()
        pr = DPAPPruner({"preset": "paper", "objective": objective, "warmup": 0, "scale": 1,
                         "beta": 100})
        pr.attach(model, masks, layers)
        model.train()
        with torch.no_grad():
            forward_sequence(model, x, 4)
        pr.after_batch()
        if objective == "synops":
            act = pr.t["cost_act.9"]                  # fc7's spikes feeding fc9
            act.zero_()
            act[0] = 1000.0
            assert pr.meter.t["cost_act.9"] is act      # one tensor, two views
        pr.end_epoch(1)
        f[objective] = pr.t["f_unit.7"].clone()
    assert f["synops"][0] < f["params"][0]
    assert (f["synops"][1:] >= f["params"][1:] - 1e-4).all()   # cheaper than mean: slower


def _trained_once(name, opts):
    model, layers, masks = conv_net()
    pr = get_pruner_class(name)(opts)
    pr.attach(model, masks, layers)
    model.train()
    with torch.no_grad():
        forward_sequence(model, batch(), 4)
    pr.after_batch()
    pr.end_epoch(1)
    masks.apply()
    return model, masks, pr


def test_l1_filter_removes_the_smallest_l1_filters_per_layer():
    model, layers, masks = conv_net()
    norms = {n: model[int(n)].weight.detach().abs().reshape(
        model[int(n)].weight.shape[0], -1).sum(1) for n in ("0", "3")}
    model, masks, pr = _trained_once("l1-filter", {"start": 1, "end": 1, "conv": 0.4,
                                                   "layers": "3:0.5"})
    gone0 = set(torch.nonzero(~masks.units["0"]).flatten().tolist())
    assert gone0 == set(torch.argsort(norms["0"])[:6].tolist())           # 0.4 * 15
    # conv3's norms are those after conv0's channels were cut (greedy, Li et al.)
    assert int((~masks.units["3"]).sum()) == 20
    assert masks.units["7"].all() and masks.units["9"].all()               # fc = 0
    assert float(model[3].weight.detach()[:, sorted(gone0)].abs().sum()) == 0.0     # outgoing gone
    with pytest.raises(ConfigError, match="layers"):
        get_pruner_class("l1-filter")({"layers": "3:1.5"})


def test_l1_filter_weights_option_prunes_single_fc_weights_by_magnitude():
    """``weights=7:0.8``: of the fc7 weights that unit pruning left (rows x kept conv3
    columns), the 80 % smallest |w| go; the kept ones are the largest; conv refused."""
    model0, _, _ = conv_net()
    w7 = model0[7].weight.detach().abs().clone()
    model, masks, _ = _trained_once("l1-filter", {"start": 1, "end": 1, "conv": 0.0,
                                                  "layers": "3:0.5", "weights": "7:0.8"})
    kept3 = masks.units["3"].repeat_interleave(4)                  # 2x2 positions per channel
    assert int(kept3.sum()) == 80
    eff = masks.effective("7")
    assert int(eff.sum()) == round(0.2 * 300 * 80)
    assert not eff[:, ~kept3].any()
    cand = w7[:, kept3]                       # the pruner saw the untrained weights
    kept = cand[eff[:, kept3]]
    gone = cand[~eff[:, kept3]]
    assert float(kept.min()) >= float(gone.max())
    assert float(model[7].weight.detach()[~eff].abs().sum()) == 0.0
    assert masks.units["7"].all()                                   # no fc7 unit removed
    # 1 % of the fc7 weights kept: most neurons lose every input, and stay (their bias
    # drives them: a bias input of fc9), outgoing synapses included
    _, masks, _ = _trained_once("l1-filter", {"start": 1, "end": 1, "conv": 0.0,
                                              "layers": "3:0.5", "weights": "7:0.99"})
    eff = masks.effective("7")
    assert int(eff.sum()) == round(0.01 * 300 * 80) and not eff.any(1).all()
    assert masks.units["7"].all() and masks.effective("9").all()
    for bad, match in (({"weights": "3:0.5"}, "conv layer"), ({"weights": "5:0.5"}, "not a prunable")):
        m, layers, mk = conv_net()
        with pytest.raises(ConfigError, match=match):
            get_pruner_class("l1-filter")(bad).attach(m, mk, layers)


def test_magnitude_at_channel_granularity_and_cost_weighting():
    _, masks, _ = _trained_once("magnitude", {"granularity": "channel", "target": 0.5,
                                              "start": 1, "end": 1})
    assert [int(masks.units[n].sum()) for n in ("0", "3", "7", "9")] == [8, 20, 150, 4]
    _, m2, pr = _trained_once("magnitude", {"granularity": "channel", "target": 0.5,
                                            "start": 1, "end": 1, "objective": "synops"})
    assert [int(m2.units[n].sum()) for n in ("0", "3", "7", "9")] == [8, 20, 150, 4]
    assert "cost_act.3" in pr.state()[0]
    # the cost weighting changes which channels go, not how many
    assert not all(torch.equal(masks.units[n], m2.units[n]) for n in ("0", "3"))
