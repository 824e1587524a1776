"""The reference simulator against hand-computed traces of the documented equations."""

import nir
import numpy as np
import pytest
import torch

from spikeship.errors import GraphError, SimulationError
from spikeship.nir.read import load_graph
from spikeship.sim.reference import ReferenceSim, simulate

F32 = np.float32


def _one(v):
    return np.array([v], F32)


def _graph(neuron, dt=1e-3, w=1.0, extra=None):
    nodes = {"input": nir.Input(input_type={"input": np.array([1])}),
             "fc": nir.Affine(weight=np.array([[w]], F32), bias=np.zeros(1, F32)),
             "n": neuron, "output": nir.Output(output_type={"output": np.array([1])})}
    edges = [("input", "fc"), ("fc", "n"), ("n", "output")]
    if extra:
        nodes.update(extra[0])
        edges += extra[1]
    return load_graph(nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": dt},
                                   type_check=False))


def _const(value, steps):
    return np.full((1, steps, 1), value, F32)


def test_lif_forward_euler_trace():
    # dt/tau = 0.5: v = v + 0.5 (0 - v + 1.2): 0.6, 0.9, 1.05 > 1 -> spike, reset, 0.6, ...
    g = _graph(nir.LIF(tau=_one(2e-3), r=_one(1), v_leak=_one(0), v_threshold=_one(1),
                       v_reset=_one(0)))
    out, counts = simulate(g, _const(1.2, 6))
    assert out[0, :, 0].tolist() == [0, 0, 1, 0, 0, 1]
    assert counts["n"].tolist() == [2]
    sim = ReferenceSim(g)
    sim.reset(1)
    vs = []
    for _ in range(3):
        sim.step(torch.tensor([[1.2]]))
        vs.append(float(sim.state["n"]["v"]))
    assert vs == pytest.approx([0.6, 0.9, 0.0])          # reset in the step of the spike


def test_lif_with_leak_voltage_resistance_and_reset_value():
    # v = v + 0.25 (0.2 - v + 2 * 0.5): 0.3, 0.525 -> spike (> 0.5), reset to 0.1
    g = _graph(nir.LIF(tau=_one(4e-3), r=_one(2), v_leak=_one(0.2), v_threshold=_one(0.5),
                       v_reset=_one(0.1)))
    sim = ReferenceSim(g)
    sim.reset(1)
    z0 = sim.step(torch.tensor([[0.5]]))["n"]
    assert float(sim.state["n"]["v"]) == pytest.approx(0.3) and float(z0) == 0
    z1 = sim.step(torch.tensor([[0.5]]))["n"]
    assert float(z1) == 1 and float(sim.state["n"]["v"]) == pytest.approx(0.1)


def test_if_integrates_per_step_without_dt():
    # v = v + 0.5 * 0.3: 0.15, 0.3, 0.45, 0.6 > 0.5 -> spike, then again at step 7
    g = _graph(nir.IF(r=_one(0.5), v_threshold=_one(0.5), v_reset=_one(0)), dt=1e-4)
    out, _ = simulate(g, _const(0.3, 8))
    assert np.flatnonzero(out[0, :, 0]).tolist() == [3, 7]


def test_li_outputs_its_voltage():
    g = _graph(nir.LI(tau=_one(4e-3), r=_one(1), v_leak=_one(0)))
    out, counts = simulate(g, _const(1.0, 3))
    assert out[0, :, 0] == pytest.approx([0.25, 0.4375, 0.578125])
    assert counts == {}


def test_cuba_lif_updates_current_before_voltage():
    # i = i + 0.5 (-i + 2 x), v = v + 0.25 (-v + i_new), x = 1:
    # i: 1, 1.5, 1.75;  v: 0.25, 0.5625, 0.859375 > 0.8 -> spike at step 2
    node = nir.CubaLIF(tau_syn=_one(2e-3), tau_mem=_one(4e-3), r=_one(1), v_leak=_one(0),
                       v_threshold=_one(0.8), v_reset=_one(0), w_in=_one(2))
    g = _graph(node)
    sim = ReferenceSim(g)
    sim.reset(1)
    trace = []
    for _ in range(3):
        z = sim.step(torch.tensor([[1.0]]))["n"]
        trace.append((float(sim.state["n"]["i"]), float(sim.state["n"]["v"]), float(z)))
    assert trace == [pytest.approx((1.0, 0.25, 0)), pytest.approx((1.5, 0.5625, 0)),
                     pytest.approx((1.75, 0.0, 1))]


def test_recurrent_edge_reads_the_previous_step():
    # IF, input 0.6 per step, self-inhibition -1 through a recurrent Affine:
    # v: 0.6 spike | 0.6 - 1 = -0.4 | 0.2 | 0.8 spike | -0.4 | 0.2 | 0.8 spike
    rec = ({"rec": nir.Affine(weight=np.array([[-1.0]], F32), bias=np.zeros(1, F32))},
           [("n", "rec"), ("rec", "n")])
    g = _graph(nir.IF(r=_one(1), v_threshold=_one(0.5), v_reset=_one(0)), extra=rec)
    assert g.recurrent["n"] == ["rec"]
    out, _ = simulate(g, _const(0.6, 7))
    assert np.flatnonzero(out[0, :, 0]).tolist() == [0, 3, 6]


def test_sum_pool_avg_pool_flatten_scale():
    x = np.arange(16, dtype=F32).reshape(1, 1, 1, 4, 4)
    for kind, div in (("SumPool2d", 1), ("AvgPool2d", 4)):
        pool = getattr(nir, kind)(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                  padding=np.array([0, 0]))
        nodes = {"input": nir.Input(input_type={"input": np.array([1, 4, 4])}), "p": pool,
                 "f": nir.Flatten(input_type={"input": np.array([1, 2, 2])}, start_dim=0),
                 "s": nir.Scale(scale=np.array([1, 2, 3, 4], F32)),
                 "output": nir.Output(output_type={"output": np.array([4])})}
        g = load_graph(nir.NIRGraph(nodes=nodes, edges=[("input", "p"), ("p", "f"), ("f", "s"),
                                                        ("s", "output")], type_check=False))
        out, _ = simulate(g, x)
        sums = np.array([0 + 1 + 4 + 5, 2 + 3 + 6 + 7, 8 + 9 + 12 + 13, 10 + 11 + 14 + 15])
        np.testing.assert_allclose(out[0, 0], sums / div * np.array([1, 2, 3, 4]))


def test_missing_dt_and_wrong_input_shape():
    g = _graph(nir.LIF(tau=_one(2e-3), r=_one(1), v_leak=_one(0), v_threshold=_one(1),
                       v_reset=_one(0)))
    g.dt_s = None
    with pytest.raises(GraphError, match="dt"):
        simulate(g, _const(1.0, 2))
    out, _ = simulate(g, _const(1.2, 3), dt_s=1e-3)
    assert out[0, :, 0].tolist() == [0, 0, 1]
    with pytest.raises(SimulationError, match="inputs must be"):
        simulate(g, np.zeros((1, 3, 2), F32), dt_s=1e-3)


def test_batches_are_independent():
    g = _graph(nir.LIF(tau=_one(2e-3), r=_one(1), v_leak=_one(0), v_threshold=_one(1),
                       v_reset=_one(0)))
    x = np.concatenate([_const(1.2, 6), _const(0.5, 6), _const(3.0, 6)])
    together, _ = simulate(g, x, batch_size=2)
    for i in range(3):
        alone, _ = simulate(g, x[i:i + 1])
        np.testing.assert_array_equal(together[i], alone[0])
