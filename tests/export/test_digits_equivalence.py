"""End to end: a DPAP-pruned ``dpap-mnist`` trained on digits, exported with its pruned units
cut out, agrees with the training model in the reference simulator, ONNX Runtime and Norse
(>= 99.9 % of output spikes, 100 % of predictions) on the digits test split."""

import json

import pytest
import torch

from spikeship.targets.export import export_run
from spikeship.sim.simulate import simulate_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from spikeship.train.config import TrainConfig
    from spikeship.train.trainer import train

    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("digits") / "dpap"
    cfg = TrainConfig(dataset="digits", model="dpap-mnist", epochs=5, prune="dpap",
                      prune_options={"scale": 12}, seed=0)
    train(cfg, run, progress=False, quiet=True)
    export_run(run, ("nir", "onnx"))
    return run


def test_pruned_units_are_physically_gone(trained):
    doc = json.loads((trained / "export.json").read_text())
    rows = {r["layer"]: r for r in doc["layers"]}
    removed = {k: r["before"][0] - r["after"][0] for k, r in rows.items()}
    assert removed["fc9"] == 0 and sum(removed.values()) > 0      # classes are never removed
    assert rows["conv3"]["after"][1] == rows["conv0"]["after"][0]
    assert rows["fc7"]["after"][1] == rows["conv3"]["after"][0] * 2 * 2
    assert rows["fc9"]["after"][1] == rows["fc7"]["after"][0]


@pytest.mark.parametrize("target, options, samples", [
    ("reference", {}, None), ("onnx", {}, None), ("norse", {"batched": True}, None),
    ("norse", {}, 40)])
def test_deployed_targets_agree_with_snntorch(trained, target, options, samples):
    res = simulate_run(trained, target, samples, options)
    a = res.agreement
    assert res.samples == (450 if samples is None else samples)
    assert a["spikes"] >= 0.999, a
    assert a["predictions"] == 1.0, a
    base = json.loads((trained / "simulate-snntorch.json").read_text())
    assert res.output_spikes.sum() > 0 and base["accuracy"] > 0.3
    if samples is None:
        assert res.accuracy == base["accuracy"]
