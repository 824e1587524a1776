"""``spikeship targets [--json]``: the registered simulators (artifact, options with
types and defaults, capabilities) and chips (spec, mapper, file formats)."""

from __future__ import annotations

import json

import click

from spikeship.sim.catalog import describe


@click.command(name="targets")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def targets(as_json: bool) -> None:
    """List the simulators (options, capabilities) and the chips."""
    doc = describe()
    if as_json:
        click.echo(json.dumps(doc, indent=2, default=str))
        return
    click.echo("simulators (spikeship simulate RUN --target NAME [--option KEY=VALUE]):")
    for s in doc["simulators"]:
        c = s["capabilities"]
        caps = [*c["precision"], *(["recurrent"] if c["recurrent"] else []),
                *(["conv"] if c["conv"] else []),
                *(["per-neuron tau"] if c["per_neuron_tau"] else []), *c["devices"]]
        click.echo(f"  {s['name']:<11} reads {s['artifact']:<11} {s['summary']}")
        click.echo(f"  {'':<11} capabilities: {', '.join(caps)}")
        for o in s["options"]:
            click.echo(f"  {'':<11}   {o['name']}: {o['type']} = {o['default']!r}"
                       + (f"  ({o['help']})" if o["help"] else ""))
    click.echo(f"spike sources of `spikeship energy`, in order: "
               f"{', '.join(doc['spike_source_order'])}")
    click.echo("chips (spikeship energy --hardware NAME):")
    for h in doc["chips"]:
        extra = [*(["core mapper"] if h["core_mapper"] else []),
                 *(f"writes {f}" for f in h["formats"])]
        click.echo(f"  {h['name']:<11} {h['title']}" + (f"  [{', '.join(extra)}]" if extra else ""))
