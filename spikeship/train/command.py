"""``spikeship train``: train an SNN (or its ANN twin), optionally pruning while it learns.

The configuration is resolved in layers, later ones winning: the defaults of
:class:`~spikeship.train.config.TrainConfig`, the saved ``config.json`` of the run
(with ``--resume``), a ``--config`` file (TOML or JSON, same field names), then the
flags given on the command line. The resolved configuration is saved as
``OUT/config.json``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from spikeship.data import DATASETS
from spikeship.errors import ConfigError
from spikeship.train.models import PRESETS
from spikeship.train.pruners import PRUNERS

# flag name -> TrainConfig field
_FLAGS = {
    "dataset": "dataset", "data_dir": "data_dir", "data_seed": "data_seed", "model": "model",
    "ann": "ann", "timesteps": "timesteps", "seed": "seed", "epochs": "epochs",
    "batch_size": "batch_size", "lr": "lr", "weight_decay": "weight_decay",
    "warmup_epochs": "warmup_epochs", "loss": "loss", "prune": "prune", "device": "device",
    "pool": "pool", "engine": "engine", "precision": "precision", "eval_every": "eval_every",
    "eval_batch_size": "eval_batch_size", "limit_train": "limit_train", "limit_test": "limit_test",
    "init_from": "init_from", "qat": "qat", "qat_epochs": "qat_epochs",
}


def resolve_config(values: dict, *, out: Path, resume: bool, config_file: Path | None,
                   prune_opts: tuple[str, ...] = (), prune_options: dict | None = None):
    """The :class:`TrainConfig` from saved run config, file, and the given flags."""
    from spikeship.safeopen import read_json
    from spikeship.train.config import TrainConfig, load_config_file, parse_prune_option

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
    if prune_opts or prune_options:
        opts = dict(d.get("prune_options") or {})
        opts.update(prune_options or {})
        opts.update(parse_prune_option(t) for t in prune_opts)
        d["prune_options"] = opts
    source = str(config_file) if config_file is not None else "command line"
    return TrainConfig.from_mapping(d, source=source)


def train_run(out: str | Path, values: dict, *, prune_options: dict | None = None,
              resume: bool = False, baseline: str | Path | None = None,
              threads: int | None = None, progress: bool = True,
              config_file: Path | None = None, prune_opts: tuple[str, ...] = (),
              stop_after: int | None = None, dist_timeout: float | None = None
              ) -> dict | None:
    """Train into ``out`` with the TrainConfig fields ``values`` (over ``config_file`` and,
    when resuming, the saved config); returns the summary (None if stopped early).

    Under a distributed launcher (``WORLD_SIZE`` > 1: ``--nproc`` or torchrun) this
    process joins the data-parallel run (:mod:`spikeship.train.distributed`) with a
    process-group timeout of ``dist_timeout`` seconds; only rank 0 writes and reports."""
    import torch

    from spikeship.train import distributed as D
    from spikeship.train.trainer import train as run_training

    out = Path(out)
    timeout = _dist_timeout(dist_timeout)
    if threads is not None:
        from spikeship import ranges

        torch.set_num_threads(ranges.threads(threads))
    config = resolve_config(values, out=out, resume=resume, config_file=config_file,
                            prune_opts=prune_opts, prune_options=prune_options)
    dp = D.init_from_env(config.device, timeout)
    try:
        summary = run_training(config, out, resume=resume,
                               baseline_dir=None if baseline is None else Path(baseline),
                               stop_after=stop_after, progress=progress and dp.writer,
                               quiet=not dp.writer, dp=dp)
        # every rank tears the process group down together: a rank that destroyed it and
        # exited while rank 0 was still writing its checkpoint and summary was sometimes
        # killed by SIGABRT in gloo's teardown ("terminate called without an active
        # exception"), so a finished run was reported as failed
        dp.barrier("barrier at the end of training")
        return summary
    finally:
        dp.close()


def _dist_timeout(value: float | None) -> float:
    from spikeship.train.distributed import DEFAULT_TIMEOUT_S

    timeout = DEFAULT_TIMEOUT_S if value is None else value
    if not timeout > 0:
        raise ConfigError(f"--dist-timeout must be > 0 seconds, got {value}")
    return float(timeout)


@click.command("train")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Run directory (config.json, metrics.jsonl, summary.json, checkpoint/).")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="TOML or JSON file with TrainConfig fields (flags override it).")
@click.option("--dataset", type=click.Choice(list(DATASETS)), default=None,
              help="Dataset (default digits).")
@click.option("--data-dir", default=None, help="Where the dataset files are (or the cache).")
@click.option("--data-seed", type=int, default=None,
              help="Seed of the digits split, sensor noise and --limit-* subsets (default 0).")
@click.option("--limit-train", type=int, default=None, metavar="N",
              help="Train on a stratified subset of N samples (seeded by --data-seed).")
@click.option("--limit-test", type=int, default=None, metavar="N",
              help="Test on a stratified subset of N samples (default: the full test split).")
@click.option("--model", type=click.Choice(list(PRESETS)), default=None,
              help="Model preset (default dpap-mnist).")
@click.option("--ann/--snn", "ann", default=None, help="Train the ANN twin (ReLU, no time).")
@click.option("--pool", default=None, help="Pooling of conv blocks: avg | max.")
@click.option("--epochs", type=int, default=None,
              help="Epochs (default 20; a pruner may ask for more: dpap's default 50).")
@click.option("--timesteps", type=int, default=None, help="Time steps T per sample (default 8).")
@click.option("--seed", type=int, default=None, help="Seed of weights and shuffling (default 0).")
@click.option("--batch-size", type=int, default=None, help="Batch size (default 32).")
@click.option("--lr", type=float, default=None, help="Peak learning rate of AdamW + cosine "
                                                 "(default 2e-3 SNN, 1e-2 ANN).")
@click.option("--weight-decay", type=float, default=None, help="AdamW (default 0.01).")
@click.option("--warmup-epochs", type=int, default=None, help="Linear warm-up (default 1).")
@click.option("--loss", default=None, help="mse_rate (SNN default, Eq 3) | ce_rate | ce_mem | ce.")
@click.option("--prune", type=click.Choice(list(PRUNERS)), default=None,
              help="Pruner (default none).")
@click.option("--prune-opt", "prune_opts", multiple=True, metavar="KEY=VALUE",
              help="Pruner option (repeatable); the value is read as JSON when it parses.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
@click.option("--device", default=None, help="cpu (default) | cuda | auto.")
@click.option("--engine", default=None,
              help="fast (default: T steps folded into the batch, fused LIF) | snntorch "
                   "(the reference, one step at a time); same spikes, same checkpoints.")
@click.option("--precision", default=None,
              help="fp32 (default) | bf16 (autocast of conv/linear, LIF kept in fp32).")
@click.option("--qat/--no-qat", default=None,
              help="Quantisation-aware training for Loihi: each on-chip layer's weights are "
                   "rounded in the forward pass to the 8-bit grid the quantiser uses "
                   "(straight-through gradients), and the final weights are put on it. "
                   "--qat: every epoch; --no-qat: never. Default for an SNN: the last 5 "
                   "epochs (see --qat-epochs); for an ANN: off.")
@click.option("--qat-epochs", "qat_epochs", type=int, default=None, metavar="N",
              help="Quantisation-aware training only in the last N epochs (implies --qat; "
                   "0: every epoch). The SNN default is 5: the run trains in float, then "
                   "fine-tunes on the chip's grid.")
@click.option("--eval-every", type=int, default=None,
              help="Test pass every K epochs and after the last (default 1).")
@click.option("--eval-batch-size", type=int, default=None,
              help="Test batch (default: 64 with the fast engine, 256 with snntorch).")
@click.option("--init-from", "init_from", default=None, metavar="RUN",
              callback=lambda ctx, param, v: None if v is None else os.path.abspath(v),
              help="Start from the weights (and masks) of a trained run with the same model "
                   "and input, e.g. prune a trained dense network and fine-tune it; the "
                   "learning-rate schedule starts again (warm-up, cosine).")
@click.option("--baseline", type=click.Path(path_type=Path), default=None,
              help="Dense run directory to compare with (summary: epochs_to_baseline).")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--no-progress", is_flag=True, help="No progress bar (one line per epoch).")
@click.option("--stop-after", type=int, default=None, hidden=True,
              help="Stop after this epoch, as an interruption would (tests).")
@click.option("--nproc", type=int, default=None,
              help="Data-parallel training in N local processes (gloo on CPU, NCCL on CUDA); "
                   "the global batch stays --batch-size. Under torchrun, leave it out.")
@click.option("--dist-timeout", type=float, default=None,
              help="Seconds a data-parallel worker waits for a peer before stopping with an "
                   "error (default 120).")
def train(out, config_file, prune_opts, resume, baseline, threads, no_progress, stop_after,
          nproc, dist_timeout, **values):
    """Train an SNN (or with --ann its ANN twin) on local data, optionally pruning."""
    from spikeship.train import distributed as D

    if nproc is not None and D.distributed_env():
        raise ConfigError("--nproc inside a distributed launch (WORLD_SIZE is set): "
                          "let torchrun start the processes and leave out --nproc")
    if nproc is not None and nproc != 1:
        _launch(out, values, nproc=nproc, dist_timeout=dist_timeout, resume=resume,
                baseline=baseline, threads=threads, no_progress=no_progress,
                config_file=config_file, prune_opts=prune_opts, stop_after=stop_after)
        return
    summary = train_run(out, values, resume=resume, baseline=baseline, threads=threads,
                        progress=not no_progress, config_file=config_file,
                        prune_opts=prune_opts, stop_after=stop_after, dist_timeout=dist_timeout)
    if D.distributed_env():
        if int(os.environ.get("RANK", "0")) == 0:
            _report(summary, out, stop_after)           # rank 0 reports
        # A finished data-parallel worker leaves at once: in interpreter shutdown, after
        # the process group was destroyed, gloo / torch.distributed threads sometimes
        # abort the process ("terminate called without an active exception", SIGABRT;
        # seen in ~1 of 40 two-rank runs), which would report a finished run as failed.
        # Every file is written (atomically) and the run lock released by now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    _report(summary, out, stop_after)


def _report(summary: dict | None, out, stop_after) -> None:
    if summary:
        base = summary["dense_baseline_accuracy"]
        reached = summary["epochs_to_baseline"]
        extra = "" if base is None else (
            f", dense baseline {100 * base:.2f}% "
            + ("(not reached)" if reached is None else f"(reached at epoch {reached})"))
        click.echo(f"{summary['model']}{' (ANN)' if summary['ann'] else ''} on "
                   f"{summary['dataset']}: test accuracy {100 * summary['test_accuracy']:.2f}% "
                   f"after {summary['epochs']} epochs, {100 * summary['pruning_rate']:.1f}% "
                   f"pruned{extra}; run in {out}")
    else:
        click.echo(f"stopped after epoch {stop_after}; continue with --resume --out {out}")


def _launch(out: Path, values: dict, *, nproc: int, dist_timeout: float | None, resume: bool,
            baseline, threads, no_progress: bool, config_file, prune_opts, stop_after) -> None:
    """``--nproc N``: the resolved configuration goes to N workers as a JSON file."""
    import shutil
    import tempfile

    from spikeship.io import write_json_atomic
    from spikeship.train.launch import launch

    out = Path(out)
    timeout = _dist_timeout(dist_timeout)
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    config = resolve_config(values, out=out, resume=resume, config_file=config_file,
                            prune_opts=prune_opts)
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
        launch(args, nproc, timeout, threads=threads)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
