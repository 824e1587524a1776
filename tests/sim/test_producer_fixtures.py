"""Every producer fixture on every simulator: the producer's own spikes, or a named refusal.

The fixtures (tests/fixtures/producers/<producer>/<graph>.nir + .golden.npz) were written
by tools/producer_fixtures.py with snnTorch, Norse, Sinabs and Rockpool themselves: the
exporter's file as written, the producer's output spikes on seeded inputs. Each file is
run through the standalone path (:func:`spikeship.sim.standalone.simulate_file`) with the
producer convention its golden names. Exact agreement is asserted on the float
simulators; the fixed-point ones (8-bit weights) must reach the floor stated per fixture
below. Where the producer's meaning cannot be expressed, the refusal must name the node.
The NIR paper's graphs (../shared/fixtures/nir-paper, referenced by path) have no
producer spikes: they are run on every simulator against the reference.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from spikeship.errors import ConventionError, SpikeshipError
from spikeship.sim.standalone import simulate_file

HERE = Path(__file__).resolve()
FIXTURES = HERE.parents[1] / "fixtures" / "producers"
PAPER = HERE.parents[4] / "shared" / "fixtures" / "nir-paper"
if not PAPER.is_dir():
    PAPER = Path("/work/shared/fixtures/nir-paper")
EXACT = ("reference", "norse", "lava-float")
FIXED = ("lava-fixed", "loihi-emu")
# Share of equal output-spike cells (sample x step x neuron) the fixed-point simulators
# must reach per fixture (measured 0.99-1.0 on these graphs; the floor leaves room
# for one decay rounding per layer).
FLOORS = {"norse/dense_cubalif": 0.98, "norse/dense_iaf": 1.0, "norse/dense_lifbox": 0.98,
          "sinabs/conv_iaf_sumpool": 0.98, "sinabs/dense_iaf_single": 1.0,
          "snntorch/conv_lif": 0.98, "snntorch/dense_lif": 0.98}
# The node each refusal must name (the producer's meaning NIR cannot carry).
REFUSED = {"rockpool/dense_cubalif": "1_LIFTorch", "rockpool/recurrent_cubalif": "1_LIFTorch",
           "sinabs/dense_iaf_default": "'1'", "snntorch/dense_cubalif": "'1'",
           "snntorch/recurrent_rleaky": "1.lif"}
PAPER_GRAPHS = {"lif_norse.nir": (0.3, 200), "cnn_sinabs.nir": (0.2, 12),
                "braille_noDelay_bias_zero.nir": (0.2, 30),
                "braille_noDelay_noBias_subtract.nir": (0.3, 30)}


def fixtures() -> list[str]:
    return sorted(f"{p.parent.name}/{p.stem}" for p in FIXTURES.glob("*/*.nir"))


def golden(key: str):
    g = np.load(FIXTURES / f"{key}.golden.npz", allow_pickle=False)
    return g["inputs"], g["spikes"], json.loads(str(g["meta"]))


def run_cell(key: str, target: str, tmp: Path) -> dict:
    """One table cell: {"agree", "total"} against the producer's spikes, or {"refused"}."""
    x, spikes, meta = golden(key)
    np.save(tmp / "x.npy", x)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r, _ = simulate_file(FIXTURES / f"{key}.nir", target, input_path=tmp / "x.npy",
                                 out=tmp / "out", convention=meta["convention"])
    except SpikeshipError as e:
        return {"refused": f"{type(e).__name__}: {e}"}
    out = r.output_spikes
    s = spikes.reshape(out.shape)
    return {"agree": int((out == s).sum()), "total": int(s.size),
            "spikes": int(out.sum()), "golden_spikes": int(s.sum())}


def test_every_fixture_is_in_the_table():
    assert set(fixtures()) == set(FLOORS) | set(REFUSED)


@pytest.mark.parametrize("target", EXACT + FIXED)
@pytest.mark.parametrize("key", sorted(FLOORS))
def test_fixture_agrees_with_its_producer(key, target, tmp_path):
    cell = run_cell(key, target, tmp_path)
    assert "refused" not in cell, cell
    assert cell["golden_spikes"] > 0
    if target in EXACT:
        assert cell["agree"] == cell["total"], cell
    else:
        assert cell["agree"] / cell["total"] >= FLOORS[key], cell


@pytest.mark.parametrize("target", ("reference", "lava-fixed"))
@pytest.mark.parametrize("key", sorted(REFUSED))
def test_inexpressible_meaning_is_refused_by_name(key, target, tmp_path):
    cell = run_cell(key, target, tmp_path)
    assert cell.get("refused", "").startswith("ConventionError"), cell
    assert REFUSED[key] in cell["refused"] and key.split("/")[0] in cell["refused"]


@pytest.mark.parametrize("key,producer", [("rockpool/dense_cubalif", "rockpool"),
                                          ("norse/dense_cubalif", "norse"),
                                          ("sinabs/dense_iaf_default", "sinabs")])
def test_plain_nir_run_of_a_producer_graph_warns_with_the_flag(key, producer, tmp_path):
    x, _, _ = golden(key)
    np.save(tmp_path / "x.npy", x)
    dt = None if producer == "sinabs" else 1e-3
    with pytest.warns(UserWarning, match=f"looks like {producer}.*--convention {producer}"):
        r, out = simulate_file(FIXTURES / f"{key}.nir", "reference", input_path=tmp_path / "x.npy",
                               out=tmp_path / "o", dt_s=dt)
    record = json.loads((out / "standalone.json").read_text())["convention"]
    assert record["convention"] == "nir" and producer in [d["producer"] for d in record["detected"]]


def test_norse_convention_is_recorded_and_changes_the_spikes(tmp_path):
    key = "norse/dense_cubalif"
    x, spikes, _ = golden(key)
    np.save(tmp_path / "x.npy", x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain, _ = simulate_file(FIXTURES / f"{key}.nir", "reference", dt_s=1e-3,
                                 input_path=tmp_path / "x.npy", out=tmp_path / "plain")
    adapted, out = simulate_file(FIXTURES / f"{key}.nir", "reference", convention="norse",
                                 input_path=tmp_path / "x.npy", out=tmp_path / "norse")
    assert not np.array_equal(plain.output_spikes.reshape(spikes.shape), spikes)
    np.testing.assert_array_equal(adapted.output_spikes.reshape(spikes.shape), spikes)
    rec = json.loads((out / "standalone.json").read_text())["convention"]
    changed = {(c["node"], c["what"]) for c in rec["changes"]}
    assert ("1", "w_in") in changed and ("<graph>", "metadata.dt") in changed
    assert rec["producer_version"] is None or rec["producer_version"].startswith("1.")
    assert any(c["what"] == "input_type" for c in rec["normalized"])


def test_unknown_convention_is_refused(tmp_path):
    x, _, _ = golden("snntorch/dense_lif")
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(SpikeshipError, match="unknown convention 'keras'"):
        simulate_file(FIXTURES / "snntorch/dense_lif.nir", "reference", convention="keras",
                      input_path=tmp_path / "x.npy", out=tmp_path / "o")


def paper_cell(name: str, target: str, tmp: Path) -> dict:
    """A NIR-paper graph on ``target`` against the reference (no producer spikes exist)."""
    from spikeship.nir.read import read_nir

    density, steps = PAPER_GRAPHS[name]
    g = read_nir(PAPER / name)
    x = (np.random.default_rng(1).random((2, steps, *g.out_shape[g.input])) < density)
    np.save(tmp / "x.npy", x.astype(np.float32))
    try:
        r, _ = simulate_file(PAPER / name, target, input_path=tmp / "x.npy", out=tmp / "o",
                             dt_s=1e-4)
    except SpikeshipError as e:
        return {"refused": f"{type(e).__name__}: {e}"}
    return {"agree_with_reference": r.agreement["spikes"],
            "differing": r.agreement["spikes_differing"], "spikes": int(r.output_spikes.sum())}


@pytest.mark.skipif(not PAPER.is_dir(), reason="../shared/fixtures/nir-paper not present")
@pytest.mark.parametrize("target", ("norse", "lava-float"))
@pytest.mark.parametrize("name", ["lif_norse.nir", "braille_noDelay_noBias_subtract.nir"])
def test_paper_graph_agrees_with_the_reference_on_float_simulators(name, target, tmp_path):
    cell = paper_cell(name, target, tmp_path)
    assert "refused" not in cell and cell["spikes"] > 0, cell
    assert cell["agree_with_reference"] == 1.0, cell


def test_convention_error_is_a_graph_error():
    from spikeship.errors import GraphError

    assert issubclass(ConventionError, GraphError)


def test_energy_of_a_producer_file_records_its_convention(tmp_path):
    from spikeship.energy.standalone import energy_file

    x, _, _ = golden("norse/dense_lifbox")
    np.save(tmp_path / "x.npy", x)
    doc, out = energy_file(FIXTURES / "norse/dense_lifbox.nir", input_path=tmp_path / "x.npy",
                           out=tmp_path / "o", convention="norse")
    assert doc["convention"]["convention"] == "norse"
    assert {c["what"] for c in doc["convention"]["changes"]} >= {"metadata.dt", "tau"}
    assert json.loads((out / "energy.json").read_text())["convention"] == doc["convention"]


def test_cli_convention_flag_adapts_or_refuses_by_name(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(HERE.parents[2])}
    x, spikes, _ = golden("norse/dense_cubalif")
    np.save(tmp_path / "x.npy", x)
    cmd = [sys.executable, "-m", "spikeship", "simulate", "--target", "reference",
           "--input", str(tmp_path / "x.npy")]
    ok = subprocess.run(cmd + [str(FIXTURES / "norse/dense_cubalif.nir"), "--convention",
                               "norse", "--out", str(tmp_path / "n")],
                        capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    rec = json.loads((tmp_path / "n" / "standalone.json").read_text())["convention"]
    assert rec["convention"] == "norse"
    out = np.load(tmp_path / "n" / "simulate-reference.npz")["output_spikes"]
    np.testing.assert_array_equal(out.reshape(spikes.shape), spikes)
    bad = subprocess.run(cmd + [str(FIXTURES / "sinabs/dense_iaf_default.nir"), "--convention",
                                "sinabs", "--out", str(tmp_path / "s")],
                         capture_output=True, text=True, env=env)
    assert bad.returncode != 0 and "node '1'" in bad.stderr and "MultiSpike" in bad.stderr
