"""Conformance of every registered simulator (parametrised over the registry: a new
simulator is tested here by registering it).

On one small exported run (a hand-pruned dpap-mnist on digits, T = 4: NIR, ONNX and
netx files on disk) each simulator must: accept its declared defaults, refuse an unknown
option and a bad value with a named OptionError, read booleans as booleans
(``no``/``off`` are False), run through :meth:`Simulator.run` on the test inputs,
return binary output spikes of the right shape with per-layer counts, agree with an
independent simulator (:data:`ORACLE`: never with itself or the run it was made from),
survive a save/load round trip, and fail with a named error when the artifact it
consumes is missing.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from spikeship.errors import OptionError, SimulationError, SpikeshipError
from spikeship.sim import registry
from spikeship.sim.base import Simulator
from spikeship.sim.simulate import test_split
from spikeship.sim.result import SimResult

NAMES = registry.names()
SAMPLES = 4


def _marks(name: str):
    return [pytest.mark.lava] if name.startswith("lava") else []


PARAMS = [pytest.param(n, marks=_marks(n), id=n) for n in NAMES]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from spikeship.targets.export import FORMATS, export_run
    from tests.export import nets

    run_dir, _, _ = nets.make_run(tmp_path_factory.mktemp("conformance") / "run",
                                  prune_units={"0": [1, 2], "7": list(range(0, 300, 5))})
    export_run(run_dir, FORMATS)
    inputs, labels = test_split(run_dir, SAMPLES)
    return run_dir, inputs, labels


# Each simulator's yardstick shares with it no code that runs the network (only the
# checkpoint, or the quantized deployment for the two fixed-point pairs), so agreement is
# evidence, not construction:
# - snntorch <-> reference: the masked snntorch modules from the checkpoint vs spikeship's
#   own NIR step equations on model.nir (NIR exporter + reader in between).
# - onnx -> snntorch: spikeship's ONNX builder run by ONNX Runtime vs the snntorch modules.
# - norse -> reference: Norse's own NIR import (nirtorch) vs spikeship's NIR reader.
# - lava-float -> reference: Lava's floating-point process models vs the reference.
# - loihi-emu -> reference: the numpy Loihi fixed-point emulator vs the float reference.
# - lava-fixed, lava-netx -> loihi-emu: Lava's fixed-point process models (from NIR, and
#   lava-dl's netx reader of model.net) vs the emulator's own integer arithmetic.
ORACLE = {"snntorch": "reference", "reference": "snntorch", "onnx": "snntorch",
          "norse": "reference", "lava-float": "reference", "loihi-emu": "reference",
          "lava-fixed": "loihi-emu", "lava-netx": "loihi-emu"}
# Fixed-point Lava against the fixed-point emulator: spike for spike (same integer
# arithmetic); the other float/fixed pairs differ by quantization (spikes > 0.9).
MIN_SPIKES = {"lava-fixed": 1.0, "lava-netx": 1.0}


@pytest.fixture(scope="module")
def results(run):
    """Each simulator run once on the module's run (a simulator and its yardstick reuse it)."""
    cache: dict[str, SimResult] = {}

    def get(name: str) -> SimResult:
        if name not in cache:
            run_dir, inputs, labels = run
            cache[name] = registry.get(name).run(run_dir, inputs, labels, {"progress": "off"})
        return cache[name]
    return get


def test_every_simulator_has_an_independent_yardstick():
    assert set(ORACLE) == set(NAMES)
    assert all(ORACLE[n] != n and ORACLE[n] in NAMES for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_declaration_is_complete(name):
    sim = registry.get(name)
    assert isinstance(sim, Simulator) and sim.name == name
    assert sim.artifact in ("model.nir", "model.onnx", "model.net", "checkpoint/")
    assert set(sim.capabilities.precision) <= {"float", "fixed"} and sim.capabilities.precision
    assert callable(sim.load())
    sim.parse_options({})                                   # the defaults validate
    table = {o["name"]: o for o in sim.option_table()}
    assert "progress" in table


@pytest.mark.parametrize("name", NAMES)
def test_options_are_typed(name):
    sim = registry.get(name)
    with pytest.raises(OptionError, match="unknown option.*'no_such_option'"):
        sim.parse_options({"no_such_option": 1})
    for o in sim.option_table():
        if o["type"] == "bool":
            assert getattr(sim.parse_options({o["name"]: "no"}), o["name"]) is False
            assert getattr(sim.parse_options({o["name"]: "off"}), o["name"]) is False
            assert getattr(sim.parse_options({o["name"]: "yes"}), o["name"]) is True
            with pytest.raises(OptionError, match=o["name"]):
                sim.parse_options({o["name"]: "maybe"})
        elif o["type"].startswith("int"):
            with pytest.raises(OptionError, match=o["name"]):
                sim.parse_options({o["name"]: 0})
            with pytest.raises(OptionError, match=o["name"]):
                sim.parse_options({o["name"]: True})


@pytest.mark.slow
@pytest.mark.parametrize("name", PARAMS)
def test_runs_and_agrees_with_an_independent_simulator(name, results, tmp_path):
    sim, base = registry.get(name), results(ORACLE[name])
    r = results(name)
    assert isinstance(r, SimResult) and r.target == name and base.target != name
    assert r.output_spikes.shape == base.output_spikes.shape
    assert r.output_spikes.dtype == np.uint8 and set(np.unique(r.output_spikes)) <= {0, 1}
    assert r.output_spikes.any(), "the test run must spike"
    assert r.neuron_counts and all(int(c.sum()) >= 0 for c in r.neuron_counts.values())
    assert r.samples == SAMPLES
    r.compare_to(base)
    if name in MIN_SPIKES:
        assert r.agreement["spikes"] >= MIN_SPIKES[name], r.agreement
    elif "fixed" in (sim.capabilities.precision + registry.get(ORACLE[name]).capabilities
                     .precision):
        assert r.agreement["spikes"] > 0.9, r.agreement
    else:
        assert r.agreement["predictions"] == 1.0, r.agreement
        assert r.agreement["spikes"] > 0.99, r.agreement
    r.save(tmp_path)
    back = SimResult.load(tmp_path, name)
    np.testing.assert_array_equal(back.output_spikes, r.output_spikes)


@pytest.mark.parametrize("name", PARAMS)
def test_missing_artifact_is_a_named_error(name, run, tmp_path):
    run_dir, inputs, labels = run
    sim = registry.get(name)
    empty = tmp_path / "run"
    shutil.copytree(run_dir, empty)
    target = empty / sim.artifact
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    with pytest.raises(SpikeshipError):
        sim.run(empty, inputs, labels, {"progress": False})


@pytest.mark.lava
@pytest.mark.slow
def test_cli_option_no_is_false_and_bad_options_exit_2(run, tmp_path, capsys):
    """Through the command line: ``--option sparse_fc_layer=no`` reaches netx as False
    (before the typed schema, ``bool('no')`` made it True); an unknown option name and
    a misspelled ``--target`` are usage errors (exit 2) naming what was wrong."""
    import json

    from spikeship import cli

    run_dir = tmp_path / "run"
    shutil.copytree(run[0], run_dir)
    rc = cli.main(["simulate", str(run_dir), "--target", "lava-netx", "--samples", "2",
                   "--option", "sparse_fc_layer=no", "--option", "progress=off"])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((run_dir / "simulate-lava-netx.json").read_text())
    assert doc["netx"]["sparse_fc_layer"] is False
    capsys.readouterr()
    for argv, needle in (
            (["--target", "lava-netx", "--option", "sparse_fc_layr=no"], "sparse_fc_layr"),
            (["--target", "lava-netx", "--option", "sparse_fc_layer=maybe"], "sparse_fc_layer"),
            (["--target", "lava-netxx"], "'lava-netxx' is not one of")):
        rc = cli.main(["simulate", str(run_dir), *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and needle in err[0], err


# ---- capabilities are facts: what a simulator claims it runs, it runs (agreeing with the
# reference); what it does not claim, it refuses with a named error ----------------------
def _capability_graph(kind: str):
    """A small event-driven FC network; ``recurrent``: the hidden population also reads
    itself through an Affine; ``per_neuron_tau``: the hidden neurons' tau differ."""
    import nir

    from tests.sim.lava.test_lava_fixtures import BETA, DT, _lif, _meta

    rng = np.random.default_rng(3)
    g = 1 / (1 - BETA)
    hidden = _lif((6,))
    if kind == "per_neuron_tau":
        hidden = nir.LIF(tau=hidden.tau * np.linspace(0.5, 2.0, 6).astype(np.float32),
                         r=hidden.r, v_leak=hidden.v_leak, v_threshold=hidden.v_threshold,
                         v_reset=hidden.v_reset)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([4])}),
        "fc0": nir.Affine(weight=rng.normal(0.3, 0.5, (6, 4)).astype(np.float32) * g,
                          bias=np.zeros(6, np.float32)),
        "lif1": hidden,
        "fc2": nir.Affine(weight=rng.normal(0.3, 0.6, (3, 6)).astype(np.float32) * g,
                          bias=np.zeros(3, np.float32)),
        "lif3": _lif((3,)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    edges = [("input", "fc0"), ("fc0", "lif1"), ("lif1", "fc2"), ("fc2", "lif3"),
             ("lif3", "output")]
    if kind == "recurrent":
        nodes["rec"] = nir.Affine(weight=(-0.4 * np.eye(6)).astype(np.float32) * g,
                                  bias=np.zeros(6, np.float32))
        edges += [("lif1", "rec"), ("rec", "lif1")]
    meta = _meta("frames", (4,))
    del meta["encoding"]
    assert DT == meta["dt"]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


# Found by this test: Norse 1.1 runs recurrence written as an snnTorch-style subgraph
# ('lif1.lif' + 'lif1.w_rec', the braille fixtures) but not a recurrent Affine between
# flat-named nodes (wrong output shape; now a SimulationError instead of a crash).
KNOWN_GAPS = {("norse", "recurrent"): "Norse 1.1: recurrence only as a named subgraph"}
NIR_SIMS = [p for p in PARAMS if registry.get(p.values[0]).artifact == "model.nir"]
# The reference is the yardstick of the other NIR simulators; its own is Norse (an
# independent NIR import), and the Loihi emulator where Norse has the known gap.
CAPABILITY_ORACLE = {("reference", "per_neuron_tau"): "norse",
                     ("reference", "recurrent"): "loihi-emu"}


@pytest.mark.slow
@pytest.mark.parametrize("capability", ["recurrent", "per_neuron_tau"])
@pytest.mark.parametrize("name", NIR_SIMS)
def test_capabilities_are_what_the_simulator_does(name, capability, tmp_path):
    import nir

    sim = registry.get(name)
    nir.write(tmp_path / "model.nir", _capability_graph(capability))
    x = (np.random.default_rng(0).random((3, 6, 4)) < 0.5).astype(np.float32)
    if (name, capability) in KNOWN_GAPS:       # a named error, not a crash (until fixed)
        with pytest.raises(SimulationError, match="does not run this graph"):
            sim.run(tmp_path, x, None, {"progress": False})
        return
    if not getattr(sim.capabilities, capability):
        with pytest.raises(SpikeshipError):
            sim.run(tmp_path, x, None, {"progress": False})
        return
    yardstick = CAPABILITY_ORACLE.get((name, capability), "reference")
    ref = registry.get(yardstick).run(tmp_path, x, None, {"progress": False})
    assert ref.output_spikes.any(), "the test graph must spike"
    r = sim.run(tmp_path, x, None, {"progress": False})
    r.compare_to(ref)
    precisions = sim.capabilities.precision + registry.get(yardstick).capabilities.precision
    assert r.agreement["spikes"] >= (0.9 if "fixed" in precisions else 0.99), r.agreement
