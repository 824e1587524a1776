"""The rest of the stack installs and works: NIR round trip, Norse, ONNX Runtime, torch CPU."""

import numpy as np


def test_torch_is_the_cpu_build_without_torchvision():
    import importlib.util

    import torch

    assert torch.__version__.startswith("2.13.0")
    assert importlib.util.find_spec("torchvision") is None


def test_nir_write_read_round_trip(tmp_path):
    import nir

    w = np.arange(15, dtype=np.float32).reshape(5, 3)
    graph = nir.NIRGraph.from_list(
        nir.Affine(weight=w, bias=np.ones(5, dtype=np.float32)),
        nir.LIF(tau=np.full(5, 2e-3), r=np.ones(5), v_leak=np.zeros(5), v_threshold=np.full(5, .5)),
    )
    path = tmp_path / "g.nir"
    nir.write(path, graph)
    back = nir.read(path)
    affine = next(n for n in back.nodes.values() if isinstance(n, nir.Affine))
    np.testing.assert_array_equal(affine.weight, w)
    assert len(back.edges) == len(graph.edges)


def test_norse_imports_and_steps():
    import torch
    from norse.torch import LIFBoxCell

    z, _ = LIFBoxCell()(torch.ones(1, 3))
    assert z.shape == (1, 3)


def test_onnxruntime_runs_a_tiny_model(tmp_path):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    # onnx 1.23 writes IR version 14 by default; onnxruntime 1.31 reads up to 13.
    model = helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"x": np.array([-1.0, 2.0], dtype=np.float32)})
    np.testing.assert_array_equal(y, [0.0, 2.0])


def test_lava_dl_netx_imports():
    from spikeship.sim.lava import require

    netx = require("lava.lib.dl.netx")
    assert hasattr(netx, "hdf5")
