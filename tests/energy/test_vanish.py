"""Vanish check: real exports of a pruned checkpoint, read back from disk; deliberately
broken exports are caught with the exact layer and index."""

from __future__ import annotations

import nir
import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

from spikeship.export.nir_export import to_nir, write_nir
from spikeship.export.surgery import build_deployable
from spikeship.energy import artifacts, vanish
from spikeship.energy.report import run_vanish
from spikeship.sim.result import SimResult
from spikeship.train.checkpoint import load_checkpoint
from tests.energy.energy_nets import densify_onnx, pruned_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    masks = pruned_run(d)
    return d, vanish.pruned_layers_from_masks(masks)


def check_nir(path, pruned):
    return vanish.check_format("nir", artifacts.nir_layers(nir.read(path)), pruned)


def test_truth_from_checkpoint_equals_the_masks(run):
    d, pruned = run
    again = vanish.pruned_layers_from_checkpoint(d)
    assert set(again) == {"0", "3", "7", "9"}
    for k in pruned:
        np.testing.assert_array_equal(again[k].effective, pruned[k].effective)
        np.testing.assert_array_equal(again[k].units, pruned[k].units)
    assert pruned["3"].removed_units == 4 and pruned["9"].removed_units == 0


def test_clean_nir_export_passes(run):
    d, pruned = run
    c = check_nir(d / "model.nir", pruned)
    assert c.passed and c.absent == c.pruned_checked > 0
    assert all(v == 0 for v in c.counts.values())


def test_exported_onnx_stores_no_pruned_synapse(run):
    d, pruned = run
    c = vanish.check_format("onnx", artifacts.onnx_layers(d / "model.onnx"), pruned)
    assert c.passed, c.counts
    assert c.absent == c.pruned_checked > 0


def test_dense_onnx_initializers_store_pruned_synapses_as_zeros(run, tmp_path):
    # The same model with the coordinate-form weights replaced by dense initializers
    # (what a naive exporter writes): every pruned synapse is an explicit zero.
    d, pruned = run
    densify_onnx(d / "model.onnx", tmp_path / "dense.onnx")
    c = vanish.check_format("onnx", artifacts.onnx_layers(tmp_path / "dense.onnx"), pruned)
    assert not c.passed and c.counts["nonzero"] == 0 and c.counts["unit_present"] == 0
    # every unstructured pruned synapse whose units survive is an explicit zero
    g = nir.read(d / "model.nir")
    expected = sum(int((~np.asarray(n.metadata["mask"])).sum()) for n in g.nodes.values()
                   if isinstance(n, (nir.Affine, nir.Conv2d)))
    assert c.counts["explicit_zero"] == expected > 0
    f = c.findings[0]
    assert f.category == "explicit_zero" and f.layer == "fc7" and f.value == 0.0
    assert not pruned["7"].effective[f.index]


def test_onnx_sparse_initializers_pass(run, tmp_path):
    d, pruned = run
    m = onnx.load(d / "model.onnx")
    keep, sparse = [], []
    for t in m.graph.initializer:
        name = t.name
        if name.endswith(".weight") and name[:-7] in ("fc7", "fc9", "conv0", "conv3"):
            g = nir.read(d / "model.nir")
            mask = np.asarray(g.nodes[name[:-7]].metadata["mask"]).astype(bool)
            w = numpy_helper.to_array(t)
            idx = np.flatnonzero(mask.ravel()).astype(np.int64)
            vals = numpy_helper.from_array(w.ravel()[idx].astype(np.float32), name)
            sparse.append(helper.make_sparse_tensor(vals, numpy_helper.from_array(idx),
                                                    list(w.shape)))
        else:
            keep.append(t)
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    m.graph.sparse_initializer.extend(sparse)
    onnx.save(m, tmp_path / "sparse.onnx")
    c = vanish.check_format("onnx", artifacts.onnx_layers(tmp_path / "sparse.onnx"), pruned)
    assert c.passed, c.counts


def test_restored_pruned_weight_is_caught_at_its_index(run, tmp_path):
    d, pruned = run
    g = nir.read(d / "model.nir")
    fc7 = g.nodes["fc7"]
    mask = np.asarray(fc7.metadata["mask"]).astype(bool)
    r, c = np.argwhere(~mask)[5]
    w = np.array(fc7.weight)
    w[r, c] = 0.37
    fc7.weight = w
    nir.write(tmp_path / "broken.nir", g)
    chk = check_nir(tmp_path / "broken.nir", pruned)
    assert not chk.passed and chk.counts["nonzero"] == 1
    (f,) = chk.findings
    orig = (int(fc7.metadata["kept_out"][r]), int(fc7.metadata["kept_in"][c]))
    assert (f.category, f.layer, f.source_layer, f.what) == ("nonzero", "fc7", "7", "weight")
    assert f.index == orig and f.deployed_index == (r, c) and f.value == pytest.approx(0.37)
    assert not pruned["7"].effective[orig]


def test_pruned_synapse_marked_present_is_an_explicit_zero(run, tmp_path):
    d, pruned = run
    g = nir.read(d / "model.nir")
    node = g.nodes["fc9"]
    mask = np.asarray(node.metadata["mask"]).astype(bool)
    r, c = np.argwhere(~mask)[0]
    mask[r, c] = True
    node.metadata["mask"] = mask
    nir.write(tmp_path / "ez.nir", g)
    chk = check_nir(tmp_path / "ez.nir", pruned)
    assert chk.counts["explicit_zero"] == 1 and chk.counts["nonzero"] == 0
    (f,) = chk.findings
    assert (f.layer, f.index) == ("fc9", (int(node.metadata["kept_out"][r]),
                                          int(node.metadata["kept_in"][c])))


def _broken_export_keeping_units(run_dir, tmp_path, unit: int):
    """An exporter that ignores the unit masks (keeps every unit) and leaves the bias of
    removed unit ``unit`` of layer 7 in."""
    ck = load_checkpoint(run_dir)
    with torch.no_grad():
        ck.model[7].bias[unit] = 2.5
    net = build_deployable(ck.model, None, ck.spec, {"timesteps": 4})
    return write_nir(to_nir(net), tmp_path / "keeps_units.nir")


def test_pruned_neuron_bias_left_in_is_caught(run, tmp_path):
    d, pruned = run
    removed = np.flatnonzero(~pruned["7"].units)
    unit = int(removed[1])
    chk = check_nir(_broken_export_keeping_units(d, tmp_path, unit), pruned)
    assert not chk.passed
    bias = [f for f in chk.findings if f.what == "bias"]
    assert [(f.layer, f.index, f.category) for f in bias] == [("fc7", (unit,), "nonzero")]
    assert bias[0].value == pytest.approx(2.5 / (1 - 0.2))          # r folded into the bias
    present = {(f.layer, f.index) for f in chk.findings if f.category == "unit_present"}
    assert ("fc7", (unit,)) in present
    assert chk.counts["unit_present"] == sum(p.removed_units for p in pruned.values())
    # the kept-but-pruned synapses have no mask False: explicit zeros
    assert chk.counts["explicit_zero"] > 0


def test_pruned_unit_that_fires_is_caught(run, tmp_path):
    d, pruned = run
    unit = int(np.flatnonzero(~pruned["7"].units)[1])
    g = nir.read(_broken_export_keeping_units(d, tmp_path, unit))
    pops = artifacts.nir_populations(g)
    counts = {n: np.zeros(tuple(g.nodes[n].output_type["output"])) for n in pops}
    counts["lif8"][unit] = 3
    chk = vanish.check_fired("fired:lava-fixed", counts, pops, pruned)
    assert not chk.passed and chk.counts["unit_fired"] == 1
    (f,) = chk.findings
    assert (f.layer, f.source_layer, f.index, f.value) == ("lif8", "7", (unit,), 3.0)
    # a removed conv channel firing is found per channel
    ch = int(np.flatnonzero(~pruned["3"].units)[0])
    counts = {n: np.zeros(tuple(g.nodes[n].output_type["output"])) for n in pops}
    counts["lif4"][ch, 1, 0] = 1
    chk = vanish.check_fired("fired:x", counts, pops, pruned)
    assert [(f.layer, f.index) for f in chk.findings] == [("lif4", (ch,))]


def test_run_vanish_over_a_run_directory(run, tmp_path):
    d, pruned = run
    g = nir.read(d / "model.nir")
    pops = artifacts.nir_populations(g)
    counts = {n: np.ones(tuple(g.nodes[n].output_type["output"])) for n in pops}
    SimResult("lava-fixed", 4, np.zeros((1, 4, 3), np.uint8), counts,
              np.ones((1, 9, 7)), np.ones((1, 9, 7))).save(d)
    rep = run_vanish(d, g, pruned, include_lava=False)
    by = {f.format: f for f in rep.formats}
    assert by["nir"].passed and by["fired:lava-fixed"].passed and by["onnx"].passed
    assert rep.passed and rep.to_json()["passed"] is True


def test_conv_kernel_zeros_are_tolerated_fc_zeros_are_not():
    conv = vanish.PrunedLayer("3", "conv", np.ones((2, 2, 3, 3), bool), np.ones(2, bool))
    fc = vanish.PrunedLayer("7", "fc", np.ones((4, 8), bool), np.ones(4, bool))
    pruned = {"3": conv, "7": fc}

    def check(fmt, conv_zeros, fc_zeros):
        return vanish.FormatCheck(
            format=fmt, checked=True, counts={"explicit_zero": conv_zeros + fc_zeros},
            by_layer={"3": {"explicit_zero": conv_zeros, "stored": 36},
                      "7": {"explicit_zero": fc_zeros, "stored": 32}})

    out = vanish.unavoidable_zeros([check("lava-fixed", 9, 0), check("lava-float", 9, 1)],
                                   pruned)
    assert out[0].passed and "conv" in out[0].reason
    assert not out[1].passed
    assert vanish.stored_zeros(out[0], pruned)["conv_share"] == 9 / 36
