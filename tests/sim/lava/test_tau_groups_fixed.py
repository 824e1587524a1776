"""Per-neuron time constants on Lava: in fixed point, neurons whose time
constants quantise to the same decay integers share one Lava process; more processes
per population than the stated limit are refused by name with the count."""

import sys
from pathlib import Path

import nir
import numpy as np
import pytest

from spikeship.errors import RuleError
from spikeship.sim.lava.build import MAX_PROCESSES_PER_POPULATION
from spikeship.sim.standalone import simulate_file
from spikeship.targets.loihi.deploy import deployment_for

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))
from lava_process_cost import graph  # noqa: E402


def _near_equal_taus(k: int) -> nir.NIRGraph:
    """``graph(k)`` with every hidden tau nudged by a relative 1e-6 per neuron: 48
    distinct floats, k distinct Lava decay integers."""
    g = graph(k)
    lif = g.nodes["lif1"]
    lif.tau = lif.tau * (1 + 1e-6 * np.arange(lif.tau.size))
    return g


def _hidden_processes(dep) -> int:
    return sum(1 for p in dep.populations if p.name.split("~")[0] == "lif1")


def test_fixed_point_shares_a_process_per_quantised_decay():
    x = np.zeros((1, 4, 12), dtype=np.float32)
    g = _near_equal_taus(3)
    assert len(np.unique(g.nodes["lif1"].tau)) == 48
    assert _hidden_processes(deployment_for(g, "float", x, {})) == 48
    assert _hidden_processes(deployment_for(g, "fixed", x, {})) == 3


@pytest.mark.lava
def test_lava_fixed_runs_the_shared_groups_as_the_emulator(tmp_path):
    g = _near_equal_taus(3)
    nir.write(tmp_path / "g.nir", g)
    x = (np.random.default_rng(1).random((2, 10, 12)) < 0.4).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    lava, _ = simulate_file(tmp_path / "g.nir", "lava-fixed", input_path=tmp_path / "x.npy",
                            out=tmp_path / "lava")
    emu, _ = simulate_file(tmp_path / "g.nir", "loihi-emu", input_path=tmp_path / "x.npy",
                           out=tmp_path / "emu")
    assert lava.output_spikes.sum() > 0
    np.testing.assert_array_equal(lava.output_spikes, emu.output_spikes)


@pytest.mark.lava
def test_too_many_processes_are_refused_by_name(tmp_path):
    k = MAX_PROCESSES_PER_POPULATION + 1
    nir.write(tmp_path / "g.nir", graph(k))
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 12), dtype=np.float32))
    with pytest.raises(RuleError, match=f"'lif1': {k} distinct time constants .* {k} Lava"):
        simulate_file(tmp_path / "g.nir", "lava-float", input_path=tmp_path / "x.npy",
                      out=tmp_path / "o")
