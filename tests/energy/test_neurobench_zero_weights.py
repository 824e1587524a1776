"""``synops_neurobench`` excludes synapses whose deployed weight is exactly 0 even when the
mask keeps them, as neurobench's ``SynapticOperations`` does (``binary(weight)``): the
count equals neurobench's own on the demo model with masked-in zero weights."""

import json

import pytest
import torch

from spikeship import bench
from spikeship._optional import require
from spikeship.energy.report import estimate
from spikeship.sim.simulate import simulate_run
from spikeship.targets.export import export_run
from spikeship.train.checkpoint import save_checkpoint
from spikeship.train.models import ModelSpec
from tests.export.nets import make_run

SAMPLES = 20


def test_masked_in_zero_weights_are_not_counted_as_neurobench_does(tmp_path):
    require("neurobench")
    from neurobench.metrics.workload import SynapticOperations

    run_dir, model, masks = make_run(tmp_path / "run", prune_units={"0": [2], "3": [1, 7]})
    zeroed = 0
    with torch.no_grad():      # exact zeros where the mask keeps the synapse
        for name in ("7", "9"):
            keep = masks.effective(name)
            w = model[int(name)].weight
            idx = keep.nonzero()[::3]
            w[tuple(idx.T)] = 0.0
            zeroed += len(idx)
    save_checkpoint(run_dir, model=model, spec=ModelSpec("dpap-mnist", (1, 8, 8), 10),
                    masks=masks, config=json.loads((run_dir / "config.json").read_text()),
                    epoch=1)
    assert zeroed > 50
    export_run(run_dir, ("nir",))
    simulate_run(run_dir, "reference", samples=SAMPLES)
    doc, _ = estimate(run_dir, spikes_from="reference", check_lava=False)
    nbc = doc["synops_neurobench"]
    theirs = bench.run(run_dir, workload_metrics=[SynapticOperations],
                       samples=SAMPLES)["SynapticOperations"]
    assert nbc["total_ops_per_sample"] == pytest.approx(
        theirs["Effective_MACs"] + theirs["Effective_ACs"], rel=1e-12)
