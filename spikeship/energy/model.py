"""Energy per chip from synaptic operations, neuron updates and routed spikes.

For a synaptic layer ``l`` and the neuron population ``P`` it feeds, per sample::

    E_syn(l)    = AC(l) * e_synop            (spike-driven accumulates)
                + MAC(l) * e_mac             (graded first layer; a chip without a
                                              multiplier runs it on the host: cmos45)
    E_neuron(P) = spikes(P) * e_active + (N_P * T - spikes(P)) * e_idle
    E_route(P)  = spikes(P) * e_route        (+ input events, binary input, on the
                                              first layer)
    E(l)        = E_syn(l) + E_neuron(P) + E_route(P)

The *dense* estimate prices the same spikes on the unpruned wiring (``synops_dense``)
and the unpruned population (removed neurons idle at every step:
``(N0_P * T - spikes) * e_idle``). A term whose figure the chip's publications do
not give is left out and named in ``unpriced``; a chip without a published energy
per synaptic operation (Loihi 2) is not priced at all: ``total_pj = None``.

ANN comparison (Horowitz 2014, 45 nm): the same network as an ANN computes every
synapse once per inference, ``MACs = sum_l instances(l)`` (unrolled synapses that
read a real input element: padding taps excluded), priced at ``e_mac``; for the
unpruned (``instances_original``) and pruned (``instances_deployed``) wiring.
The SNN on the same process pays one add per synaptic operation.
"""

from __future__ import annotations

from dataclasses import dataclass

from spikeship.energy.synops import SynopsReport
from spikeship.targets.registry import get_spec
from spikeship.targets.specs import ChipSpec


@dataclass(frozen=True)
class LayerEnergy:
    """Energy of one synaptic layer and the population it feeds, per sample (pJ)."""

    layer: str
    synops_pj: float | None
    macs_pj: float | None
    neurons_pj: float | None
    routing_pj: float | None
    total_pj: float | None
    dense_total_pj: float | None
    macs_on_host: bool


@dataclass(frozen=True)
class ChipEnergy:
    """Energy of a whole run on one chip, per sample (pJ)."""

    chip: str
    title: str
    layers: tuple[LayerEnergy, ...]
    total_pj: float | None
    dense_total_pj: float | None
    priced: tuple[str, ...]
    unpriced: tuple[str, ...]
    notes: tuple[str, ...]

    def to_json(self) -> dict:
        return {"chip": self.chip, "title": self.title, "total_pj": self.total_pj,
                "dense_total_pj": self.dense_total_pj,
                "dense_over_effective": _ratio(self.dense_total_pj, self.total_pj),
                "priced": list(self.priced), "unpriced": list(self.unpriced),
                "notes": list(self.notes),
                "layers": {l.layer: {"synops_pj": l.synops_pj, "macs_pj": l.macs_pj,
                                     "neurons_pj": l.neurons_pj, "routing_pj": l.routing_pj,
                                     "total_pj": l.total_pj, "dense_total_pj": l.dense_total_pj,
                                     "macs_on_host": l.macs_on_host}
                           for l in self.layers}}


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _mul(n: float, e: float | None) -> float | None:
    return None if e is None else n * e


def _add(*xs: float | None) -> float | None:
    vals = [x for x in xs if x is not None]
    return float(sum(vals)) if vals else None


def price(report: SynopsReport, spec: ChipSpec, host: ChipSpec | None = None) -> ChipEnergy:
    """Energy of ``report`` on ``spec`` (graded-input MACs on ``host``, default cmos45)."""
    host = host or get_spec("cmos45")
    e = spec.energy
    if e.synop_pj is None:
        note = e.note or "no published energy per synaptic operation"
        return ChipEnergy(chip=spec.name, title=spec.title,
                          layers=tuple(LayerEnergy(l.layer, None, None, None, None, None, None,
                                                   False) for l in report.layers),
                          total_pj=None, dense_total_pj=None, priced=(),
                          unpriced=("synaptic operations", "neuron updates", "spike routing"),
                          notes=(f"not priced: {note}",))
    mac_pj, on_host = (e.mac_pj, False) if e.mac_pj is not None else (host.energy.mac_pj, True)
    pops = {p.name: p for p in report.populations}
    seen_pops: set[str] = set()
    layers = []
    unpriced: set[str] = set()
    notes = [e.note] if e.note else []
    for l in report.layers:
        ac = l.op == "AC"
        syn = _mul(l.synops_effective, e.synop_pj) if ac else None
        syn_d = _mul(l.synops_dense, e.synop_pj) if ac else None
        mac = None if ac else _mul(l.synops_effective, mac_pj)
        mac_d = None if ac else _mul(l.synops_dense, mac_pj)
        if ac and e.synop_pj is None:
            unpriced.add("synaptic operations")
        if not ac and on_host:
            notes.append(f"{l.layer}: graded-input MACs priced on the host ({host.title})")
        neu = neu_d = route = None
        p = pops.get(l.postsynaptic) if l.postsynaptic else None
        if p is not None and p.name not in seen_pops:
            seen_pops.add(p.name)
            idle_d = p.neurons_original * report.timesteps - p.spikes
            neu = _add(_mul(p.spikes, e.neuron_update_active_pj),
                       _mul(p.idle_updates, e.neuron_update_idle_pj))
            neu_d = _add(_mul(p.spikes, e.neuron_update_active_pj),
                         _mul(idle_d, e.neuron_update_idle_pj))
            if e.neuron_update_active_pj is None or e.neuron_update_idle_pj is None:
                unpriced.add("neuron updates")
            events = p.spikes + (report.input_events if l.presynaptic in _inputs(report) else 0)
            route = _mul(events, e.spike_route_pj)
            if e.spike_route_pj is None:
                unpriced.add("spike routing")
        total = _add(syn, mac, neu, route)
        dense = _add(syn_d, mac_d, neu_d, route)
        layers.append(LayerEnergy(layer=l.layer, synops_pj=syn, macs_pj=mac, neurons_pj=neu,
                                  routing_pj=route, total_pj=total, dense_total_pj=dense,
                                  macs_on_host=(not ac) and on_host))
    priced = [n for n, v in (("synaptic operations", e.synop_pj),
                             ("neuron updates", e.neuron_update_active_pj),
                             ("spike routing", e.spike_route_pj)) if v is not None]
    if e.spike_hop_pj is not None:
        notes.append(f"tile-to-tile hops ({e.spike_hop_pj} pJ each) not included: "
                     f"placement is not modelled")
    return ChipEnergy(chip=spec.name, title=spec.title, layers=tuple(layers),
                      total_pj=_add(*(x.total_pj for x in layers)),
                      dense_total_pj=_add(*(x.dense_total_pj for x in layers)),
                      priced=tuple(priced), unpriced=tuple(sorted(unpriced)),
                      notes=tuple(dict.fromkeys(notes)))


def _inputs(report: SynopsReport) -> set[str]:
    pops = {p.name for p in report.populations}
    return {l.presynaptic for l in report.layers if l.presynaptic not in pops}


@dataclass(frozen=True)
class AnnComparison:
    """The same network as an ANN on 45 nm CMOS vs the SNN, per sample."""

    ann_dense_macs: int
    ann_pruned_macs: int
    ann_dense_pj: float
    ann_pruned_pj: float
    snn_cmos45_pj: float           # the SNN's ops on the same process (adds + host MACs)

    def to_json(self, chips: dict[str, ChipEnergy]) -> dict:
        d = {"process": "45 nm CMOS, FP32 (Horowitz 2014)",
             "ann_dense_macs": self.ann_dense_macs, "ann_pruned_macs": self.ann_pruned_macs,
             "ann_dense_pj": self.ann_dense_pj, "ann_pruned_pj": self.ann_pruned_pj,
             "snn_on_cmos45_pj": self.snn_cmos45_pj,
             "ann_dense_over_snn_cmos45": _ratio(self.ann_dense_pj, self.snn_cmos45_pj),
             "ann_dense_over_chip": {}}
        for name, c in chips.items():
            d["ann_dense_over_chip"][name] = _ratio(self.ann_dense_pj, c.total_pj)
        return d


def ann_comparison(report: SynopsReport, cmos: ChipSpec | None = None) -> AnnComparison:
    """ANN MACs of the unpruned and pruned wiring, and the SNN's cost on the same process."""
    cmos = cmos or get_spec("cmos45")
    mac, add = cmos.energy.mac_pj, cmos.energy.add_pj
    dense = sum(l.instances_original for l in report.layers)
    pruned = sum(l.instances_deployed for l in report.layers)
    snn = report.total("synops_effective", "AC") * add + \
        report.total("synops_effective", "MAC") * mac
    return AnnComparison(ann_dense_macs=int(dense), ann_pruned_macs=int(pruned),
                         ann_dense_pj=dense * mac, ann_pruned_pj=pruned * mac,
                         snn_cmos45_pj=float(snn))
