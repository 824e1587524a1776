"""Synaptic operations from spike counts on hand-built NIR graphs (written and read back)."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spikeship.errors import ConfigError, GraphError, UnsupportedNodeError
from spikeship.energy.fanout import conv_fanout, fc_fanout, pool_backward
from spikeship.energy.synops import SpikeCounts, count_synops
from spikeship.sim.result import SimResult
from tests.energy.energy_nets import chain, convnet, lif, mlp


def roundtrip(graph, tmp_path, name="g.nir"):
    nir.write(tmp_path / name, graph)
    return nir.read(tmp_path / name)


def counts_for(graph, rng, samples=3, timesteps=4, input_value=0.7):
    from spikeship.nir.layers import input_nodes, neuron_populations

    c = {n: rng.integers(0, samples * timesteps + 1, size=s).astype(np.float64)
         for n, s in neuron_populations(graph).items()}
    shape = next(iter(input_nodes(graph).values()))
    ic = rng.integers(0, samples * timesteps + 1, size=shape).astype(np.float64)
    return SpikeCounts("test", "simulation", samples, timesteps, c, ic, ic * input_value)


# ---- fan-out maps --------------------------------------------------------------------
def test_conv_fanout_stride2_pad1_hand_computed():
    # 5 x 7 input, 3x3 kernel, stride 2, padding 1: output 3 x 4. Rows 0, 2, 4 are read
    # only by the centre tap row, rows 1, 3 by the two outer ones; same for columns.
    full = conv_fanout(np.ones((3, 1, 3, 3), bool), (1, 5, 7), stride=2, padding=1)
    assert full[0, 0, 0] == 3 and full[0, 1, 0] == 6 and full[0, 1, 1] == 12
    assert full[0, 4, 6] == 3
    assert full.sum() == 3 * (2 + 3 + 2) * (3 + 4 + 3)          # 210
    m = np.ones((3, 1, 3, 3), bool)
    m[2, 0, 1, 1] = False                                      # channel 2 loses its centre tap
    f = conv_fanout(m, (1, 5, 7), stride=2, padding=1)
    # (0, 0) is read only through the centre tap: 2 channels left; (1, 1) and (1, 0)
    # are read through the outer taps only: unchanged.
    assert f[0, 0, 0] == 2 and f[0, 1, 1] == 12 and f[0, 1, 0] == 6
    assert f.sum() == 210 - 3 * 4                             # 3 x 4 output positions


@pytest.mark.parametrize("cin,cout,h,w,k,s,p,d,g", [
    (1, 3, 5, 7, 3, 2, 1, 1, 1), (3, 4, 9, 6, 3, 1, 0, 1, 1), (2, 5, 8, 11, 5, 3, 2, 1, 1),
    (4, 6, 7, 7, 3, 2, 2, 2, 2), (3, 3, 6, 5, 2, 1, 1, 1, 3), (2, 3, 5, 5, 4, 2, 1, 1, 1)])
def test_conv_fanout_equals_gradient_of_masked_conv(cin, cout, h, w, k, s, p, d, g):
    rng = np.random.default_rng(cin * 100 + cout)
    mask = rng.random((cout, cin // g, k, k)) > 0.35
    f = conv_fanout(mask, (cin, h, w), stride=s, padding=p, dilation=d, groups=g)
    x = torch.ones(1, cin, h, w, dtype=torch.float64, requires_grad=True)
    F.conv2d(x, torch.tensor(mask, dtype=torch.float64), stride=s, padding=p, dilation=d,
             groups=g).sum().backward()
    np.testing.assert_array_equal(f, x.grad[0].numpy().astype(np.int64))


def test_pool_backward_border_neurons_drive_nothing():
    fan = np.arange(1, 7, dtype=np.int64).reshape(1, 2, 3)        # pooled 2 x 3
    g = pool_backward(fan, (1, 5, 7), kernel=2, stride=2, padding=0)
    assert g[0, 4].sum() == 0 and g[0, :, 6].sum() == 0           # in no window
    assert g[0, 0, 0] == g[0, 1, 1] == 1 and g[0, 3, 5] == 6
    assert g.sum() == 4 * fan.sum()


def test_fc_fanout_counts_existing_synapses_per_column():
    m = np.array([[1, 0, 1], [1, 1, 0]], bool)
    np.testing.assert_array_equal(fc_fanout(m), [2, 1, 1])


# ---- counting on graphs ---------------------------------------------------------------
def test_fc_synops_hand_computed(tmp_path):
    w = np.array([[0.5, 0.0, 1.0, 0.0, 0.0, 2.0, 0.1],
                  [0.0, 0.0, 0.3, 0.0, 1.0, 0.0, 0.2],
                  [0.4, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0],
                  [0.0, 0.6, 0.0, 0.0, 0.0, 0.0, 0.0],
                  [0.7, 0.0, 0.0, 0.8, 0.0, 0.0, 0.5]], np.float32)    # 5 x 7
    mask = w != 0
    mask[3, 2] = True           # a trained-to-zero synapse that exists (mask says so)
    nodes = {"input": nir.Input(input_type={"input": np.array([7])}),
             "fc0": nir.Affine(weight=w, bias=np.zeros(5, np.float32),
                               metadata={"mask": mask, "source_layer": "1",
                                         "original_shape": np.array([6, 7])}),
             "lif1": lif((5,)),
             "fc2": nir.Affine(weight=np.ones((3, 5), np.float32), bias=np.zeros(3, np.float32)),
             "lif3": lif((3,)), "output": nir.Output(output_type={"output": np.array([3])})}
    g = roundtrip(chain(nodes, {"encoding": "frames"}), tmp_path)
    ins = np.array([2, 0, 1, 3, 0, 1, 4], float)           # binary events per input
    lif1 = np.array([1, 0, 2, 5, 0], float)
    c = SpikeCounts("t", "simulation", 2, 4, {"lif1": lif1, "lif3": np.zeros(3)}, ins, ins)
    rep = count_synops(g, c)
    fc0, fc2 = rep.layers
    # fan-out per input column: [3, 1, 3, 2, 1, 1, 3]
    assert fc0.op == "AC"
    assert fc0.synops_effective == (2 * 3 + 0 + 1 * 3 + 3 * 2 + 0 + 1 * 1 + 4 * 3) / 2
    assert fc0.synops_dense == 6 * ins.sum() / 2
    assert fc0.connections_deployed == 14 and fc0.connections_original == 42
    assert fc2.synops_effective == 3 * lif1.sum() / 2 and fc2.synops_dense == fc2.synops_effective
    assert rep.input_events == ins.sum() / 2
    assert rep.spikes_routed == (lif1.sum() + ins.sum()) / 2
    pop = {p.name: p for p in rep.populations}
    assert pop["lif1"].updates == 5 * 4 and pop["lif1"].spikes == 4.0
    assert pop["lif1"].idle_updates == 16.0 and pop["lif1"].neurons_original == 6


def test_direct_input_counts_macs_and_says_so(tmp_path):
    g = roundtrip(convnet(encoding="direct"), tmp_path)
    c = counts_for(g, np.random.default_rng(0))
    rep = count_synops(g, c)
    assert [l.op for l in rep.layers] == ["MAC", "AC", "AC"]
    assert any("conv0" in n and "MAC" in n for n in rep.notes)
    assert rep.input_events == 0.0
    g2 = roundtrip(convnet(encoding="frames"), tmp_path, "f.nir")
    rep2 = count_synops(g2, c)
    assert rep2.layers[0].op == "AC"
    # events = input_sum (0.7 x count) instead of the non-zero count
    assert rep2.layers[0].synops_effective == pytest.approx(0.7 * rep.layers[0].synops_effective)


def _bruteforce(graph, counts, dense=False):
    """Per layer sum of counts x d/dx sum(layer(stages(x))) with a binary weight: torch."""
    from spikeship.nir.layers import synaptic_layers

    out = []
    for layer in synaptic_layers(graph):
        pre = (counts.input_count if layer.pre_is_input else counts.neuron_counts[layer.presynaptic])
        x = torch.ones(1, *layer.pre_shape, dtype=torch.float64, requires_grad=True)
        y = x
        for st in layer.stages:
            y = (F.avg_pool2d(y, st.kernel, st.stride) * st.kernel[0] * st.kernel[1]
                 if st.kind == "pool" else y.reshape(1, -1))
        if dense:
            shp = (layer.original_shape[0], *layer.weight.shape[1:])
            wb = torch.ones(shp, dtype=torch.float64)
        else:
            wb = torch.tensor(layer.mask, dtype=torch.float64)
        z = (F.conv2d(y, wb, stride=layer.stride, padding=layer.padding) if layer.kind == "conv"
             else y @ wb.T)
        z.sum().backward()
        out.append(float((x.grad[0].numpy() * pre).sum()) / counts.samples)
    return out


def test_convnet_synops_equal_bruteforce(tmp_path):
    g = roundtrip(convnet(seed=3), tmp_path)
    c = counts_for(g, np.random.default_rng(5))
    rep = count_synops(g, c)
    assert [l.synops_effective for l in rep.layers] == pytest.approx(_bruteforce(g, c))
    assert [l.synops_dense for l in rep.layers] == pytest.approx(_bruteforce(g, c, dense=True))
    for l in rep.layers:
        assert l.synops_dense >= l.synops_effective
        assert l.original_known and l.mask_source == "metadata"
    conv3 = rep.layers[1]
    assert conv3.connections_original == 6 * 7 * 9 and conv3.instances_original > conv3.instances_deployed


def test_identical_spikes_give_identical_synops(tmp_path):
    g = roundtrip(convnet(), tmp_path)
    rng = np.random.default_rng(1)
    c = counts_for(g, rng)
    out = rng.integers(0, 2, size=(3, 4, 3)).astype(np.uint8)
    a = SimResult("lava-fixed", 4, out, dict(c.neuron_counts), c.input_count, c.input_sum)
    b = SimResult("reference", 4, 1 - out, {k: v.copy() for k, v in c.neuron_counts.items()},
                  c.input_count.copy(), c.input_sum.copy())
    a.save(tmp_path)
    b.save(tmp_path)
    ra = count_synops(g, SpikeCounts.from_result(SimResult.load(tmp_path, "lava-fixed")))
    rb = count_synops(g, SpikeCounts.from_result(SimResult.load(tmp_path, "reference")))
    assert ra.layers == rb.layers and ra.populations == rb.populations
    assert ra.counts_source != rb.counts_source
    c2 = dict(c.neuron_counts)
    c2["lif4"] = c2["lif4"] + 1
    rc = count_synops(g, SpikeCounts("x", "simulation", 3, 4, c2, c.input_count, c.input_sum))
    assert rc.layers[2].synops_effective > ra.layers[2].synops_effective


def test_assumed_rate_one_bounds_any_run(tmp_path):
    g = roundtrip(convnet(), tmp_path)
    bound = count_synops(g, SpikeCounts.assumed(g, 1.0, 4))
    assert bound.counts_kind == "assumed_rate" and "upper bound" in bound.counts_source
    for seed in range(3):
        c = counts_for(g, np.random.default_rng(seed), samples=1, timesteps=4)
        # a neuron fires at most once per step, an input is non-zero at most T times
        c = SpikeCounts("x", "simulation", 1, 4, {k: np.minimum(v, 4) for k, v in
                                                  c.neuron_counts.items()},
                        np.minimum(c.input_count, 4), np.minimum(c.input_count, 4))
        rep = count_synops(g, c)
        for lb, lr in zip(bound.layers, rep.layers):
            assert lb.synops_effective >= lr.synops_effective
    half = count_synops(g, SpikeCounts.assumed(g, 0.5, 4))
    assert "0.5" in half.counts_source and "only if" in half.counts_source
    with pytest.raises(ConfigError):
        SpikeCounts.assumed(g, 1.5, 4)


def test_without_metadata_counts_nonzero_weights_and_says_so(tmp_path):
    g = roundtrip(mlp(), tmp_path)
    c = counts_for(g, np.random.default_rng(2))
    rep = count_synops(g, c)
    fc0 = rep.layers[0]
    assert fc0.mask_source == "nonzero" and not fc0.original_known
    assert fc0.connections_deployed == int(np.count_nonzero(g.nodes["fc0"].weight))
    ins = c.input_count                                        # graded input: MACs
    assert fc0.op == "MAC"
    assert fc0.synops_dense == pytest.approx(float((ins * 5).sum()) / c.samples)  # every entry
    assert any("no mask metadata" in n for n in rep.notes)
    assert any("original shape unknown" in n for n in rep.notes)


def test_missing_counts_is_a_named_error(tmp_path):
    g = roundtrip(convnet(), tmp_path)
    c = counts_for(g, np.random.default_rng(0))
    counts = dict(c.neuron_counts)
    del counts["lif4"]
    with pytest.raises(GraphError, match="lif4"):
        count_synops(g, SpikeCounts("sim", "simulation", 3, 4, counts, c.input_count, c.input_sum))
    counts = dict(c.neuron_counts)
    counts["lif4"] = np.zeros(7)
    with pytest.raises(GraphError, match="lif4"):
        count_synops(g, SpikeCounts("sim", "simulation", 3, 4, counts, c.input_count, c.input_sum))


def test_unsupported_node_between_neurons_and_synapses_is_named():
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}),
             "scale": nir.Scale(scale=np.ones(4, np.float32)),
             "fc1": nir.Affine(weight=np.ones((3, 4), np.float32), bias=np.zeros(3, np.float32)),
             "lif2": lif((3,)), "output": nir.Output(output_type={"output": np.array([3])})}
    g = chain(nodes)
    c = SpikeCounts("x", "simulation", 1, 2, {"lif2": np.zeros(3)}, np.ones(4), np.ones(4))
    with pytest.raises(UnsupportedNodeError, match="Scale"):
        count_synops(g, c)


def test_layers_come_in_topological_order_after_a_roundtrip(tmp_path):
    # HDF5 lists groups alphabetically: fc11 would come before fc9
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}),
             "fc9": nir.Affine(weight=np.ones((3, 4), np.float32), bias=np.zeros(3, np.float32)),
             "lif10": lif((3,)),
             "fc11": nir.Affine(weight=np.ones((2, 3), np.float32), bias=np.zeros(2, np.float32)),
             "lif12": lif((2,)), "output": nir.Output(output_type={"output": np.array([2])})}
    g = roundtrip(chain(nodes), tmp_path)
    assert list(g.nodes).index("fc11") < list(g.nodes).index("fc9")
    c = SpikeCounts("x", "simulation", 1, 2, {"lif10": np.ones(3), "lif12": np.ones(2)},
                    np.ones(4), np.ones(4))
    rep = count_synops(g, c)
    assert [l.layer for l in rep.layers] == ["fc9", "fc11"]
    assert [p.name for p in rep.populations] == ["lif10", "lif12"]
