"""A pruned dense first layer (direct encoding: evaluated on the host) holds only its
synapses, so the documented sequence passes on an MLP as on dpap-mnist (issue 16,
item 6): before, ``spikeship energy`` exited 1 for ``tiny-mlp`` with "vanish check
failed: netx-sparse / lava-float / lava-fixed: explicit_zero in layer fc1"."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
from scipy.sparse import issparse

from spikeship.cli import main
from spikeship.targets.loihi.host import host_current, sparse_hosts
from spikeship.targets.loihi.lower import lower
from spikeship.targets.loihi.netx_read import read_deployment

pytestmark = pytest.mark.lava


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("mlp") / "run"
    assert main(["train", "--out", str(d), "--model", "tiny-mlp", "--epochs", "2",
                 "--no-progress", "--prune", "magnitude", "--prune-opt", "target=0.6",
                 "--prune-opt", "start=1", "--prune-opt", "end=1"]) == 0
    assert main(["export", str(d)]) == 0
    for target in ("lava-fixed", "loihi-emu"):
        assert main(["simulate", str(d), "--target", target, "--samples", "24"]) == 0
    return d


def test_the_host_layer_of_a_pruned_mlp_is_sparse_and_computes_the_same(run):
    g = nir.read(run / "model.nir")
    mask = np.asarray(g.nodes["fc1"].metadata["mask"]).astype(bool)
    assert 0 < mask.sum() < mask.size                  # fc1 (the host layer) is pruned
    dep = lower(g, input_mode="current")
    (h,) = dep.host_layers
    assert h.kind == "dense" and issparse(h.weights)
    assert h.weights.nnz <= mask.sum()                 # no pruned synapse is held
    rows, cols = h.weights.nonzero()
    assert mask[rows, cols].all()
    dense = h.weights.toarray()
    x = np.random.default_rng(0).random((5, *h.source_shape))
    want = x.reshape(5, -1) @ dense.T + h.bias
    np.testing.assert_allclose(host_current(h, x), want, rtol=1e-12, atol=1e-12)
    # the netx file stores the host layer dense; loaded sparse, its zeros are dropped
    (hn,) = read_deployment(run / "model.net").host_layers
    assert not issparse(hn.weights) and int((hn.weights == 0).sum()) >= (~mask).sum()
    (hs,) = sparse_hosts(read_deployment(run / "model.net")).host_layers
    assert issparse(hs.weights) and hs.weights.nnz == int(np.count_nonzero(hn.weights))
    assert sparse_hosts(dep).host_layers[0].weights is h.weights     # already sparse


def test_energy_passes_the_vanish_check_on_its_own_export(run, capsys):
    capsys.readouterr()
    assert main(["energy", str(run), "--hardware", "loihi"]) == 0
    vc = json.loads((run / "energy.json").read_text())["vanish_check"]
    assert vc["passed"] is True
    f = vc["formats"]
    for fmt in ("nir", "onnx", "netx-sparse", "lava-float", "lava-fixed"):
        assert f[fmt]["checked"] and f[fmt]["passed"] and not f[fmt]["tolerated"], fmt
        assert f[fmt]["explicit_zero"]["count"] == 0, fmt
    # the file's dense arrays hold the pruned synapses as zeros: reported, tolerated
    assert f["netx"]["tolerated"] == ["explicit_zero"] and f["netx"]["explicit_zero"]["count"] > 0
    assert "vanish check: PASSED" in capsys.readouterr().out
    # --strict judges the file as stored
    assert main(["energy", str(run), "--hardware", "loihi", "--strict"]) != 0


def test_lava_netx_loaded_sparse_matches_lava_fixed_spike_for_spike(run):
    assert main(["simulate", str(run), "--target", "lava-netx", "--samples", "24",
                 "--option", "sparse_fc_layer=true"]) == 0
    a, b = np.load(run / "simulate-lava-fixed.npz"), np.load(run / "simulate-lava-netx.npz")
    c = np.load(run / "simulate-loihi-emu.npz")
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        np.testing.assert_array_equal(a[k], c[k], err_msg=k)
    meta = json.loads((run / "simulate-lava-netx.json").read_text())
    assert meta["netx"]["sparse_fc_layer"] is True
