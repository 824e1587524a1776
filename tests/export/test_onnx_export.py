"""ONNX export: checker passes, ONNX Runtime runs it, pruned units are gone, same spikes."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from spikeship.errors import ExportError
from spikeship.export.onnx_export import IR_VERSION, OPSET, to_onnx, write_onnx
from spikeship.export.surgery import build_deployable
from spikeship.sim.snntorch import record_model
from spikeship.sim.onnx_runner import simulate_onnx
from tests.export import nets


def _net(pruned: bool):
    model, spec = nets.conv_net(seed=4)
    masks = nets.masks_for(model, spec)
    if pruned:
        masks = nets.prune(masks, {"0": [2], "4": [0, 1, 6], "8": [0, 3, 7]}, weight_frac=0.2)
    return model, spec, build_deployable(model, masks, spec, {"timesteps": 5})


@pytest.mark.parametrize("pruned", [False, True])
@pytest.mark.parametrize("mode", ["step", "unrolled"])
def test_onnx_round_trip_checker_and_runtime_agree_with_snntorch(tmp_path, pruned, mode):
    model, spec, net = _net(pruned)
    path = write_onnx(to_onnx(net, mode=mode, timesteps=5), tmp_path / "model.onnx")
    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)
    assert m.ir_version == IR_VERSION and m.opset_import[0].version == OPSET
    x = nets.inputs_for(spec, n=9, seed=6)
    want, want_counts = record_model(model, x)
    out, counts, meta = simulate_onnx(path, x, batch_size=4)
    assert meta["mode"] == mode and want.sum() > 0
    np.testing.assert_array_equal(out, want)
    for layer in net.neuron_layers():
        np.testing.assert_array_equal(counts[layer.name], want_counts[layer.name][layer.kept])


def test_pruned_onnx_initializers_are_smaller_and_spike_is_a_comparison(tmp_path):
    shapes, stored = {}, {}
    for pruned in (False, True):
        net = _net(pruned)[2]
        m = to_onnx(net)
        inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
        shapes[pruned] = {k: v.shape for k, v in inits.items() if not k.endswith(".shape")}
        stored[pruned] = sum(v.size for k, v in inits.items()
                             if not k.endswith((".shape", ".indices")))
        for layer in net.layers:
            name = f"{getattr(layer, 'name', '')}.weight"
            if f"{name}.values" in inits:       # pruned synapses: only survivors stored
                assert inits[f"{name}.values"].size == int(layer.mask.sum()) < layer.mask.size
                shapes[pruned][name] = tuple(int(d) for d in inits[f"{name}.shape"])
            elif hasattr(layer, "mask"):
                assert layer.mask.all()
        ops = {n.op_type for n in m.graph.node}
        assert "Greater" in ops and "Where" not in ops      # reset as v' - v' * z
        assert "Identity" not in {n.op_type for n in m.graph.node
                                  if n.output[0] != "spikes"}   # outputs named in place
        assert all(n.domain in ("", "ai.onnx") for n in m.graph.node)   # no custom ops
    assert shapes[False]["conv0.weight"] == (5, 2, 3, 3)
    assert shapes[True]["conv0.weight"] == (4, 2, 3, 3)
    assert shapes[True]["conv4.weight"] == (4, 4, 3, 3)
    assert shapes[True]["fc8.weight"] == (6, 8)         # 4 channels x 2 columns kept
    assert shapes[True]["fc10.bias"] == (3,)
    assert stored[True] < stored[False]


def test_step_graph_io_names_and_metadata():
    net = _net(True)[2]
    m = to_onnx(net)
    ins = [i.name for i in m.graph.input]
    outs = [o.name for o in m.graph.output]
    assert ins == ["x", "v_lif2", "v_lif5", "v_lif9", "v_lif11"]
    assert outs[0] == "spikes" and "v_lif5_next" in outs and "z_lif9" in outs
    props = {p.key: p.value for p in m.metadata_props}
    assert props["format"] == "spikeship-onnx/1" and props["mode"] == "step"
    assert props["timesteps"] == "5" and props["reset"] == "zero"


def test_bad_mode_and_zero_steps():
    net = _net(False)[2]
    with pytest.raises(ExportError, match="mode"):
        to_onnx(net, mode="loop")
    model, spec = nets.mlp()
    no_steps = build_deployable(model, None, spec)          # config without timesteps
    with pytest.raises(ExportError, match="timesteps"):
        to_onnx(no_steps, mode="unrolled")


def test_if_neurons_beta_one_run_identically(tmp_path):
    model, spec = nets.conv_net(seed=1, beta=1.0)
    net = build_deployable(model, None, spec)
    path = write_onnx(to_onnx(net), tmp_path / "if.onnx")
    x = nets.inputs_for(spec, n=4, seed=2)
    want, _ = record_model(model, x)
    out, _, _ = simulate_onnx(path, x)
    assert want.sum() > 0
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("kernel, op", [(2, "AveragePool"), (3, "Conv")])
def test_sum_pool_is_average_pool_times_area_when_exact(tmp_path, kernel, op):
    """A 2x2 window (area 4, a power of two) is Mul(AveragePool, 4), exact for spikes; a
    3x3 one (area 9: x / 9 * 9 need not be x) stays the grouped Conv of ones. Both give
    snntorch's spikes bit for bit."""
    import torch
    from torch import nn

    from spikeship.train.models import ModelSpec

    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nets._lif(), nn.AvgPool2d(kernel),
                          nn.Flatten(), nn.Linear(3 * (6 // kernel) ** 2, 4), nets._lif())
    with torch.no_grad():
        model[0].weight.mul_(4.0)
        model[4].weight.mul_(6.0)
    spec = ModelSpec("dpap-mnist", (1, 6, 6), 4)
    net = build_deployable(model.eval(), None, spec, {"timesteps": 6})
    m = to_onnx(net)
    pool_nodes = [n for n in m.graph.node if n.name.startswith("pool2")]
    assert op in {n.op_type for n in pool_nodes}
    assert ("Conv" in {n.op_type for n in pool_nodes}) == (op == "Conv")
    path = write_onnx(m, tmp_path / "pool.onnx")
    x = nets.inputs_for(spec, n=16, seed=1)
    want, want_counts = record_model(model, x)
    out, counts, _ = simulate_onnx(path, x)
    assert want.sum() > 0 and want_counts["lif5"].sum() > 0
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(counts["lif5"], want_counts["lif5"])
