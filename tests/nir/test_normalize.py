"""Normalisation on load: what the exporters write that spikeship fixes, each
change recorded; what it cannot fix is a GraphError naming the node."""

import nir
import numpy as np
import pytest

from spikeship.errors import GraphError
from spikeship.nir.normalize import normalize
from spikeship.nir.read import load_graph


def _lif(**kw):
    p = dict(tau=np.array(0.01), r=np.array(1.0), v_leak=np.array(0.0),
             v_threshold=np.array(1.0), v_reset=np.array(0.0))
    p.update(kw)
    return nir.LIF(**p)


def _graph(lif, in_type=(1, 6), out_type=(1, 1, 3)):
    nodes = {"input": nir.Input(input_type=np.array(in_type)),
             "fc": nir.Affine(weight=np.ones((3, 6)), bias=np.zeros(3)), "lif": lif,
             "output": nir.Output(output_type=np.array(out_type))}
    return nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
                        metadata={"dt": 1e-3}, type_check=False)


def test_batch_dims_and_scalars_are_normalised_and_recorded():
    g, changes = normalize(_graph(_lif()))
    loaded = load_graph(g)
    assert loaded.out_shape["lif"] == (3,) and loaded.in_shape["output"] == (3,)
    what = {(c.node, c.what) for c in changes}
    assert {("input", "input_type"), ("output", "output_type"), ("lif", "tau"),
            ("lif", "v_threshold")} <= what
    assert np.array_equal(g.nodes["lif"].tau, np.full(3, 0.01))


def test_a_parameter_of_the_wrong_shape_is_a_named_error():
    lif = _lif()
    lif.tau, lif.r = np.array([0.01, 0.02]), np.ones((3, 1))   # as a file can hold them
    with pytest.raises(GraphError, match="node 'lif': parameter tau has shape \\[2\\]"):
        normalize(_graph(lif))


def test_a_conv_without_input_shape_not_fed_by_the_input_is_a_named_error():
    conv = lambda: nir.Conv2d(input_shape=None, weight=np.ones((2, 2, 3, 3)), stride=1,
                              padding=1, dilation=1, groups=1, bias=np.zeros(2))
    nodes = {"input": nir.Input(input_type=np.array([2, 5, 5])), "c1": conv(), "c2": conv(),
             "output": nir.Output(output_type=np.array([2, 5, 5]))}
    g = nir.NIRGraph(nodes=nodes, edges=[("input", "c1"), ("c1", "c2"), ("c2", "output")],
                     type_check=False)
    with pytest.raises(GraphError, match="node 'c2' \\(Conv2d\\) has no input_shape"):
        normalize(g)
