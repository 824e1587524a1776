"""NIR import: bad or unsupported graphs give named errors, before anything is allocated."""

import h5py
import nir
import numpy as np
import pytest

from spikeship.errors import GraphError, UnsupportedNodeError
from spikeship.nir.read import SUPPORTED, read_nir

F32 = np.float32


def _affine(o, i, value=0.5):
    return nir.Affine(weight=np.full((o, i), value, F32), bias=np.zeros(o, F32))


def _lif(n):
    return nir.LIF(tau=np.full(n, 2e-3, F32), r=np.ones(n, F32), v_leak=np.zeros(n, F32),
                   v_threshold=np.ones(n, F32), v_reset=np.zeros(n, F32))


def _write(tmp_path, nodes, edges, name="g.nir", metadata=None):
    g = nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata or {"dt": 1e-3},
                     type_check=False)
    path = tmp_path / name
    nir.write(path, g)
    return path


def _chain(tmp_path, middle: dict, i=3, o=2, **kw):
    nodes = {"input": nir.Input(input_type={"input": np.array([i])}), **middle,
             "output": nir.Output(output_type={"output": np.array([o])})}
    names = list(nodes)
    return _write(tmp_path, nodes, list(zip(names[:-1], names[1:])), **kw)


def test_a_good_recurrent_graph_loads_with_its_recurrent_edge(tmp_path):
    nodes = {"input": nir.Input(input_type={"input": np.array([3])}), "fc": _affine(4, 3),
             "lif": _lif(4), "rec": _affine(4, 4, -0.1), "out_fc": _affine(2, 4),
             "output": nir.Output(output_type={"output": np.array([2])})}
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out_fc"),
             ("out_fc", "output")]
    g = read_nir(_write(tmp_path, nodes, edges))
    assert g.recurrent["lif"] == ["rec"] and g.sources["lif"] == ["fc"]
    assert g.order.index("lif") < g.order.index("rec")
    assert g.out_shape["output"] == (2,) and g.dt_s == 1e-3


@pytest.mark.parametrize("node", [
    nir.Delay(delay=np.ones(3, F32)), nir.Threshold(threshold=np.ones(3, F32)),
    nir.I(r=np.ones(3, F32)),
    nir.CubaLI(tau_syn=np.ones(3, F32), tau_mem=np.ones(3, F32), r=np.ones(3, F32),
               v_leak=np.zeros(3, F32))])
def test_unsupported_node_type_names_the_type_and_the_supported_list(tmp_path, node):
    path = _chain(tmp_path, {"odd": node, "fc": _affine(2, 3)})
    with pytest.raises(UnsupportedNodeError) as e:
        read_nir(path)
    msg = str(e.value)
    assert type(node).__name__ in msg and "'odd'" in msg
    assert all(t in msg for t in SUPPORTED)


def test_dangling_edge(tmp_path):
    path = _write(tmp_path, {"input": nir.Input(input_type={"input": np.array([3])}),
                             "fc": _affine(2, 3),
                             "output": nir.Output(output_type={"output": np.array([2])})},
                  [("input", "fc"), ("fc", "output"), ("fc", "ghost")])
    with pytest.raises(GraphError, match="dangling edge.*ghost"):
        read_nir(path)


def test_cycle_without_a_neuron_is_an_algebraic_loop(tmp_path):
    nodes = {"input": nir.Input(input_type={"input": np.array([3])}), "a": _affine(3, 3),
             "b": _affine(3, 3), "fc": _affine(2, 3),
             "output": nir.Output(output_type={"output": np.array([2])})}
    edges = [("input", "a"), ("a", "b"), ("b", "a"), ("b", "fc"), ("fc", "output")]
    with pytest.raises(GraphError, match="cycle without a neuron"):
        read_nir(_write(tmp_path, nodes, edges))


def test_shape_mismatch_names_the_edge(tmp_path):
    path = _chain(tmp_path, {"fc1": _affine(5, 3), "fc2": _affine(2, 4)})
    with pytest.raises(GraphError, match="fc2"):
        read_nir(path)


def test_neuron_parameter_shape_must_fit_its_input(tmp_path):
    path = _chain(tmp_path, {"fc": _affine(2, 3), "lif": _lif(3)})
    with pytest.raises(GraphError, match="lif"):
        read_nir(path)


def test_nan_and_inf_parameters_are_refused(tmp_path):
    fc = _affine(2, 3)
    fc.weight[1, 2] = np.nan
    with pytest.raises(GraphError, match="NaN or Inf"):
        read_nir(_chain(tmp_path, {"fc": fc}))
    lif = _lif(2)
    lif.v_threshold[0] = np.inf
    with pytest.raises(GraphError, match="'lif'.*NaN or Inf"):
        read_nir(_chain(tmp_path, {"fc": _affine(2, 3), "lif": lif}, name="h.nir"))


def test_non_positive_time_constant_and_bad_dt(tmp_path):
    lif = _lif(2)
    lif.tau[1] = 0.0
    with pytest.raises(GraphError, match="time constant"):
        read_nir(_chain(tmp_path, {"fc": _affine(2, 3), "lif": lif}))
    with pytest.raises(GraphError, match="dt"):
        read_nir(_chain(tmp_path, {"fc": _affine(2, 3)}, name="d.nir", metadata={"dt": -1.0}))


def test_absurd_declared_input_shape_is_refused_before_allocating(tmp_path):
    path = _chain(tmp_path, {"fc": _affine(2, 3)})
    with h5py.File(path, "r+") as f:
        del f["node/nodes/input/shape"]
        f["node/nodes/input/shape"] = np.array([100_000, 100_000, 100_000])
    with pytest.raises(GraphError, match="refusing to allocate"):
        read_nir(path)


def test_absurd_array_is_refused_without_being_read(tmp_path):
    path = _chain(tmp_path, {"fc": _affine(2, 3)})
    with h5py.File(path, "r+") as f:           # 2^31 float32 declared, nothing written
        del f["node/nodes/fc/bias"]
        f["node/nodes/fc"].create_dataset("bias", shape=(1 << 31,), dtype="f4", chunks=(1024,))
    assert path.stat().st_size < 1_000_000
    with pytest.raises(GraphError, match="refusing to read"):
        read_nir(path)


def test_not_a_nir_file(tmp_path):
    junk = tmp_path / "junk.nir"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(GraphError, match="not a NIR"):
        read_nir(junk)
    plain = tmp_path / "plain.nir"
    with h5py.File(plain, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(GraphError, match="not NIR"):
        read_nir(plain)
    with pytest.raises(GraphError, match="no NIR file"):
        read_nir(tmp_path / "missing.nir")


def test_unconnected_node_and_two_inputs(tmp_path):
    nodes = {"input": nir.Input(input_type={"input": np.array([3])}), "fc": _affine(2, 3),
             "lost": _affine(2, 3), "output": nir.Output(output_type={"output": np.array([2])})}
    with pytest.raises(GraphError, match="'lost'.*not on a path"):
        read_nir(_write(tmp_path, nodes, [("input", "fc"), ("fc", "output")]))
    nodes["input2"] = nir.Input(input_type={"input": np.array([3])})
    with pytest.raises(GraphError, match="exactly one Input"):
        read_nir(_write(tmp_path, nodes, [("input", "fc"), ("fc", "output"),
                                          ("input2", "lost"), ("lost", "output")], name="i.nir"))


def test_nested_subgraph_is_unsupported(tmp_path):
    inner = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([3])}),
                                "fc": _affine(2, 3),
                                "output": nir.Output(output_type={"output": np.array([2])})},
                         edges=[("input", "fc"), ("fc", "output")], type_check=False)
    with pytest.raises(UnsupportedNodeError, match="nested NIRGraph"):
        read_nir(_chain(tmp_path, {"sub": inner}))
