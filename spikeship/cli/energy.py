"""``spikeship energy``: the click shell over :func:`spikeship.energy`.

Exit code: 0 when the vanish check passes (or there is no checkpoint to compare
with), non-zero (:class:`~spikeship.errors.VanishCheckError`) when a pruned synapse
or unit is found in any deployed artifact; ``energy.json`` is written either way.
"""

from __future__ import annotations

from pathlib import Path

import click

from spikeship import api
from spikeship.cli._options import file_options
from spikeship.errors import VanishCheckError
from spikeship.sim.registry import names as simulator_names
from spikeship.targets.registry import CHIPS


def _fmt(x) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.1f}" if abs(x) < 1e6 else f"{x:.3e}"


@click.command("energy")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--hardware", type=click.Choice(sorted(CHIPS)), default="loihi", show_default=True,
              help="Chip whose figures price the per-layer energy (all chips are reported).")
@click.option("--spikes-from", type=click.Choice(simulator_names()), default=None,
              help="Simulation whose spike counts to use (default: the first present in "
                   "the simulators' spike-source order, deployed fixed point first; "
                   "`spikeship targets` shows it).")
@click.option("--assume-rate", type=float, default=None,
              help="No simulation: assume this firing rate per neuron per step (an estimate, "
                   "labelled as such; 1.0 is a true upper bound).")
@click.option("--no-lava-check", is_flag=True,
              help="Skip building the Lava processes for the vanish check.")
@click.option("--allow-explicit-zeros", "allow_zeros", multiple=True,
              type=click.Choice(["nir", "onnx", "netx", "netx-sparse", "lava-float", "lava-fixed"]),
              help="Report, but do not fail on, pruned synapses stored as explicit zeros in "
                   "this format (e.g. onnx: dense initializers). Repeatable.")
@click.option("--strict", is_flag=True,
              help="Fail on every pruned synapse stored as a zero, also where the format "
                   "cannot avoid it (netx's dense arrays when the network loaded sparse is "
                   "clean; taps inside conv kernels). Default: report those as stored zeros.")
@file_options
def energy(run_dir: Path, hardware: str, spikes_from: str | None, assume_rate: float | None,
           no_lava_check: bool, allow_zeros: tuple[str, ...], strict: bool, input_path,
           labels_path, dt_s, timesteps, convention, out) -> None:
    """Count synaptic operations of the deployed graph, price them per chip, map cores,
    and check that every pruned connection is gone from every deployed artifact. A model
    FILE (.nir, lava-dl .net) is simulated on --input first (--spikes-from, default
    reference)."""
    result = api.energy(run_dir, hardware=hardware, spikes_from=spikes_from,
                        assume_rate=assume_rate, check_lava=not no_lava_check,
                        allow_zeros=allow_zeros, strict=strict, fail_on_vanish=False,
                        input=input_path, labels=labels_path, dt_s=dt_s, timesteps=timesteps,
                        convention=convention, out=out)
    doc, path = result.document, result.path
    t = doc["totals_per_sample"]
    click.echo(f"spikes: {doc['spikes']['label']} ({doc['spikes']['source']}, "
               f"{doc['spikes']['samples']} samples)")
    for l in doc["layers"]:
        click.echo(f"  {l['layer']:>10} {l['op']:>3}  effective {_fmt(l['synops_effective'])}"
                   f"  dense {_fmt(l['synops_dense'])}  connections {l['connections_deployed']}"
                   f"/{l['connections_original']}  {_fmt(l['energy_pj'])} pJ")
    ratio = t["dense_over_effective"]
    click.echo(f"per sample: {_fmt(t['ops_effective'])} ops effective, {_fmt(t['ops_dense'])} "
               f"dense (x{ratio:.2f})" if ratio else "per sample: no operations")
    for name, c in doc["energy_pj_per_sample"].items():
        click.echo(f"  {name:>10}: {_fmt(c['total_pj'])} pJ (dense {_fmt(c['dense_total_pj'])})")
    for chip, d in doc["cores"].items():
        b, a = d["before_pruning"], d["after_pruning"]
        click.echo(f"  cores on {chip}: {b.get('cores', b.get('error'))} before, "
                   f"{a.get('cores', a.get('error'))} after pruning")
    vc = doc["vanish_check"]
    for fmt, z in (vc.get("stored_zeros") or {}).items():
        if z["explicit_zero"]:
            click.echo(f"  stored zeros in {fmt}: {z['explicit_zero']:,} pruned synapses kept as "
                       f"0 (conv {z['conv']:,} = {100 * z['conv_share']:.1f} % of the conv "
                       f"synapses it stores; fc {z['fc']:,})")
    click.echo(f"vanish check: {'PASSED' if vc['passed'] else 'not run' if vc['passed'] is None else 'FAILED'}"
               f" {vc.get('summary', vc.get('note', ''))}")
    click.echo(f"wrote {path}")
    if vc["passed"] is False:
        raise VanishCheckError(f"vanish check failed: {vc.get('summary', '')} "
                               f"(details in {path})")
