"""Train an SNN (or its ANN twin), optionally pruning while it learns (``spikeship train``).

The configuration is resolved in layers, later ones winning: the defaults of
:class:`~spikeship.train.config.TrainConfig`, the saved ``config.json`` of the run
(with ``--resume``), a ``--config`` file (TOML or JSON, same field names), then the
flags given on the command line. The resolved configuration is saved as
``OUT/config.json``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from spikeship import ranges
from spikeship.errors import ConfigError
from spikeship.io import write_json_atomic
from spikeship.safeopen import read_json
from spikeship.train import distributed as D
from spikeship.train.config import TrainConfig, load_config_file
from spikeship.train.launch import launch
from spikeship.train.trainer import train as run_training

# flag name -> TrainConfig field
_FLAGS = {
    "dataset": "dataset", "data_dir": "data_dir", "data_seed": "data_seed", "model": "model",
    "ann": "ann", "timesteps": "timesteps", "seed": "seed", "epochs": "epochs",
    "batch_size": "batch_size", "lr": "lr", "weight_decay": "weight_decay",
    "warmup_epochs": "warmup_epochs", "loss": "loss", "prune": "prune", "device": "device",
    "pool": "pool", "engine": "engine", "precision": "precision", "eval_every": "eval_every",
    "eval_batch_size": "eval_batch_size", "limit_train": "limit_train", "limit_test": "limit_test",
    "init_from": "init_from", "qat": "qat", "qat_epochs": "qat_epochs",
    "validation_carve": "validation_carve",
}


def resolve_config(values: dict, *, out: Path, resume: bool, config_file: Path | None,
                   prune_options: dict | None = None):
    """The :class:`TrainConfig` from saved run config, file, and the given flags."""
    d: dict = {}
    if resume:
        saved = out / "config.json"
        if saved.exists():
            try:
                d.update(read_json(saved, "run configuration", ConfigError))
            except (ValueError, TypeError) as e:
                raise ConfigError(f"{saved} is malformed: {e}") from e
    if config_file is not None:
        d.update(load_config_file(config_file))
    for flag, fieldname in _FLAGS.items():
        if values.get(flag) is not None:
            d[fieldname] = values[flag]
    if values.get("qat_epochs") is not None and values.get("qat") is None:
        d["qat"] = True                   # --qat-epochs N alone means --qat in the last N
    if prune_options:
        opts = dict(d.get("prune_options") or {})
        opts.update(prune_options)
        d["prune_options"] = opts
    source = str(config_file) if config_file is not None else "command line"
    return TrainConfig.from_mapping(d, source=source)


def train_run(out: str | Path, values: dict, *, prune_options: dict | None = None,
              resume: bool = False, baseline: str | Path | None = None,
              threads: int | None = None, progress: bool = True, quiet: bool = False,
              config_file: Path | None = None, stop_after: int | None = None, dist_timeout: float | None = None
              ) -> dict | None:
    """Train into ``out`` with the TrainConfig fields ``values`` (over ``config_file`` and,
    when resuming, the saved config); returns the summary (None if stopped early).

    Under a distributed launcher (``WORLD_SIZE`` > 1: ``--nproc`` or torchrun) this
    process joins the data-parallel run (:mod:`spikeship.train.distributed`) with a
    process-group timeout of ``dist_timeout`` seconds; only rank 0 writes and reports.
    ``progress``: a live bar on a terminal; ``quiet``: no log lines at all."""
    out = Path(out)
    timeout = _dist_timeout(dist_timeout)
    if threads is not None:
        torch.set_num_threads(ranges.threads(threads))
    config = resolve_config(values, out=out, resume=resume, config_file=config_file,
                            prune_options=prune_options)
    dp = D.init_from_env(config.device, timeout)
    try:
        summary = run_training(config, out, resume=resume,
                               baseline_dir=None if baseline is None else Path(baseline),
                               stop_after=stop_after, progress=progress and dp.writer,
                               quiet=quiet or not dp.writer, dp=dp)
        # every rank tears the process group down together: a rank that destroyed it and
        # exited while rank 0 was still writing its checkpoint and summary was sometimes
        # killed by SIGABRT in gloo's teardown ("terminate called without an active
        # exception"), so a finished run was reported as failed
        dp.barrier("barrier at the end of training")
        return summary
    finally:
        dp.close()


def _dist_timeout(value: float | None) -> float:
    timeout = D.DEFAULT_TIMEOUT_S if value is None else value
    if not timeout > 0:
        raise ConfigError(f"--dist-timeout must be > 0 seconds, got {value}")
    return float(timeout)


def launch_run(out: Path, values: dict, *, nproc: int, dist_timeout: float | None,
               resume: bool, baseline, threads, no_progress: bool, config_file,
               prune_options: dict | None, stop_after, oversubscribe: bool = False) -> None:
    """``--nproc N``: the resolved configuration goes to N workers as a JSON file (N at
    most the usable cores unless ``oversubscribe``)."""
    out = Path(out)
    timeout = _dist_timeout(dist_timeout)
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    config = resolve_config(values, out=out, resume=resume, config_file=config_file,
                            prune_options=prune_options)
    if nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    if config.batch_size < nproc:
        raise ConfigError(f"field 'batch_size': {config.batch_size} is smaller than --nproc "
                          f"{nproc}: every process needs a share of each batch")
    tmp = Path(tempfile.mkdtemp(prefix="spikeship-launch-"))
    try:
        cfg_file = tmp / "config.json"
        write_json_atomic(cfg_file, config.to_json())
        args = ["train", "--out", str(out), "--config", str(cfg_file),
                "--dist-timeout", str(timeout)]
        args += ["--resume"] if resume else []
        args += ["--baseline", str(baseline)] if baseline is not None else []
        args += ["--threads", str(threads)] if threads is not None else []
        args += ["--no-progress"] if no_progress else []
        args += ["--stop-after", str(stop_after)] if stop_after is not None else []
        launch(args, nproc, timeout, threads=threads, oversubscribe=oversubscribe)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
