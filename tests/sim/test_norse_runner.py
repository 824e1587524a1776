"""Norse (norse.torch.from_nir) as second opinion: adaptations checked, same spikes."""

import nir
import numpy as np
import pytest

from spikeship.errors import GraphError, UnsupportedNodeError
from spikeship.export.nir_export import to_nir, write_nir
from spikeship.nir.read import load_graph, read_nir
from spikeship.export.surgery import build_deployable
from spikeship.sim.snntorch import record_model
from spikeship.sim.norse_runner import load_norse, simulate_norse
from spikeship.sim.reference import simulate
from tests.export import nets

F32 = np.float32


def test_exported_pruned_net_runs_identically_in_norse(tmp_path):
    model, spec = nets.conv_net(seed=5)
    masks = nets.prune(nets.masks_for(model, spec), {"0": [4], "4": [2, 5], "8": [0, 6]},
                       weight_frac=0.15)
    path = write_nir(to_nir(build_deployable(model, masks, spec)), tmp_path / "m.nir")
    g = read_nir(path)
    x = nets.inputs_for(spec, n=5, seed=7)
    want, _ = record_model(model, x)
    ref, ref_counts = simulate(g, x)
    out, counts, notes = simulate_norse(g, x)
    assert want.sum() > 0 and notes == []
    np.testing.assert_array_equal(out, want)
    for k in ref_counts:
        np.testing.assert_array_equal(counts[k], ref_counts[k])
    batched, bcounts, bnotes = simulate_norse(g, x, batched=True, batch_size=2)
    np.testing.assert_array_equal(batched, out)
    assert "Flatten" in bnotes[-1]
    assert all(np.array_equal(bcounts[k], counts[k]) for k in counts)


def _lif_graph(r=1.0, dt=2e-3, v_reset=0.0, with_affine=True):
    lif = nir.LIF(tau=np.full(3, 5e-3, F32), r=np.full(3, r, F32), v_leak=np.zeros(3, F32),
                  v_threshold=np.full(3, 0.4, F32), v_reset=np.full(3, v_reset, F32))
    nodes = {"input": nir.Input(input_type={"input": np.array([3])}), "lif": lif,
             "output": nir.Output(output_type={"output": np.array([3])})}
    edges = [("input", "lif"), ("lif", "output")]
    if with_affine:
        w = np.array([[1.0, 0.2, 0.0], [0.0, 0.8, 0.3], [0.5, 0.0, 0.9]], F32)
        nodes["fc"] = nir.Affine(weight=w, bias=np.array([0.1, 0.0, 0.05], F32))
        edges = [("input", "fc"), ("fc", "lif"), ("lif", "output")]
    return load_graph(nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": dt},
                                   type_check=False))


def test_graph_dt_is_passed_and_r_is_folded():
    g = _lif_graph(r=2.5, dt=2e-3)
    x = np.random.default_rng(0).random((4, 30, 3), dtype=F32)
    ref, _ = simulate(g, x)
    out, _, notes = simulate_norse(g, x)
    assert ref.sum() > 10
    np.testing.assert_array_equal(out, ref)
    assert notes == ["r of lif folded into ['fc']"]
    # what the adaptations fix: Norse as is (dt 1e-3, r ignored) fires differently
    import warnings

    import norse.torch as nt
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        raw = nt.from_nir(g.graph, ignore_warnings=True)
    state, spikes = None, []
    for t in range(30):
        y, state = raw(torch.from_numpy(x[0, t]), state)
        spikes.append(y.detach().numpy())
    assert not np.array_equal(np.array(spikes), ref[0])


@pytest.mark.parametrize("case, error, match", [
    ("li", UnsupportedNodeError, "LI"),
    ("v_reset", GraphError, "v_reset"),
    ("r_unfoldable", GraphError, "r of LIF"),
])
def test_what_norse_cannot_run_is_refused(case, error, match):
    if case == "li":
        li = nir.LI(tau=np.ones(3, F32), r=np.ones(3, F32), v_leak=np.zeros(3, F32))
        g = load_graph(nir.NIRGraph(
            nodes={"input": nir.Input(input_type={"input": np.array([3])}), "li": li,
                   "output": nir.Output(output_type={"output": np.array([3])})},
            edges=[("input", "li"), ("li", "output")], metadata={"dt": 1e-3}, type_check=False))
    elif case == "v_reset":
        g = _lif_graph(v_reset=0.1)
    else:
        g = _lif_graph(r=2.0, with_affine=False)
    with pytest.raises(error, match=match):
        load_norse(g, 1e-3)
