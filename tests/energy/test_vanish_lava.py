"""Vanish check of the built Lava processes (float and fixed), pools folded in."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from spikeship.energy import lava_artifacts, vanish
from tests.energy.energy_nets import pruned_run

pytestmark = pytest.mark.lava


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("lava_run")
    masks = pruned_run(d, input_shape=(1, 8, 12), formats=("nir", "netx"))  # pools tile exactly
    return d, vanish.pruned_layers_from_masks(masks)


def test_built_processes_hold_no_pruned_synapse(run):
    d, pruned = run
    g = nir.read(d / "model.nir")
    built = lava_artifacts.build_processes(g)
    assert set(built) == {"lava-float", "lava-fixed"}
    for fmt, layers in built.items():
        assert [l.layer for l in layers] == ["conv3", "fc7", "fc9", "conv0"]   # conv0 on the host
        chk = vanish.check_format(fmt, layers, pruned)
        assert chk.passed, (fmt, chk.counts)
        assert chk.absent == chk.pruned_checked == sum(p.pruned_synapses + p.removed_units
                                                       for p in pruned.values())
    # read back through the folded pool + flatten, fc7's stored entries are the NIR mask
    fc7 = next(l for l in built["lava-float"] if l.layer == "fc7")
    mask = np.asarray(g.nodes["fc7"].metadata["mask"]).astype(bool)
    np.testing.assert_array_equal(fc7.stored, mask)
    np.testing.assert_array_equal(fc7.weight != 0, np.asarray(g.nodes["fc7"].weight) != 0)


def test_lava_stores_what_a_broken_nir_claims(run, tmp_path):
    d, pruned = run
    g = nir.read(d / "model.nir")
    node = g.nodes["fc7"]
    mask = np.asarray(node.metadata["mask"]).astype(bool)
    (r0, c0), (r1, c1) = np.argwhere(~mask)[[3, 40]]
    mask[r0, c0] = True                       # claimed present: Lava's Sparse stores a zero
    w = np.array(node.weight)
    w[r1, c1] = 0.8                           # restored: Lava gets a live pruned synapse
    mask[r1, c1] = True
    node.weight, node.metadata["mask"] = w, mask
    nir.write(tmp_path / "broken.nir", g)
    built = lava_artifacts.build_processes(nir.read(tmp_path / "broken.nir"))
    kout, kin = node.metadata["kept_out"], node.metadata["kept_in"]
    for fmt, layers in built.items():
        chk = vanish.check_format(fmt, layers, pruned)
        assert chk.counts["explicit_zero"] == 1 and chk.counts["nonzero"] == 1, fmt
        got = {f.category: (f.layer, f.index) for f in chk.findings}
        assert got["explicit_zero"] == ("fc7", (int(kout[r0]), int(kin[c0])))
        assert got["nonzero"] == ("fc7", (int(kout[r1]), int(kin[c1])))


def test_checks_report_every_lava_format(run):
    d, pruned = run
    g = nir.read(d / "model.nir")
    out = {c.format: c for c in lava_artifacts.checks(d, g, pruned, include_lava=True)}
    assert set(out) == {"netx", "netx-sparse", "lava-float", "lava-fixed"}
    assert out["lava-float"].passed and out["lava-fixed"].passed
    # the netx file stores dense arrays: the unstructured pruned fc synapses are zeros in it
    n_masked = sum(int((~np.asarray(g.nodes[k].metadata["mask"])).sum()) for k in ("fc7", "fc9"))
    assert out["netx"].counts["explicit_zero"] == n_masked > 0
    assert out["netx"].counts["nonzero"] == 0
    assert out["netx-sparse"].passed                    # sparse_fc_layer=True drops them
    skipped = lava_artifacts.checks(d, g, pruned, include_lava=False)
    assert [c.format for c in skipped] == ["netx", "netx-sparse", "lava"]
    assert not skipped[-1].checked


def test_restored_weight_in_the_netx_file_is_caught(run, tmp_path):
    import shutil

    import h5py

    d, pruned = run
    g = nir.read(d / "model.nir")
    shutil.copy(d / "model.net", tmp_path / "model.net")
    mask = np.asarray(g.nodes["fc9"].metadata["mask"]).astype(bool)
    r, c = np.argwhere(~mask)[2]
    with h5py.File(tmp_path / "model.net", "r+") as f:
        for key in f["layer"]:
            lay = f["layer"][key]
            if "name" in lay and lay["name"][()][0] == b"lif10":
                w = lay["weight"][()]
                w[r, c] = 18         # a weight Lava's format can hold (2 m, |m| <= 127):
                lay["weight"][...] = w   # an odd one is refused by the netx reader itself
    out = {x.format: x for x in lava_artifacts.netx_check(tmp_path / "model.net", g, pruned)}
    for fmt in ("netx", "netx-sparse"):
        bad = [f for f in out[fmt].findings if f.category == "nonzero"]
        kout, kin = g.nodes["fc9"].metadata["kept_out"], g.nodes["fc9"].metadata["kept_in"]
        assert [(f.layer, f.index, f.value) for f in bad] == \
            [("fc9", (int(kout[r]), int(kin[c])), 18.0)], fmt


def test_netx_file_zeros_are_stored_zeros_when_the_sparse_network_is_clean(run, tmp_path):
    d, pruned = run
    g = nir.read(d / "model.nir")
    out = {c.format: c for c in vanish.unavoidable_zeros(
        lava_artifacts.checks(d, g, pruned, include_lava=False), pruned)}
    assert out["netx"].passed and out["netx"].tolerated == ("explicit_zero",)
    assert "loaded sparse" in out["netx"].reason
    z = vanish.stored_zeros(out["netx"], pruned)
    assert z["explicit_zero"] == z["fc"] + z["conv"] == out["netx"].counts["explicit_zero"] > 0
    # a live pruned synapse in the file is never tolerated
    import shutil

    import h5py

    shutil.copy(d / "model.net", tmp_path / "model.net")
    mask = np.asarray(g.nodes["fc9"].metadata["mask"]).astype(bool)
    r, c = np.argwhere(~mask)[0]
    with h5py.File(tmp_path / "model.net", "r+") as f:
        for key in f["layer"]:
            lay = f["layer"][key]
            if "name" in lay and lay["name"][()][0] == b"lif10":
                w = lay["weight"][()]
                w[r, c] = 4          # even: a weight Lava's fixed point can hold
                lay["weight"][...] = w
    bad = {c.format: c for c in vanish.unavoidable_zeros(
        lava_artifacts.netx_check(tmp_path / "model.net", g, pruned), pruned)}
    assert not bad["netx"].passed and not bad["netx-sparse"].passed


def test_energy_command_passes_on_netx_stored_zeros_and_strict_fails(run, tmp_path, capsys):
    import json
    import shutil

    from spikeship.cli import main

    d, _ = run
    w = tmp_path / "run"
    shutil.copytree(d, w)
    assert main(["energy", str(w), "--assume-rate", "0.1", "--no-lava-check"]) == 0
    vc = json.loads((w / "energy.json").read_text())["vanish_check"]
    assert vc["passed"] is True and vc["strict"] is False
    assert vc["formats"]["netx"]["tolerated"] == ["explicit_zero"]
    assert vc["stored_zeros"]["netx"]["explicit_zero"] > 0
    assert "stored zeros in netx" in capsys.readouterr().out
    assert main(["energy", str(w), "--assume-rate", "0.1", "--no-lava-check", "--strict"]) != 0
    assert "explicit_zero" in capsys.readouterr().err
