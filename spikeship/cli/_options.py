"""Options and parsing shared by several commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from spikeship.errors import OptionError
from spikeship.nir.conventions import CONVENTIONS


def file_options(f):
    """The click options of ``simulate FILE`` / ``energy FILE``
    (:mod:`spikeship.sim.standalone`)."""
    opts = [
        click.option("--input", "input_path", type=click.Path(dir_okay=False, path_type=Path),
                     default=None, help="FILE only: X.npy, (N, T, *input) or (N, *input) "
                     "with --timesteps."),
        click.option("--labels", "labels_path", type=click.Path(dir_okay=False, path_type=Path),
                     default=None, help="FILE only: Y.npy, (N,) integer labels."),
        click.option("--dt", "dt_s", type=float, default=None,
                     help="FILE only: seconds per step, for a graph without dt "
                          "(snnTorch's export: 1e-4)."),
        click.option("--timesteps", type=int, default=None,
                     help="FILE only: steps to repeat a static (N, *input) input."),
        click.option("--convention", type=click.Choice(CONVENTIONS), default=None,
                     help="FILE only: the producer whose meaning the .nir file carries "
                          "(default nir; docs/producers.md)."),
        click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path),
                     default=None, help="FILE only: output directory (default FILE.spikeship)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def parse_options(items: tuple[str, ...]) -> dict[str, Any]:
    """``--option KEY=VALUE`` pairs; a value is read as JSON when it parses."""
    out = {}
    for item in items:
        if "=" not in item:
            raise OptionError(f"--option must be key=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except ValueError:
            out[k.strip()] = v
    return out
