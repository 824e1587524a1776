"""``spikeship inspect``: the click shell over :func:`spikeship.inspect`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from spikeship import api


@click.command(name="inspect")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def inspect(file: Path, as_json: bool) -> None:
    """Show the layers, shapes, synapse counts and sparsity of FILE."""
    show(dict(api.inspect(file).document), as_json)


def show(d: dict, as_json: bool = False) -> None:
    """Print a file description (text, or JSON with ``as_json``)."""
    if as_json:
        click.echo(json.dumps(d, indent=2, default=str))
        return
    click.echo(f"{d['file']}  [{d['format']}]")
    for key in ("ir_version", "opset", "dt_s", "metadata", "ops"):
        if d.get(key) not in (None, {}, []):
            click.echo(f"{key}: {d[key]}")
    for r in d["layers"]:
        shape = (f"{r.get('in')} -> {r.get('out')}" if "in" in r else str(r.get("shape", "")))
        extra = ""
        if "synapses" in r:
            extra = (f"  weights {r['shape']} synapses {r['synapses']} nonzero {r['nonzero']} "
                     f"sparsity {r['sparsity']:.3f}")
        if "neurons" in r:
            extra += f"  neurons {r['neurons']}"
        if "value" in r:
            extra = f"  = {r['value']}"
        elif r["type"] == "array":
            extra = "  array"
        click.echo(f"  {r['name']:14s} {r['type']:10s} {shape}{extra}")
    if "importable" in d:
        click.echo(f"spikeship import: {'yes' if d['importable'] is True else d['importable']}")
    click.echo(f"total: synapses {d['synapses_total']}, nonzero {d['nonzero_total']}, "
               f"neurons {d['neurons_total']}, sparsity {d['sparsity']:.3f}")
