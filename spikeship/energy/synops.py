"""Synaptic operations of a deployed graph from recorded spike counts (pure functions).

For a synaptic layer ``l`` fed by population ``P`` (neurons, or the graph input)::

    synops_effective(l) = sum_{n in P} c_n * F_l(n)          (per sample: / samples)
    synops_dense(l)     = sum_{n in P} c_n * F0_l(n)

where ``c_n`` is the number of spikes neuron ``n`` emitted over all samples and
time steps (the ``count/<node>`` arrays of ``simulate-<target>.npz``), ``F_l(n)`` the
number of synapses of ``l`` that neuron ``n`` drives in the *deployed* graph
(:mod:`spikeship.energy.fanout`: exact per position, through pools and
Flatten) and ``F0_l(n)`` the same with every synapse of the original, unpruned
architecture (all original output units, every kernel tap). Pruned neurons do not
exist in the deployed graph, so they neither spike nor cost anything; the dense
count prices the same spikes on the unpruned wiring.

A layer fed by the graph input counts MACs, not accumulates, when the input is
graded (direct encoding: the image is fed at every step): ``c_n`` is then the
number of steps in which input element ``n`` was non-zero (``input_count``). For
binary or event-count input (``encoding="frames"`` in the graph metadata, or every
non-zero input equal to 1) it counts accumulates, one per event (``input_sum``).

Neuron updates: every neuron of a population is updated once per time step
(``neurons * T`` per sample); an update is *active* when the neuron fires in that
step (so active updates = spikes; the rest are idle). Spikes routed = spikes
emitted by all populations (plus input events when the input is binary).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import nir
import numpy as np

from spikeship.errors import ConfigError, GraphError
from spikeship.energy.fanout import conv_fanout, fc_fanout, pool_backward
from spikeship.nir.layers import (SynapticLayer, input_nodes, meta,
                                        neuron_populations, synaptic_layers)


@dataclass(frozen=True)
class SpikeCounts:
    """Per-neuron spike totals over ``samples`` samples of ``timesteps`` steps each."""

    source: str                         # e.g. "simulate-lava-fixed" or "assumed rate 0.1"
    kind: str                           # "simulation" | "assumed_rate"
    samples: int
    timesteps: int
    neuron_counts: Mapping[str, np.ndarray]
    input_count: np.ndarray | None      # non-zero input elements (graded input)
    input_sum: np.ndarray | None        # summed input values (events for binary input)
    assumed_rate: float | None = None

    def __post_init__(self):
        if self.samples < 1 or self.timesteps < 1:
            raise ConfigError(f"spike counts need samples >= 1 and timesteps >= 1, got "
                              f"{self.samples}, {self.timesteps}")

    @classmethod
    def from_result(cls, result) -> SpikeCounts:
        """From a :class:`spikeship.sim.result.SimResult`."""
        return cls(source=f"simulate-{result.target}", kind="simulation",
                   samples=result.samples, timesteps=int(result.timesteps),
                   neuron_counts=dict(result.neuron_counts),
                   input_count=result.input_count, input_sum=result.input_sum)

    @classmethod
    def assumed(cls, graph: nir.NIRGraph, rate: float, timesteps: int) -> SpikeCounts:
        """Every neuron fires with probability ``rate`` per step; every input element is
        non-zero at every step. With ``rate = 1`` this bounds any real run from above
        (a neuron fires at most once per step)."""
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"--assume-rate must be in [0, 1], got {rate}")
        counts = {n: np.full(s, rate * timesteps, dtype=np.float64)
                  for n, s in neuron_populations(graph).items()}
        inputs = list(input_nodes(graph).values())
        full = np.full(inputs[0], float(timesteps)) if len(inputs) == 1 else None
        label = ("upper bound: every neuron fires at every step" if rate == 1.0 else
                 f"assumed firing rate {rate:g} per neuron per step (an upper bound only "
                 f"if the real rate is lower)")
        return cls(source=label, kind="assumed_rate", samples=1, timesteps=int(timesteps),
                   neuron_counts=counts, input_count=full, input_sum=full, assumed_rate=rate)


@dataclass(frozen=True)
class LayerSynops:
    """Counts of one synaptic layer, per sample (connections are totals)."""

    layer: str
    source_layer: str | None
    kind: str                        # "conv" | "fc"
    presynaptic: str
    postsynaptic: str | None
    op: str                          # "AC" (spike-driven) | "MAC" (graded input)
    presynaptic_events: float        # spikes (or non-zero inputs) per sample
    synops_effective: float
    synops_dense: float
    connections_deployed: int        # synapses in the deployed weight tensor
    connections_original: int        # weight entries of the unpruned layer
    instances_deployed: int          # unrolled synapses (conv: x positions) = ANN MACs
    instances_original: int          # the same for the unpruned layer
    mask_source: str
    original_known: bool


@dataclass(frozen=True)
class PopulationActivity:
    """One spiking neuron node, per sample."""

    name: str
    neurons: int
    neurons_original: int
    spikes: float                    # = active updates
    updates: float                   # neurons * T
    fed_by: str | None

    @property
    def idle_updates(self) -> float:
        return self.updates - self.spikes


@dataclass(frozen=True)
class SynopsReport:
    """Everything counted for one deployed graph and one set of spike counts."""

    layers: tuple[LayerSynops, ...]
    populations: tuple[PopulationActivity, ...]
    samples: int
    timesteps: int
    counts_source: str
    counts_kind: str
    assumed_rate: float | None
    input_events: float              # routed input spikes per sample (binary input), else 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def total(self, attr: str, op: str | None = None) -> float:
        return float(sum(getattr(x, attr) for x in self.layers if op is None or x.op == op))

    @property
    def spikes_routed(self) -> float:
        return float(sum(p.spikes for p in self.populations)) + self.input_events


# ---------------------------------------------------------------------------------
def layer_fanout(layer: SynapticLayer, dense: bool = False) -> np.ndarray:
    """Fan-out per element of the layer's *input* (deployed, or original wiring)."""
    if dense:
        if layer.kind == "conv":
            ones = np.ones((layer.original_shape[0], *layer.weight.shape[1:]), dtype=bool)
        else:
            ones = np.ones((layer.original_shape[0], layer.weight.shape[1]), dtype=bool)
        return _fanout(layer, ones, layer.in_shape)
    return _fanout(layer, layer.mask, layer.in_shape)


def original_instances(layer: SynapticLayer) -> int:
    """Unrolled synapses of the unpruned layer (= MACs of its ANN twin per inference)."""
    ones = np.ones(layer.original_shape, dtype=bool)
    return int(_fanout(layer, ones, layer.original_in_shape).sum())


def _fanout(layer: SynapticLayer, mask: np.ndarray, in_shape) -> np.ndarray:
    if layer.kind == "conv":
        return conv_fanout(mask, in_shape, layer.stride, layer.padding, layer.dilation,
                           layer.groups)
    return fc_fanout(mask)


def presynaptic_fanout(layer: SynapticLayer, fanout: np.ndarray) -> np.ndarray:
    """Carry a fan-out map from the layer input back to the presynaptic population."""
    f = fanout
    for st in reversed(layer.stages):
        f = f.reshape(st.out_shape)
        if st.kind == "flatten":
            f = f.reshape(st.in_shape)
        else:
            f = pool_backward(f, st.in_shape, st.kernel, st.stride, st.padding)
    if f.size != int(np.prod(layer.pre_shape)):
        raise GraphError(f"layer {layer.name}: {f.size} inputs but presynaptic node "
                         f"{layer.presynaptic} has shape {layer.pre_shape}")
    return f.reshape(layer.pre_shape)


def _input_mode(graph: nir.NIRGraph, counts: SpikeCounts) -> tuple[str, np.ndarray | None]:
    """('MAC', input_count) for graded input, ('AC', input_sum) for binary/event input."""
    enc = meta(graph).get("encoding")
    ic, isum = counts.input_count, counts.input_sum
    if ic is None or isum is None:
        return "MAC", None
    if enc == "frames" or (enc != "direct" and np.array_equal(np.asarray(ic, float),
                                                               np.asarray(isum, float))):
        return "AC", np.asarray(isum, dtype=np.float64)
    return "MAC", np.asarray(ic, dtype=np.float64)


def count_synops(graph: nir.NIRGraph, counts: SpikeCounts,
                 original_shapes: dict[str, tuple[int, ...]] | None = None) -> SynopsReport:
    """Effective and dense synops per synaptic layer, neuron updates and routed spikes."""
    layers = synaptic_layers(graph, original_shapes)
    if not layers:
        raise GraphError("the graph has no synaptic layer (Conv2d / Affine / Linear)")
    pops = neuron_populations(graph)
    missing = [p for p in pops if p not in counts.neuron_counts]
    if missing:
        raise GraphError(f"spike counts from {counts.source} lack neuron node(s) {missing} "
                         f"of the graph (have {sorted(counts.neuron_counts)})")
    mode, in_events = _input_mode(graph, counts)
    notes: list[str] = []
    per = 1.0 / counts.samples
    out_layers = []
    for layer in layers:
        if layer.pre_is_input:
            if in_events is None:
                raise GraphError(f"layer {layer.name} is fed by the input but the spike "
                                 f"counts have no input_count/input_sum")
            events, op = in_events, mode
            if op == "MAC":
                notes.append(f"{layer.name}: fed by graded (direct-encoded) input, counted as "
                             f"MACs (one per non-zero input element x synapse), not ACs")
        else:
            events, op = np.asarray(counts.neuron_counts[layer.presynaptic], np.float64), "AC"
        if events.shape != layer.pre_shape:
            if events.size != int(np.prod(layer.pre_shape)):
                raise GraphError(f"spike counts of {layer.presynaptic} have shape "
                                 f"{events.shape}, the graph says {layer.pre_shape}")
            events = events.reshape(layer.pre_shape)
        f_dep = layer_fanout(layer)
        f_den = layer_fanout(layer, dense=True)
        g_dep, g_den = presynaptic_fanout(layer, f_dep), presynaptic_fanout(layer, f_den)
        if not layer.original_known:
            notes.append(f"{layer.name}: original shape unknown, dense = every entry of the "
                             f"deployed weight tensor")
        if layer.mask_source == "nonzero":
            notes.append(f"{layer.name}: no mask metadata, synapses = non-zero weights")
        out_layers.append(LayerSynops(
            layer=layer.name, source_layer=layer.source_layer, kind=layer.kind,
            presynaptic=layer.presynaptic, postsynaptic=layer.postsynaptic, op=op,
            presynaptic_events=float(events.sum()) * per,
            synops_effective=float((events * g_dep).sum()) * per,
            synops_dense=float((events * g_den).sum()) * per,
            connections_deployed=int(layer.mask.sum()),
            connections_original=int(np.prod(layer.original_shape)),
            instances_deployed=int(f_dep.sum()), instances_original=original_instances(layer),
            mask_source=layer.mask_source, original_known=layer.original_known))
    fed = {}
    for layer in layers:
        if layer.postsynaptic is not None:
            fed.setdefault(layer.postsynaptic, layer)
    populations = []
    for name, shape in pops.items():
        c = np.asarray(counts.neuron_counts[name], np.float64)
        n = int(np.prod(shape))
        if c.size != n:
            raise GraphError(f"spike counts of {name} have {c.size} entries, the graph "
                             f"says shape {shape}")
        src = fed.get(name)
        n0 = n
        if src is not None and src.original_known and src.weight.shape[0]:
            n0 = n // src.weight.shape[0] * src.original_shape[0]
        populations.append(PopulationActivity(
            name=name, neurons=n, neurons_original=n0, spikes=float(c.sum()) * per,
            updates=float(n * counts.timesteps), fed_by=None if src is None else src.name))
    in_routed = float(in_events.sum()) * per if (mode == "AC" and in_events is not None) else 0.0
    return SynopsReport(layers=tuple(out_layers), populations=tuple(populations),
                        samples=counts.samples, timesteps=counts.timesteps,
                        counts_source=counts.source, counts_kind=counts.kind,
                        assumed_rate=counts.assumed_rate, input_events=in_routed,
                        notes=tuple(dict.fromkeys(notes)))
