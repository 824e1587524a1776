"""The graph walk (spikeship.nir.graph), the node categories it stops at and the
synaptic layers read through it (spikeship.nir.layers), on tiny odd-sized graphs:
a recurrent 7 -> 5 -> 3 MLP, an odd conv -> pool -> flatten -> dense stack, and graphs
with LI, Threshold and fan-in where a walk must stop."""

import nir
import numpy as np
import pytest

from spikeship.errors import GraphError, UnsupportedNodeError
from spikeship.nir.categories import PASS_THROUGH
from spikeship.nir.graph import (natural, order_and_back_edges, reach, topological_order,
                                 walk_back, wiring)
from spikeship.nir.layers import neuron_populations, synaptic_layers
from spikeship.nir.read import load_graph


def _lif(shape):
    return nir.LIF(tau=np.full(shape, 2e-3), r=np.ones(shape), v_leak=np.zeros(shape),
                   v_threshold=np.ones(shape), v_reset=np.zeros(shape))


def _affine(o, i, seed=0):
    return nir.Affine(weight=np.random.default_rng(seed).normal(size=(o, i)), bias=np.zeros(o))


def _graph(nodes, edges):
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1e-3}, type_check=False)


def _mlp():
    """input 7 -> fc1 -> lif1 (5; lif1 -> rec -> lif1) -> fc2 -> lif2 (3) -> output."""
    nodes = {"output": nir.Output(output_type={"output": np.array([3])}),
             "rec": _affine(5, 5, 3), "lif2": _lif(3), "fc2": _affine(3, 5, 2),
             "lif1": _lif(5), "fc1": _affine(5, 7, 1),
             "input": nir.Input(input_type={"input": np.array([7])})}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
             ("lif2", "output"), ("lif1", "rec"), ("rec", "lif1")]
    return _graph(nodes, edges)


def _convnet():
    """input (1, 7, 7) -> conv (3 ch, k3, stride 2, pad 1) -> lif (3, 4, 4) -> pool 2x2
    -> (3, 2, 2) -> flatten (12) -> fc (5) -> lif2 -> output."""
    conv = nir.Conv2d(input_shape=(7, 7), weight=np.ones((3, 1, 3, 3)), stride=2, padding=1,
                      dilation=1, groups=1, bias=np.zeros(3))
    nodes = {"input": nir.Input(input_type={"input": np.array([1, 7, 7])}), "conv": conv,
             "lif": _lif((3, 4, 4)),
             "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                   padding=np.array([0, 0])),
             "flat": nir.Flatten(input_type={"input": np.array([3, 2, 2])}, start_dim=0),
             "fc": _affine(5, 12), "lif2": _lif(5),
             "output": nir.Output(output_type={"output": np.array([5])})}
    names = list(nodes)
    return _graph(nodes, list(zip(names[:-1], names[1:])))


def _fan_in(node, n):
    return GraphError(f"{node} has {n} inputs")


def test_wiring_keeps_the_edge_order_and_refuses_dangling_edges():
    g = _mlp()
    w = wiring(g.nodes, g.edges)
    assert w.preds["lif1"] == ["fc1", "rec"] and w.succs["lif1"] == ["fc2", "rec"]
    assert w.preds["input"] == [] and w.succs["output"] == []
    with pytest.raises(GraphError, match="edge \\(lif2, nowhere\\)"):
        wiring(g.nodes, [*g.edges, ("lif2", "nowhere")])


def test_execution_order_and_back_edge_of_the_recurrent_mlp():
    g = _mlp()     # nodes listed backwards: the order must come from the edges
    order, back = order_and_back_edges(g.nodes, g.edges, ["input"])
    # depth-first from input: lif1's successors fc2 then rec; rec -> lif1 closes the cycle
    assert back == {("rec", "lif1")}
    # Kahn, first in first out: lif1 releases fc2 and rec, fc2 releases lif2
    assert order == ["input", "fc1", "lif1", "fc2", "rec", "lif2", "output"]
    assert topological_order(g) == order
    assert load_graph(g).order == order and load_graph(g).recurrent["lif1"] == ["rec"]


def test_natural_order_and_reach():
    assert sorted(["fc10", "fc7", "conv2"], key=natural) == ["conv2", "fc7", "fc10"]
    w = wiring(_mlp().nodes, _mlp().edges)
    assert reach("lif2", w.succs) == {"lif2", "output"}
    assert reach("fc2", w.preds) == {"fc2", "lif1", "fc1", "rec", "input"}


def test_walk_back_passes_pools_and_flattens_to_the_population():
    g = _convnet()
    w = wiring(g.nodes, g.edges)
    assert walk_back(g.nodes, w, "fc", through=PASS_THROUGH, fan_in=_fan_in) == \
        ("lif", ["pool", "flat"])
    assert walk_back(g.nodes, w, "conv", through=PASS_THROUGH, fan_in=_fan_in) == ("input", [])
    # without `through` the walk passes any node: from lif2 back through fc, flat, pool
    assert walk_back(g.nodes, w, "lif2", fan_in=_fan_in) == ("lif", ["pool", "flat", "fc"])


def test_walk_back_stops_at_a_node_it_may_not_pass_and_reports_fan_in():
    g = _mlp()
    w = wiring(g.nodes, g.edges)
    with pytest.raises(GraphError, match="lif1 has 2 inputs"):
        walk_back(g.nodes, w, "lif1", fan_in=_fan_in)
    nodes = {"input": nir.Input(input_type={"input": np.array([7])}), "fc1": _affine(5, 7),
             "scale": nir.Scale(scale=np.ones(5)), "fc2": _affine(3, 5), "lif": _lif(3),
             "output": nir.Output(output_type={"output": np.array([3])})}
    names = list(nodes)
    g = _graph(nodes, list(zip(names[:-1], names[1:])))
    w = wiring(g.nodes, g.edges)
    assert walk_back(g.nodes, w, "fc2", through=PASS_THROUGH, fan_in=_fan_in) == ("scale", [])


def test_synaptic_layers_of_the_conv_stack():
    conv, fc = synaptic_layers(_convnet())
    assert (conv.kind, conv.in_shape, conv.out_shape) == ("conv", (1, 7, 7), (3, 4, 4))
    assert (conv.stride, conv.presynaptic, conv.postsynaptic) == ((2, 2), "input", "lif")
    assert (fc.kind, fc.in_shape, fc.out_shape, fc.presynaptic) == ("fc", (12,), (5,), "lif")
    assert [(s.name, s.kind, s.in_shape, s.out_shape) for s in fc.stages] == \
        [("pool", "pool", (3, 4, 4), (3, 2, 2)), ("flat", "flatten", (3, 2, 2), (12,))]
    assert neuron_populations(_convnet()) == {"lif": (3, 4, 4), "lif2": (5,)}


def test_a_threshold_node_is_a_spiking_population_and_li_is_not():
    thr = nir.Threshold(threshold=np.ones(5))
    nodes = {"input": nir.Input(input_type={"input": np.array([7])}), "fc1": _affine(5, 7),
             "thr": thr, "fc2": _affine(3, 5), "lif": _lif(3),
             "output": nir.Output(output_type={"output": np.array([3])})}
    names = list(nodes)
    fc1, fc2 = synaptic_layers(_graph(nodes, list(zip(names[:-1], names[1:]))))
    assert (fc1.postsynaptic, fc2.presynaptic) == ("thr", "thr")
    nodes["thr"] = nir.LI(tau=np.full(5, 2e-3), r=np.ones(5), v_leak=np.zeros(5))
    with pytest.raises(UnsupportedNodeError, match="node thr \\(LI\\) feeds synaptic layer fc2"):
        synaptic_layers(_graph(nodes, list(zip(names[:-1], names[1:]))))


def test_a_cycle_through_li_is_stateful_and_a_cycle_of_affines_is_refused():
    nodes = {"input": nir.Input(input_type={"input": np.array([7])}), "fc1": _affine(5, 7),
             "li": nir.LI(tau=np.full(5, 2e-3), r=np.ones(5), v_leak=np.zeros(5)),
             "rec": _affine(5, 5), "output": nir.Output(output_type={"output": np.array([5])})}
    edges = [("input", "fc1"), ("fc1", "li"), ("li", "output"), ("li", "rec"), ("rec", "li")]
    assert load_graph(_graph(nodes, edges)).recurrent["li"] == ["rec"]
    nodes["a"], nodes["b"] = _affine(5, 5), _affine(5, 5)
    edges = [("input", "fc1"), ("fc1", "a"), ("a", "b"), ("b", "a"), ("b", "li"),
             ("li", "output"), ("li", "rec"), ("rec", "li")]
    with pytest.raises(GraphError, match="cycle without a neuron through nodes \\['a', 'b'\\]"):
        load_graph(_graph(nodes, edges))
