"""Run a target on a run's test split (``spikeship simulate RUN_DIR --target NAME``).

Runs a registered target (:mod:`spikeship.sim.registry`) on the test split of the
run's dataset (the inputs the trainer feeds: direct images repeated over ``T``
steps, or event frames), compares its output spikes with the training-time model
(target ``snntorch``, cached as ``simulate-snntorch.*`` and recomputed when stale)
and writes ``simulate-<target>.json`` / ``.npz`` (:class:`SimResult`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeship.data import load_run_dataset, test_inputs
from spikeship.errors import ConfigError, RunDirError
from spikeship.runlock import RUN_KINDS, writes_run_dir
from spikeship.safeopen import read_json
from spikeship.sim import registry
from spikeship.sim.result import SimResult
from spikeship.train.checkpoint import load_checkpoint


def run_config(run_dir: Path) -> dict:
    """The resolved configuration of a run (``config.json``, else the checkpoint's)."""
    path = run_dir / "config.json"
    if path.exists():
        try:
            return read_json(path, "run configuration", RunDirError)
        except ValueError as e:
            raise RunDirError(f"{path} is not valid JSON: {e}") from e
    if (run_dir / "model.nir").is_file() and not any(
            (run_dir / d).exists() for d in ("checkpoint", "checkpoint.old")):
        raise RunDirError(f"{run_dir} holds a model.nir but no training run (no config.json, "
                          f"no checkpoint): run the file itself, `spikeship simulate "
                          f"{run_dir / 'model.nir'} --target ... --input X.npy`")
    return dict(load_checkpoint(run_dir).config)


def test_split(run_dir: Path, samples: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``samples`` test inputs (N, T, C, H, W) and labels of the run's dataset."""
    cfg = run_config(run_dir)
    if "dataset" not in cfg:
        raise RunDirError(f"{run_dir}: the configuration names no dataset")
    bundle = load_run_dataset(cfg)
    return test_inputs(bundle, limit=samples)


test_split.__test__ = False


def _fresh_baseline(run_dir: Path, labels: np.ndarray, shape: tuple) -> SimResult | None:
    npz = run_dir / "simulate-snntorch.npz"
    if not npz.exists():
        return None
    ck_meta = run_dir / "checkpoint" / "meta.json"
    if ck_meta.exists() and ck_meta.stat().st_mtime > npz.stat().st_mtime:
        return None
    try:
        base = SimResult.load(run_dir, "snntorch")
    except RunDirError:
        return None
    if base.output_spikes.shape != shape or base.labels is None \
            or not np.array_equal(base.labels, labels):
        return None
    return base


@writes_run_dir("run_dir", "simulate", accepts=RUN_KINDS)
def simulate_run(run_dir: str | Path, target: str, samples: int | None = None,
                 options: dict | None = None) -> SimResult:
    """Run ``target`` on the run's test split, compare with ``snntorch``, save; return it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"no run directory at {run_dir}")
    if samples is not None and samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {samples}")
    sim = registry.get(target)
    opts = sim.parse_options(options)          # refused before any data is loaded
    inputs, labels = test_split(run_dir, samples)
    result = sim.run(run_dir, inputs, labels, opts)
    if target == "snntorch":
        base = result
    else:
        base = _fresh_baseline(run_dir, labels, result.output_spikes.shape)
        if base is None:
            base = registry.get("snntorch").run(run_dir, inputs, labels, {})
            base.compare_to(base)
            base.save(run_dir)
    result.compare_to(base)
    result.save(run_dir)
    return result
