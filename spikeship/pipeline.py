"""``spikeship pipeline``: from nothing to a full answer in one command (``make demo``).

Stages, each the Python function behind one of the subcommands, run on the run
directory ``OUT`` (an error keeps its class, message and exit code):

1. ``train-baseline``  dense run (``--prune none``) in ``OUT/baseline``
2. ``train-pruned``    pruned run (``--prune dpap`` by default, same seed/epochs) in ``OUT``;
   with ``from_dense = true`` it starts from the trained dense run (``--init-from``) and
   trains ``pruned_epochs`` (default ``epochs``) more: prune a trained network, fine-tune.
   ``qat = true`` trains both with ``--qat`` (weights on the Loihi quantiser's grid in
   every epoch), ``qat = false`` with ``--no-qat``; unset, both get the training default
   (the last 5 epochs on the grid).
3. ``export``          ``OUT/model.nir``, ``model.onnx``, ``model.net``
4. ``simulate-<t>``    one per target (reference, lava-float, lava-fixed, onnx, ...)
5. ``export-baseline``, ``simulate-baseline-<s>``, ``energy-baseline``: the dense run
   exported, simulated on the first spike source among the targets and priced, so the
   comparison says how many times fewer operations and how much less energy pruning gave
6. ``energy``          ``OUT/energy.json`` (all chips) with the vanish check
7. ``compare``         ``OUT/comparison.md`` / ``.json``: baseline vs pruned
8. ``report``          ``OUT/report.md``, ``report.html``, ``plots/*.png``

A stage is skipped when it already ran with the same inputs: ``OUT/.pipeline/<stage>.json``
records a hash of the stage's arguments and input files and the SHA-256 of each output;
the stage reruns if any of them changed or an output is missing or altered (content
checked, not existence alone). A training stage that was interrupted resumes from its
last checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from spikeship.errors import ConfigError, RunDirError, SpikeshipError
from spikeship.data import DATASETS
from spikeship.io import ensure_writable_dir, sha256_file, write_json_atomic
from spikeship.sim.registry import PIPELINE_DEFAULT as TARGETS_DEFAULT
from spikeship.train.models import PRESETS
from spikeship.train.pruners import PRUNERS
from spikeship.runlock import PIPELINE, writes_run_dir
from spikeship.safeopen import LIMITS, read_json, read_text


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the pipeline needs; validated on construction (bad field -> ConfigError)."""

    out: str = "runs/demo"
    dataset: str = "digits"
    data_dir: str | None = None
    model: str = "dpap-mnist"
    prune: str = "dpap"
    prune_options: dict[str, str] = field(default_factory=dict)
    epochs: int = 30
    timesteps: int = 8
    seed: int = 0
    batch_size: int | None = None
    lr: float | None = None
    targets: tuple[str, ...] = TARGETS_DEFAULT
    sim_samples: int | None = None       # None = whole test split
    lava_samples: int | None = 120       # Lava targets step one sample at a time
    hardware: str = "loihi"              # the chip of energy_pj per layer (all are reported)
    # netx HDF5 has no sparse storage: its file keeps unstructured-pruned synapses as
    # zeros (the netx network loaded with sparse_fc_layer=True is checked clean
    # separately). Reported in energy.json, not failing the pipeline.
    allow_explicit_zeros: tuple[str, ...] = ("netx",)
    quick: bool = False
    from_dense: bool = False             # the pruned run starts from the trained dense run
    pruned_epochs: int | None = None     # its epochs (default: epochs)
    qat: bool | None = None              # both runs: --qat / --no-qat (None: train's default)
    # torch CPU threads for training: the embedded nets are tiny, and more threads
    # than free cores makes OpenMP spin (seen here: 1 s vs 50 s per epoch under load)
    threads: int = 1

    def __post_init__(self):
        """Check every field before anything runs, so a bad value fails in a second with a
        named field, not after an hour of training in the stage that first reads it."""
        from spikeship.sim.registry import SIMULATORS as TARGETS
        from spikeship.targets.registry import CHIPS
        from spikeship.data import DATASETS
        from spikeship.train.models import PRESETS
        from spikeship.train.pruners import PRUNERS

        for name in ("out", "dataset", "model", "prune"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"field '{name}' must be a non-empty string, "
                                  f"got {getattr(self, name)!r}")
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise ConfigError(f"field 'data_dir' must be a path string, got {self.data_dir!r}")
        for name, table in (("dataset", DATASETS), ("model", PRESETS), ("prune", PRUNERS)):
            if getattr(self, name) not in table:
                raise ConfigError(f"field '{name}': unknown {getattr(self, name)!r}; choose one "
                                  f"of {sorted(table)}")
        for name in ("quick", "from_dense", "qat"):
            if name == "qat" and self.qat is None:
                continue
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"field '{name}' must be true or false, "
                                  f"got {getattr(self, name)!r}")
        for name, low in (("epochs", 1), ("timesteps", 1), ("seed", 0)):
            _check_int(name, getattr(self, name), low)
        for name in ("sim_samples", "lava_samples", "batch_size", "threads", "pruned_epochs"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1)
        if self.lr is not None and (isinstance(self.lr, bool)
                                    or not isinstance(self.lr, (int, float))
                                    or not 0 < self.lr < 1):
            raise ConfigError(f"field 'lr' must be in (0, 1), got {self.lr!r}")
        if not isinstance(self.prune_options, dict) or not all(
                isinstance(k, str) for k in self.prune_options):
            raise ConfigError("field 'prune_options' must be a table of name = value")
        from spikeship.train.pruners import get_pruner_class

        try:        # the pruner checks its options now, not after the dense run trained
            get_pruner_class(self.prune)(dict(self.prune_options))
        except ConfigError as e:
            raise ConfigError(f"field 'prune_options': {e}") from e
        if not self.targets or not all(isinstance(x, str) for x in self.targets):
            raise ConfigError(f"field 'targets' must be a non-empty list of names, "
                              f"got {self.targets!r}")
        bad = [x for x in self.targets if x not in TARGETS]
        if bad:
            raise ConfigError(f"field 'targets': unknown {bad}; choose from {sorted(TARGETS)}")
        if not isinstance(self.hardware, str) or self.hardware not in CHIPS:
            raise ConfigError(f"field 'hardware': unknown {self.hardware!r}; choose one of "
                              f"{sorted(CHIPS)}")

    @classmethod
    def from_mapping(cls, d: dict[str, Any], source: str = "config") -> PipelineConfig:
        """Build from a dict (a TOML/JSON file), naming any unknown or ill-typed field."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {unknown}; known: {sorted(known)}")
        kw = {}
        for k, v in d.items():
            if k in ("targets", "allow_explicit_zeros"):
                if isinstance(v, str):
                    v = [x.strip() for x in v.split(",") if x.strip()]
                if not isinstance(v, (list, tuple)):
                    raise ConfigError(f"{source}: field '{k}' must be a list of names")
                v = tuple(v)
            elif k == "prune_options" and not isinstance(v, dict):
                raise ConfigError(f"{source}: field 'prune_options' must be a table")
            elif k in ("epochs", "timesteps", "seed", "sim_samples", "lava_samples",
                       "batch_size", "threads", "pruned_epochs") and v is not None \
                    and (not isinstance(v, int) or isinstance(v, bool)):
                raise ConfigError(f"{source}: field '{k}' must be an integer, got {v!r}")
            kw[k] = v
        try:
            return cls(**kw)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from e

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_int(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"field '{name}' must be an integer, got {value!r}")
    if value < low:
        raise ConfigError(f"field '{name}' must be >= {low}, got {value}")


QUICK = {"epochs": 8, "sim_samples": 60, "lava_samples": 20}


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML or JSON pipeline config file."""
    try:
        text = read_text(path, "config file", ConfigError, LIMITS.json_bytes)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
    try:
        if path.suffix == ".json":
            d = json.loads(text)
        else:
            d = tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"config file {path} is malformed: {e}") from e
    if not isinstance(d, dict):
        raise ConfigError(f"config file {path} must hold a table of fields")
    return d.get("pipeline", d)


# --------------------------------------------------------------------------- stages

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
        import importlib

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
    from spikeship.sim.registry import spike_sources
    from spikeship.targets.export_command import FORMATS

    out = Path(cfg.out)
    base = out / "baseline"
    fields: dict[str, Any] = {"dataset": cfg.dataset, "model": cfg.model, "epochs": cfg.epochs,
                              "timesteps": cfg.timesteps, "seed": cfg.seed}
    if cfg.data_dir:
        fields["data_dir"] = cfg.data_dir
    if cfg.batch_size:
        fields["batch_size"] = cfg.batch_size
    if cfg.lr:
        fields["lr"] = cfg.lr
    if cfg.qat is not None:
        fields["qat"] = cfg.qat
    pruned = {**fields, "prune": cfg.prune, "epochs": cfg.pruned_epochs or cfg.epochs}
    pruned_inputs = [base / "summary.json"]
    if cfg.from_dense:
        pruned["init_from"] = str(base)
        pruned_inputs.append(base / "checkpoint")
    train = "spikeship.train.command:train_run"
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
        Stage("export", "spikeship.targets.export_command:export_run",
              {"run_dir": str(out), "formats": list(FORMATS), "netx_optional": True},
              [out / "checkpoint"], models),
    ]
    for t in cfg.targets:
        n = cfg.lava_samples if t.startswith("lava") else cfg.sim_samples
        stages.append(Stage(f"simulate-{t}", "spikeship.sim.command:simulate_run",
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
            Stage("export-baseline", "spikeship.targets.export_command:export_run",
                  {"run_dir": str(base), "formats": list(FORMATS), "netx_optional": True},
                  [base / "checkpoint"], base_models),
            Stage(f"simulate-baseline-{spikes_from}", "spikeship.sim.command:simulate_run",
                  {"run_dir": str(base), "target": spikes_from, "samples": n}, base_models,
                  [base / f"simulate-{spikes_from}.json", base / f"simulate-{spikes_from}.npz"]),
            Stage("energy-baseline", "spikeship.energy.command:energy_run",
                  {"run_dir": str(base), "hardware": cfg.hardware, "spikes_from": spikes_from,
                   "allow_zeros": list(cfg.allow_explicit_zeros)},
                  base_models + [base / f"simulate-{spikes_from}.npz"], [base / "energy.json"]),
        ]
    stages += [
        Stage("energy", "spikeship.energy.command:energy_run",
              {"run_dir": str(out), "hardware": cfg.hardware, "spikes_from": spikes_from,
               "allow_zeros": list(cfg.allow_explicit_zeros)},
              models + sims, [out / "energy.json"]),
        Stage("compare", "spikeship.report.compare:compare_to_files",
              {"runs": [str(base), str(out)], "out": str(out / "comparison.md")},
              [base / "summary.json", out / "summary.json", out / "energy.json",
               *([base / "energy.json"] if spikes_from is not None else [])],
              [out / "comparison.md"]),
        Stage("report", "spikeship.report.command:report_run", {"run_dir": str(out)},
              [out / "summary.json", out / "metrics.jsonl", out / "energy.json",
               out / "comparison.md", *[out / f"simulate-{t}.json" for t in cfg.targets]],
              [out / "report.md", out / "report.html"]),
    ]
    return stages


@writes_run_dir(lambda a: a["cfg"].out, "pipeline", create=True, kind=PIPELINE)
def run_pipeline(cfg: PipelineConfig, echo=click.echo) -> list[tuple[str, str, float]]:
    """Run (or skip) every stage; return (stage, "ran"|"skipped", seconds) per stage.

    Each stage is a Python call; an error keeps its class, message and exit code."""
    out = ensure_writable_dir(cfg.out)
    write_json_atomic(out / "pipeline.json", cfg.to_json())
    recorder = StageRecorder(out)
    log = []
    stages = plan(cfg)
    for i, stage in enumerate(stages, start=1):
        head = f"[{i}/{len(stages)}] {stage.name}"
        if recorder.is_done(stage):
            echo(f"{head}: up to date, skipped")
            log.append((stage.name, "skipped", 0.0))
            continue
        extra = {}
        if stage.name.startswith("train") and (Path(stage.kwargs["out"]) / "checkpoint").exists():
            extra["resume"] = True
        echo(f"{head}: {stage.describe()}" + (" (resuming)" if extra else ""))
        t0 = time.perf_counter()
        try:
            stage.run(**extra)
        except SpikeshipError:
            echo(f"{head}: failed; fix it and re-run: finished stages are skipped")
            raise
        dt = time.perf_counter() - t0
        recorder.record(stage, dt)
        echo(f"{head}: done in {dt:.1f} s")
        log.append((stage.name, "ran", dt))
    return log


def _check_targets(ctx, param, value: str | None) -> str | None:
    from spikeship.sim.registry import SIMULATORS

    if value is not None:
        bad = [t.strip() for t in value.split(",") if t.strip() not in SIMULATORS]
        if bad:
            raise click.BadParameter(f"unknown simulator(s) {bad}; choose from "
                                     f"{', '.join(SIMULATORS)}", ctx, param)
    return value


def pipeline_config(config_file: Path | None, quick: bool, prune_opts: tuple[str, ...],
                    flags: dict[str, Any]) -> PipelineConfig:
    """The command's :class:`PipelineConfig`: the file, ``--quick``'s defaults under
    it, the flags over both; ``--prune-opt`` over the file's ``prune_options``."""
    from spikeship.train.config import parse_prune_option

    values: dict[str, Any] = load_config_file(config_file) if config_file else {}
    if quick or values.get("quick") is True:     # a non-bool "quick" is refused below
        values = {**QUICK, **values, "quick": True}
    values.update({k: v for k, v in flags.items() if v is not None})
    if prune_opts:
        base = values.get("prune_options")
        values["prune_options"] = {**(base if isinstance(base, dict) else {}),
                                   **dict(parse_prune_option(t) for t in prune_opts)}
    values.setdefault("out", "runs/demo")
    return PipelineConfig.from_mapping(values, source=str(config_file or "flags"))


@click.command("pipeline")
@click.option("--out", default=None, help="Run directory (default runs/demo).")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="TOML or JSON file with pipeline fields; flags override it.")
@click.option("--quick", is_flag=True, help="Smoke run: few epochs and samples (~2 min).")
@click.option("--dataset", type=click.Choice(list(DATASETS)), default=None,
              help="Dataset (default digits).")
@click.option("--data-dir", default=None)
@click.option("--model", type=click.Choice(list(PRESETS)), default=None,
              help="Model preset (default dpap-mnist).")
@click.option("--prune", type=click.Choice(list(PRUNERS)), default=None,
              help="Pruner of the pruned run (default dpap).")
@click.option("--prune-opt", "prune_opts", multiple=True, metavar="KEY=VALUE",
              help="Option of the pruned run's pruner (repeatable; over the config "
                   "file's prune_options), e.g. preset=deep.")
@click.option("--epochs", type=int, default=None)
@click.option("--timesteps", type=int, default=None)
@click.option("--seed", type=int, default=None)
@click.option("--targets", default=None, callback=_check_targets,
              help="Comma-separated simulators (default: "
                   + ",".join(TARGETS_DEFAULT) + "; `spikeship targets` lists them).")
@click.option("--lava-samples", type=int, default=None)
@click.option("--sim-samples", type=int, default=None)
def pipeline(config_file, quick: bool, prune_opts: tuple[str, ...], **flags) -> None:
    """Train dense + pruned, export, simulate, price, compare and report in one go."""
    cfg = pipeline_config(config_file, quick, prune_opts, flags)
    t0 = time.perf_counter()
    log = run_pipeline(cfg)
    ran = sum(1 for _, how, _ in log if how == "ran")
    click.echo(f"pipeline: {ran} stage(s) ran, {len(log) - ran} skipped, "
               f"{time.perf_counter() - t0:.1f} s; report: {Path(cfg.out) / 'report.html'}")
