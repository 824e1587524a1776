"""The pipeline's stages: each a Python function with its arguments, inputs and
outputs (:class:`Stage`), the records of what ran (:class:`StageRecorder`), and the
stage graph of a configuration (:func:`plan`)."""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spikeship.errors import RunDirError
from spikeship.io import sha256_file, write_json_atomic
from spikeship.pipeline.config import PipelineConfig
from spikeship.safeopen import read_json
from spikeship.sim.registry import spike_sources
from spikeship.targets.export import FORMATS


def _files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(x for x in p.rglob("*") if x.is_file())
        elif p.exists():
            out.append(p)
    return out


@dataclass
class Stage:
    """One pipeline stage: a Python function (``"module:function"``) with its keyword
    arguments and its declared inputs and outputs."""

    name: str
    function: str
    kwargs: dict[str, Any]
    inputs: list[Path]
    outputs: list[Path]

    def fingerprint(self) -> str:
        h = hashlib.sha256(json.dumps([self.function, self.kwargs], sort_keys=True,
                                      default=str).encode())
        for f in _files(self.inputs):
            h.update(str(f).encode())
            h.update(sha256_file(f).encode())
        return h.hexdigest()

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.kwargs.items())
        return f"{self.function.split(':')[1]}({args})"

    def run(self, **extra) -> Any:
        module, attr = self.function.split(":")
        return getattr(importlib.import_module(module), attr)(**self.kwargs, **extra)


class StageRecorder:
    """Remembers which stages ran with which inputs/outputs (``OUT/.pipeline/``)."""

    def __init__(self, out: Path):
        self.dir = out / ".pipeline"

    def is_done(self, stage: Stage) -> bool:
        rec = self.dir / f"{stage.name}.json"
        if not rec.exists():
            return False
        try:
            d = read_json(rec, "stage record", RunDirError)
        except (RunDirError, json.JSONDecodeError):
            return False
        if d.get("fingerprint") != stage.fingerprint():
            return False
        outputs = d.get("outputs", {})
        files = _files(stage.outputs)
        if not files or {str(f) for f in files} != set(outputs):
            return False
        return all(sha256_file(f) == outputs[str(f)] for f in files)

    def record(self, stage: Stage, seconds: float) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.dir / f"{stage.name}.json", {
            "fingerprint": stage.fingerprint(), "function": stage.function,
            "kwargs": stage.kwargs, "seconds": seconds,
            "outputs": {str(f): sha256_file(f) for f in _files(stage.outputs)}})


def plan(cfg: PipelineConfig) -> list[Stage]:
    """The stages of a pipeline run, in order."""
    out = Path(cfg.out)
    base = out / "baseline"
    fields: dict[str, Any] = {"dataset": cfg.dataset, "model": cfg.model,
                              "timesteps": cfg.timesteps, "seed": cfg.seed}
    if cfg.epochs is not None:          # else each run trains its own default length
        fields["epochs"] = cfg.epochs
    if cfg.data_dir:
        fields["data_dir"] = cfg.data_dir
    if cfg.batch_size:
        fields["batch_size"] = cfg.batch_size
    if cfg.lr:
        fields["lr"] = cfg.lr
    if cfg.qat is not None:
        fields["qat"] = cfg.qat
    pruned = {**fields, "prune": cfg.prune}
    if cfg.pruned_epochs is not None:
        pruned["epochs"] = cfg.pruned_epochs
    pruned_inputs = [base / "summary.json"]
    if cfg.from_dense:
        pruned["init_from"] = str(base)
        pruned_inputs.append(base / "checkpoint")
    train = "spikeship.train.run:train_run"
    ckpt = [out / "checkpoint", out / "summary.json", out / "metrics.jsonl"]
    models = [out / "model.nir", out / "model.onnx", out / "model.net"]
    stages = [
        Stage("train-baseline", train,
              {"out": str(base), "values": {**fields, "prune": "none"}, "threads": cfg.threads},
              [], [base / "checkpoint", base / "summary.json", base / "metrics.jsonl"]),
        Stage("train-pruned", train,
              {"out": str(out), "values": pruned,
               "prune_options": dict(sorted(cfg.prune_options.items())),
               "baseline": str(base), "threads": cfg.threads},
              pruned_inputs, ckpt),
        Stage("export", "spikeship.targets.export:export_run",
              {"run_dir": str(out), "formats": list(FORMATS), "netx_optional": True},
              [out / "checkpoint"], models),
    ]
    for t in cfg.targets:
        n = cfg.lava_samples if t.startswith("lava") else cfg.sim_samples
        stages.append(Stage(f"simulate-{t}", "spikeship.sim.simulate:simulate_run",
                            {"run_dir": str(out), "target": t, "samples": n}, models,
                            [out / f"simulate-{t}.json", out / f"simulate-{t}.npz"]))
    spikes_from = next((t for t in spike_sources() if t in cfg.targets), None)
    sims = [out / f"simulate-{t}.npz" for t in cfg.targets]
    if spikes_from is not None:
        # The dense run is priced too (same chip, same spike source), so compare and the
        # report can give "x fewer operations / energy than dense" instead of a dash.
        base_models = [base / "model.nir", base / "model.onnx", base / "model.net"]
        n = cfg.lava_samples if spikes_from.startswith("lava") else cfg.sim_samples
        stages += [
            Stage("export-baseline", "spikeship.targets.export:export_run",
                  {"run_dir": str(base), "formats": list(FORMATS), "netx_optional": True},
                  [base / "checkpoint"], base_models),
            Stage(f"simulate-baseline-{spikes_from}", "spikeship.sim.simulate:simulate_run",
                  {"run_dir": str(base), "target": spikes_from, "samples": n}, base_models,
                  [base / f"simulate-{spikes_from}.json", base / f"simulate-{spikes_from}.npz"]),
            Stage("energy-baseline", "spikeship.energy.run:energy_run",
                  {"run_dir": str(base), "hardware": cfg.hardware, "spikes_from": spikes_from,
                   "allow_zeros": list(cfg.allow_explicit_zeros)},
                  base_models + [base / f"simulate-{spikes_from}.npz"], [base / "energy.json"]),
        ]
    stages += [
        Stage("energy", "spikeship.energy.run:energy_run",
              {"run_dir": str(out), "hardware": cfg.hardware, "spikes_from": spikes_from,
               "allow_zeros": list(cfg.allow_explicit_zeros)},
              models + sims, [out / "energy.json"]),
        Stage("compare", "spikeship.report.compare:compare_to_files",
              {"runs": [str(base), str(out)], "out": str(out / "comparison.md")},
              [base / "summary.json", out / "summary.json", out / "energy.json",
               *([base / "energy.json"] if spikes_from is not None else [])],
              [out / "comparison.md"]),
        Stage("report", "spikeship.report.run:report_run", {"run_dir": str(out)},
              [out / "summary.json", out / "metrics.jsonl", out / "energy.json",
               out / "comparison.md", *[out / f"simulate-{t}.json" for t in cfg.targets]],
              [out / "report.md", out / "report.html"]),
    ]
    return stages
