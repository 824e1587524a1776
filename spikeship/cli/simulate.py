"""``spikeship simulate``: the click shell over :func:`spikeship.simulate`."""

from __future__ import annotations

from pathlib import Path

import click

from spikeship import api
from spikeship.cli._options import file_options, parse_options
from spikeship.sim.registry import names as simulator_names


@click.command(name="simulate")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--target", required=True, type=click.Choice(simulator_names()),
              help="Simulator (`spikeship targets` lists their options and capabilities).")
@click.option("--samples", type=int, default=None, help="First N test samples (default: all).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Simulator option, e.g. dtype=float32 (repeatable; `spikeship targets` "
                   "lists each simulator's options, types and defaults).")
@file_options
def simulate(run_dir: Path, target: str, samples: int | None, options: tuple[str, ...],
             input_path, labels_path, dt_s, timesteps, convention, out) -> None:
    """Run RUN_DIR's exported graph on a target and compare with the trained model, or run
    a model FILE (.nir, lava-dl .net) on --input and compare with the reference."""
    sim = api.simulate(run_dir, target, samples=samples, options=parse_options(options),
                       input=input_path, labels=labels_path, dt_s=dt_s, timesteps=timesteps,
                       convention=convention, out=out)
    r, a = sim.result, sim.result.agreement or {}
    acc = "n/a" if r.accuracy is None else f"{r.accuracy:.4f}"
    click.echo(f"{r.target}: {r.samples} samples, accuracy {acc}, wall {r.wall_time_s:.2f} s")
    click.echo(f"agreement with {sim.compared_with}: spikes {a.get('spikes', float('nan')):.6f} "
               f"({a.get('spikes_differing')} differ), predictions "
               f"{a.get('predictions', float('nan')):.6f} ({a.get('predictions_differing')} differ)")
    click.echo(f"wrote {sim.run_dir / f'simulate-{r.target}.json'}")
