"""DPAP Eq 5-17 as pure functions, against values worked out by hand."""

import math

import numpy as np
import pytest
import torch

from spikeship.errors import ConfigError
from spikeship.train.pruners import dpap_criteria as K
from spikeship.train.pruners.dpap_config import DPAPConfig


def test_trace_eq5_over_three_steps():
    # spikes 1, 0, 1 with tau = 0.5: S = 1, 0.5, 0.25 + 1 = 1.25
    s = None
    for o in (1.0, 0.0, 1.0):
        s = K.trace_step(s, torch.tensor([[o]]), 0.5)
    assert s.item() == pytest.approx(1.25)


def test_conv_population_eq6_sums_over_h_w():
    x = torch.zeros(1, 2, 2, 2)
    x[0, 0, 0, 0] = x[0, 0, 1, 1] = x[0, 0, 0, 1] = 1.0   # channel 0: 3 spikes
    x[0, 1, 1, 0] = 1.0                                  # channel 1: 1 spike
    assert K.population(x).tolist() == [[3.0, 1.0]]
    fc = torch.tensor([[1.0, 2.0]])
    assert K.population(fc) is fc


def test_theta_eq8_is_mean_over_samples():
    assert K.theta_from_sums(torch.tensor([2.0, 4.0]), 4).tolist() == [0.5, 1.0]
    assert K.theta_from_sums(torch.tensor([2.0, 4.0]), 0).tolist() == [0.0, 0.0]


def test_bcm_eq7_one_matrix_by_hand():
    pre = torch.tensor([[1.0, 0.0], [0.5, 2.0]])       # (B=2, N_pre=2)
    post = torch.tensor([[1.0, 2.0], [0.25, 0.5]])     # (B=2, N_post=2)
    theta = torch.tensor([0.5, 1.0])
    # post*(post-theta) = [[0.5, 2], [-0.0625, -0.25]]
    # row 0: 0.5*[1, 0] - 0.0625*[0.5, 2] = [0.46875, -0.125]
    # row 1: 2*[1, 0]   - 0.25*[0.5, 2]   = [1.875, -0.5]
    expected = torch.tensor([[0.46875, -0.125], [1.875, -0.5]])
    assert torch.allclose(K.bcm_batch(pre, post, theta), expected)
    # Hebb: post^T pre = [[1 + 0.125, 0.5], [2 + 0.25, 1]]
    assert torch.allclose(K.hebb_batch(pre, post), torch.tensor([[1.125, 0.5], [2.25, 1.0]]))


def _stdp_run(pre_spikes, post_spikes, tau=0.5):
    pre = torch.tensor(pre_spikes, dtype=torch.float32).view(-1, 1, 1)    # (T, B=1, N=1)
    post = torch.tensor(post_spikes, dtype=torch.float32).view(-1, 1, 1)
    return K.stdp(pre, post, tau).item()


def test_stdp_sign_follows_spike_order():
    # pre at t1, post at t2: potentiation = pre trace at t2 = 0.5
    assert _stdp_run([1, 0, 0], [0, 1, 0]) == pytest.approx(0.5)
    # post at t1, pre at t2: depression = post trace at t1 = 1
    assert _stdp_run([0, 1, 0], [1, 0, 0]) == pytest.approx(-1.0)
    # one step (ANN): only potentiation, i.e. Hebb
    assert _stdp_run([2.0], [3.0]) == pytest.approx(6.0)


def test_vectorised_traces_equal_the_recursion():
    torch.manual_seed(0)
    o = (torch.rand(5, 3, 4) > 0.5).float()                            # (T, B, N)
    s, every = None, []
    for t in range(5):
        s = K.trace_step(s, o[t], 0.5)
        every.append(s)
    assert torch.allclose(K.final_trace(o, 0.5), s)
    assert torch.allclose(K.traces_over_time(o, 0.5), torch.stack(every))


def test_normalise_minmax_and_p75_by_hand():
    x = torch.tensor([-1.0, 0.0, 1.0, 3.0])
    assert K.normalise(x, "minmax").tolist() == [0.0, 0.25, 0.5, 1.0]
    # p75 of [-1, 0, 1, 3]: position 2.25 -> 1 + 0.25 * 2 = 1.5; (x + 1) / 2.5, clipped
    assert float(K.percentile(x, 75)) == pytest.approx(np.percentile(x.numpy(), 75)) == 1.5
    assert torch.allclose(K.normalise(x, "p75"), torch.tensor([0.0, 0.4, 0.8, 1.0]))
    # statistics over alive entries only; dead entries get 0
    alive = torch.tensor([True, True, False, True])
    assert K.normalise(x, "minmax", alive).tolist() == [0.0, 0.25, 0.0, 1.0]
    assert K.normalise(torch.full((3,), 2.0), "minmax").tolist() == [0.5, 0.5, 0.5]
    with pytest.raises(ValueError):
        K.normalise(x, "zscore")


def test_spine_eq11_both_variants():
    syn = torch.tensor([[1.0, 0.0], [1.0, 2.0], [2.0, 0.0]])   # rows sum to 1, 3, 2
    trace = torch.tensor([2.0, 1.0, 3.0])
    # minmax(rows) = [0, 1, 0.5], minmax(trace) = [0.5, 0, 1]
    assert K.spine_importance(syn, trace, "minmax-product").tolist() == [0.0, 0.0, 0.5]
    assert K.spine_importance(syn, trace, "raw-product").tolist() == [2.0, 3.0, 6.0]
    # a pruned synapse leaves the dendrite: row 1 without its 2.0 sums to 1
    alive = torch.ones(3, 2, dtype=torch.bool)
    alive[1, 1] = False
    assert K.spine_importance(syn, trace, "raw-product", alive).tolist() == [2.0, 1.0, 6.0]
    # "synaptic": the rows alone, the trace plays no part
    assert K.spine_importance(syn, trace, "synaptic").tolist() == [1.0, 3.0, 2.0]
    assert K.spine_importance(syn, trace, "synaptic", alive).tolist() == [1.0, 1.0, 2.0]


def test_survival_eq12_to_17_one_update_by_hand():
    norm = torch.tensor([0.0, 0.5, 0.75, 1.0])
    # delta = 2n - 1.5 = [-1.5, -0.5, 0, 0.5]; C = 2 where delta >= 0
    df = K.survival_delta(norm, eps=1.5, protection=2.0)
    assert df.tolist() == [-1.5, -0.5, 2.0, 2.5]
    f = K.survival_update(torch.full((4,), 10.0), df, gamma=0.999, weight=math.exp(-0.5))
    expected = [9.99 + math.exp(-0.5) * d for d in (-1.5, -0.5, 2.0, 2.5)]
    assert f.tolist() == pytest.approx(expected)


def test_decay_weight_exp_and_staircase():
    assert K.decay_weight(4, 12, 5, "exp") == 0.0                       # warm-up
    assert K.decay_weight(6, 12, 5, "exp") == pytest.approx(math.exp(-0.5))
    assert K.decay_weight(6, 12, 5, "staircase") == 1.0
    assert K.decay_weight(16, 12, 5, "staircase") == 1.0                # floor(11/12) = 0
    assert K.decay_weight(17, 12, 5, "staircase") == pytest.approx(math.exp(-1))


def test_config_validation_names_the_option():
    with pytest.raises(ConfigError, match="bogus"):
        DPAPConfig.from_options({"bogus": 1})
    with pytest.raises(ConfigError, match="criterion"):
        DPAPConfig.from_options({"criterion": "oja"})
    with pytest.raises(ConfigError, match="tau"):
        DPAPConfig.from_options({"tau": "fast"})
    with pytest.raises(ConfigError, match="beta"):
        DPAPConfig.from_options({"beta": "-1"})
    with pytest.raises(ConfigError, match="conv_synapses"):
        DPAPConfig.from_options({"conv_synapses": "maybe"})
    with pytest.raises(ConfigError, match="scale must be > 0"):
        DPAPConfig.from_options({"scale": 0})
    cfg = DPAPConfig.from_options({"tau": "0.25", "conv_synapses": "true", "scale": "2.5",
                                   "criterion": "hebb"})
    assert (cfg.tau, cfg.conv_synapses, cfg.criterion) == (0.25, True, "hebb")
    assert cfg.scale == 2.5
    assert cfg.kind_params("conv") == (0.65, 12.0, 5.0)
    assert cfg.kind_params("fc") == (1.5, 13.0, 2.0)
    assert DPAPConfig.from_options({"preset": "paper"}) == DPAPConfig(preset="paper")
