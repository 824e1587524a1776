"""The Python way in: what every ``spikeship`` command does, as typed functions.

::

    import spikeship

    run = spikeship.train("runs/tiny", dataset="digits", model="tiny-mlp", epochs=2)
    spikeship.export(run.out)
    sim = spikeship.simulate(run.out, "reference")
    cost = spikeship.energy(run.out)

Each function returns a frozen result object and raises only
:class:`~spikeship.errors.SpikeshipError` subclasses. They print nothing: the ones with
work to report take ``progress``, a callable that receives one line of text per event
(the CLI passes one that prints it). The
implementations live in the packages below (``spikeship.train.run``,
``spikeship.targets.export``, ``spikeship.sim.simulate``, ...); they are bound here with
:func:`~spikeship._optional.lazy_import`, so ``import spikeship`` loads neither torch
nor matplotlib until a function runs.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spikeship._optional import lazy_import
from spikeship.errors import ConfigError, RunDirError
from spikeship.safeopen import read_json

if TYPE_CHECKING:       # the same modules, for type checkers and the import contracts
    from spikeship.energy import run as _energy
    from spikeship.energy import standalone as _energy_file
    from spikeship.pipeline import config as _pipeline_config
    from spikeship.pipeline import run as _pipeline
    from spikeship.report import compare as _compare
    from spikeship.report import run as _report
    from spikeship.sim import simulate as _simulate
    from spikeship.sim import standalone as _standalone
    from spikeship.sim.result import SimResult
    from spikeship.targets import describe as _describe
    from spikeship.targets import export as _export
    from spikeship.train import distributed as _distributed
    from spikeship.train import run as _train
    from spikeship.tune import pick as _pick
    from spikeship.tune import study as _tune
else:
    _energy = lazy_import("spikeship.energy.run")
    _pipeline_config = lazy_import("spikeship.pipeline.config")
    _pipeline = lazy_import("spikeship.pipeline.run")
    _compare = lazy_import("spikeship.report.compare")
    _report = lazy_import("spikeship.report.run")
    _simulate = lazy_import("spikeship.sim.simulate")
    _standalone = lazy_import("spikeship.sim.standalone")
    _describe = lazy_import("spikeship.targets.describe")
    _export = lazy_import("spikeship.targets.export")
    _train = lazy_import("spikeship.train.run")
    _energy_file = lazy_import("spikeship.energy.standalone")
    _distributed = lazy_import("spikeship.train.distributed")
    _tune = lazy_import("spikeship.tune.study")
    _pick = lazy_import("spikeship.tune.pick")

__all__ = ["CompareResult", "EnergyResult", "ExportResult", "FileDescription",
           "PipelineResult", "ReportResult", "SimulateResult", "TrainResult", "TuneResult",
           "compare", "energy", "export", "inspect", "pipeline", "report", "simulate", "train",
           "tune"]

Progress = Callable[[str], None]
PathLike = str | os.PathLike[str]


def _say(progress: Progress | None, line: str) -> None:
    if progress is not None:
        progress(line)


# ------------------------------------------------------------------------------ results

@dataclass(frozen=True)
class TrainResult:
    """A training run. ``summary``: the run's ``summary.json`` (DESIGN.md's artifact
    contract: ``test_accuracy``, ``params_remaining``, ``pruning_rate``, ...), None when
    it stopped early (``stop_after``); ``launched``: trained by ``nproc`` worker
    processes (then ``summary`` is what they wrote)."""

    out: Path
    summary: Mapping[str, Any] | None
    launched: bool = False


@dataclass(frozen=True)
class ExportResult:
    """An export: ``files`` maps each format written (``nir``, ``onnx``, ``netx``) to its
    path; ``document`` is ``export.json`` (shapes before and after unit removal, notes)."""

    run_dir: Path
    files: Mapping[str, Path]
    notes: tuple[str, ...]
    document: Mapping[str, Any]


@dataclass(frozen=True)
class SimulateResult:
    """A simulation: ``result`` (spikes, accuracy, agreement), the directory it was saved
    in (``simulate-<target>.json`` / ``.npz``) and the simulator it was compared with
    (``snntorch`` for a run, ``reference`` for a standalone file)."""

    result: SimResult
    run_dir: Path
    compared_with: str

    @property
    def accuracy(self) -> float | None:
        """Share of correct predictions, None without labels."""
        return self.result.accuracy


@dataclass(frozen=True)
class EnergyResult:
    """An energy estimate: ``document`` is ``energy.json`` (synops per layer, energy per
    chip in pJ, cores, ``vanish_check``), written at ``path``."""

    document: Mapping[str, Any]
    path: Path

    @property
    def vanish_check_passed(self) -> bool | None:
        """True / False, or None when there was no checkpoint to compare with."""
        return self.document["vanish_check"]["passed"]


@dataclass(frozen=True)
class CompareResult:
    """A comparison table in Markdown and the files written (``.md``, ``.json``)."""

    markdown: str
    files: tuple[Path, ...]


@dataclass(frozen=True)
class ReportResult:
    """A run report: ``paths`` maps ``md``, ``html`` and each plot's name to its file."""

    paths: Mapping[str, Path]

    @property
    def plots(self) -> int:
        """How many plots were drawn."""
        return len(self.paths) - 2


@dataclass(frozen=True)
class PipelineResult:
    """A pipeline run into ``out``: per stage ``(name, "ran" | "skipped", seconds)``."""

    out: Path
    stages: tuple[tuple[str, str, float], ...]


@dataclass(frozen=True)
class TuneResult:
    """A tuning study in ``out``: ``front`` is ``pareto.json`` (the dense run, each Pareto
    point's budgets, validation accuracy and cost); ``failed_dead``: trials this worker
    marked failed (left running by a dead worker); ``pick``: ``pick.json`` (the picked
    point retrained and tested once) when ``pick`` was given."""

    out: Path
    front: Mapping[str, Any]
    failed_dead: tuple[int, ...] = ()
    pick: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class FileDescription:
    """What a ``.nir`` / ``.onnx`` / netx ``.net`` file holds: ``document`` has the
    format, one row per layer (shapes, synapses, non-zero weights, neurons) and totals."""

    document: Mapping[str, Any]


# ---------------------------------------------------------------------------- functions

def train(out: PathLike, *, config_file: PathLike | None = None, resume: bool = False,
          baseline: PathLike | None = None, prune_options: Mapping[str, Any] | None = None,
          threads: int | None = None, nproc: int | None = None,
          oversubscribe: bool = False,
          dist_timeout: float | None = None, stop_after: int | None = None,
          progress: Progress | None = None, progress_bar: bool = False,
          **fields: Any) -> TrainResult:
    """Train into ``out``: the defaults of :class:`~spikeship.train.config.TrainConfig`,
    the saved ``config.json`` (``resume``), ``config_file`` (TOML / JSON), then
    ``fields`` (any TrainConfig field, e.g. ``dataset="digits", epochs=2``; None leaves
    a field as it is), later ones winning. ``prune_options`` go to the pruner.

    ``nproc`` > 1 trains data-parallel in that many local processes (at most the usable
    CPU cores unless ``oversubscribe``); ``threads``: torch
    CPU threads; ``baseline``: a dense run to compare with (``epochs_to_baseline``).
    ``progress`` receives the training log line by line; ``progress_bar``: a live bar
    and the log on a terminal's stderr instead."""
    out = Path(out)
    config = None if config_file is None else Path(config_file)
    if nproc is not None and _distributed.distributed_env():
        raise ConfigError("--nproc inside a distributed launch (WORLD_SIZE is set): "
                          "let torchrun start the processes and leave out --nproc")
    if nproc is not None and nproc != 1:
        _train.launch_run(out, fields, nproc=nproc, dist_timeout=dist_timeout, resume=resume,
                          baseline=baseline, threads=threads, no_progress=not progress_bar,
                          config_file=config, prune_options=dict(prune_options or {}),
                          stop_after=stop_after, oversubscribe=oversubscribe)
        summary = out / "summary.json"
        return TrainResult(out, read_json(summary, "run summary", RunDirError)
                           if stop_after is None and summary.exists() else None, launched=True)
    to_terminal = progress is not None and progress_bar and sys.stderr.isatty()
    with contextlib.ExitStack() as stack:
        if progress is not None and not to_terminal:
            stack.enter_context(_lines_to(progress))
        summary = _train.train_run(out, fields, prune_options=dict(prune_options or {}),
                                   resume=resume, baseline=baseline, threads=threads,
                                   progress=progress_bar, quiet=progress is None,
                                   config_file=config, stop_after=stop_after,
                                   dist_timeout=dist_timeout)
    return TrainResult(out, summary)


class _LineWriter(io.TextIOBase):
    """A text stream that hands each complete line to ``progress``, which runs with the
    stderr it replaced (so a callback that prints to stderr does not write to itself)."""

    def __init__(self, progress: Progress, stderr):
        self.progress, self.stderr, self._pending = progress, stderr, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._hand_on(line)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            line, self._pending = self._pending, ""
            self._hand_on(line)

    def _hand_on(self, line: str) -> None:
        with contextlib.redirect_stderr(self.stderr):
            self.progress(line)


@contextlib.contextmanager
def _lines_to(progress: Progress) -> Iterator[None]:
    """The training log (the trainer writes it to stderr) as lines to ``progress``."""
    writer = _LineWriter(progress, sys.stderr)
    try:
        with contextlib.redirect_stderr(writer):
            yield
    finally:
        writer.flush()


def export(run_dir: PathLike, formats: Sequence[str] | None = None, *, dt_s: float = 1e-3,
           onnx_mode: str = "step", progress: Progress | None = None) -> ExportResult:
    """Export ``run_dir``'s checkpoint with pruned units physically removed, all or
    nothing, into ``model.nir`` / ``model.onnx`` / ``model.net`` and ``export.json``.

    ``formats``: any of ``nir``, ``onnx``, ``netx``; None: all three, netx skipped with a
    note when the graph is one netx cannot express. ``dt_s``: seconds per step of the
    exported graph; ``onnx_mode``: ``step`` (stateful single step) or ``unrolled``."""
    fmts = tuple(formats) if formats else tuple(_export.FORMATS)    # "" too: all
    doc = _export.export_run(run_dir, fmts, dt_s=dt_s, onnx_mode=onnx_mode,
                             netx_optional=formats is None)
    for fmt, path in doc["formats"].items():
        _say(progress, f"{fmt:5s} {path}")
    for note in doc["notes"]:
        _say(progress, f"note: {note}")
    return ExportResult(Path(run_dir), {k: Path(v) for k, v in doc["formats"].items()},
                        tuple(doc["notes"]), doc)


def simulate(path: PathLike, target: str, *, samples: int | None = None,
             options: Mapping[str, Any] | None = None, input: PathLike | None = None,
             labels: PathLike | None = None, dt_s: float | None = None,
             timesteps: int | None = None, out: PathLike | None = None,
             convention: str | None = None) -> SimulateResult:
    """Run simulator ``target`` (:func:`spikeship.sim.registry.names`) with ``options``.

    ``path`` a run directory: its exported graph on the first ``samples`` test samples,
    compared with the trained model (``snntorch``). ``path`` a model file (``.nir``,
    lava-dl ``.net``): on ``input`` (``X.npy``, ``(N, T, *input)`` or ``(N, *input)``
    with ``timesteps``), ``labels`` (``Y.npy``), ``dt_s`` seconds per step, compared with
    the reference simulator, saved in ``out`` (default ``FILE.spikeship``); a ``.nir``
    file read with the producer ``convention`` (:mod:`spikeship.nir.conventions`,
    default ``"nir"``)."""
    path = Path(path)
    opts = dict(options or {})
    if _standalone.check_mode(path, input, **{"--labels": labels, "--dt": dt_s,
                                              "--timesteps": timesteps, "--out": out,
                                              "--convention": convention}):
        result, run_dir = _standalone.simulate_file(
            path, target, input_path=input, labels_path=labels, dt_s=dt_s,
            timesteps=timesteps, out=out, options=opts, convention=convention or "nir")
        return SimulateResult(result, Path(run_dir), "reference")
    return SimulateResult(_simulate.simulate_run(path, target, samples, opts), path, "snntorch")


def energy(path: PathLike, *, hardware: str = "loihi", spikes_from: str | None = None,
           assume_rate: float | None = None, check_lava: bool = True,
           allow_zeros: Sequence[str] = (), strict: bool = False, fail_on_vanish: bool = True,
           input: PathLike | None = None, labels: PathLike | None = None,
           dt_s: float | None = None, timesteps: int | None = None,
           out: PathLike | None = None, convention: str | None = None) -> EnergyResult:
    """Count the synaptic operations of the deployed graph, price them on every chip
    (``hardware``'s figures per layer), map cores and check that every pruned
    connection is gone from every deployed artifact; write ``energy.json``.

    Spikes come from ``spikes_from`` (default: the first simulation present in the
    spike-source order) or an assumed rate ``assume_rate`` per neuron per step.
    ``allow_zeros``: formats whose stored zeros do not fail the vanish check; ``strict``:
    fail on every stored zero. A failed vanish check raises
    :class:`~spikeship.errors.VanishCheckError` (after writing) if ``fail_on_vanish``.
    A model file (``input`` etc. as for :func:`simulate`) is simulated first."""
    path = Path(path)
    if _standalone.check_mode(path, input, **{"--labels": labels, "--dt": dt_s,
                                              "--timesteps": timesteps, "--out": out,
                                              "--convention": convention}):
        if assume_rate is not None:
            raise ConfigError("--assume-rate applies to a run directory; a FILE is simulated")
        doc, run_dir = _energy_file.energy_file(
            path, input_path=input, labels_path=labels, dt_s=dt_s, timesteps=timesteps,
            out=out, hardware=hardware, spikes_from=spikes_from or "reference",
            convention=convention or "nir")
        return EnergyResult(doc, Path(run_dir) / "energy.json")
    doc, written = _energy.energy_run(path, hardware=hardware, spikes_from=spikes_from,
                                      assume_rate=assume_rate, check_lava=check_lava,
                                      allow_zeros=tuple(allow_zeros),
                                      fail_on_vanish=fail_on_vanish, strict=strict)
    return EnergyResult(doc, Path(written))


def compare(runs: Sequence[PathLike], *, out: PathLike | None = None,
            dense: PathLike | None = None, rank: str = "given", hardware: str | None = None,
            progress: Progress | None = None) -> CompareResult:
    """Compare run directories in a paper-style table (Markdown, and JSON beside ``out``).

    ``dense``: the dense reference run (default: the input run with ``pruner = none``);
    ``rank``: row order, ``ops`` (cheapest first), ``energy`` or ``given``;
    ``hardware``: the chip that prices every row's energy."""
    md, written = _compare.compare_to_files(list(runs), out, dense, rank=rank,
                                            hardware=hardware)
    if written:
        _say(progress, f"wrote {written[0]} and {written[1]}")
    return CompareResult(md, tuple(written))


def report(run_dir: PathLike, *, baseline: PathLike | None = None,
           comparison: PathLike | None = None, progress: Progress | None = None
           ) -> ReportResult:
    """Write ``plots/*.png``, ``report.md`` and a self-contained ``report.html`` for
    ``run_dir``; ``baseline`` (default ``run_dir/baseline``) and ``comparison`` (a
    Markdown table, default ``run_dir/comparison.md``) when they exist."""
    paths = _report.report_run(run_dir, baseline, comparison)
    _say(progress, f"report: {paths['html']} ({len(paths) - 2} plots)")
    return ReportResult(paths)


def pipeline(config: _pipeline_config.PipelineConfig | Mapping[str, Any] | None = None, *,
             progress: Progress | None = None, **fields: Any) -> PipelineResult:
    """Train dense and pruned, export, simulate, price, compare and report into
    ``config.out``, skipping every stage that already ran with the same inputs.

    ``config``: a :class:`~spikeship.pipeline.config.PipelineConfig` or a mapping of its
    fields, updated with ``fields``. ``progress`` hears each stage start and end."""
    if not isinstance(config, _pipeline_config.PipelineConfig):
        config = _pipeline_config.PipelineConfig.from_mapping({**(config or {}), **fields},
                                                              source="pipeline()")
    elif fields:
        config = _pipeline_config.PipelineConfig.from_mapping(
            {**config.to_json(), **fields}, source="pipeline()")
    log = _pipeline.run_pipeline(config, progress)
    return PipelineResult(Path(config.out), tuple(log))


def tune(run: PathLike, out: PathLike, *, trials: int = 40, objective: str = "ops",
         hardware: str = "loihi", max_cores: int | None = None, storage: str | None = None,
         seed: int = 0, carve: float = 0.2, epochs: tuple[int, int] = (5, 30),
         floor: float | None = None, threads: int | None = None, resume: bool = False,
         pick: str | None = None, pick_seed: int | None = None,
         progress: Progress | None = None) -> TuneResult:
    """Search DPAP's per-layer budgets for ``run``'s recipe (:mod:`spikeship.tune`).

    Trains the dense recipe on the training split minus a ``carve`` share, then runs
    Optuna trials (multi-objective TPE seeded ``seed``) until the study in ``storage``
    (default ``out/study.db``) holds ``trials`` finished ones: validation accuracy of
    the Loihi emulator against ``objective`` (``ops``, ``energy`` or ``cores`` on
    ``hardware``), fitting one chip (or ``max_cores``). ``epochs``: range of a pruned
    run's length; ``floor``: stop a trial below ``floor`` x the dense accuracy after
    its first fine-tuning epoch (None: never, the default). ``resume`` continues (or joins) the study. ``pick``: an
    expression (:mod:`spikeship.tune.pick`) whose point is retrained on the whole
    training split (seed ``pick_seed``, default the recipe's) and tested once; with
    ``pick`` and ``resume`` and a finished study, no trial runs."""
    s = _tune.TuneSettings(run=str(run), out=str(out), trials=trials, objective=objective,
                           hardware=hardware, max_cores=max_cores, storage=storage, seed=seed,
                           carve=carve, epochs=tuple(epochs), floor=floor, threads=threads,
                           resume=resume)
    if pick is not None:
        _pick.parse(pick)                      # a bad expression fails before any work
    outcome = _tune.run_study(s, progress or (lambda line: None))
    picked = None
    if pick is not None:
        picked = _pick.pick_and_retrain(Path(out), pick, hardware, threads, pick_seed)
        _say(progress, f"pick: trial {picked['point']['trial']}: test accuracy "
                       f"{100 * picked['pruned']['accuracy']:.2f}% vs dense "
                       f"{100 * picked['dense']['accuracy']:.2f}% "
                       f"({picked['difference_pt']:+.2f} pt, 95 % paired "
                       f"[{picked['difference_ci95_pt'][0]:+.2f}, "
                       f"{picked['difference_ci95_pt'][1]:+.2f}]), "
                       f"{picked['ops_ratio']:.2f}x fewer ops")
    return TuneResult(outcome.out, outcome.front, outcome.failed_dead, picked)


def inspect(path: PathLike) -> FileDescription:
    """The layers, shapes, synapse counts and sparsity of a ``.nir``, ``.onnx`` or netx
    ``.net`` file (netx files per netx layer, with whether spikeship can import them)."""
    return FileDescription(_describe.describe_file(path))
