"""``energy.json`` of a run directory: counts, energy per chip, cores, vanish check.

:func:`estimate` reads only files: ``model.nir`` (the deployed graph), the
checkpoint's masks (the truth about what was pruned, and the original shapes),
``simulate-<target>.npz`` (spike counts) and the other deployed artifacts for the
vanish check. Layout of the document (DESIGN.md "Artifact contract")::

    hardware, spikes {source, kind, samples, timesteps, assumed_rate, label},
    layers [{layer, source_layer, kind, op, synops_effective, synops_dense,
             connections_deployed, connections_trained, connections_original,
             neuron_updates {total, active, idle}, spikes_out, energy_pj, ...}],
    totals_per_sample {synops_effective, synops_dense, macs_effective, ...,
                       dense_over_effective, energy_pj, energy_pj_dense},
    energy_pj_per_sample {chip: {...}}, ann_comparison, cores {loihi, loihi2},
    sources {chip: {figure: citation}}, notes, synops_neurobench {source, samples, ...},
    sample_sets {figures, headline, synops_neurobench, mixed, note}, vanish_check
"""

from __future__ import annotations

from pathlib import Path

from spikeship.errors import ConfigError, RuleError, RunDirError
from spikeship.io import write_json_atomic
from spikeship.energy import artifacts, lava_artifacts, neurobench_convention, vanish
from spikeship.energy.model import ann_comparison, price
from spikeship.energy.synops import SpikeCounts, SynopsReport, count_synops
from spikeship.nir.layers import meta
from spikeship.sim.registry import spike_sources
from spikeship.sim.result import SimResult
from spikeship.targets.registry import all_specs, get, get_spec, mapped_chips

def load_counts(run_dir: Path, graph, spikes_from: str | None,
                assume_rate: float | None) -> SpikeCounts:
    """The spike counts to price: a simulation's, or a stated firing-rate assumption."""
    if assume_rate is not None:
        return SpikeCounts.assumed(graph, assume_rate, _timesteps(graph))
    if spikes_from is not None:
        return SpikeCounts.from_result(SimResult.load(run_dir, spikes_from))
    for target in spike_sources():     # the registry's order: deployed fixed point first
        if (run_dir / f"simulate-{target}.npz").exists():
            return SpikeCounts.from_result(SimResult.load(run_dir, target))
    return SpikeCounts.assumed(graph, 1.0, _timesteps(graph))


def _timesteps(graph) -> int:
    t = int(meta(graph).get("timesteps") or 0)
    if t < 1:
        raise ConfigError("the graph's metadata has no 'timesteps'; simulate the run first")
    return t


def _layers_json(rep: SynopsReport, chip, trained: dict) -> list[dict]:
    pops = {p.name: p for p in rep.populations}
    energies = {l.layer: l for l in chip.layers}
    out, seen = [], set()
    for l in rep.layers:
        p = pops.get(l.postsynaptic) if l.postsynaptic not in seen else None
        if p is not None:
            seen.add(p.name)
        e = energies[l.layer]
        out.append({
            "layer": l.layer, "source_layer": l.source_layer, "kind": l.kind, "op": l.op,
            "presynaptic": l.presynaptic, "postsynaptic": l.postsynaptic,
            "presynaptic_events": l.presynaptic_events,
            "synops_effective": l.synops_effective, "synops_dense": l.synops_dense,
            "connections_deployed": l.connections_deployed,
            "connections_trained": trained.get(l.source_layer),
            "connections_original": l.connections_original,
            "synapse_instances_deployed": l.instances_deployed,
            "synapse_instances_original": l.instances_original,
            "neurons": None if p is None else p.neurons,
            "neurons_original": None if p is None else p.neurons_original,
            "neuron_updates": None if p is None else {
                "total": p.updates, "active": p.spikes, "idle": p.idle_updates},
            "spikes_out": None if p is None else p.spikes,
            "energy_pj": e.total_pj, "energy_pj_dense": e.dense_total_pj,
            "energy_breakdown_pj": {"synops": e.synops_pj, "macs": e.macs_pj,
                                    "neurons": e.neurons_pj, "routing": e.routing_pj,
                                    "macs_on_host": e.macs_on_host},
            "mask_source": l.mask_source, "original_known": l.original_known})
    return out


def _cores(graph, original_shapes) -> dict:
    out = {}
    for chip in mapped_chips():
        spec = get_spec(chip)
        map_graph = get(chip).load_mapper()
        d = {}
        for label, orig in (("before_pruning", True), ("after_pruning", False)):
            try:
                m = map_graph(graph, spec, original=orig, original_shapes=original_shapes)
            except (RuleError, ConfigError) as e:
                d[label] = {"error": str(e)}
                continue
            d[label] = {"cores": m.cores, "chips": m.chips(spec.limits),
                        "layers": [{"population": x.population, "layers": list(x.layers),
                                    "neurons": x.neurons, "synapses": x.synapses,
                                    "cores": x.cores, "limited_by": x.limit,
                                    "max_fan_in": x.max_fan_in, "max_fan_out": x.max_fan_out,
                                    "max_memory_bits": x.max_memory_bits}
                                   for x in m.layers]}
        d["sources"] = spec.sources_json()
        out[chip] = d
    return out


def run_vanish(run_dir: Path, graph, pruned: dict | None, include_lava: bool = True,
               allow_explicit_zeros: tuple[str, ...] = (), strict: bool = False
               ) -> vanish.VanishReport | None:
    """Check every deployed artifact of ``run_dir`` against the checkpoint's masks.

    ``allow_explicit_zeros``: formats whose explicit zeros are reported but do not fail
    the check (a user's choice, recorded in energy.json as ``tolerated``). Unless
    ``strict``, zeros a format cannot avoid storing while what is deployed is clean
    are tolerated too (:func:`spikeship.energy.vanish.unavoidable_zeros`).
    """
    if pruned is None:
        return None
    checks = [vanish.check_format("nir", artifacts.nir_layers(graph), pruned,
                                  "mask metadata = sparsity structure")]
    onnx_path = run_dir / "model.onnx"
    if onnx_path.exists():
        checks.append(vanish.check_format("onnx", artifacts.onnx_layers(onnx_path), pruned,
                                          "a dense initializer stores every entry; the "
                                          "coordinate form only the surviving ones"))
    else:
        checks.append(vanish.not_checked("onnx", "model.onnx not present"))
    checks += _lava_checks(run_dir, graph, pruned, include_lava)
    pops = artifacts.nir_populations(graph)
    for npz in sorted(run_dir.glob("simulate-*.npz")):
        target = npz.name[len("simulate-"):-len(".npz")]
        try:
            res = SimResult.load(run_dir, target)
        except RunDirError as e:
            checks.append(vanish.not_checked(f"fired:{target}", str(e)))
            continue
        checks.append(vanish.check_fired(f"fired:{target}", res.neuron_counts, pops, pruned))
    if not strict:
        checks = vanish.unavoidable_zeros(checks, pruned)
    allowed = set(allow_explicit_zeros)
    checks = [c.tolerate("explicit_zero") if c.format in allowed else c for c in checks]
    return vanish.summarise(checks, pruned)


def _lava_checks(run_dir: Path, graph, pruned: dict, include_lava: bool) -> list:
    """netx file and the built Lava processes (when the Lava target is available)."""
    return lava_artifacts.checks(run_dir, graph, pruned, include_lava)


def estimate(run_dir: str | Path, *, hardware: str = "loihi", spikes_from: str | None = None,
             assume_rate: float | None = None, check_lava: bool = True,
             allow_explicit_zeros: tuple[str, ...] = (), strict: bool = False
             ) -> tuple[dict, vanish.VanishReport | None]:
    """Build the ``energy.json`` document of ``run_dir`` (nothing is written)."""
    run_dir = Path(run_dir)
    chosen = get_spec(hardware)
    nir_path = run_dir / "model.nir"
    if not nir_path.exists():
        raise RunDirError(f"{nir_path} not found (run `spikeship export {run_dir}` first)")
    graph = artifacts.read_nir(nir_path)
    pruned = None
    if (run_dir / "checkpoint").exists() or (run_dir / "checkpoint.old").exists():
        pruned = vanish.pruned_layers_from_checkpoint(run_dir)
    original_shapes = {k: tuple(p.effective.shape) for k, p in (pruned or {}).items()}
    trained = {k: int(p.effective.sum()) for k, p in (pruned or {}).items()}
    counts = load_counts(run_dir, graph, spikes_from, assume_rate)
    rep = count_synops(graph, counts, original_shapes)
    specs = all_specs()
    chips = {name: price(rep, s) for name, s in specs.items()}
    ann = ann_comparison(rep)
    van = run_vanish(run_dir, graph, pruned, include_lava=check_lava,
                     allow_explicit_zeros=allow_explicit_zeros, strict=strict)
    e = chips[chosen.name]
    nbc = neurobench_convention.for_run(run_dir, graph, original_shapes)
    eff = rep.total("synops_effective")
    dense = rep.total("synops_dense")
    doc = {
        "hardware": chosen.name, "hardware_title": chosen.title,
        "spikes": {"source": counts.source, "kind": counts.kind, "samples": counts.samples,
                   "timesteps": counts.timesteps, "assumed_rate": counts.assumed_rate,
                   "label": ("counts from a simulation of the deployed graph"
                             if counts.kind == "simulation" else
                             f"ESTIMATE, not measured: {counts.source}")},
        "per": "sample",
        "layers": _layers_json(rep, e, trained),
        "totals_per_sample": {
            "synops_effective": rep.total("synops_effective", "AC"),
            "synops_dense": rep.total("synops_dense", "AC"),
            "macs_effective": rep.total("synops_effective", "MAC"),
            "macs_dense": rep.total("synops_dense", "MAC"),
            "ops_effective": eff, "ops_dense": dense,
            "dense_over_effective": dense / eff if eff else None,
            "neuron_updates": sum(p.updates for p in rep.populations),
            "neuron_updates_active": sum(p.spikes for p in rep.populations),
            "spikes_routed": rep.spikes_routed,
            "connections_deployed": sum(l.connections_deployed for l in rep.layers),
            "connections_original": sum(l.connections_original for l in rep.layers),
            "energy_pj": e.total_pj, "energy_pj_dense": e.dense_total_pj,
        },
        "energy_pj_per_sample": {n: c.to_json() for n, c in chips.items()},
        "ann_comparison": ann.to_json(chips),
        "cores": _cores(graph, original_shapes),
        "sources": {n: s.sources_json() for n, s in specs.items()},
        "definitions": {
            "synops_effective": "sum over presynaptic neurons of spikes x synapses present "
                                "in the deployed graph (per sample)",
            "synops_dense": "the same spikes on every synapse of the unpruned architecture",
            "op": "AC = spike-driven accumulate; MAC = graded (direct-encoded) input x weight",
            "neuron_updates.active": "updates in a step where the neuron fires (= spikes)",
            "spikes_routed": "spikes emitted by all populations (+ binary input events)"},
        "notes": list(rep.notes),
        "synops_neurobench": nbc,
        "sample_sets": sample_sets(counts, nbc),
        "vanish_check": ({"passed": None, "note": "no checkpoint: nothing to compare with"}
                         if van is None else {**van.to_json(), "summary": van.summary(),
                                              "strict": strict,
                                              "stored_zeros": {
                                                  f.format: vanish.stored_zeros(f, pruned)
                                                  for f in van.formats if f.checked
                                                  and not f.format.startswith("fired:")}}),
    }
    return doc, van


HEADLINE = ("layers", "totals_per_sample", "energy_pj_per_sample", "ann_comparison")


def sample_sets(counts: SpikeCounts, neurobench: dict) -> dict:
    """Which spikes (simulation and sample count) stand behind each figure of the file;
    ``mixed`` with a plain note when the neurobench block was counted on other spikes
    (only the reference records pooled values) than the headline figures."""
    head = {"source": counts.source, "kind": counts.kind, "samples": counts.samples,
            "timesteps": counts.timesteps}
    out = {"figures": {k: "headline" for k in HEADLINE}, "headline": head}
    if not neurobench.get("available"):
        return {**out, "mixed": False}
    nb = {"source": neurobench["source"], "kind": "simulation",
          "samples": neurobench["samples"]}
    out["figures"]["synops_neurobench"] = "synops_neurobench"
    out["synops_neurobench"] = nb
    mixed = (nb["source"], nb["samples"]) != (head["source"], head["samples"])
    out["mixed"] = mixed
    if mixed:
        out["note"] = (f"the headline figures count {head['source']} on {head['samples']} "
                       f"samples; synops_neurobench counts {nb['source']} on {nb['samples']} "
                       "samples: compare them per sample, not as one measurement")
    return out


def write_energy(run_dir: str | Path, doc: dict) -> Path:
    path = Path(run_dir) / "energy.json"
    write_json_atomic(path, doc)
    return path
