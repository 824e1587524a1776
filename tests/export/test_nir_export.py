"""NIR export: the file follows the contract, reads back (ours and upstream nir), runs the same."""

import nir
import numpy as np
import pytest

from spikeship.export.nir_export import FORMAT, export_nir, to_nir, write_nir
from spikeship.nir.read import read_nir
from spikeship.export.surgery import build_deployable
from spikeship.sim.snntorch import record_model
from spikeship.sim.reference import simulate
from tests.export import nets


@pytest.mark.parametrize("pruned", [False, True])
def test_round_trip_export_write_read_run(tmp_path, pruned):
    model, spec = nets.conv_net(seed=3)
    masks = nets.masks_for(model, spec)
    if pruned:
        masks = nets.prune(masks, {"0": [0], "4": [2, 3, 6], "8": [1]}, weight_frac=0.2)
    graph = export_nir(model, masks, spec, {"timesteps": 5}, dt_s=1e-3, source_run="runs/x")
    path = write_nir(graph, tmp_path / "model.nir")
    g = read_nir(path)
    assert g.order == ["input", "conv0", "lif2", "pool3", "conv4", "lif5", "pool6", "flatten7",
                       "fc8", "lif9", "fc10", "lif11", "output"]
    x = nets.inputs_for(spec, n=7, seed=4)
    want, want_counts = record_model(model, x)
    out, counts = simulate(g, x)
    assert want.sum() > 0
    np.testing.assert_array_equal(out, want)
    kept = {n: np.asarray(g.nodes[n].metadata["kept"]) for n in g.neuron_nodes()}
    for n, k in kept.items():
        np.testing.assert_array_equal(counts[n], want_counts[n][k])
    assert g.out_shape["conv0"][0] == (4 if pruned else 5)


def test_file_metadata_and_node_parameters_follow_the_contract(tmp_path):
    model, spec = nets.conv_net()
    masks = nets.prune(nets.masks_for(model, spec), {"4": [1]}, weight_frac=0.25)
    net = build_deployable(model, masks, spec, {"timesteps": 6, "encoding": "direct"},
                           dt_s=2e-3, source_run="runs/abc")
    path = write_nir(to_nir(net), tmp_path / "model.nir")
    g = nir.read(path)                       # the upstream reader, with its type check
    m = g.metadata
    assert m["format"] == FORMAT and m["reset"] == "zero" and m["encoding"] == "direct"
    assert float(m["dt"]) == 2e-3 and int(m["timesteps"]) == 6 and m["source_run"] == "runs/abc"
    assert list(m["input_shape"]) == [2, 9, 7]
    lif = g.nodes["lif5"]
    assert type(lif).__name__ == "LIF" and lif.tau.shape == (6, 4, 3)
    np.testing.assert_allclose(lif.tau, 2e-3 / (1 - 0.2), rtol=1e-6)
    assert np.all(lif.r == 1) and np.all(lif.v_leak == 0) and np.all(lif.v_reset == 0)
    assert np.all(lif.v_threshold == np.float32(0.5))
    assert list(lif.metadata["kept"]) == [0, 2, 3, 4, 5, 6]
    pool = g.nodes["pool6"]
    assert type(pool).__name__ == "SumPool2d"
    assert list(pool.kernel_size) == [2, 2] and list(pool.stride) == [2, 2]
    assert list(pool.padding) == [0, 0]
    fc = g.nodes["fc8"]
    meta = fc.metadata
    assert meta["source_layer"] == "8" and fc.weight.shape == (9, 12)
    assert meta["mask"].dtype == bool and meta["mask"].shape == fc.weight.shape
    assert np.all(fc.weight[~meta["mask"]] == 0)
    assert list(meta["kept_in"]) == [0, 1] + list(range(4, 14))
    assert float(meta["scale_folded"]) == pytest.approx(0.25 / 0.8)
    flat = g.nodes["flatten7"]
    assert int(flat.start_dim) == 0 and list(flat.input_type["input"]) == [6, 2, 1]
    assert {"conv0", "conv4"} <= set(g.nodes) and "1" not in g.nodes  # BN folded


def test_snntorch_export_to_nir_trips_where_our_mapping_does_not():
    """For comparison, snntorch 1.0's own exporter on the same net: its scalar-beta LIF
    nodes get 0-d parameters, which NIR's own type check rejects (the trap this
    exporter's mapping table avoids); and it hard-codes dt = 1e-4, r = tau/dt."""
    import inspect as pyinspect
    import warnings

    import torch
    from snntorch import export_nir as sn

    model, spec = nets.mlp()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ValueError, match="type mismatch"):
            sn.export_to_nir(model, torch.zeros(1, *spec.input_shape))
    src = pyinspect.getsource(sn._extract_snntorch_module)
    assert "dt = 1e-4" in src and "r = tau_mem / dt" in src
    ours = to_nir(build_deployable(model, None, spec))        # type-checked by NIR
    assert ours.nodes["lif2"].tau.shape == (5,) and np.all(ours.nodes["lif2"].r == 1)
