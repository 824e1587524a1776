"""The LIF neuron is DPAP Eq 1-2 step by step; its surrogate gradient has the Eq 4 shape."""

import pytest
import torch
from torch import nn

from spikeship.train.models import forward_sequence
from spikeship.train.neuron import NeuronParams, make_lif, rectangle, reset_state


def test_single_neuron_matches_hand_computed_trace():
    # lambda = 0.2, V_th = 0.5:  u[t+1] = 0.2 u[t] (1 - o[t]) + I[t+1];  o = u > 0.5
    inputs = [0.3, 0.4, 0.1, 0.6, 0.0, 0.45, 0.7, 0.55]
    hand_u = [0.3, 0.46, 0.192, 0.6384, 0.0, 0.45, 0.79, 0.55]
    hand_o = [0, 0, 0, 1, 0, 0, 1, 1]
    #  u4 = 0.2*0.192 + 0.6 = 0.6384 > 0.5 fires; u5 = 0.2*0.6384*(1-1) + 0 = 0
    #  u8 = 0.2*0.79*(1-1) + 0.55: reset, then the new input alone fires again
    lif = make_lif(NeuronParams())
    reset_state(lif)
    got_u, got_o = [], []
    for i in inputs:
        o = lif(torch.tensor([i]))
        got_o.append(int(o.item()))
        got_u.append(float(lif.mem.item()))
    assert got_o == hand_o
    assert got_u == pytest.approx(hand_u, abs=1e-6)


def test_threshold_is_strict_and_reset_is_to_zero():
    lif = make_lif(NeuronParams())
    reset_state(lif)
    assert lif(torch.tensor([0.5])).item() == 0.0          # u == V_th: no spike
    # u = 0.2*0.5 + 0.41 = 0.51 -> spike, then u = 0*... + 0.1 = 0.1 (not 0.51*0.2 + 0.1)
    assert lif(torch.tensor([0.41])).item() == 1.0
    lif(torch.tensor([0.1]))
    assert lif.mem.item() == pytest.approx(0.1)


def _eq12_reference(currents, beta=0.2, vth=0.5):
    """Eq 1-2 written out: currents (T, N) -> spikes (T, N)."""
    u = torch.zeros_like(currents[0])
    o = torch.zeros_like(u)
    out = []
    for c in currents:
        u = beta * u * (1 - o) + c
        o = (u > vth).to(u.dtype)
        out.append(o)
    return torch.stack(out)


def test_layer_with_synapses_matches_eq1_with_weights_and_bias():
    """u_i[t+1] = lambda u_i[t] (1 - o_i[t]) + sum_j w_ij o_pre_j[t+1] + b_i, 7 -> 5 neurons."""
    torch.manual_seed(0)
    fc = nn.Linear(7, 5)
    net = nn.Sequential(fc, make_lif(NeuronParams()))
    pre = (torch.rand(12, 3, 7) < 0.4).float()            # (T, B, 7) input spikes
    got = forward_sequence(net, pre)
    with torch.no_grad():
        want = _eq12_reference(pre @ fc.weight.T + fc.bias)
    assert torch.equal(got.detach(), want)
    assert 0 < want.sum() < want.numel()                  # the trace has spikes and silences


@pytest.mark.parametrize("a", [1.0, 0.5])
def test_rectangle_surrogate_has_eq4_shape(a):
    """dH/du = (1/a) * 1{|u - V_th| < a/2}; forward is the Heaviside step."""
    x = torch.linspace(-1.5, 1.5, 3001, requires_grad=True)  # x = u - V_th, step 1e-3
    y = rectangle(a)(x)
    assert torch.equal(y.detach(), (x > 0).float().detach())
    y.sum().backward()
    want = torch.where(x.detach().abs() < a / 2, torch.tensor(1 / a), torch.tensor(0.0))
    assert torch.allclose(x.grad, want)
    assert x.grad.max().item() == pytest.approx(1 / a)
    assert x.grad.sum().item() * 1e-3 == pytest.approx(1.0, abs=0.01)  # unit area


def test_surrogate_flows_through_the_neuron():
    lif = make_lif(NeuronParams())
    reset_state(lif)
    cur = torch.tensor([0.1, 0.45, 0.9, 1.2], requires_grad=True)  # u - V_th: -.4 -.05 .4 .7
    lif(cur).sum().backward()
    assert cur.grad.tolist() == [1.0, 1.0, 1.0, 0.0]


def test_bad_neuron_params():
    with pytest.raises(ValueError, match="beta"):
        NeuronParams(beta=1.5)
    with pytest.raises(ValueError, match="threshold"):
        NeuronParams(threshold=0)
    with pytest.raises(ValueError, match="width"):
        rectangle(0)
