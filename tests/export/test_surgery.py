"""Model surgery: pruned units physically removed, BN / pool / r folded, same function."""

import numpy as np
import pytest
import torch
from torch import nn

from spikeship.errors import ExportError
from spikeship.export.nir_export import to_nir
from spikeship.export.deployable import (FlattenLayer, NeuronLayer, PoolLayer, SynapseLayer,
                                         shape_table)
from spikeship.export.surgery import build_deployable
from spikeship.sim.snntorch import record_model
from spikeship.sim.reference import simulate
from spikeship.train.models import ModelSpec, build_model
from spikeship.train.neuron import NeuronParams, make_lif
from tests.export import nets


def _run_both(model, net, x):
    ref_out, ref_counts = record_model(model, x)
    out, counts = simulate(to_nir(net), x)
    return ref_out, ref_counts, out, counts


def test_conv_net_removal_shapes_kept_indices_and_identical_outputs():
    model, spec = nets.conv_net()
    masks = nets.prune(nets.masks_for(model, spec), {"0": [1, 3], "4": [0, 5], "8": [2, 4, 8]})
    net = build_deployable(model, masks, spec, {"timesteps": 5})
    names = [l.name for l in net.layers]
    assert names == ["conv0", "lif2", "pool3", "conv4", "lif5", "pool6", "flatten7", "fc8",
                     "lif9", "fc10", "lif11"]                     # BN (index 1) folded away
    conv0, conv4, fc8, fc10 = net.synapse_layers()
    assert conv0.weight.shape == (3, 2, 3, 3) and conv0.kept_out.tolist() == [0, 2, 4]
    assert conv4.weight.shape == (5, 3, 3, 3) and conv4.kept_in.tolist() == [0, 2, 4]
    assert conv4.kept_out.tolist() == [1, 2, 3, 4, 6]
    # through Flatten: conv4's map is (2, 1), so channel c owns columns 2c, 2c+1
    assert fc8.kept_in.tolist() == [2, 3, 4, 5, 6, 7, 8, 9, 12, 13]
    assert fc8.weight.shape == (6, 10) and fc10.weight.shape == (3, 6)
    lif = {l.name: l for l in net.neuron_layers()}
    assert lif["lif2"].shape == (3, 9, 7) and lif["lif5"].shape == (5, 4, 3)
    assert lif["lif9"].kept.tolist() == [0, 1, 3, 5, 6, 7]
    x = nets.inputs_for(spec, n=8)
    ref_out, ref_counts, out, counts = _run_both(model, net, x)
    assert ref_out.sum() > 0 and all(v.sum() > 0 for v in ref_counts.values())
    np.testing.assert_array_equal(out, ref_out)
    for name, layer in lif.items():
        np.testing.assert_array_equal(counts[name], ref_counts[name][layer.kept])
        removed = np.setdiff1d(np.arange(ref_counts[name].shape[0]), layer.kept)
        assert ref_counts[name][removed].sum() == 0           # a removed unit never fired


def test_unpruned_export_keeps_every_shape():
    model, spec = nets.conv_net(seed=1)
    net = build_deployable(model, nets.masks_for(model, spec), spec)
    for row in shape_table(net):
        assert row["before"] == row["after"]
    x = nets.inputs_for(spec, n=4, seed=3)
    ref_out, _, out, _ = _run_both(model, net, x)
    np.testing.assert_array_equal(out, ref_out)


def test_pruned_export_is_smaller_and_computes_the_same_as_the_masked_dense_export():
    model, spec = nets.pool_net()
    masks = nets.prune(nets.masks_for(model, spec), {"0": [1]}, weight_frac=0.3, seed=2)
    net = build_deployable(model, masks, spec)
    conv, fc = net.synapse_layers()
    assert conv.weight.shape == (2, 1, 3, 3) and fc.weight.shape == (4, 18)
    assert fc.kept_in.tolist() == list(range(0, 9)) + list(range(18, 27))
    dense = build_deployable(model, None, spec)        # same (zeroed) weights, nothing cut
    assert dense.synapse_layers()[1].weight.shape == (4, 27)
    x = nets.inputs_for(spec, n=10, seed=5)
    a, ca = simulate(to_nir(net), x)
    b, _ = simulate(to_nir(dense), x)
    assert a.sum() > 0
    np.testing.assert_array_equal(a, b)


def test_mask_tells_pruned_from_trained_zero_and_weights_are_baked():
    model, spec = nets.mlp()
    masks = nets.masks_for(model, spec)
    remove = torch.zeros(5, 7, dtype=torch.bool)
    remove[0, 0] = remove[3, 6] = True
    masks.prune_weights("1", remove)
    masks.prune_units("1", torch.tensor([False, True, False, False, False]))
    masks.apply()
    with torch.no_grad():
        model[1].weight[2, 4] = 0.0            # a trained zero: the synapse still exists
    fc1 = build_deployable(model, masks, spec).synapse_layers()[0]
    assert fc1.kept_out.tolist() == [0, 2, 3, 4]
    assert fc1.mask.shape == fc1.weight.shape == (4, 7)
    assert not fc1.mask[0, 0] and not fc1.mask[2, 6]      # rows 0 and 3 of the original
    assert fc1.mask[1, 4] and fc1.weight[1, 4] == 0.0
    assert np.all(fc1.weight[~fc1.mask] == 0) and fc1.mask.sum() == 4 * 7 - 2


def test_bn_folding_and_r_folding_values():
    model, spec = nets.conv_net(seed=2)
    conv0 = build_deployable(model, None, spec).synapse_layers()[0]
    bn, conv = model[1], model[0]
    s = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().numpy()
    r = 1 / (1 - 0.2)
    w = conv.weight.detach().double().numpy() * s[:, None, None, None] * r
    b = ((conv.bias - bn.running_mean).detach().double().numpy() * s
         + bn.bias.detach().double().numpy()) * r
    np.testing.assert_allclose(conv0.weight, w, rtol=1e-6)
    np.testing.assert_allclose(conv0.bias, b, rtol=1e-6, atol=1e-7)
    assert conv0.scale_folded == pytest.approx(r) and conv0.bias_scale_folded == pytest.approx(r)
    conv4 = build_deployable(model, None, spec).synapse_layers()[1]
    assert conv4.scale_folded == pytest.approx(r / 4)    # AvgPool 1/4 and LIF r
    assert conv4.bias_scale_folded == pytest.approx(r)   # the pool does not touch the bias


def test_layer_kinds_of_the_digits_preset():
    spec = ModelSpec("dpap-mnist", (1, 8, 8), 10)
    net = build_deployable(build_model(spec), None, spec)
    kinds = [type(l) for l in net.layers]
    assert kinds == [SynapseLayer, NeuronLayer, PoolLayer, SynapseLayer, NeuronLayer, PoolLayer,
                     FlattenLayer, SynapseLayer, NeuronLayer, SynapseLayer, NeuronLayer]
    assert [l.name for l in net.layers] == ["conv0", "lif1", "pool2", "conv3", "lif4", "pool5",
                                            "flatten6", "fc7", "lif8", "fc9", "lif10"]


def test_beta_one_is_an_if_neuron_with_nothing_folded():
    model, spec = nets.conv_net(beta=1.0)
    net = build_deployable(model, None, spec)
    assert net.synapse_layers()[3].scale_folded == 1.0 and net.synapse_layers()[2].scale_folded == 0.25
    assert type(to_nir(net).nodes["lif9"]).__name__ == "IF"
    x = nets.inputs_for(spec, n=4)
    ref_out, _, out, _ = _run_both(model, net, x)
    assert ref_out.sum() > 0
    np.testing.assert_array_equal(out, ref_out)


@pytest.mark.parametrize("case, message", [
    ("ann", "ANN"), ("maxpool", "MaxPool"), ("subtract", "reset"), ("all_pruned", "every unit"),
    ("relu", "ReLU")])
def test_unexportable_models_raise_export_error(case, message):
    model, spec = nets.mlp()
    masks = None
    if case == "ann":
        spec = ModelSpec("tiny-mlp", (1, 1, 7), 3, ann=True)
    elif case == "maxpool":
        spec = ModelSpec("dpap-mnist", (1, 8, 8), 10, pool="max")
        model = build_model(spec)
    elif case == "subtract":
        model[2] = make_lif(NeuronParams())
        model[2].reset_mechanism = "subtract"
    elif case == "all_pruned":
        masks = nets.prune(nets.masks_for(model, spec), {"1": [0, 1, 2, 3, 4]})
    elif case == "relu":
        model[2] = nn.ReLU()
    with pytest.raises(ExportError, match=message):
        build_deployable(model, masks, spec)


def test_units_left_without_synapses_are_removed_only_when_they_can_never_fire():
    """fc8 (threshold 0.5, beta 0.2): every synapse into units 1, 4, 6 and 8 is pruned.
    Unit 1's bias is negative, unit 4's settles at 0.1 / 0.8 = 0.125: both silent, removed.
    Unit 6's bias 0.55 is above the threshold: it fires on every step without input: kept.
    Unit 8's settles at 0.38 / 0.8 = 0.475: it never fires either, but it lies within the
    margin (0.9 x 0.5 = 0.45) that leaves room for the chips' rounding: kept."""
    model, spec = nets.conv_net(seed=4)
    with torch.no_grad():
        model[8].bias[[1, 4, 6, 8]] = torch.tensor([-0.3, 0.1, 0.55, 0.38])
    masks = nets.masks_for(model, spec)
    remove = torch.zeros_like(masks.weight["8"], dtype=torch.bool)
    remove[[1, 4, 6, 8]] = True
    masks.prune_weights("8", remove)
    masks.apply()
    net = build_deployable(model, masks, spec, {"timesteps": 12})
    assert net.removed_silent == {"fc8": (1, 4)}
    fc8, fc10 = net.synapse_layers()[2:]
    assert fc8.kept_out.tolist() == [0, 2, 3, 5, 6, 7, 8] and fc8.weight.shape == (7, 14)
    assert fc10.kept_in.tolist() == [0, 2, 3, 5, 6, 7, 8] and fc10.weight.shape == (3, 7)
    lif9 = {l.name: l for l in net.neuron_layers()}["lif9"]
    x = nets.inputs_for(spec, n=8, steps=12)
    ref_out, ref_counts, out, counts = _run_both(model, net, x)
    np.testing.assert_array_equal(out, ref_out)              # no output changed
    np.testing.assert_array_equal(counts["lif9"], ref_counts["lif9"][lif9.kept])
    assert ref_counts["lif9"][[1, 4]].sum() == 0             # the removed ones never fired
    assert ref_counts["lif9"][6].min() > 0                   # the kept one fires on bias alone
    assert ref_counts["lif9"][8].sum() == 0                  # kept within the margin
    # the output layer's units are never removed, however silent
    with torch.no_grad():
        model[10].bias[0] = -1.0
    masks.prune_weights("10", torch.arange(3)[:, None].expand(3, 9) == 0)
    masks.apply()
    net = build_deployable(model, masks, spec, {"timesteps": 12})
    assert net.synapse_layers()[3].weight.shape[0] == 3 and "fc10" not in net.removed_silent
