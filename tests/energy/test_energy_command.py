"""``spikeship energy RUN_DIR``: energy.json from a real run directory; exit codes."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest

from spikeship.cli import main
from spikeship.sim.reference import run_target
from tests.energy.energy_nets import pruned_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    pruned_run(d, formats=("nir",))
    rng = np.random.default_rng(0)
    x = np.repeat(rng.random((4, 1, 1, 9, 7)).astype(np.float32), 4, axis=1)
    run_target(d, x, np.arange(4) % 3, {}).save(d)
    return d


def test_energy_json_from_the_reference_run(run, capsys):
    assert main(["energy", str(run), "--hardware", "loihi", "--spikes-from", "reference",
                 "--no-lava-check"]) == 0
    doc = json.loads((run / "energy.json").read_text())
    assert doc["hardware"] == "loihi"
    assert doc["spikes"] == {**doc["spikes"], "source": "simulate-reference", "samples": 4,
                             "kind": "simulation"}
    names = [l["layer"] for l in doc["layers"]]
    assert names == ["conv0", "conv3", "fc7", "fc9"]
    conv0, fc7 = doc["layers"][0], doc["layers"][2]
    assert conv0["op"] == "MAC" and any("MAC" in n for n in doc["notes"])
    for l in doc["layers"]:
        assert l["synops_dense"] >= l["synops_effective"] >= 0
        assert l["connections_trained"] == l["connections_deployed"]   # nothing lost or added
        assert l["connections_original"] >= l["connections_deployed"]
        assert l["energy_pj"] > 0 and l["neuron_updates"]["total"] > 0
    assert fc7["connections_original"] == 300 * 40 * 2 * 1
    t = doc["totals_per_sample"]
    assert t["dense_over_effective"] > 1.0
    assert t["energy_pj"] == pytest.approx(doc["energy_pj_per_sample"]["loihi"]["total_pj"])
    assert doc["energy_pj_per_sample"]["loihi2"]["total_pj"] is None
    assert doc["ann_comparison"]["ann_dense_macs"] > doc["ann_comparison"]["ann_pruned_macs"]
    cores = doc["cores"]["loihi"]
    assert cores["before_pruning"]["cores"] >= cores["after_pruning"]["cores"] >= 4
    assert "Davies" in doc["sources"]["loihi"]["synop_pj"]
    vc = doc["vanish_check"]
    assert vc["passed"] is True and vc["formats"]["nir"]["passed"] is True
    assert vc["formats"]["fired:reference"]["passed"] is True
    assert "vanish check: PASSED" in capsys.readouterr().out


def test_broken_export_fails_the_command(run, tmp_path, capsys):
    import shutil

    d = tmp_path / "broken"
    shutil.copytree(run, d)
    g = nir.read(d / "model.nir")
    node = g.nodes["fc9"]
    mask = np.asarray(node.metadata["mask"]).astype(bool)
    r, c = np.argwhere(~mask)[0]
    w = np.array(node.weight)
    w[r, c] = -1.0
    node.weight = w
    nir.write(d / "model.nir", g)
    code = main(["energy", str(d), "--spikes-from", "reference", "--no-lava-check"])
    assert code != 0
    err = capsys.readouterr().err
    assert "vanish check failed" in err and "fc9" in err
    doc = json.loads((d / "energy.json").read_text())
    listed = doc["vanish_check"]["formats"]["nir"]["nonzero"]["listed"]
    assert listed[0]["layer"] == "fc9" and listed[0]["deployed_index"] == [int(r), int(c)]


def test_assumed_rate_is_labelled_an_estimate(run, tmp_path):
    import shutil

    d = tmp_path / "nosim"
    shutil.copytree(run, d)
    for p in d.glob("simulate-*"):
        p.unlink()
    assert main(["energy", str(d), "--no-lava-check"]) == 0
    doc = json.loads((d / "energy.json").read_text())
    assert doc["spikes"]["kind"] == "assumed_rate" and doc["spikes"]["assumed_rate"] == 1.0
    assert doc["spikes"]["label"].startswith("ESTIMATE") and "upper bound" in doc["spikes"]["label"]
    assert main(["energy", str(d), "--assume-rate", "0.1", "--no-lava-check"]) == 0
    low = json.loads((d / "energy.json").read_text())
    assert low["totals_per_sample"]["synops_effective"] < doc["totals_per_sample"]["synops_effective"]
    assert main(["energy", str(d), "--assume-rate", "0.1", "--spikes-from", "reference"]) != 0


def test_missing_export_and_unknown_hardware_are_named_errors(tmp_path, capsys):
    assert main(["energy", str(tmp_path), "--no-lava-check"]) != 0
    assert "model.nir" in capsys.readouterr().err
    assert main(["energy", str(tmp_path), "--hardware", "loihi9"]) != 0


def test_onnx_explicit_zeros_fail_unless_allowed(run, tmp_path, capsys):
    # spikeship's ONNX export leaves pruned synapses out (checked first); a naive
    # dense-initializer ONNX of the same model stores them as explicit zeros.
    import shutil

    from spikeship.targets.export import export_run
    from tests.energy.energy_nets import densify_onnx

    d = tmp_path / "with_onnx"
    shutil.copytree(run, d)
    export_run(d, ("onnx",))
    assert main(["energy", str(d), "--spikes-from", "reference", "--no-lava-check"]) == 0
    doc = json.loads((d / "energy.json").read_text())
    assert doc["vanish_check"]["formats"]["onnx"]["passed"] is True
    densify_onnx(d / "model.onnx", d / "model.onnx")
    assert main(["energy", str(d), "--spikes-from", "reference", "--no-lava-check"]) != 0
    assert "onnx" in capsys.readouterr().err
    doc = json.loads((d / "energy.json").read_text())
    onnx_doc = doc["vanish_check"]["formats"]["onnx"]
    assert onnx_doc["explicit_zero"]["count"] > 0 and onnx_doc["nonzero"]["count"] == 0
    assert main(["energy", str(d), "--spikes-from", "reference", "--no-lava-check",
                 "--allow-explicit-zeros", "onnx"]) == 0
    doc = json.loads((d / "energy.json").read_text())
    onnx_doc = doc["vanish_check"]["formats"]["onnx"]
    assert onnx_doc["passed"] is True and onnx_doc["tolerated"] == ["explicit_zero"]
    assert onnx_doc["explicit_zero"]["count"] > 0                # still reported
    assert "tolerated" in doc["vanish_check"]["summary"]
