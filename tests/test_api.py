"""The Python API (spikeship.api, bound in the package namespace): every function called
twice, also after the same-named subpackages' modules were imported; results typed;
silent without a progress callback; only SpikeshipError on bad input; the documented
example (docs/api-example.py) runs."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import spikeship
import spikeship.energy.report                       # noqa: F401  the same-named subpackages'
import spikeship.export.surgery                      # noqa: F401  modules, imported before
from spikeship.pipeline.run import run_pipeline      # noqa: F401  any API call
from spikeship.report.report import build_report     # noqa: F401
from spikeship.train.trainer import Trainer          # noqa: F401
from spikeship import api
from spikeship.errors import ConfigError, RunDirError, SpikeshipError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "api-example.py"
NAMES = ("train", "export", "simulate", "energy", "compare", "report", "pipeline", "inspect",
         "tune")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """The documented example, run in this process: train, export, simulate, energy."""
    out = tmp_path_factory.mktemp("api") / "run"
    argv = sys.argv
    sys.argv = [str(EXAMPLE), str(out)]
    try:
        runpy.run_path(str(EXAMPLE), run_name="__main__")
    finally:
        sys.argv = argv
    return out


def test_the_example_wrote_a_full_run(run):
    for name in ("summary.json", "model.nir", "model.onnx", "simulate-reference.json",
                 "energy.json"):
        assert (run / name).is_file(), name
    assert json.loads((run / "summary.json").read_text())["model"] == "tiny-mlp"


def test_names_stay_functions_after_submodule_imports_in_a_fresh_process():
    code = f"""
import sys, types
import spikeship
light = sorted({{m.split('.')[0] for m in sys.modules}} & {{'torch', 'matplotlib', 'click'}})
from spikeship.train.trainer import Trainer
import spikeship.train.run, spikeship.export.surgery, spikeship.energy.report
import spikeship.report.compare, spikeship.pipeline.stages, spikeship.sim.simulate
import spikeship.tune.study
from spikeship.pipeline import config
from spikeship import train as t2
kinds = [type(getattr(spikeship, n)).__name__ for n in {NAMES!r}]
print(light, kinds, t2 is spikeship.api.train)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split("\n")[0] == "[] " + str(["function"] * len(NAMES)) + " True"


def test_the_package_names_are_the_api_functions():
    for name in NAMES:
        assert getattr(spikeship, name) is getattr(api, name), name
    assert sys.modules["spikeship.train"].trainer.Trainer is Trainer   # the subpackage lives on


def test_train_twice_silently_then_resumed_with_progress(tmp_path, capsys):
    out = tmp_path / "t"
    first = spikeship.train(out, dataset="digits", model="tiny-mlp", epochs=1, limit_train=60,
                            limit_test=30, hidden=7, threads=1)
    assert capsys.readouterr() == ("", "")             # silent without a callback
    assert isinstance(first, spikeship.api.TrainResult) and first.summary["epochs"] == 1
    lines: list[str] = []

    def to_stderr(line: str) -> None:      # as the CLI's: the callback prints to stderr
        lines.append(line)
        print(line, file=sys.stderr)

    second = spikeship.train(out, epochs=2, resume=True, threads=1, progress=to_stderr)
    assert capsys.readouterr() == ("", "".join(line + "\n" for line in lines))
    assert second.summary["epochs"] == 2 and second.out == out
    assert any(line.startswith("epoch   2/2") for line in lines), lines
    assert not any(line.startswith("epoch   1/") for line in lines)   # resumed after 1


def test_export_twice(run):
    lines: list[str] = []
    first = spikeship.export(run, ["nir", "onnx"], progress=lines.append)
    second = spikeship.export(run, ["nir", "onnx"])
    assert set(first.files) == set(second.files) == {"nir", "onnx"}
    assert second.files["nir"] == run / "model.nir" and second.files["nir"].is_file()
    assert lines[0] == f"nir   {run / 'model.nir'}"
    assert first.document["layers"] == second.document["layers"]


def test_simulate_twice_gives_the_same_spikes(run):
    a = spikeship.simulate(run, "reference", samples=20)
    b = spikeship.simulate(run, "reference", samples=20)
    assert (a.compared_with, a.run_dir, a.result.samples) == ("snntorch", run, 20)
    assert (a.result.output_spikes == b.result.output_spikes).all()
    assert a.accuracy == b.accuracy


def test_energy_twice(run):
    spikeship.simulate(run, "reference")
    a = spikeship.energy(run, check_lava=False)
    b = spikeship.energy(run, check_lava=False, hardware="truenorth")
    assert a.path == b.path == run / "energy.json"
    assert a.vanish_check_passed is True
    ta, tb = a.document["totals_per_sample"], b.document["totals_per_sample"]
    assert ta["ops_effective"] == tb["ops_effective"] > 0      # the same spikes,
    assert ta["energy_pj"] != tb["energy_pj"]                  # priced on another chip
    assert b.document["hardware"] == "truenorth"


def test_compare_and_report_twice(run, tmp_path):
    lines: list[str] = []
    a = spikeship.compare([run], out=tmp_path / "c.md", progress=lines.append)
    b = spikeship.compare([run])
    assert a.markdown == b.markdown and "tiny-mlp" in a.markdown
    assert a.files == (tmp_path / "c.md", tmp_path / "c.json") and b.files == ()
    assert lines == [f"wrote {tmp_path / 'c.md'} and {tmp_path / 'c.json'}"]
    r1 = spikeship.report(run)
    r2 = spikeship.report(run)
    assert r1.paths["html"] == r2.paths["html"] == run / "report.html"
    assert r2.plots == len(list((run / "plots").glob("*.png")))


def test_inspect_twice(run):
    a = spikeship.inspect(run / "model.nir")
    b = spikeship.inspect(run / "model.onnx")
    assert (a.document["format"], b.document["format"]) == ("nir", "onnx")
    assert a.document["nonzero_total"] == b.document["nonzero_total"] > 0


@pytest.mark.slow
def test_pipeline_twice_skips_what_ran(tmp_path):
    cfg = {"out": str(tmp_path / "p"), "model": "tiny-mlp", "prune": "magnitude",
           "epochs": 1, "targets": ["reference"], "sim_samples": 20, "threads": 1}
    lines: list[str] = []
    first = spikeship.pipeline(cfg, progress=lines.append)
    second = spikeship.pipeline(cfg)
    assert [how for _, how, _ in first.stages] == ["ran"] * len(first.stages)
    assert [how for _, how, _ in second.stages] == ["skipped"] * len(first.stages)
    assert second.out == tmp_path / "p" and (second.out / "report.html").is_file()
    assert lines[-1].startswith(f"[{len(first.stages)}/{len(first.stages)}] report: done")


@pytest.mark.parametrize("call,error", [
    (lambda p: spikeship.train(p, model="no-such-model"), ConfigError),
    (lambda p: spikeship.export(p / "missing"), RunDirError),
    (lambda p: spikeship.simulate(p / "missing", "reference"), RunDirError),
    (lambda p: spikeship.energy(p / "missing"), RunDirError),
    (lambda p: spikeship.compare([p / "missing"]), RunDirError),
    (lambda p: spikeship.pipeline(out=str(p), epochs=0), ConfigError),
    (lambda p: spikeship.inspect(p / "missing.nir"), SpikeshipError),
])
def test_bad_input_is_a_named_spikeship_error(tmp_path, call, error):
    with pytest.raises(error):
        call(tmp_path)
