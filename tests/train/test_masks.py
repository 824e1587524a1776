"""MaskSet: a pruned unit never fires, pruned entries get no gradient, AdamW moments are zeroed."""

import pytest
import torch

from spikeship.errors import MaskError
from spikeship.train.masks import MaskSet
from spikeship.train.models import ModelSpec, build_model, forward_sequence
from spikeship.train.structure import describe


def _net():
    torch.manual_seed(0)
    spec = ModelSpec("dpap-mnist", (1, 7, 5), 3)    # conv 0 -> conv 3 -> fc 7 -> fc 9 (3 classes)
    m = build_model(spec)
    with torch.no_grad():   # a busy fixture: every layer fires on random input
        for i in (0, 3, 7, 9):
            m[i].weight.mul_(4.0)
    layers = describe(m, spec.input_shape)
    return m, MaskSet(m, layers)


def _record(model, idx):
    spikes = []
    h = model[idx].register_forward_hook(lambda mod, i, o: spikes.append(o.detach().clone()))
    return spikes, h


def test_pruned_units_stay_silent_on_any_input():
    m, masks = _net()
    masks.prune_units("0", torch.tensor([i in (2, 9) for i in range(15)]))
    masks.prune_units("7", torch.arange(300) % 7 == 0)
    masks.apply()
    conv_spk, h1 = _record(m, 1)
    fc_spk, h2 = _record(m, 8)
    for scale in (1.0, 10.0, 100.0):
        x = scale * torch.rand(4, 1, 7, 5) * torch.randn(4, 1, 7, 5).sign()
        forward_sequence(m, x, timesteps=5)
    h1.remove()
    h2.remove()
    conv = torch.stack(conv_spk)          # (steps, B, 15, 7, 5)
    fc = torch.stack(fc_spk)              # (steps, B, 300)
    assert conv[:, :, [2, 9]].sum() == 0 and fc[:, :, ::7].sum() == 0
    assert conv.sum() > 0 and fc.sum() > 0         # the others do fire
    # bias and outgoing synapses are gone too
    assert m[0].bias[[2, 9]].abs().sum() == 0
    assert m[3].weight[:, [2, 9]].abs().sum() == 0
    cols = torch.arange(300) % 7 == 0
    assert m[9].weight[:, cols].abs().sum() == 0


def test_output_units_cannot_be_pruned():
    _, masks = _net()
    with pytest.raises(MaskError, match="output layer"):
        masks.prune_units("9", torch.tensor([True, False, False]))


def test_gradients_of_pruned_entries_are_zero():
    m, masks = _net()
    remove = torch.rand_like(m[7].weight) < 0.5
    masks.prune_weights("7", remove)
    masks.prune_units("3", torch.arange(40) == 5)
    masks.apply()
    out = forward_sequence(m, torch.rand(6, 1, 7, 5), timesteps=4)
    ((out.mean(0) - 0.5) ** 2).sum().backward()
    masks.mask_grads()
    assert m[7].weight.grad[remove].abs().sum() == 0
    assert m[3].bias.grad[5] == 0 and m[3].weight.grad[5].abs().sum() == 0
    assert m[7].weight.grad[~masks.effective("7")].abs().sum() == 0
    assert m[7].weight.grad.abs().sum() > 0


def test_optimizer_moments_are_zeroed_and_weights_stay_zero():
    m, masks = _net()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.01)
    x = torch.rand(8, 1, 7, 5) * 3

    def step():
        opt.zero_grad()
        out = forward_sequence(m, x, timesteps=3)
        ((out.mean(0) - 0.3) ** 2).sum().backward()
        masks.mask_grads()
        opt.step()
        masks.apply(opt)

    step()
    step()
    st = opt.state[m[7].weight]
    assert st["exp_avg"].abs().sum() > 0
    remove = torch.zeros_like(m[7].weight, dtype=torch.bool)
    remove[:10] = True
    masks.prune_weights("7", remove)
    masks.prune_units("0", torch.arange(15) == 3)
    masks.apply(opt)
    assert st["exp_avg"][:10].abs().sum() == 0 and st["exp_avg_sq"][:10].abs().sum() == 0
    assert opt.state[m[0].bias]["exp_avg"][3] == 0
    for _ in range(3):
        step()
        assert m[7].weight[:10].abs().sum() == 0
        assert m[0].weight[3].abs().sum() == 0 and m[0].bias[3] == 0


def test_counts_and_state_round_trip():
    m, masks = _net()
    masks.prune_units("7", torch.arange(300) < 100)
    c = {x.name: x for x in masks.counts()}
    assert c["7"].units_remaining == 200 and c["9"].synapses_remaining == 3 * 200
    m2, masks2 = _net()
    masks2.load_state(masks.state())
    assert torch.equal(masks2.effective("9"), masks.effective("9"))
    assert masks2.pruning_rate() == pytest.approx(masks.pruning_rate()) and masks.pruning_rate() > 0
    bad = masks.state()
    bad["weight.7"] = bad["weight.7"][:, :-1]
    with pytest.raises(MaskError, match="weight.7"):
        masks2.load_state(bad)
