"""Node shapes and graph shape inference (spikeship.nir.shapes) on a tiny odd-sized
recurrent graph (7 -> 5 -> 3) and an odd conv stack; expected shapes worked by hand."""

import nir
import numpy as np
import pytest

from spikeship.errors import GraphError
from spikeship.nir.graph import order_and_back_edges, wiring
from spikeship.nir.shapes import infer_shapes, neuron_shape, node_output_shape


def _lif(shape):
    return nir.LIF(tau=np.full(shape, 2e-3), r=np.ones(shape), v_leak=np.zeros(shape),
                   v_threshold=np.ones(shape), v_reset=np.zeros(shape))


def _affine(o, i):
    return nir.Affine(weight=np.full((o, i), 0.1), bias=np.zeros(o))


def _mlp(rec=(5, 5)):
    """input 7 -> fc1 -> lif1 (5, with lif1 -> rec -> lif1) -> fc2 -> lif2 (3) -> output."""
    nodes = {"input": nir.Input(input_type={"input": np.array([7])}), "fc1": _affine(5, 7),
             "lif1": _lif(5), "fc2": _affine(3, 5), "lif2": _lif(3), "rec": _affine(*rec),
             "output": nir.Output(output_type={"output": np.array([3])})}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
             ("lif2", "output"), ("lif1", "rec"), ("rec", "lif1")]
    return nodes, edges


def _infer(nodes, edges):
    order, back = order_and_back_edges(nodes, edges, ["input"])
    preds = wiring(nodes, edges).preds
    sources = {n: [a for a in preds[n] if (a, n) not in back] for n in nodes}
    recurrent = {n: [a for a in preds[n] if (a, n) in back] for n in nodes}
    return infer_shapes(nodes, order, sources, recurrent, "input", 1000)


def test_node_output_shapes_per_type():
    assert node_output_shape("fc", _affine(5, 7), (7,)) == (5,)
    conv = nir.Conv2d(input_shape=(7, 5), weight=np.ones((6, 1, 3, 3)), stride=(2, 1),
                      padding=(1, 0), dilation=1, groups=3, bias=np.zeros(6))
    # H (7 + 2 - 3) // 2 + 1 = 4, W (5 - 3) // 1 + 1 = 3
    assert node_output_shape("c", conv, (3, 7, 5)) == (6, 4, 3)
    pool = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                         padding=np.array([0, 0]))
    assert node_output_shape("p", pool, (6, 4, 3)) == (6, 2, 1)
    flat = nir.Flatten(input_type={"input": np.array([6, 4, 3])}, start_dim=1, end_dim=-1)
    assert node_output_shape("f", flat, (6, 4, 3)) == (6, 12)
    assert node_output_shape("l", _lif((6, 4, 3)), (6, 4, 3)) == (6, 4, 3)


def test_node_output_shape_refuses_what_does_not_fit():
    with pytest.raises(GraphError, match="node 'fc': Affine expects input \\[7\\]"):
        node_output_shape("fc", _affine(5, 7), (6,))
    with pytest.raises(GraphError, match="parameter 'tau' has shape \\[5\\]"):
        node_output_shape("l", _lif(5), (4,))
    conv = nir.Conv2d(input_shape=(7, 5), weight=np.ones((6, 1, 3, 3)), stride=1, padding=0,
                      dilation=1, groups=3, bias=np.zeros(6))
    with pytest.raises(GraphError, match="expects \\(3, H, W\\)"):
        node_output_shape("c", conv, (2, 7, 5))


def test_neuron_shape_comes_from_the_parameters():
    assert neuron_shape(_lif((2, 3))) == (2, 3)
    scalar = nir.IF(r=np.float64(1.0), v_threshold=np.float64(1.0), v_reset=np.float64(0.0))
    assert neuron_shape(scalar) is None


def test_infer_shapes_of_a_recurrent_mlp():
    in_shape, out_shape = _infer(*_mlp())
    assert out_shape == {"input": (7,), "fc1": (5,), "lif1": (5,), "fc2": (3,), "rec": (5,),
                         "lif2": (3,), "output": (3,)}
    assert in_shape["fc1"] == (7,) and in_shape["lif1"] == (5,) and in_shape["rec"] == (5,)


def test_infer_shapes_checks_the_recurrent_edge():
    nodes, edges = _mlp(rec=(4, 5))          # rec sends 4 values back into 5 neurons
    with pytest.raises(GraphError, match="recurrent edge 'rec' -> 'lif1': shape \\[4\\] "
                                         "does not fit the input \\[5\\]"):
        _infer(nodes, edges)
    nodes, edges = _mlp(rec=(5, 3))          # rec reads 3 values from a 5-neuron population
    with pytest.raises(GraphError, match="\\['lif1'\\] -> 'rec': node expects \\[3\\]"):
        _infer(nodes, edges)


def test_infer_shapes_checks_declared_types_and_the_element_limit():
    nodes, edges = _mlp()
    nodes["output"] = nir.Output(output_type={"output": np.array([4])})
    # Output: declared input [4] (from output_type), receives [3]
    with pytest.raises(GraphError, match="type mismatch: \\['lif2'\\] -> 'output'"):
        _infer(nodes, edges)
    nodes, edges = _mlp()
    order, back = order_and_back_edges(nodes, edges, ["input"])
    preds = wiring(nodes, edges).preds
    sources = {n: [a for a in preds[n] if (a, n) not in back] for n in nodes}
    with pytest.raises(GraphError, match="would hold \\[7\\] elements \\(limit 6\\)"):
        infer_shapes(nodes, order, sources, {n: [] for n in nodes}, "input", 6)
