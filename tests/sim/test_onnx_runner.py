"""ONNX Runtime target on a run directory: step and unrolled graphs, errors."""

import numpy as np
import pytest

from spikeship.errors import GraphError, SimulationError
from spikeship.targets.export import export_run
from spikeship.sim.snntorch import run_target as run_snntorch
from spikeship.sim.onnx_runner import run_target, simulate_onnx
from spikeship.sim import registry
from spikeship.data import load_dataset, test_inputs
from tests.export import nets


@pytest.fixture(scope="module")
def digits():
    return test_inputs(load_dataset("digits", timesteps=4), limit=16)


@pytest.mark.parametrize("mode", ["step", "unrolled"])
def test_onnx_target_matches_the_training_model(tmp_path, digits, mode):
    run, _, _ = nets.make_run(tmp_path / "r", prune_units={"3": [1, 2], "7": [5, 6, 7]})
    export_run(run, ("onnx",), onnx_mode=mode)
    x, y = digits
    assert registry.get("onnx").load() is run_target
    res = run_target(run, x, y, {"batch_size": 5})
    base = run_snntorch(run, x, y, {})
    assert base.output_spikes.sum() > 0 and res.extra["onnx_mode"] == mode
    agreement = res.compare_to(base)
    assert agreement["spikes"] == 1.0 and agreement["predictions"] == 1.0
    assert res.accuracy == base.accuracy
    for k, v in base.neuron_counts.items():
        np.testing.assert_array_equal(res.neuron_counts[k], v)
    if mode == "unrolled":
        with pytest.raises(SimulationError, match="steps"):
            simulate_onnx(run / "model.onnx", x[:, :3])


def test_missing_or_corrupt_onnx_file(tmp_path, digits):
    x, y = digits
    with pytest.raises(GraphError, match="no ONNX export"):
        run_target(tmp_path, x, y, {})
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(GraphError, match="cannot read ONNX file"):
        run_target(tmp_path, x, y, {})
