"""One point of the search, end to end: train, export, Loihi emulator, energy.

The dense run trains with the recipe (the given run's ``config.json``, written to
``STUDY/recipe.json``); a point cuts it (``init_from``, :mod:`.space`) and fine-tunes.
Both are then exported, run on the ``loihi-emu`` simulator (the deployed fixed-point
graph) over the evaluated split (the validation carve during the search, the test
split in :mod:`.pick`) and priced by :mod:`spikeship.energy` from those spikes.

Hopeless trials (the one rule, off by default): with ``--floor F``, a point whose float
accuracy on the evaluated split after its first fine-tuning epoch (the epoch after the
cut) is below F x the dense run's is stopped there (:class:`Hopeless`; the study
reports it as Optuna's PRUNED). Off by default because on digits a deep cut is often
near chance after that epoch and still recovers over a longer fine-tuning (DPAP's
presets among them), so a floor would stop good points; it pays where trials are costly
and a broken cut shows early.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spikeship.energy.run import energy_run
from spikeship.errors import ConfigError, RunDirError, SpikeshipError
from spikeship.io import write_json_atomic
from spikeship.safeopen import read_json
from spikeship.sim.simulate import simulate_run
from spikeship.targets.export import FORMATS, export_run
from spikeship.train.run import train_run
from spikeship.tune.space import CUT_EPOCH, Budgets

SIMULATOR = "loihi-emu"
OBJECTIVES = ("ops", "energy", "cores")
# recipe fields a point sets itself
_POINT_FIELDS = ("prune", "prune_options", "init_from", "validation_carve")


class Hopeless(SpikeshipError):
    """A point stopped by the hopeless-trial rule (accuracy below the floor)."""


@dataclass(frozen=True)
class Evaluation:
    """A deployed network on the evaluated split: accuracy of the Loihi emulator,
    ``correct`` per sample, effective operations per sample (synops + first-layer
    MACs), energy per sample on ``hardware`` (pJ, None when the chip prices nothing),
    cores and chips it maps to (None for a chip without a mapper)."""

    accuracy: float
    correct: np.ndarray
    ops: float
    energy_pj: float | None
    cores: int | None
    chips: int | None

    def cost(self, objective: str) -> float:
        """The value minimised for ``objective`` (``ops`` | ``energy`` | ``cores``)."""
        value = {"ops": self.ops, "energy": self.energy_pj, "cores": self.cores}[objective]
        if value is None:
            raise ConfigError(f"--objective {objective}: the chip prices no {objective}; "
                              f"choose another --hardware or objective")
        return float(value)

    def to_json(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "samples": int(self.correct.size),
                "ops": self.ops, "energy_pj": self.energy_pj, "cores": self.cores,
                "chips": self.chips}


def splits_named(pairs) -> list[str]:
    """``dataset:split`` of each distinct split in ``pairs`` (from
    :func:`spikeship.data.splits_read`): what a search or a pick read."""
    return sorted({f"{name}:{split}" for name, split in pairs})


def write_recipe(run: Path, path: Path) -> dict[str, Any]:
    """The dense recipe of ``run`` (its ``config.json``) written to ``path``."""
    cfg = read_json(run / "config.json", "run configuration", RunDirError)
    if cfg.get("prune", "none") != "none" or cfg.get("init_from"):
        raise ConfigError(f"{run} is a pruned (or initialised) run; give the dense run whose "
                          f"recipe the study trains (prune none, no init_from)")
    if cfg.get("validation_carve") is not None:
        raise ConfigError(f"{run} was trained on a validation carve; give a run of the "
                          f"whole training split")
    recipe = {k: v for k, v in cfg.items() if k not in _POINT_FIELDS}
    write_json_atomic(path, recipe)
    return recipe


def train_dense(out: Path, recipe_file: Path, carve: float | None, threads: int | None) -> None:
    """The dense run of the recipe (on the training split minus ``carve``), unless done."""
    if not (out / "summary.json").exists():
        train_run(out, {"validation_carve": carve}, config_file=recipe_file,
                  resume=(out / "checkpoint").exists(), threads=threads, progress=False,
                  quiet=True)


def train_point(out: Path, recipe_file: Path, budgets: Budgets, dense: Path,
                carve: float | None, threads: int | None, floor: float | None) -> None:
    """The pruned run of ``budgets`` from ``dense``; :class:`Hopeless` below ``floor``."""
    values = {"epochs": budgets.epochs, "prune": "dpap", "init_from": str(dense.resolve()),
              "validation_carve": carve}
    common = {"threads": threads, "progress": False, "quiet": True}
    check = CUT_EPOCH + 1
    if floor is None or budgets.epochs <= check:
        train_run(out, values, config_file=recipe_file,
                  prune_options=budgets.prune_options(), **common)
        return
    train_run(out, values, config_file=recipe_file, prune_options=budgets.prune_options(),
              stop_after=check, **common)
    acc = epoch_accuracy(out, check)
    if acc is not None and acc < floor:
        raise Hopeless(f"validation accuracy {100 * acc:.2f}% after epoch {check} (the first "
                       f"after the cut) is below the floor {100 * floor:.2f}%")
    train_run(out, {}, resume=True, **common)


def epoch_accuracy(run_dir: Path, epoch: int) -> float | None:
    """``test_accuracy`` of ``epoch`` in ``metrics.jsonl`` (None: not evaluated)."""
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("epoch") == epoch:
            return row.get("test_accuracy")
    return None


def deploy(run_dir: Path, hardware: str) -> Evaluation:
    """Export ``run_dir``, run the Loihi emulator on its evaluated split, price it."""
    export_run(run_dir, tuple(FORMATS), netx_optional=True)
    sim = simulate_run(run_dir, SIMULATOR)
    doc, _ = energy_run(run_dir, hardware=hardware, spikes_from=SIMULATOR, check_lava=False)
    cores = doc.get("cores", {}).get(hardware, {}).get("after_pruning")
    energy = (doc.get("energy_pj_per_sample", {}).get(hardware) or {}).get("total_pj")
    return Evaluation(accuracy=float(sim.accuracy), correct=sim.predictions == sim.labels,
                      ops=float(doc["totals_per_sample"]["ops_effective"]),
                      energy_pj=None if energy is None else float(energy),
                      cores=None if cores is None else int(cores["cores"]),
                      chips=None if cores is None else int(cores["chips"]))
