"""``spikeship train``: the click shell over :func:`spikeship.train`.

The configuration is resolved in layers, later ones winning: the defaults of
:class:`~spikeship.train.config.TrainConfig`, the saved ``config.json`` of the run
(with ``--resume``), a ``--config`` file (TOML or JSON, same field names), then the
flags given on the command line. The resolved configuration is saved as
``OUT/config.json``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from spikeship import api
from spikeship.data import DATASETS
from spikeship.train.config import parse_prune_option
from spikeship.train.distributed import distributed_env
from spikeship.train.models import PRESETS
from spikeship.train.pruners import PRUNERS


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
@click.option("--oversubscribe", is_flag=True,
              help="Allow --nproc above the CPU cores this process may use (refused "
                   "otherwise: each worker holds a model and the data).")
@click.option("--dist-timeout", type=float, default=None,
              help="Seconds a data-parallel worker waits for a peer before stopping with an "
                   "error (default 120).")
def train(out, config_file, prune_opts, resume, baseline, threads, no_progress, stop_after,
          nproc, oversubscribe, dist_timeout, **values):
    """Train an SNN (or with --ann its ANN twin) on local data, optionally pruning."""
    result = api.train(out, config_file=config_file,
                       prune_options=dict(parse_prune_option(t) for t in prune_opts),
                       resume=resume, baseline=baseline, threads=threads, nproc=nproc,
                       oversubscribe=oversubscribe,
                       dist_timeout=dist_timeout, stop_after=stop_after, progress=_log,
                       progress_bar=not no_progress, **values)
    if result.launched:
        return                                          # the workers reported
    if distributed_env():
        if int(os.environ.get("RANK", "0")) == 0:
            _report(result.summary, out, stop_after)    # rank 0 reports
        # A finished data-parallel worker leaves at once: in interpreter shutdown, after
        # the process group was destroyed, gloo / torch.distributed threads sometimes
        # abort the process ("terminate called without an active exception", SIGABRT;
        # seen in ~1 of 40 two-rank runs), which would report a finished run as failed.
        # Every file is written (atomically) and the run lock released by now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    _report(result.summary, out, stop_after)


def _log(line: str) -> None:
    click.echo(line, err=True)


def _report(summary: Mapping[str, Any] | None, out, stop_after) -> None:
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
