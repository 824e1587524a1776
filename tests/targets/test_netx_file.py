"""The one netx reader (spikeship.targets.loihi.netx_file) on real netx files written to
tmp_path: spikeship's own model.net of a tiny odd-sized conv net, and hand-made HDF5
files that break one rule each; netx_to_nir's layer handlers on hand-made files."""

import h5py
import nir
import numpy as np
import pytest

from spikeship.errors import GraphError, UnsupportedNodeError
from spikeship.nir.read import Limits, load_graph
from spikeship.targets.loihi import netx_import
from spikeship.targets.loihi.netx import write_netx
from spikeship.targets.loihi.netx_describe import describe
from spikeship.targets.loihi.netx_file import is_netx, read_netx_file, text
from spikeship.targets.loihi.netx_read import read_deployment
from spikeship.targets.loihi.quantize import quantize


def _lif(shape):
    return nir.LIF(tau=np.full(shape, 2e-3), r=np.ones(shape), v_leak=np.zeros(shape),
                   v_threshold=np.full(shape, 0.5), v_reset=np.zeros(shape))


def _convnet():
    """input (3, 7, 5) -> conv (4 ch, k3, stride (2, 1), pad (1, 0)) -> lif (4, 4, 3)
    -> flatten (48) -> fc (3) -> lif2 -> output."""
    rng = np.random.default_rng(5)
    conv = nir.Conv2d(input_shape=(7, 5), weight=rng.normal(0, 1, (4, 3, 3, 3)),
                      stride=(2, 1), padding=(1, 0), dilation=1, groups=1, bias=np.zeros(4))
    nodes = {"input": nir.Input(input_type={"input": np.array([3, 7, 5])}), "conv": conv,
             "lif": _lif((4, 4, 3)),
             "flat": nir.Flatten(input_type={"input": np.array([4, 4, 3])}, start_dim=0),
             "fc": nir.Affine(weight=rng.normal(0, 1, (3, 48)), bias=np.zeros(3)),
             "lif2": _lif(3), "output": nir.Output(output_type={"output": np.array([3])})}
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:])),
                        metadata={"dt": 1e-3}, type_check=False)


def test_spikeships_model_net_reads_into_typed_layers(tmp_path):
    g = _convnet()
    nf = read_netx_file(write_netx(g, tmp_path / "model.net"))
    assert [(l.index, l.type, l.shape, l.name) for l in nf.layers] == [
        (0, "input", (3, 7, 5), None), (1, "conv", (4, 4, 3), "lif"),
        (2, "flatten", (), None), (3, "dense", (3,), "lif2")]   # netx stores no flatten shape
    conv, dense = nf.layers[1], nf.layers[3]
    assert (conv.stride, conv.padding, conv.dilation, conv.groups) == ((2, 1), (1, 0), (1, 1), 1)
    # tau 2 ms at dt 1 ms: dv = dt / tau = 0.5 of 4096; iDecay 4096: the current lasts a step
    assert (conv.neuron["iDecay"], conv.neuron["vDecay"], text(conv.neuron["type"])) == \
        (4096, 2048, "CUBA")
    fixed = {s.target: s for s in quantize(g).synapses}
    np.testing.assert_array_equal(conv.weight, fixed["lif"].weights)
    np.testing.assert_array_equal(dense.weight, fixed["lif2"].weights)
    assert nf.attrs["input_mode"] == "spikes" and list(nf.attrs["input_shape"]) == [3, 7, 5]
    assert nf.host is None and is_netx(tmp_path / "model.net")
    dep = read_deployment(tmp_path / "model.net")
    assert [(p.name, p.shape, p.depth) for p in dep.populations] == [("lif", (4, 4, 3), 1),
                                                                     ("lif2", (3,), 2)]


def test_declared_sizes_are_checked_before_reading(tmp_path):
    path = write_netx(_convnet(), tmp_path / "model.net")
    # the conv kernel declares 4 * 3 * 3 * 3 = 108 entries, the dense weight 144
    with pytest.raises(GraphError, match="declares \\[3, 48\\] elements \\(limits 110 per array"):
        read_netx_file(path, limits=Limits(max_array_elements=110))
    with pytest.raises(GraphError, match="in all"):
        read_netx_file(path, limits=Limits(max_total_elements=200))


def _h5(tmp_path, layers: dict, name="x.net"):
    path = tmp_path / name
    with h5py.File(path, "w") as f:
        f.create_group("layer")
        for key, fields in layers.items():
            for k, v in fields.items():
                f[f"layer/{key}/{k}"] = v
    return path


def test_layers_must_be_numbered_from_zero(tmp_path):
    path = _h5(tmp_path, {"0": {"type": np.bytes_("input")}, "2": {"type": np.bytes_("dense")}})
    with pytest.raises(GraphError, match="must be named 0, 1"):
        read_netx_file(path)


def test_conv_geometry_is_checked_on_reading(tmp_path):
    path = _h5(tmp_path, {"0": {"type": np.bytes_("conv"), "stride": np.array([0, 1])}})
    with pytest.raises(GraphError, match="layer 0 stride \\[0, 1\\] must be one or two integers"):
        read_netx_file(path)


def test_an_hdf5_file_without_layers_is_not_netx_and_is_listed_generically(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["block/weight"] = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
        f["block/name"] = np.bytes_("b")
    assert not is_netx(path)
    with pytest.raises(GraphError, match="not netx: no 'layer' group"):
        read_netx_file(path)
    d = describe(path)
    assert (d["synapses_total"], d["nonzero_total"]) == (6, 2)
    assert {"name": "block/name", "type": "value", "value": "b"} in d["layers"]
    with pytest.raises(GraphError, match="no netx file"):
        read_netx_file(tmp_path / "missing.net")


def _neuron(**over):
    n = {"type": np.bytes_("CUBA"), "iDecay": 4096, "vDecay": 2048, "vThMant": 100,
         "refDelay": 1, "gradedSpike": False}
    return {f"neuron/{k}": v for k, v in {**n, **over}.items()}


def test_a_dense_rec_layer_imports_as_a_population_with_its_recurrent_affine(tmp_path):
    rng = np.random.default_rng(7)
    w = rng.integers(-20, 20, (5, 7)).astype(np.float64)
    w_rec = rng.integers(-9, 9, (5, 5)).astype(np.float64)
    path = _h5(tmp_path, {"0": {"type": np.bytes_("input"), "shape": np.array([7])},
                          "1": {"type": np.bytes_("dense_rec"), "shape": np.array([5]),
                                "weight": w, "weight_rec": w_rec, **_neuron()}})
    g = netx_import.netx_to_nir(path)
    assert sorted(g.edges) == [("dense1", "layer1"), ("input", "dense1"), ("layer1", "output"),
                               ("layer1", "rec1"), ("rec1", "layer1")]
    np.testing.assert_array_equal(g.nodes["dense1"].weight, w)
    np.testing.assert_array_equal(g.nodes["rec1"].weight, w_rec)
    # one exponent for both matrices, as netx optimises them together
    both, _, exp = netx_import.optimize_weight_bits(np.hstack([w, w_rec]))
    assert g.nodes["rec1"].metadata["netx_weight_exp"] == exp == \
        g.nodes["dense1"].metadata["netx_weight_exp"]
    np.testing.assert_array_equal(g.nodes["rec1"].metadata["netx_weight"], both[:, 7:])
    # vDecay 2048 of 4096 with iDecay 4096: a LIF with tau = 1 ms / 0.5
    assert type(g.nodes["layer1"]).__name__ == "LIF"
    np.testing.assert_allclose(g.nodes["layer1"].tau, np.full(5, 2e-3))
    loaded = load_graph(g)
    assert loaded.recurrent["layer1"] == ["rec1"] and loaded.out_shape["output"] == (5,)


def test_a_layer_type_without_handler_is_refused_by_name(tmp_path):
    path = _h5(tmp_path, {"0": {"type": np.bytes_("input"), "shape": np.array([1, 4, 4])},
                          "1": {"type": np.bytes_("pool"), "shape": np.array([1, 2, 2]),
                                "weight": np.ones((1, 1, 2, 2)), **_neuron()}})
    with pytest.raises(UnsupportedNodeError, match="\\[netx-layer-type\\] layer 1: netx layer "
                                                   "type 'pool' is not supported"):
        netx_import.netx_to_nir(path)
