"""neurobench on a spikeship run directory: ``spikeship.bench`` makes it a
``neurobench.Benchmark`` without custom code, and ``energy.json``'s
``synops_neurobench`` equals neurobench's own ``SynapticOperations`` count exactly on the
demo model (``dpap-mnist`` on digits: conv-AvgPool-conv-AvgPool-FC-FC, hand-pruned,
untrained weights scaled so that every layer spikes), while spikeship's own count is
larger by what the pools merge."""

import pytest

from spikeship import bench
from spikeship._optional import require
from spikeship.targets.export import export_run
from spikeship.sim.simulate import simulate_run
from spikeship.energy.report import estimate
from tests.export.nets import make_run

SAMPLES = 40


def test_energy_reports_neurobench_count_exactly_on_the_demo_model(tmp_path):
    require("neurobench")
    from neurobench.metrics.workload import SynapticOperations

    run_dir, _, _ = make_run(tmp_path / "run", prune_units={"0": [2, 5], "3": [1, 7, 30]})
    export_run(run_dir, ("nir",))
    ref = simulate_run(run_dir, "reference", samples=SAMPLES)
    assert len(ref.pool_nonzero) == 2                  # the two AvgPool nodes
    doc, _ = estimate(run_dir, spikes_from="reference", check_lava=False)
    nbc = doc["synops_neurobench"]
    assert nbc["available"] and nbc["source"] == "simulate-reference"

    theirs = bench.run(run_dir, workload_metrics=[SynapticOperations],
                       samples=SAMPLES)["SynapticOperations"]
    total = theirs["Effective_MACs"] + theirs["Effective_ACs"]
    print(f"\nneurobench {theirs}; energy.json {nbc['total_ops_per_sample']}, spikeship's own "
          f"{nbc['spikeship_total_ops_per_sample']} (x{nbc['spikeship_over_neurobench']:.3f})")
    assert nbc["total_ops_per_sample"] == pytest.approx(total, rel=1e-12)
    after_pool = [v for v in nbc["layers"].values() if not v["same_as_spikeship"]]
    assert len(after_pool) == 2
    assert all(v["spikeship_ops"] > v["ops"] > 0 for v in after_pool)
    assert nbc["spikeship_over_neurobench"] > 1.0
    assert doc["totals_per_sample"]["ops_effective"] == pytest.approx(
        nbc["spikeship_total_ops_per_sample"])
