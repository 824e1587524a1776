"""lava-dl netx: model.net written from NIR, read by netx's own loader, run in fixed point,
identical spike for spike to the direct NIR -> Lava fixed-point path (dense and sparse fc);
graphs netx cannot express get a clear ExportError."""

import h5py
import nir
import numpy as np
import pytest

from spikeship.errors import ExportError, GraphError, RunDirError
from spikeship.targets.loihi.netx import write_netx
from spikeship.sim.lava.run import run_deployment
from spikeship.sim.lava.netx import read_deployment, run_netx, run_target
from spikeship.targets.loihi.quantize import quantize
from tests.sim.lava.test_lava_fixtures import direct_cnn, direct_inputs, event_cnn, event_inputs

FIX = "/work/shared/fixtures/nir-paper/"


def test_model_net_has_netx_layout_and_reads_back_as_the_same_deployment(tmp_path):
    g = direct_cnn(prune=0.6)
    path = write_netx(g, tmp_path / "model.net")
    with h5py.File(path) as f:
        types = [f["layer"][str(i)]["type"][0].decode() for i in range(len(f["layer"]))]
        assert types == ["input", "conv", "flatten", "dense", "dense"]
        conv = f["layer/1"]
        assert conv["weight"].shape == (5, 3, 6, 6) and conv["stride"][()].tolist() == [2, 2]
        assert conv["neuron/iDecay"][()] == 4096 and conv["neuron/vDecay"][()] == 3277
        assert f["layer/3/weight"].dtype.kind == "i" and "spikeship_host" in f
    direct, back = quantize(g), read_deployment(path)
    for p, q in zip(direct.populations, back.populations):
        assert (p.name, p.shape, p.depth, p.du, p.dv, p.vth) == \
            (q.name, q.shape, q.depth, q.du, q.dv, q.vth)
        np.testing.assert_array_equal(p.bias_mant, q.bias_mant)
    fc6 = next(s for s in direct.synapses if s.name == "fc6")
    (fc6_back,) = [s for s in back.synapses if s.target == "lif7"]
    np.testing.assert_array_equal(fc6.weights.toarray(), fc6_back.weights)


@pytest.mark.lava
@pytest.mark.parametrize("make,inputs", [(direct_cnn, direct_inputs(3, 4)),
                                         (event_cnn, event_inputs(3, 5))])
def test_netx_is_identical_to_the_direct_fixed_point_path(tmp_path, make, inputs):
    g = make()
    write_netx(g, tmp_path / "model.net")
    direct = run_deployment(quantize(g), inputs, timeout_s=300)
    for sparse in (False, True):
        res = run_netx(tmp_path / "model.net", inputs, timeout_s=300, sparse_fc_layer=sparse)
        np.testing.assert_array_equal(res.output_spikes, direct.output_spikes)
        for k, c in direct.neuron_counts.items():
            np.testing.assert_array_equal(res.neuron_counts[k], c, err_msg=k)
        assert res.extra["netx"]["sparse_fc_layer"] is sparse
        np.testing.assert_array_equal(res.input_sum, direct.input_sum)
    assert direct.output_spikes.sum() > 0


@pytest.mark.lava
def test_netx_target_reads_the_run_directory(tmp_path):
    nir.write(tmp_path / "model.nir", event_cnn())
    with pytest.raises(RunDirError, match="model.net"):
        run_target(tmp_path, event_inputs(1, 2), None, {"progress": False})
    write_netx(nir.read(tmp_path / "model.nir"), tmp_path / "model.net")
    res = run_target(tmp_path, event_inputs(2, 3), np.array([0, 1]),
                     {"progress": False, "timeout_s": 300})
    assert res.target == "lava-netx" and res.samples == 2 and res.accuracy is not None


def test_graphs_netx_cannot_express_get_a_clear_export_error(tmp_path):
    braille = nir.read(FIX + "braille_noDelay_noBias_subtract.nir")
    with pytest.raises(ExportError, match="recurrent"):
        write_netx(braille, tmp_path / "b.net", dt_s=1e-4)
    with pytest.raises(ExportError, match="bias flows through its current"):
        write_netx(nir.read(FIX + "braille_noDelay_bias_zero.nir"), tmp_path / "c.net",
                   dt_s=1e-4)
    g = event_cnn()
    g.nodes["lif4"].v_reset = np.full(5, 0.1, np.float32)
    with pytest.raises(ExportError, match=r"design rule.*reset-to-zero"):
        write_netx(g, tmp_path / "d.net")
    assert not list(tmp_path.iterdir())            # nothing half-written


def test_a_foreign_hdf5_file_is_a_graph_error(tmp_path):
    with h5py.File(tmp_path / "x.net", "w") as f:
        f.create_group("layer")
    with pytest.raises(GraphError, match="not a spikeship netx file"):
        read_deployment(tmp_path / "x.net")
