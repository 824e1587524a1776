"""NIR graphs that must not run: each is put in a run directory as ``model.nir`` and given to
``spikeship simulate --target reference`` and ``spikeship inspect``.

The good graph every case starts from (the run's digits input, 1 x 8 x 8)::

    input (1, 8, 8) -> flat: Flatten -> fc: Affine(64 -> 7) -> lif: LIF(7)
                    -> out_fc: Affine(7 -> 10) -> out_lif: LIF(10) -> output (10)
"""

from __future__ import annotations

import nir
import numpy as np
import pytest

from spikeship.errors import GraphError, SimulationError, UnsupportedNodeError
from tests.reliability.conftest import expect_error, run_cli

F32 = np.float32


def affine(o, i, value=0.3):
    return nir.Affine(weight=np.full((o, i), value, F32), bias=np.zeros(o, F32))


def lif(n):
    return nir.LIF(tau=np.full(n, 2e-3, F32), r=np.ones(n, F32), v_leak=np.zeros(n, F32),
                   v_threshold=np.full(n, 0.5, F32), v_reset=np.zeros(n, F32))


def good_nodes() -> dict:
    return {"input": nir.Input(input_type={"input": np.array([1, 8, 8])}),
            "flat": nir.Flatten(input_type={"input": np.array([1, 8, 8])}, start_dim=0,
                                end_dim=-1),
            "fc": affine(7, 64), "lif": lif(7), "out_fc": affine(10, 7), "out_lif": lif(10),
            "output": nir.Output(output_type={"output": np.array([10])})}


def chain(nodes: dict) -> list[tuple[str, str]]:
    names = list(nodes)
    return list(zip(names[:-1], names[1:]))


def write(path, nodes, edges=None, metadata=None):
    g = nir.NIRGraph(nodes=nodes, edges=chain(nodes) if edges is None else edges,
                     metadata={"dt": 1e-3} if metadata is None else metadata, type_check=False)
    nir.write(path, g)


def _nan_weight(n):
    n["fc"].weight[3, 17] = np.nan


def _inf_bias(n):
    n["out_fc"].bias[2] = np.inf


def _nan_threshold(n):
    n["lif"].v_threshold[0] = np.nan


def _neg_inf_leak(n):
    n["out_lif"].v_leak[4] = -np.inf


def _zero_tau(n):
    n["lif"].tau[1] = 0.0


def _fc_wrong_width(n):
    n["fc"] = affine(7, 63)


def _lif_wrong_size(n):
    n["lif"] = lif(6)


def _bias_wrong_size(n):
    n["fc"].bias = np.zeros(5, F32)


def _conv_wrong_channels(n):
    n["flat"] = nir.Conv2d(input_shape=(8, 8), weight=np.ones((2, 3, 3, 3), F32), stride=1,
                           padding=1, dilation=1, groups=1, bias=np.zeros(2, F32))


def _pool_too_big(n):
    n["flat"] = nir.SumPool2d(kernel_size=np.array([9, 9]), stride=np.array([1, 1]),
                              padding=np.array([0, 0]))


def _declared_output_wrong(n):
    n["output"] = nir.Output(output_type={"output": np.array([11])})


def _unsupported_delay(n):
    n["fc"] = nir.Delay(delay=np.ones(64, F32))


def _unsupported_threshold(n):
    n["lif"] = nir.Threshold(threshold=np.ones(7, F32))


def _nested_graph(n):
    inner = {"input": nir.Input(input_type={"input": np.array([64])}), "a": affine(7, 64),
             "output": nir.Output(output_type={"output": np.array([7])})}
    n["fc"] = nir.NIRGraph(nodes=inner, edges=chain(inner), type_check=False)


SHAPE_OR_VALUE = [
    ("nan-weight", _nan_weight, GraphError, "NaN or Inf"),
    ("inf-bias", _inf_bias, GraphError, "NaN or Inf"),
    ("nan-threshold", _nan_threshold, GraphError, "NaN or Inf"),
    ("neg-inf-leak", _neg_inf_leak, GraphError, "NaN or Inf"),
    ("zero-tau", _zero_tau, GraphError, "time constant"),
    ("fc-wrong-width", _fc_wrong_width, GraphError, "'fc'"),
    ("lif-wrong-size", _lif_wrong_size, GraphError, "'lif'"),
    ("bias-wrong-size", _bias_wrong_size, GraphError, "bias"),
    ("conv-wrong-channels", _conv_wrong_channels, GraphError, "expects [3, 8, 8]"),
    ("pool-bigger-than-input", _pool_too_big, GraphError, "too small"),
    ("declared-output-wrong", _declared_output_wrong, GraphError, "output"),
    ("unsupported-delay", _unsupported_delay, UnsupportedNodeError, "Delay"),
    ("unsupported-threshold", _unsupported_threshold, UnsupportedNodeError, "Threshold"),
    ("nested-subgraph", _nested_graph, UnsupportedNodeError, "nested"),
]


@pytest.mark.parametrize("case,change,error,match", SHAPE_OR_VALUE,
                         ids=[c[0] for c in SHAPE_OR_VALUE])
def test_bad_node_simulate_and_inspect(run, capsys, case, change, error, match):
    nodes = good_nodes()
    change(nodes)
    write(run / "model.nir", nodes)
    expect_error(capsys, ["simulate", run, "--target", "reference", "--samples", 3], error,
                 match, watch=(run,))
    expect_error(capsys, ["inspect", run / "model.nir"], error, match, watch=(run,))


def _edges_cycle_without_neuron(n):
    n["rec"] = affine(64, 64)
    return chain({k: v for k, v in n.items() if k != "rec"}) + [("flat", "rec"), ("rec", "flat")]


def _edges_dangling(n):
    return chain(n) + [("lif", "ghost")]


def _edges_unconnected(n):
    n["lost"] = affine(10, 7)
    return chain({k: v for k, v in n.items() if k != "lost"})


def _edges_dead_end(n):
    n["dead"] = affine(3, 7)
    return chain({k: v for k, v in n.items() if k != "dead"}) + [("lif", "dead")]


def _edges_duplicate(n):
    return chain(n) + [("fc", "lif")]


def _edges_two_outputs(n):
    n["output2"] = nir.Output(output_type={"output": np.array([7])})
    return chain({k: v for k, v in n.items() if k != "output2"}) + [("lif", "output2")]


def _edges_no_input(n):
    del n["input"]
    return chain(n)


def _edges_into_input(n):
    return chain(n) + [("lif", "input")]


def _edges_mismatched_recurrence(n):
    n["rec"] = affine(5, 7)
    return chain({k: v for k, v in n.items() if k != "rec"}) + [("lif", "rec"), ("rec", "lif")]


EDGE_CASES = [
    ("cycle-without-neuron", _edges_cycle_without_neuron, "cycle without a neuron"),
    ("dangling-edge", _edges_dangling, "dangling edge"),
    ("unconnected-node", _edges_unconnected, "not on a path"),
    ("dead-end-node", _edges_dead_end, "not on a path"),
    ("duplicate-edge", _edges_duplicate, "duplicate edge"),
    ("two-outputs", _edges_two_outputs, "exactly one"),
    ("no-input", _edges_no_input, "exactly one"),
    ("edge-into-input", _edges_into_input, "incoming edges"),
    ("mismatched-recurrent-shape", _edges_mismatched_recurrence, "rec"),
]


@pytest.mark.parametrize("case,edges,match", EDGE_CASES, ids=[c[0] for c in EDGE_CASES])
def test_bad_edges_simulate_and_inspect(run, capsys, case, edges, match):
    nodes = good_nodes()
    e = edges(nodes)
    write(run / "model.nir", nodes, e)
    expect_error(capsys, ["simulate", run, "--target", "reference", "--samples", 3], GraphError,
                 match, watch=(run,))
    expect_error(capsys, ["inspect", run / "model.nir"], GraphError, match, watch=(run,))


@pytest.mark.parametrize("dt", [0.0, -1e-3, float("nan"), "fast"])
def test_bad_dt_metadata(run, capsys, dt):
    write(run / "model.nir", good_nodes(), metadata={"dt": dt})
    expect_error(capsys, ["simulate", run, "--target", "reference", "--samples", 3], GraphError,
                 "dt", watch=(run,))


def test_graph_for_another_input_shape(run, capsys):
    nodes = good_nodes()
    nodes["input"] = nir.Input(input_type={"input": np.array([1, 4, 16])})
    nodes["flat"] = nir.Flatten(input_type={"input": np.array([1, 4, 16])}, start_dim=0,
                                end_dim=-1)
    write(run / "model.nir", nodes)
    expect_error(capsys, ["simulate", run, "--target", "reference", "--samples", 3],
                 SimulationError, "inputs must be", watch=(run,))


def test_good_graph_runs_and_writes_its_result(run, capsys):
    """The control: the unmodified graph runs, so the failures above are the changes'."""
    write(run / "model.nir", good_nodes())
    res = run_cli(capsys, ["simulate", run, "--target", "reference", "--samples", 3])
    assert res.rc == 0, res.err
    assert (run / "simulate-reference.json").is_file()


@pytest.mark.lava
@pytest.mark.parametrize("target", ["lava-float", "lava-fixed", "loihi-emu"])
def test_nan_weight_in_the_exported_graph_is_refused_by_the_lava_targets(run, capsys, target):
    import h5py

    with h5py.File(run / "model.nir", "r+") as f:
        w = f["node/nodes/fc7/weight"][()]
        w[0, 0] = np.nan
        f["node/nodes/fc7/weight"][...] = w
    expect_error(capsys, ["simulate", run, "--target", target, "--samples", 2, "--option",
                          "progress=false"], GraphError, "NaN or Inf", watch=(run,))
