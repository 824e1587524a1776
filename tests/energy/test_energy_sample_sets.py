"""``energy.json`` states the simulation and sample set behind every figure and says so
when two blocks were counted on different spikes (before: headline figures from one
target on N samples, the neurobench block from the reference on M, unsaid)."""

from spikeship.energy.report import estimate
from spikeship.sim.simulate import simulate_run
from spikeship.targets.export import export_run
from tests.export.nets import make_run


def test_energy_json_names_the_spikes_behind_each_figure_and_flags_a_mix(tmp_path):
    run_dir, _, _ = make_run(tmp_path / "run")
    export_run(run_dir, ("nir",))
    simulate_run(run_dir, "reference", samples=12)
    simulate_run(run_dir, "loihi-emu", samples=8)
    mixed, _ = estimate(run_dir, spikes_from="loihi-emu", check_lava=False)
    sets = mixed["sample_sets"]
    assert sets["headline"]["source"] == "simulate-loihi-emu" and sets["headline"]["samples"] == 8
    assert sets["synops_neurobench"] == {"source": "simulate-reference", "kind": "simulation",
                                         "samples": 12}
    assert sets["mixed"] and "8 samples" in sets["note"] and "12 samples" in sets["note"]
    assert set(sets["figures"]) >= {"totals_per_sample", "layers", "synops_neurobench"}
    same, _ = estimate(run_dir, spikes_from="reference", check_lava=False)
    assert same["sample_sets"]["mixed"] is False and "note" not in same["sample_sets"]
