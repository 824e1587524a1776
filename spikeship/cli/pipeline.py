"""``spikeship pipeline``: the click shell over :func:`spikeship.pipeline`."""

from __future__ import annotations

import time
from pathlib import Path

import click

from spikeship import api
from spikeship.data import DATASETS
from spikeship.pipeline.config import TARGETS_DEFAULT, pipeline_config
from spikeship.sim.registry import SIMULATORS
from spikeship.train.models import PRESETS
from spikeship.train.pruners import PRUNERS


def _check_targets(ctx, param, value: str | None) -> str | None:
    if value is not None:
        bad = [t.strip() for t in value.split(",") if t.strip() not in SIMULATORS]
        if bad:
            raise click.BadParameter(f"unknown simulator(s) {bad}; choose from "
                                     f"{', '.join(SIMULATORS)}", ctx, param)
    return value


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
    log = api.pipeline(cfg, progress=click.echo).stages
    ran = sum(1 for _, how, _ in log if how == "ran")
    click.echo(f"pipeline: {ran} stage(s) ran, {len(log) - ran} skipped, "
               f"{time.perf_counter() - t0:.1f} s; report: {Path(cfg.out) / 'report.html'}")
