"""The whole pipeline on digits, small: every DESIGN.md artifact, then a re-run that skips."""

import json
import re

import pytest

from spikeship import cli
from spikeship.pipeline.config import PipelineConfig
from spikeship.pipeline.run import run_pipeline

ARTIFACTS = ["config.json", "metrics.jsonl", "summary.json", "checkpoint/meta.json",
             "checkpoint/tensors.safetensors", "model.nir", "model.onnx", "model.net",
             "export.json", "energy.json", "comparison.md", "report.md", "report.html",
             "plots/accuracy.png", "plots/parameters.png", "plots/retained.png",
             "plots/energy.png", "baseline/summary.json"]


@pytest.mark.slow
@pytest.mark.lava
def test_pipeline_end_to_end_then_skips(tmp_path):
    out = tmp_path / "demo"
    targets = ("reference", "onnx", "lava-fixed", "loihi-emu")
    cfg = PipelineConfig(out=str(out), epochs=3, targets=targets, sim_samples=40,
                         lava_samples=4, prune="magnitude",
                         prune_options={"target": "0.5", "end": "2"},
                         # magnitude pruning leaves zeros inside conv kernels, which
                         # Lava's Conv (no sparse form) and netx store: reported, tolerated
                         allow_explicit_zeros=("netx", "netx-sparse", "lava-float",
                                               "lava-fixed"))
    log = run_pipeline(cfg, echo=lambda *_: None)
    assert all(how == "ran" for _, how, _ in log)
    for a in ARTIFACTS:
        assert (out / a).is_file(), a
    for t in targets:
        sim = json.loads((out / f"simulate-{t}.json").read_text())
        assert sim["samples"] == (4 if t == "lava-fixed" else 40)
        assert sim["agreement_with_training"]["spikes"] > 0.9
    assert json.loads((out / "simulate-reference.json").read_text())[
        "agreement_with_training"]["spikes"] == 1.0
    energy = json.loads((out / "energy.json").read_text())
    vc = energy["vanish_check"]
    assert vc["passed"] is True
    assert vc["formats"]["onnx"]["explicit_zero"]["count"] == 0      # not stored at all
    assert vc["formats"]["nir"]["passed"] and not vc["formats"]["nir"]["tolerated"]
    assert vc["formats"]["lava-fixed"]["explicit_zero"]["count"] > 0   # conv kernels
    assert energy["totals_per_sample"]["dense_over_effective"] > 1.0
    # the dense run is priced too, so the comparison gives the reduction, not a dash
    base_energy = json.loads((out / "baseline" / "energy.json").read_text())
    comparison = json.loads((out / "comparison.json").read_text())
    pruned_row = next(r for r in comparison["rows"] if r["run"] == "demo")
    ratio = (base_energy["totals_per_sample"]["ops_effective"]
             / energy["totals_per_sample"]["ops_effective"])
    assert pruned_row["ops_reduction_vs_dense"] == pytest.approx(ratio)
    assert ratio > 1.0
    md = (out / "report.md").read_text()
    assert re.search(r"\| vanish check \| passed \|", md)
    # report.md and comparison.md: one definition of "x fewer operations than the dense
    # run" (the dense run's own deployed operations) and of the dense run's energy
    m = re.search(r"\| ops per sample, pruned / dense run \(x fewer than the dense run\) \| "
                  r"[\d,]+ / [\d,]+ \(x([\d.]+)\) \|", md)
    assert m and float(m.group(1)) == pytest.approx(ratio, abs=0.005)
    dense_uj = next(r for r in comparison["rows"] if r["run"] == "baseline")[
        "energy_uj_per_sample"]
    assert f"(dense run {dense_uj:.4g} uJ)" in md
    # a re-run finds every stage up to date; touching an output makes it rerun
    log = run_pipeline(cfg, echo=lambda *_: None)
    assert {how for _, how, _ in log} == {"skipped"}
    (out / "report.md").write_text("tampered")
    log = dict((s, how) for s, how, _ in run_pipeline(cfg, echo=lambda *_: None))
    assert log["report"] == "ran" and log["export"] == "skipped"
    assert "vanish check" in (out / "report.md").read_text()
    assert cli.main(["inspect", str(out / "model.onnx")]) == 0
