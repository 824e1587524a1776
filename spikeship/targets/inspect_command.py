"""``spikeship inspect FILE``: NIR and ONNX files as :mod:`spikeship.export.inspect_command`
describes them; lava-dl netx files per netx layer, with neurons, synapses and whether
spikeship can import them (:mod:`spikeship.targets.loihi.netx_describe`)."""

from __future__ import annotations

from pathlib import Path

import click

from spikeship.export import inspect_command as base


def describe_file(path: str | Path) -> dict:
    """A dict describing ``path``: netx files by their layers, the rest as the base does."""
    from spikeship.targets.loihi.netx_describe import describe

    path = Path(path)
    if path.exists() and path.suffix.lower() in (".net", ".h5", ".hdf5"):
        return describe(path)
    return base.describe_file(path)


@click.command(name="inspect")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def inspect(file: Path, as_json: bool) -> None:
    """Show the layers, shapes, synapse counts and sparsity of FILE."""
    base.show(describe_file(file), as_json)
