"""``spikeship export`` / ``simulate`` / ``inspect`` on a real run directory (digits)."""

import json

import h5py
import numpy as np
import pytest

from spikeship import cli
from spikeship.targets.export import export_run
from spikeship.targets.describe import describe_file
from spikeship.sim.result import SimResult
from tests.export import nets

UNITS = {"0": [1, 2, 3], "3": [0, 5, 9, 17], "7": list(range(0, 300, 3))}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir, _, _ = nets.make_run(tmp_path_factory.mktemp("run") / "r", prune_units=UNITS)
    return run_dir


def test_export_command_writes_smaller_files(run, capsys):
    assert cli.main(["export", str(run), "--formats", "nir,onnx"]) == 0
    out = capsys.readouterr().out
    assert "conv0" in out and "(15, 1, 3, 3) -> (12, 1, 3, 3)" in out
    doc = json.loads((run / "export.json").read_text())
    shapes = {r["layer"]: (r["before"], r["after"]) for r in doc["layers"]}
    assert shapes["conv3"] == ([40, 15, 3, 3], [36, 12, 3, 3])
    assert shapes["fc7"] == ([300, 160], [200, 144])       # 36 channels x 2x2 columns
    assert shapes["fc9"] == ([10, 300], [10, 200])
    assert (run / "model.nir").is_file() and (run / "model.onnx").is_file()
    assert not list(run.glob(".model.*.tmp"))              # atomic writes left no temp files


@pytest.mark.parametrize("target", ["reference", "onnx", "norse"])
def test_simulate_command_agrees_with_snntorch(run, target, capsys):
    if not (run / "model.onnx").exists():
        export_run(run, ("nir", "onnx"))
    assert cli.main(["simulate", str(run), "--target", target, "--samples", "12"]) == 0
    assert "agreement with snntorch" in capsys.readouterr().out
    res = SimResult.load(run, target)
    base = SimResult.load(run, "snntorch")
    assert res.samples == 12 and res.timesteps == 4 and base.output_spikes.sum() > 0
    assert res.agreement["spikes"] == 1.0 and res.agreement["predictions"] == 1.0
    np.testing.assert_array_equal(res.output_spikes, base.output_spikes)
    assert set(res.neuron_counts) == {"lif1", "lif4", "lif8", "lif10"}
    for k, v in res.neuron_counts.items():
        np.testing.assert_array_equal(v, base.neuron_counts[k])
    assert res.neuron_counts["lif1"].shape == (12, 8, 8)


def test_inspect_nir_onnx_and_netx_files(run, tmp_path, capsys):
    if not (run / "model.onnx").exists():
        export_run(run, ("nir", "onnx"))
    d = describe_file(run / "model.nir")
    rows = {r["name"]: r for r in d["layers"]}
    assert rows["fc7"]["shape"] == [200, 144] and rows["lif4"]["neurons"] == 36 * 4 * 4
    assert rows["fc7"]["nonzero"] <= rows["fc7"]["mask_synapses"] < rows["fc7"]["synapses"]
    o = describe_file(run / "model.onnx")
    assert {r["name"] for r in o["layers"]} == {"conv0.weight", "conv3.weight", "fc7.weight",
                                                "fc9.weight"}
    coo = {r["name"]: r for r in o["layers"] if "stored" in r}
    assert coo and all(r["stored"] == rows[n.split(".")[0]]["mask_synapses"] for n, r in coo.items())
    assert o["nonzero_total"] == d["nonzero_total"] and o["ir_version"] == 8
    net = tmp_path / "model.net"
    with h5py.File(net, "w") as f:
        f["layer/0/weight"] = np.array([[1.0, 0.0], [0.0, 2.0]])
        f["layer/0/type"] = np.bytes_("dense")
    h = describe_file(net)
    assert h["synapses_total"] == 4 and h["nonzero_total"] == 2
    assert cli.main(["inspect", str(run / "model.nir")]) == 0
    assert "SumPool2d" in capsys.readouterr().out
    assert cli.main(["inspect", str(tmp_path / "nothing.nir")]) == 1
    assert "no file" in capsys.readouterr().err


def test_export_without_checkpoint_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["export", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("spikeship: error:") and "checkpoint" in err
    assert cli.main(["export", str(tmp_path / "empty"), "--formats", "nir,pdf"]) == 1
