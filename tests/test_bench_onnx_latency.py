"""benchmarks/bench_onnx_latency.py: MACs counted from the ONNX graph against a hand count,
the structure check on two real (tiny) trained runs, and the rows and summary it writes.
No timing is asserted (speed targets live in the benchmark, not in tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from spikeship.train.config import TrainConfig
from spikeship.train.trainer import train

from benchmarks import bench_onnx_latency


@pytest.fixture(scope="module")
def bench():
    return bench_onnx_latency


def _hand_model() -> onnx.ModelProto:
    """x (batch, 3, 7, 9) -> Conv 5x3x3x3, pad 1 -> (5, 7, 9) -> sum pool as Conv
    5x1x2x2, group 5, stride 2 -> (5, 3, 4) -> Flatten (60) -> Gemm with a 4 x 60 weight
    rebuilt by ScatterND from 3 stored entries (as the exporter stores pruned layers)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.random((5, 3, 3, 3), dtype=np.float32), "w0"),
             numpy_helper.from_array(np.ones((5, 1, 2, 2), np.float32), "ones"),
             numpy_helper.from_array(np.array([4, 60], np.int64), "w1.shape"),
             numpy_helper.from_array(np.array([[0, 1], [2, 5], [3, 59]], np.int64), "w1.idx"),
             numpy_helper.from_array(np.array([1.0, 2.0, 3.0], np.float32), "w1.val")]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c0"], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["c0", "ones"], ["p0"], kernel_shape=[2, 2],
                              strides=[2, 2], group=5),
             helper.make_node("Flatten", ["p0"], ["f0"], axis=1),
             helper.make_node("ConstantOfShape", ["w1.shape"], ["w1.zeros"],
                              value=numpy_helper.from_array(np.zeros(1, np.float32))),
             helper.make_node("ScatterND", ["w1.zeros", "w1.idx", "w1.val"], ["w1"]),
             helper.make_node("Gemm", ["f0", "w1"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "hand", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["batch", 3, 7, 9])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, ["batch", 4])], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_macs_match_a_hand_count(bench):
    rows = {r["output"]: r for r in bench.count_macs(_hand_model())}
    assert rows["c0"]["macs"] == 5 * 7 * 9 * (3 * 3 * 3)          # 8,505
    b = bench.nchwc_block()
    assert b in (8, 16) and rows["c0"]["macs_block_padded"] == 7 * 9 * b * b * 9
    assert rows["p0"]["macs"] == 5 * 3 * 4 * (1 * 2 * 2)          # 240: pool window sums
    assert rows["y"]["weight_shape"] == [4, 60] and rows["y"]["macs"] == 4 * 60
    w = bench.executed_weights(_hand_model())["y"]
    assert w.shape == (4, 60) and w[3, 59] == 3.0 and np.count_nonzero(w) == 3


def _train(out: Path, prune: str, opts: dict) -> Path:
    cfg = TrainConfig(dataset="digits", model="dpap-mnist", epochs=2, timesteps=4,
                      limit_train=160, limit_test=40, prune=prune, prune_options=opts, seed=0)
    train(cfg, out, progress=False, quiet=True)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnxlat")
    dense = _train(d / "dense", "none", {})
    (dense / "model.onnx").write_bytes(b"not an onnx graph")    # a stale export
    pruned = _train(d / "pruned", "l1-filter", {"conv": 0.4, "fc": 0.5, "start": 1, "end": 1})
    return dense, pruned


def test_two_real_runs_pruned_units_absent_and_macs_by_hand(bench, runs, tmp_path):
    dense, pruned = runs
    doc = bench.compare(dense, pruned, batch=8, rounds=2, calls=1)
    assert doc["structure_ok"] is True
    # both graphs exported now by this checkout, into a scratch directory: the runs'
    # own model.onnx is neither read nor written (the fixture put a bogus one in dense)
    assert (dense / "model.onnx").read_bytes() == b"not an onnx graph"
    assert not (pruned / "model.onnx").exists()
    # l1-filter removed 40 % of 15 / 40 conv channels and 50 % of 300 FC neurons:
    # conv0 9x1x3x3, conv3 24x9x3x3 on 8x8 digits (pad 1, pool 2), fc7 150 x (24*2*2)
    st = {r["layer"]: r for r in doc["pruned"]["structure"]}
    assert st["conv0"]["executed_shape"] == [9, 1, 3, 3]
    assert st["conv3"]["executed_shape"] == [24, 9, 3, 3]
    assert st["fc7"]["executed_shape"] == [150, 96] and st["fc9"]["executed_shape"] == [10, 150]
    macs = {r["output"]: r["macs"] for r in doc["pruned"]["nodes"]}
    # the 2x2 sum pools are Mul(AveragePool(x), 4): no weight multiplied, no MAC row
    assert macs == {"conv0": 9 * 8 * 8 * 9, "conv3": 24 * 4 * 4 * 81, "fc7": 150 * 96,
                    "fc9": 10 * 150}
    dmacs = {r["output"]: r["macs"] for r in doc["dense"]["nodes"]}
    assert dmacs["conv3"] == 40 * 4 * 4 * 135 and dmacs["fc7"] == 300 * 160
    assert doc["mac_ratio"] == pytest.approx(sum(dmacs.values()) / sum(macs.values()))
    assert doc["pruned"]["ort_shape_mismatch"] == [] and all(
        r["ort_weight_shape"] == r["weight_shape"] for r in doc["pruned"]["nodes"])
    assert len(doc["latency_raw_s"]["dense"]) == 2 and doc["speedup"]["median"] > 0
    assert doc["synapse_chain"]["speedup"]["median"] > 0
    assert set(doc["nodes_alone"]) == {"conv0", "conv3", "fc7", "fc9"}
    for a in doc["nodes_alone"].values():
        assert len(a["speedup"]) == 4 and a["speedup"]["median"] > 0
        assert a["latency_s"]["dense"]["median"] > 0 and a["latency_s"]["pruned"]["median"] > 0
    nd = sum(a["latency_s"]["dense"]["median"] for a in doc["nodes_alone"].values())
    npr = sum(a["latency_s"]["pruned"]["median"] for a in doc["nodes_alone"].values())
    td = doc["latency_s"]["dense"]["median"]
    assert doc["speedup_cap_synapse_nodes"] == pytest.approx(
        td / (npr + max(td - nd, 0.0) / doc["mac_ratio"]))
    # neurons: conv0 9x8x8, conv3 24x4x4, fc7 150, fc9 10 (none removed as silent here)
    assert doc["pruned"]["neurons_per_sample"] == 9 * 64 + 24 * 16 + 150 + 10
    assert doc["dense"]["neurons_per_sample"] == 15 * 64 + 40 * 16 + 300 + 10
    assert doc["speedup_estimate_any_lif"] == max(doc["synapse_chain"]["speedup"]["median"],
                                                  doc["neuron_ratio"])
    assert doc["required_speedup"] == pytest.approx(0.8 * doc["mac_ratio"])
    # the result's rows and summary: the same figures, per layer and whole
    rows = {r["layer"]: r for r in bench.result_rows(doc)}
    assert {k: r["macs_pruned"] for k, r in rows.items()} == macs
    assert rows["conv3"]["weight_pruned"] == "24x9x3x3" and rows["fc7"]["alone_speedup"] > 0
    summ = bench.result_summary(doc)
    assert summ["mac_ratio"] == doc["mac_ratio"] and summ["structure_ok"] is True
    assert summ["speedup"]["median"] == doc["speedup"]["median"]
    assert summ["latency_ms_dense"]["median"] == pytest.approx(
        1e3 * doc["latency_s"]["dense"]["median"])


def test_synapse_chain_is_the_graph_without_its_neurons(bench, runs, tmp_path):
    """The chain keeps every Conv / Gemm / pool node of the exported graph, with the same
    weights, and no LIF arithmetic; ONNX Runtime runs it and its output is the last
    layer's current computed without neurons (here: torch's own layers on the same
    deployable tensors)."""
    import onnxruntime as ort
    import torch

    _, pruned = runs
    path, _, chain_path = bench.fresh_onnx(pruned, tmp_path)
    full, chain = onnx.load(str(path)), onnx.load(str(chain_path))
    assert [r["weight_shape"] for r in bench.count_macs(chain)] == \
        [r["weight_shape"] for r in bench.count_macs(full)]
    ops = {n.op_type for n in chain.graph.node}
    assert "AveragePool" in ops and not ops & {"Greater", "Cast", "Sub"}
    from spikeship.export.deployable import FlattenLayer, PoolLayer, SynapseLayer
    from spikeship.targets.export import load_deployable

    net = load_deployable(pruned)[2]
    x = (np.random.default_rng(1).random((3, *net.input_shape)) < 0.4).astype(np.float32)
    want = torch.from_numpy(x).double()
    for layer in net.layers:
        if isinstance(layer, SynapseLayer):
            w = torch.from_numpy(layer.weight * layer.mask).double()
            b = torch.from_numpy(layer.bias).double()
            want = (torch.nn.functional.conv2d(want, w, b, padding=layer.padding)
                    if layer.kind == "conv" else want @ w.T + b)
        elif isinstance(layer, PoolLayer):
            want = torch.nn.functional.avg_pool2d(want, layer.kernel) * np.prod(layer.kernel)
        elif isinstance(layer, FlattenLayer):
            want = want.flatten(1)
    sess = ort.InferenceSession(str(chain_path), providers=["CPUExecutionProvider"])
    out = sess.run(["spikes"], {"x": x})[0]
    np.testing.assert_allclose(out, want.numpy(), rtol=1e-4, atol=1e-3)


def test_each_synapse_node_alone_computes_its_layer(bench, runs, tmp_path):
    """One graph per synaptic layer, holding only its Conv / Gemm (pruned weights as the
    exporter stores them): ONNX Runtime's output is the layer's current for an input
    of its shape, and fresh_onnx writes one file per layer."""
    import onnxruntime as ort
    import torch

    from spikeship.export.deployable import SynapseLayer
    from spikeship.targets.export import load_deployable

    _, pruned = runs
    _, config, net = load_deployable(pruned)
    nodes = bench.synapse_nodes(net, int(config["timesteps"]))
    layers = [l for l in net.layers if isinstance(l, SynapseLayer)]
    assert list(nodes) == [l.name for l in layers] == ["conv0", "conv3", "fc7", "fc9"]
    rng = np.random.default_rng(2)
    for layer in layers:
        model = nodes[layer.name]
        assert [n.op_type for n in model.graph.node if n.op_type in ("Conv", "Gemm")] == \
            ["Conv" if layer.kind == "conv" else "Gemm"]
        x = (rng.random((3, *layer.in_shape)) < 0.4).astype(np.float32)
        w = torch.from_numpy(layer.weight * layer.mask).double()
        b = torch.from_numpy(layer.bias).double()
        t = torch.from_numpy(x).double()
        want = (torch.nn.functional.conv2d(t, w, b, padding=layer.padding)
                if layer.kind == "conv" else t @ w.T + b).numpy()
        sess = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(sess.run(["spikes"], {"x": x})[0], want, rtol=1e-4,
                                   atol=1e-3, err_msg=layer.name)
    bench.fresh_onnx(pruned, tmp_path)
    assert sorted(p.name for p in tmp_path.glob("node-*.onnx")) == \
        ["node-conv0.onnx", "node-conv3.onnx", "node-fc7.onnx", "node-fc9.onnx"]


def test_a_zero_filled_layer_is_reported(bench, runs, tmp_path):
    """A layer executed in its trained (full) shape fails the structure check."""
    _, pruned = runs
    macs = bench.count_macs(onnx.load(str(bench.fresh_onnx(pruned, tmp_path)[0])))
    for r in macs:
        if r["output"] == "conv3":
            r["weight_shape"] = [40, 15, 3, 3]
    st = {r["layer"]: r for r in bench.structure_check(pruned, macs, {})}
    assert st["conv3"]["ok"] is False and st["conv0"]["ok"] is True
