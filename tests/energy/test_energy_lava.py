"""Synops from a real Lava run of the deployed graph; ``spikeship energy`` with the Lava check."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest

from spikeship.cli import main
from spikeship.energy.synops import SpikeCounts, count_synops
from spikeship.sim import registry
from tests.energy.energy_nets import pruned_run

pytestmark = [pytest.mark.lava, pytest.mark.slow]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("lava_energy")
    pruned_run(d, input_shape=(1, 8, 12), formats=("nir",))
    rng = np.random.default_rng(0)
    x = np.repeat(rng.random((3, 1, 1, 8, 12)).astype(np.float32), 4, axis=1)
    for target in ("reference", "lava-float"):
        registry.get(target).run(d, x, np.arange(3) % 3, {"progress": False}).save(d)
    return d


def test_synops_from_lava_equal_reference_when_spikes_agree(run):
    from spikeship.sim.result import SimResult

    g = nir.read(run / "model.nir")
    ref, lava = SimResult.load(run, "reference"), SimResult.load(run, "lava-float")
    assert set(ref.neuron_counts) == set(lava.neuron_counts)
    for k in ref.neuron_counts:                       # Lava float agrees spike for spike here
        np.testing.assert_array_equal(ref.neuron_counts[k], lava.neuron_counts[k])
    a = count_synops(g, SpikeCounts.from_result(ref))
    b = count_synops(g, SpikeCounts.from_result(lava))
    assert a.layers == b.layers and a.populations == b.populations
    assert sum(l.synops_effective for l in a.layers) > 0


def test_energy_command_defaults_to_the_lava_run_and_checks_processes(run):
    assert main(["energy", str(run), "--hardware", "truenorth"]) == 0
    doc = json.loads((run / "energy.json").read_text())
    assert doc["spikes"]["source"] == "simulate-lava-float"      # Lava first when present
    formats = doc["vanish_check"]["formats"]
    for fmt in ("nir", "lava-float", "lava-fixed", "fired:lava-float", "fired:reference"):
        assert formats[fmt]["checked"] and formats[fmt]["passed"], fmt
    assert formats["netx"]["checked"] is False
    assert doc["vanish_check"]["passed"] is True
    assert doc["hardware"] == "truenorth"
