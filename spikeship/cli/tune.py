"""``spikeship tune``: the click shell over :func:`spikeship.tune`."""

from __future__ import annotations

from pathlib import Path

import click

from spikeship import api
from spikeship.errors import ConfigError


def _range(ctx, param, value: str) -> tuple[int, int]:
    lo, sep, hi = value.partition("-")
    try:
        return (int(lo), int(hi if sep else lo))
    except ValueError:
        raise click.BadParameter(f"expected LOW-HIGH epochs, got {value!r}", ctx, param) from None


@click.command("tune")
@click.argument("run", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Study folder (study.db, dense/, trials/, pareto.json/.md/.png).")
@click.option("--trials", type=int, default=40, show_default=True,
              help="Finished (complete or stopped) trials the study runs to, all workers.")
@click.option("--objective", default="ops", show_default=True,
              help="What is minimised beside maximising accuracy: ops | energy | cores.")
@click.option("--hardware", default="loihi", show_default=True,
              help="Chip that prices energy and maps cores; the network must fit on one.")
@click.option("--max-cores", type=int, default=None,
              help="Constraint: at most this many cores (default: one chip's).")
@click.option("--storage", default=None,
              help="Optuna RDB URL shared by workers (default sqlite:///OUT/study.db).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the TPE sampler (worker slot k uses seed + k).")
@click.option("--validation", "carve", type=float, default=0.2, show_default=True,
              help="Share of the training split carved out to validate on.")
@click.option("--epochs", callback=_range, default="5-30", show_default=True,
              help="Range of a pruned run's length: the cut epoch plus fine-tuning.")
@click.option("--floor", type=float, default=0.0, show_default=True,
              help="Stop a trial whose accuracy after its first fine-tuning epoch is "
                   "below FLOOR x the dense run's (0: never; see spikeship.tune.trial).")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--resume", is_flag=True, help="Continue the study (or join it as a worker).")
@click.option("--pick", default=None, metavar="EXPR",
              help="Retrain the front point EXPR picks (e.g. 'max accuracy with ops <= "
                   "0.2*dense', 'ops>=5x,drop<=0.3') on the whole training split and test it.")
@click.option("--pick-seed", type=int, default=None,
              help="Seed of the --pick retraining (default: the recipe's).")
def tune(run, out, trials, objective, hardware, max_cores, storage, seed, carve, epochs, floor,
         threads, resume, pick, pick_seed):
    """Search a pruner's per-layer budgets for RUN's recipe: a Pareto front of validation
    accuracy against deployed operations (or energy, cores), on Optuna."""
    if epochs[0] > epochs[1]:
        raise ConfigError(f"--epochs {epochs[0]}-{epochs[1]}: low above high")
    result = api.tune(run, out, trials=trials, objective=objective, hardware=hardware,
                      max_cores=max_cores, storage=storage, seed=seed, carve=carve,
                      epochs=epochs, floor=floor or None, threads=threads, resume=resume,
                      pick=pick, pick_seed=pick_seed, progress=click.echo)
    click.echo(f"study in {result.out}: pareto.json, pareto.md, pareto.png")
