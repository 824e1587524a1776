"""Cores a deployed NIR graph needs on Loihi / Loihi 2, before and after pruning.

Placement model (as NxSDK and nengo-loihi place populations): each spiking
population is split into ``k`` contiguous, equal chunks of neurons (C-order over
``(C, H, W)``), one chunk per core; a synapse lives in the core of its target
neuron. Core ``c`` must satisfy the spec's per-core limits
(:class:`spikeship.targets.specs.CoreLimits`, each with its source):

- ``neurons_per_core``: neurons in ``c``;
- ``fan_in_axons``: distinct presynaptic neurons with a synapse into ``c``;
- ``synapse_memory_bits``: sum over those input axons of ``bits(n)``, the memory of
  an axon with ``n`` synapses into ``c`` (nengo-loihi ``SynapseConfig.bits_per_axon``,
  sparse format)::

      bits(n) = sum over blocks of <= 64 synapses of
                roundup64(n_b * (w + idx) + 4 + 6),   idx = min{6..12} >= log2(chunk)

  plus ``neuron_state_bits`` per neuron where the memory is shared (Loihi 2);
- ``synapses_per_core``: synapses stored in ``c``;
- ``fan_out_axons``: over the neurons of ``c``, the number of distinct cores of the
  next populations they send to.

``k`` is the smallest number of chunks satisfying all limits; a layer that does not
fit even one neuron per core raises :class:`~spikeship.errors.RuleError` naming the
rule (``core-neurons-per-core``, ``core-fan-in-axons``, ``core-synapse-memory-bits``,
``core-synapses-per-core``, ``core-fan-out-axons``) and the layer. Connectivity is unrolled exactly (conv positions, borders,
padding, stride, pools folded into the next layer: a neuron feeding a pool connects
to every synapse of its pooled element). *Before pruning* maps the unpruned
architecture (all original units and synapses); *after* maps the deployed graph. A
layer fed by graded (direct-encoded) input runs on the host, as the Lava target
deploys it, so it adds no synapses or axons to the cores of its population.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import nir
import numpy as np
import scipy.sparse as sp

from spikeship.errors import ConfigError, RuleError
from spikeship.nir.geometry import conv_geometry
from spikeship.nir.layers import (SynapticLayer, Stage, meta, neuron_populations,
                                        synaptic_layers)
from spikeship.targets.specs import ChipSpec, CoreLimits

MAX_UNROLLED = 30_000_000     # synapse instances the exact mapper will unroll per layer
_INDEX_BITS = (6, 7, 8, 9, 10, 11, 12)   # nengo-loihi SynapseConfig.INDEX_BITS_MAP (non-zero)


@dataclass(frozen=True)
class LayerMapping:
    """Cores of one spiking population and what limited them."""

    population: str
    layers: tuple[str, ...]         # synaptic layers into the population
    neurons: int
    synapses: int                   # stored synapse instances into the population
    cores: int
    limit: str                      # the rule that set ``cores``
    max_fan_in: int                 # largest per-core input axons
    max_memory_bits: int
    max_fan_out: int


@dataclass(frozen=True)
class ChipMapping:
    chip: str
    wiring: str                     # "deployed" | "original"
    layers: tuple[LayerMapping, ...]

    @property
    def cores(self) -> int:
        return sum(l.cores for l in self.layers)

    def chips(self, limits: CoreLimits) -> int:
        return math.ceil(self.cores / limits.cores_per_chip)


# ---- connectivity --------------------------------------------------------------------
def _conv_matrix(mask: np.ndarray, in_shape, out_hw, stride, padding, dilation) -> sp.csr_matrix:
    c_out, c_in, kh, kw = mask.shape
    _, h, w = in_shape
    ho, wo = out_hw
    (_, s, pad, d) = conv_geometry(in_shape, (kh, kw), stride, padding, dilation)
    rows, cols = [], []
    for a in range(kh):
        oy = np.arange(ho)
        y = oy * s[0] - pad[0][0] + a * d[0]
        oky = (y >= 0) & (y < h)
        for b in range(kw):
            ox = np.arange(wo)
            x = ox * s[1] - pad[1][0] + b * d[1]
            okx = (x >= 0) & (x < w)
            co, ci = np.nonzero(mask[:, :, a, b])
            if not co.size or not oky.any() or not okx.any():
                continue
            opos = (oy[oky][:, None] * wo + ox[okx][None, :]).ravel()
            ipos = (y[oky][:, None] * w + x[okx][None, :]).ravel()
            rows.append((co[:, None] * (ho * wo) + opos[None, :]).ravel())
            cols.append((ci[:, None] * (h * w) + ipos[None, :]).ravel())
    n_out, n_in = c_out * ho * wo, c_in * h * w
    if not rows:
        return sp.csr_matrix((n_out, n_in), dtype=np.int8)
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(r.size, np.int8), (r, c)), shape=(n_out, n_in))


def _pool_matrix(st: Stage) -> sp.csr_matrix:
    """(pooled x input) 0/1 matrix of a sum/avg pool."""
    c, h, w = st.in_shape
    _, ho, wo = st.out_shape
    rows, cols = [], []
    for a in range(st.kernel[0]):
        oy = np.arange(ho)
        y = oy * st.stride[0] - st.padding[0] + a
        oky = (y >= 0) & (y < h)
        for b in range(st.kernel[1]):
            ox = np.arange(wo)
            x = ox * st.stride[1] - st.padding[1] + b
            okx = (x >= 0) & (x < w)
            opos = (oy[oky][:, None] * wo + ox[okx][None, :]).ravel()
            ipos = (y[oky][:, None] * w + x[okx][None, :]).ravel()
            ch = np.arange(c)[:, None]
            rows.append((ch * (ho * wo) + opos[None, :]).ravel())
            cols.append((ch * (h * w) + ipos[None, :]).ravel())
    r, cc = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(r.size, np.int8), (r, cc)), shape=(c * ho * wo, c * h * w))


def connectivity(layer: SynapticLayer) -> sp.csr_matrix:
    """Binary (post neuron x presynaptic neuron) matrix of the synapses that exist."""
    est = int(layer.mask.sum()) * (int(np.prod(layer.out_shape[1:])) if layer.kind == "conv" else 1)
    if est > MAX_UNROLLED:
        raise ConfigError(f"layer {layer.name}: {est} synapse instances exceed the exact "
                          f"mapper's limit ({MAX_UNROLLED})")
    if layer.kind == "conv":
        if layer.groups != 1:
            raise ConfigError(f"layer {layer.name}: grouped convs are not mapped")
        a = _conv_matrix(layer.mask, layer.in_shape, layer.out_shape[1:], layer.stride,
                         layer.padding, layer.dilation)
    else:
        a = sp.csr_matrix(layer.mask.astype(np.int8))
    for st in reversed(layer.stages):
        if st.kind == "pool":
            a = a @ _pool_matrix(st)
    a = a.tocsr()
    a.data[:] = 1
    a.eliminate_zeros()
    return a


def original_layer(layer: SynapticLayer, pre_channels: int | None) -> SynapticLayer:
    """The unpruned version of ``layer``: every original synapse, original units.

    ``pre_channels`` is the presynaptic population's original channel count
    (``None`` for the graph input, which is never pruned).
    """
    o = layer.original_shape
    mask = np.ones(o, dtype=bool)
    c0 = layer.pre_shape[0] if pre_channels is None else pre_channels

    def rechannel(shape):
        return (c0, *shape[1:]) if len(shape) == 3 else shape

    stages = []
    for st in layer.stages:
        if st.kind == "flatten":
            ins = rechannel(st.in_shape)
            stages.append(replace(st, in_shape=ins, out_shape=(int(np.prod(ins)),)))
        else:
            stages.append(replace(st, in_shape=rechannel(st.in_shape),
                                  out_shape=rechannel(st.out_shape)))
    in_shape = layer.original_in_shape if layer.kind == "fc" else rechannel(layer.in_shape)
    return replace(layer, weight=np.zeros(o, np.float32), mask=mask, stages=tuple(stages),
                   pre_shape=rechannel(layer.pre_shape), in_shape=in_shape,
                   out_shape=(o[0], *layer.out_shape[1:]))


# ---- per-core costs -----------------------------------------------------------------
def axon_bits(n: np.ndarray, chunk: int, weight_bits: int) -> np.ndarray:
    """Synaptic memory of input axons with ``n`` synapses each into one core (see module)."""
    need = max(1, math.ceil(math.log2(max(chunk, 2))))
    idx = next((b for b in _INDEX_BITS if b >= need), None)
    if idx is None:
        idx = need                      # more than 4096 targets: beyond the encoding
    per = weight_bits + idx
    full, rest = np.divmod(np.asarray(n, dtype=np.int64), 64)
    blk = lambda m: -(-(m * per + 10) // 64) * 64          # noqa: E731
    return full * blk(64) + np.where(rest > 0, blk(rest), 0)


def _core_costs(a: sp.csr_matrix, k: int, limits: CoreLimits):
    """Per-core (neurons, fan-in, memory bits, synapses) for ``k`` chunks of rows of ``a``."""
    n = a.shape[0]
    chunk = -(-n // k)
    out = []
    for start in range(0, n, chunk):
        blk = a[start:start + chunk]
        per_axon = np.bincount(blk.indices, minlength=a.shape[1])
        per_axon = per_axon[per_axon > 0]
        bits = int(axon_bits(per_axon, chunk, limits.weight_bits).sum())
        rows = blk.shape[0]
        bits += rows * limits.neuron_state_bits
        out.append((rows, per_axon.size, bits, int(blk.nnz)))
    return out


def _fits(costs, limits: CoreLimits) -> str | None:
    for rows, fan_in, bits, syn in costs:
        if rows > limits.neurons_per_core:
            return "neurons_per_core"
        if limits.fan_in_axons is not None and fan_in > limits.fan_in_axons:
            return "fan_in_axons"
        if limits.synapse_memory_bits is not None and bits > limits.synapse_memory_bits:
            return "synapse_memory_bits"
        if limits.synapses_per_core is not None and syn > limits.synapses_per_core:
            return "synapses_per_core"
    return None


def map_graph(graph: nir.NIRGraph, spec: ChipSpec, *, original: bool = False,
              original_shapes: dict | None = None, host_input: bool | None = None) -> ChipMapping:
    """Cores per population of ``graph`` on ``spec`` (deployed, or original wiring).

    ``host_input``: a layer fed by graded input runs on the host (its synapses take no
    core memory or axons; its population still needs cores). Default: True when the
    graph's ``encoding`` metadata is ``"direct"`` (as the Lava target deploys it).
    """
    limits = spec.limits
    if limits is None:
        raise ConfigError(f"{spec.name} has no published per-core limits to map onto")
    if host_input is None:
        host_input = meta(graph).get("encoding") == "direct"
    layers = synaptic_layers(graph, original_shapes)
    pops = neuron_populations(graph)
    if original:
        out_ch = {l.postsynaptic: l.original_shape[0] for l in layers if l.postsynaptic}
        layers = [original_layer(l, out_ch.get(l.presynaptic)) for l in layers]
    into: dict[str, list[tuple[SynapticLayer, sp.csr_matrix]]] = {}
    for l in layers:
        if l.postsynaptic is None:
            continue
        if host_input and l.pre_is_input:       # on the host: no on-chip synapses
            m = sp.csr_matrix((int(np.prod(l.out_shape)), int(np.prod(l.pre_shape))),
                              dtype=np.int8)
        else:
            m = connectivity(l)
        into.setdefault(l.postsynaptic, []).append((l, m))
    parts: dict[str, tuple[int, str, list]] = {}
    for pop, items in into.items():
        a = sp.hstack([m for _, m in items]).tocsr() if len(items) > 1 else items[0][1]
        n = a.shape[0]
        k = max(1, -(-n // limits.neurons_per_core))
        limit = "neurons_per_core"
        while True:
            costs = _core_costs(a, k, limits)
            bad = _fits(costs, limits)
            if bad is None:
                break
            if k >= n:
                raise _rule_error(
                    bad, items[0][0].name,
                    f"population {pop} does not fit on {spec.name} even with one neuron per "
                    f"core ({_describe(costs, bad)}; limit {getattr(limits, bad)})")
            limit, k = bad, k + 1
        parts[pop] = (k, limit, costs)
    parts = _apply_fan_out(parts, layers, into, limits, spec)
    result = []
    for pop, (k, limit, costs, fan_out) in parts.items():
        items = into[pop]
        result.append(LayerMapping(
            population=pop, layers=tuple(l.name for l, _ in items),
            neurons=int(sum(c[0] for c in costs)), synapses=int(sum(c[3] for c in costs)),
            cores=k, limit=limit, max_fan_in=max(c[1] for c in costs),
            max_memory_bits=max(c[2] for c in costs), max_fan_out=fan_out))
    order = [p for p in pops if p in parts]
    result.sort(key=lambda m: order.index(m.population))
    return ChipMapping(chip=spec.name, wiring="original" if original else "deployed",
                       layers=tuple(result))


def _rule_error(field: str, node: str, message: str) -> RuleError:
    """``RuleError("[core-<limit>] <node>: ...")`` with ``.rule`` and ``.node`` set
    (the convention of :mod:`spikeship.targets.loihi.rules`)."""
    rule = "core-" + field.replace("_", "-")
    err = RuleError(f"[{rule}] {node}: {message}")
    err.rule = rule
    err.node = node
    return err


def _describe(costs, rule: str) -> str:
    i = {"neurons_per_core": 0, "fan_in_axons": 1, "synapse_memory_bits": 2,
         "synapses_per_core": 3}.get(rule)
    return "need up to " + str(max(c[i] for c in costs)) if i is not None else rule


def _apply_fan_out(parts, layers, into, limits, spec):
    """Add fan-out (destination cores per neuron) and split populations that exceed it."""
    out = {}
    for pop, (k, limit, costs) in parts.items():
        n = sum(c[0] for c in costs)
        dests = np.zeros(n, dtype=np.int64)
        for other, items in into.items():
            chunk = -(-items[0][1].shape[0] // parts[other][0])
            for l, m in items:
                if l.presynaptic != pop:
                    continue
                coo = m.tocoo()
                pairs = np.unique(np.stack([coo.col, coo.row // chunk]), axis=1)
                dests += np.bincount(pairs[0], minlength=n)
        while True:
            chunk = -(-n // k)
            per_core = [int(dests[s:s + chunk].sum()) for s in range(0, n, chunk)]
            if limits.fan_out_axons is None or max(per_core) <= limits.fan_out_axons:
                break
            if k >= n:
                raise _rule_error(
                    "fan_out_axons", pop,
                    f"a neuron sends to {int(dests.max())} cores on {spec.name}; limit "
                    f"{limits.fan_out_axons} output axons per core")
            k, limit = k + 1, "fan_out_axons"
        if chunk != -(-n // parts[pop][0]):
            costs = _core_costs(sp.hstack([m for _, m in into[pop]]).tocsr(), k, limits)
        out[pop] = (k, limit, costs, max(per_core))
    return out
