"""A tuning study: the dense run, then Optuna trials over DPAP's per-layer budgets.

Sampler: Optuna's multi-objective TPE (``TPESampler``, ``multivariate=True``, seeded
``seed + k`` for worker slot k). With a few dozen trials NSGA-II (population <= 10)
would get three or four generations; TPE models every finished trial from the 10th on
(the first ten are random), and multivariate TPE models the budgets of the layers
jointly (a deep cut of one layer asks for a light one of the next). The objectives:
maximise the Loihi emulator's validation accuracy (%), minimise ``--objective`` (ops,
energy or cores); fitting ``--hardware`` (one chip, or ``max_cores``) is an Optuna
constraint (``trial.set_constraint``, Optuna 5's successor of ``constraints_func``).
DPAP's presets ``chip`` and ``deep`` are the first two trials (enqueued), so they are
evaluated exactly as every point and drawn on the front. Optuna's pruners do not
support multi-objective studies; the hopeless-trial rule is :mod:`.trial`'s. The
sampler's grid (:mod:`.space`) is finite, so TPE proposes a finished point again now
and then: that trial takes its twin's outcome (``same_as``) instead of training it
again.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spikeship import dirkind
from spikeship._optional import require
from spikeship.data import splits_read
from spikeship.errors import ConfigError, SpikeshipError
from spikeship.io import ensure_writable_dir, write_json_atomic
from spikeship.safeopen import read_json
from spikeship.targets.registry import CHIPS, mapped_chips
from spikeship.train.checkpoint import load_checkpoint
from spikeship.train.pruners.dpap_config import PRESETS
from spikeship.tune import front, space, trial, workers

STUDY_NAME = "spikeship-tune"
PRESET_NAMES = ("chip", "deep")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TuneSettings:
    """What a study searches and how (the ``spikeship tune`` flags)."""

    run: str
    out: str
    trials: int
    objective: str = "ops"
    hardware: str = "loihi"
    max_cores: int | None = None     # constraint: at most this many cores (None: one chip)
    storage: str | None = None       # RDB URL (None: sqlite:///OUT/study.db)
    seed: int = 0
    carve: float = 0.2               # share of the training split held out for validation
    epochs: tuple[int, int] = (5, 30)  # length of a pruned run (cut epoch + fine-tuning)
    floor: float | None = None       # hopeless below floor x the dense validation accuracy
    threads: int | None = None
    resume: bool = False

    def __post_init__(self):
        if self.objective not in trial.OBJECTIVES:
            raise ConfigError(f"--objective {self.objective!r}: choose one of "
                              f"{list(trial.OBJECTIVES)}")
        if self.hardware not in CHIPS:
            raise ConfigError(f"--hardware {self.hardware!r}: choose one of {sorted(CHIPS)}")
        if not isinstance(self.trials, int) or self.trials < 1:
            raise ConfigError(f"--trials must be >= 1, got {self.trials!r}")
        lo, hi = self.epochs
        if not 2 <= lo <= hi:
            raise ConfigError(f"--epochs {lo}-{hi}: need 2 <= low <= high (the cut epoch "
                              f"and at least one of fine-tuning)")
        if self.floor is not None and not 0 <= self.floor < 1:
            raise ConfigError(f"--floor must be in [0, 1), got {self.floor}")
        if self.max_cores is not None and self.max_cores < 1:
            raise ConfigError(f"--max-cores must be >= 1, got {self.max_cores}")
        if (self.max_cores is not None or self.objective == "cores") \
                and self.hardware not in mapped_chips():
            raise ConfigError(f"--hardware {self.hardware} has no core mapper (cores are "
                              f"counted for {mapped_chips()}): no --max-cores or cores objective")

    def searched(self) -> dict[str, Any]:
        """The settings a worker joining the study must share."""
        return {"objective": self.objective, "hardware": self.hardware,
                "max_cores": self.max_cores, "carve": self.carve,
                "epochs": list(self.epochs), "floor": self.floor}


@dataclass(frozen=True)
class StudyOutcome:
    """A finished worker: the study folder, the front document (``pareto.json``) and the
    numbers of the trials it marked failed (left RUNNING by a dead worker)."""

    out: Path
    front: dict[str, Any]
    failed_dead: tuple[int, ...]


def run_study(s: TuneSettings, progress: Progress) -> StudyOutcome:
    """Search until the study holds ``s.trials`` finished (complete or pruned) trials."""
    optuna = require("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = Path(s.out)
    claim_folder(out)
    storage = workers.open_storage(s.storage, out)
    study = _open_study(optuna, storage, s)
    failed = workers.fail_dead_trials(storage, study)
    if failed:
        progress(f"marked failed: trial(s) {failed} (their worker died)")
    # the first worker trains the dense run and enqueues the presets; the others wait
    with workers.file_lock(out / ".dense.lock"):
        dense = prepare_dense(s, out, progress)
        layers = dense_layers(out / "dense")
        if not study.get_trials(deepcopy=False):
            _enqueue_presets(study, layers, s)
    slot = workers.claim_slot(out)
    try:
        sampler = optuna.samplers.TPESampler(seed=s.seed + slot, multivariate=True)
        study = optuna.load_study(study_name=STUDY_NAME, storage=storage, sampler=sampler)
        objective = _Objective(s, out, layers, dense, slot)
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        if len(study.get_trials(deepcopy=False, states=states)) < s.trials:
            study.optimize(objective, n_trials=s.trials, catch=(SpikeshipError,),
                           callbacks=[optuna.study.MaxTrialsCallback(s.trials, states=states),
                                      _Report(s, dense, progress)])
    finally:
        workers.release_slot(out, slot)
    doc = front.write_front(study, out, dense, s.objective, s.hardware)
    progress(f"front: {len(doc['points'])} point(s); {out / 'pareto.md'}")
    return StudyOutcome(out, doc, tuple(failed))


def claim_folder(out: Path) -> None:
    """Make the study folder, or refuse one that holds anything but a tune study
    (:mod:`spikeship.dirkind`: a training run, files spikeship did not write) before
    writing into it; an empty folder is marked a tune study. Workers starting together
    mark it once (:func:`spikeship.dirkind.claim`)."""
    ensure_writable_dir(out)
    dirkind.claim(out, "spikeship tune", dirkind.TUNE, (), "tune", set())


def _open_study(optuna, storage, s: TuneSettings):
    names = [x.study_name for x in optuna.get_all_study_summaries(storage)]
    if STUDY_NAME in names and not s.resume:
        raise ConfigError(f"{s.out}: a study exists in its storage; --resume continues it "
                          f"(or joins it as another worker)")
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, load_if_exists=True,
                                directions=["maximize", "minimize"])
    saved = study.user_attrs.get("settings")
    if saved is None:
        study.set_user_attr("settings", s.searched())
    elif saved != s.searched():
        diff = {k: (saved.get(k), v) for k, v in s.searched().items() if saved.get(k) != v}
        raise ConfigError(f"{s.out}: the study was started with other settings "
                          f"(saved, given): {diff}")
    return study


def prepare_dense(s: TuneSettings, out: Path, progress: Progress) -> dict[str, Any]:
    """The dense run on the training split minus the carve, deployed and evaluated
    (``STUDY/dense.json``), unless done."""
    path = out / "dense.json"
    if path.exists():
        return read_json(path, "dense evaluation", ConfigError)
    progress(f"dense run: the recipe of {s.run} on the training split minus a "
             f"{s.carve:g} validation carve")
    recipe = out / "recipe.json"
    trial.write_recipe(Path(s.run), recipe)
    trial.train_dense(out / "dense", recipe, s.carve, s.threads)
    ev = trial.deploy(out / "dense", s.hardware)
    ev.cost(s.objective)             # a chip that prices no energy: refused here
    summary = read_json(out / "dense" / "summary.json", "dense summary", ConfigError)
    doc = {**ev.to_json(), "float_accuracy": summary["test_accuracy"],
           "run_dir": str(out / "dense"), "splits_read": trial.splits_named(splits_read())}
    write_json_atomic(path, doc)
    progress(f"dense: validation accuracy {100 * ev.accuracy:.2f}% (Loihi emulator), "
             f"{ev.ops:,.0f} ops per sample")
    return doc


def dense_layers(run_dir: Path) -> list[space.Layer]:
    """The prunable layers of the dense run (from its checkpoint)."""
    infos = load_checkpoint(run_dir).layers
    return [space.Layer(li.name, li.kind, i == 0, li.is_output) for i, li in enumerate(infos)]


def _enqueue_presets(study, layers, s: TuneSettings) -> None:
    for name in PRESET_NAMES:
        p = PRESETS[name]
        tail = round(p["default_epochs"] * (1 - p["cut_at"]))   # the preset's fine-tuning
        epochs = min(max(tail, s.epochs[0]), s.epochs[1])
        study.enqueue_trial(space.params_of(space.preset_budgets(name, layers, epochs)),
                            user_attrs={"preset": name}, skip_if_exists=True)


class _Objective:
    def __init__(self, s: TuneSettings, out: Path, layers, dense: dict[str, Any], slot: int):
        self.s, self.out, self.layers, self.dense, self.slot = s, out, layers, dense, slot
        self.floor = None if not s.floor else s.floor * dense["float_accuracy"]

    def __call__(self, t) -> tuple[float, float]:
        optuna = require("optuna")
        before = len(splits_read())
        run_dir = self.out / "trials" / f"{t.number:04d}"
        t.set_user_attr("worker", {**workers.identity(), "slot": self.slot})
        with warnings.catch_warnings():
            # a preset's shares are DPAP's own values, off the sampler's 0.05 grid on
            # purpose: Optuna's note that an enqueued value is off the grid is expected
            if t.user_attrs.get("preset"):
                warnings.filterwarnings("ignore", message="Fixed parameter", category=UserWarning)
            b = space.suggest(t, self.layers, self.s.epochs)
        t.set_user_attr("budgets", b.to_json())
        t.set_user_attr("prune_opt", b.prune_opt_string())
        twin = _finished_twin(t, b.prune_opt_string())
        if twin is not None:
            return _repeat(optuna, t, twin)
        t.set_user_attr("path", str(run_dir.resolve()))
        try:
            trial.train_point(run_dir, self.out / "recipe.json", b, self.out / "dense",
                              self.s.carve, self.s.threads, self.floor)
        except trial.Hopeless as e:
            t.set_user_attr("hopeless", str(e))
            t.set_user_attr("splits_read", trial.splits_named(splits_read()[before:]))
            raise optuna.TrialPruned(str(e)) from e
        ev = trial.deploy(run_dir, self.s.hardware)
        t.set_user_attr("evaluation", ev.to_json())
        t.set_user_attr("splits_read", trial.splits_named(splits_read()[before:]))
        if ev.chips is not None:
            t.set_constraint("fits", ev.cores - self.s.max_cores
                             if self.s.max_cores is not None else ev.chips - 1)
        return 100 * ev.accuracy, ev.cost(self.s.objective)


def _finished_twin(t, prune_opt: str):
    """The first finished (complete or pruned) trial of ``t``'s study at the same point,
    None if there is none: a trained point is not trained again (the same recipe, seed
    and budgets: a second run would only repeat the first)."""
    optuna = require("optuna")
    done = t.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                     optuna.trial.TrialState.PRUNED))
    return next((x for x in done if x.user_attrs.get("prune_opt") == prune_opt
                 and "same_as" not in x.user_attrs), None)


def _repeat(optuna, t, twin) -> tuple[float, float]:
    """``twin``'s outcome for trial ``t`` (a point sampled again), recorded as
    ``same_as``; nothing is trained or read."""
    t.set_user_attr("same_as", twin.number)
    t.set_user_attr("splits_read", [])
    for key in ("evaluation", "hopeless"):
        if key in twin.user_attrs:
            t.set_user_attr(key, twin.user_attrs[key])
    for key, value in twin.constraints.items():
        t.set_constraint(key, value)
    if twin.state == optuna.trial.TrialState.PRUNED:
        raise optuna.TrialPruned(twin.user_attrs.get("hopeless", f"as trial {twin.number}"))
    return twin.values[0], twin.values[1]


class _Report:
    """Progress after each trial: its outcome and time, trials done, the front."""

    def __init__(self, s: TuneSettings, dense: dict[str, Any], progress: Progress):
        self.s, self.dense, self.progress, self.t0 = s, dense, progress, time.monotonic()

    def __call__(self, study, t) -> None:
        optuna = require("optuna")
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                        optuna.trial.TrialState.PRUNED))
        secs = t.duration.total_seconds() if t.duration else float("nan")
        what = (f"acc {t.values[0]:.2f}% {self.s.objective} {t.values[1]:,.0f}"
                if t.values else t.state.name.lower())
        if "same_as" in t.user_attrs:
            what += f" (as trial {t.user_attrs['same_as']})"
        pts = sorted((p for p in study.best_trials if "same_as" not in p.user_attrs),
                     key=lambda x: x.values[1])
        shown = ", ".join(f"#{p.number} {p.values[0]:.1f}%/{p.values[1]:,.0f}" for p in pts)
        self.progress(f"trial {t.number}: {what} in {secs:.0f} s; {len(done)}/{self.s.trials} "
                      f"done; front ({len(pts)}): {shown}")

