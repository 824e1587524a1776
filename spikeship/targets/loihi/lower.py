"""NIR graph -> float :class:`Deployment`: the graph in Lava's units (pure, no Lava).

Neurons (forward Euler, one step = ``dt``; ``a = dt/tau``; reset to 0 in the step it
fires, ``v > v_threshold``). With ``I[t]`` the summed input of the step:

- ``LIF``:     ``v[t] = (1 - a) v[t-1] + a v_leak + a r I[t]``
- ``IF``:      ``v[t] = v[t-1] + r I[t]`` (no ``dt``: the NIR IF as Norse and Sinabs step it)
- ``CubaLIF``: ``i[t] = (1 - a_s) i[t-1] + a_s w_in I[t]``;
  ``v[t] = (1 - a_m) v[t-1] + a_m v_leak + a_m r i[t]`` (current first, as snnTorch
  ``Synaptic``, Norse and Lava)

Lava's LIF (float) is ``u = (1 - du) u + a_in``, ``v = (1 - dv) v + u + bias``, so

- LIF/IF: ``du = 1`` (the current lasts one step), ``dv = a`` (0 for IF), the
  synaptic input ``a_in = g W s`` with ``g = a r`` (``r`` for IF), and
  ``bias = g b + a v_leak`` (``b``: the Affine/Conv bias);
- CubaLIF: ``du = a_s``, ``dv = a_m``, ``u = a_m r i`` so ``g = a_m r a_s w_in``;
  ``bias = a_m v_leak``. The Affine bias ``b`` belongs to the current: with
  ``a_s = 1`` it is the bias ``g b``; otherwise it is a synapse from a unit that is
  1 at every step (source ``"const"``), weights ``g b``.

Lava has one threshold per population: a per-neuron threshold is normalised away by
scaling neuron ``i``'s equation by ``c_i = vth_ref / v_threshold_i`` (exact: the
dynamics are linear and reset to 0); ``v_scale = c``. ``g c`` is folded into the rows
of every incoming weight matrix (per output channel for a conv: rule
``conv-channel-uniform``).

Structure:

- Affine/Linear -> ``dense``, or ``sparse`` holding only the synapses that exist when
  any synapse is absent: ``False`` in the node's ``mask`` metadata (spikeship
  exports) or an exact zero weight (third-party graphs, no mask). Always Sparse for a
  pruned layer, whatever its density: a pruned synapse never exists in Lava.
- Conv2d -> ``conv`` (stride, padding, dilation, groups). Pruned kernel entries stay
  zeros in the shared kernel (Lava's Conv has no sparse form).
- SumPool2d / AvgPool2d -> folded into the next synaptic layer (rule
  ``pool-foldable``): a conv ``W`` (kernel ``k``, stride ``s``, padding ``p``) after a
  ``P x P`` pool becomes a conv with kernel ``P k``, ``K[.., a, b] = W[.., a//P, b//P]``,
  stride ``P s``, padding ``P p``; an Affine after ``pool -> flatten`` gets each column
  repeated over its ``P x P`` block. AvgPool multiplies by ``1 / P^2``. netx has no
  pool either, and Loihi has no pooling unit.
- Flatten -> a port reshape in Lava (``transpose([2, 1, 0]).flatten()`` turns Lava's
  ``(W, H, C)`` into NIR's C-order flattening of ``(C, H, W)``).
- A population onto itself (braille's ``w_rec``) -> a synapse with ``recurrent=True``.

Input (``input_mode``): ``"spikes"`` feeds the input through a synapse (binary spikes,
or graded payloads with ``input_message_bits > 0``); ``"current"`` (default for
``encoding="direct"`` graphs) evaluates the first synaptic layer on the host and
injects its output into the first population's ``a_in`` (:class:`HostLayerSpec`); a
pruned Affine there is a CSR matrix of its synapses, as on the chip.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import nir
import numpy as np
from scipy.sparse import csr_matrix

from spikeship.errors import ConfigError, GraphError
from spikeship.targets.loihi import rules
from spikeship.targets.loihi.deployment import (SOURCE_CONST, SOURCE_INPUT, Deployment,
                                                HostLayerSpec, PopulationSpec, SynapseSpec)
from spikeship.nir.categories import SPIKING, kind as _kind
from spikeship.targets.loihi.nir_walk import FoldedLayer, NirWalk, fold_path
from spikeship.targets.loihi.tau_groups import subset_node, tau_groups


def graph_dt(graph: nir.NIRGraph, dt_s: float | None) -> float | None:
    """``dt_s`` if given, else the graph's ``dt`` metadata, else None."""
    if dt_s is not None:
        return float(dt_s)
    dt = (graph.metadata or {}).get("dt")
    return None if dt is None else float(np.asarray(dt).ravel()[0])


def graph_encoding(graph: nir.NIRGraph) -> str | None:
    """The graph's ``encoding`` metadata ("direct" | "frames"), or None."""
    enc = (graph.metadata or {}).get("encoding")
    if enc is None or isinstance(enc, str):
        return enc
    enc = np.asarray(enc).ravel()[0]
    return enc.decode() if isinstance(enc, bytes) else str(enc)


@dataclass
class _Neuron:
    du: float
    dv: float
    vth: float
    gain: np.ndarray       # g * c, per neuron (NIR shape): folded into incoming rows
    leak_bias: np.ndarray  # a v_leak * c
    v_scale: np.ndarray    # c


def _neuron(name: str, node, shape, dt_s: float | None) -> _Neuron:
    kind = _kind(node)
    p = {f: np.broadcast_to(np.asarray(getattr(node, f), dtype=np.float64), shape)
         for f in ("r", "v_threshold", "v_reset", "v_leak", "tau", "tau_syn", "tau_mem", "w_in")
         if getattr(node, f, None) is not None}
    rules.reset_to_zero(name, p["v_reset"])
    rules.threshold_positive(name, p["v_threshold"])
    if kind != "IF" and dt_s is None:
        raise ConfigError(f"graph has no 'dt' metadata: pass dt_s to run its {kind} node '{name}'")
    if kind == "LIF":
        a = dt_s / rules.uniform_time_constant(name, "tau", p["tau"])
        rules.decay_range(name, "dv", a)
        du, dv, gain, leak = 1.0, a, a * p["r"], a * p["v_leak"]
    elif kind == "IF":
        du, dv, gain, leak = 1.0, 0.0, p["r"], np.zeros(shape)
    else:
        a_s = dt_s / rules.uniform_time_constant(name, "tau_syn", p["tau_syn"])
        a_m = dt_s / rules.uniform_time_constant(name, "tau_mem", p["tau_mem"])
        rules.decay_range(name, "du", a_s)
        rules.decay_range(name, "dv", a_m)
        du, dv, gain, leak = min(a_s, 1.0), a_m, a_m * p["r"] * a_s * p["w_in"], a_m * p["v_leak"]
    vth = p["v_threshold"]
    vref = float(vth.max())
    c = vref / vth
    return _Neuron(float(min(du, 1.0)), float(min(dv, 1.0)), vref,
                   np.asarray(gain * c, dtype=np.float64), np.asarray(leak * c, dtype=np.float64),
                   np.asarray(c, dtype=np.float64))


def _depths(g: NirWalk, pops: list[str], paths: dict, current: bool) -> dict[str, int]:
    """Depth per population (Kahn's order); raises on cycles and misaligned inputs."""
    ff = {p: {s for s, _ in paths[p] if s != p} for p in pops}
    depth: dict[str, int] = {}
    todo = set(pops)
    while todo:
        ready = [p for p in sorted(todo) if all(s == g.input or s in depth for s in ff[p])]
        if not ready:
            p = sorted(todo)[0]
            rules.self_recurrence_only(p, sorted(ff[p] - set(depth))[0])
        for p in ready:
            d = {s: (0 if current else 1) if s == g.input else depth[s] + 1 for s in ff[p]}
            if not d:
                raise rules.violation("uniform-delay", p, "population has no feed-forward input")
            rules.uniform_delay(p, d)
            depth[p] = next(iter(d.values()))
            todo.discard(p)
    return depth


def lower(graph: nir.NIRGraph, *, dt_s: float | None = None, input_mode: str | None = None,
          input_message_bits: int = 0, source: str = "") -> Deployment:
    """The float :class:`Deployment` of ``graph`` (see the module docstring for the math).

    ``dt_s`` overrides the graph's ``dt`` metadata. ``input_mode``: ``"current"`` or
    ``"spikes"``; default ``"current"`` when the graph's metadata says
    ``encoding="direct"``, else ``"spikes"``. ``input_message_bits`` (spikes mode):
    0 for binary input, > 0 for graded payloads (event counts).
    """
    g = NirWalk(graph)
    meta = graph.metadata or {}
    rules.graph_reset_mode("graph", meta.get("reset") if isinstance(meta.get("reset"), str)
                           else None)
    dt_s = graph_dt(graph, dt_s)
    if input_mode is None:
        input_mode = "current" if graph_encoding(graph) == "direct" else "spikes"
    if input_mode not in ("current", "spikes"):
        raise ConfigError(f"input_mode must be 'current' or 'spikes', got '{input_mode}'")
    current = input_mode == "current"
    pops = [n for n, v in graph.nodes.items() if _kind(v) in SPIKING]
    paths = {p: g.paths_into(p) for p in pops}
    depth = _depths(g, pops, paths, current)
    (out_src,) = g.single_pred(g.output)
    rules.output_is_population(g.output, _kind(g.node(out_src)))

    populations, synapses, hosts, used = [], [], [], set()
    split: dict[str, tuple[tuple[int, ...], tuple[tuple[str, np.ndarray], ...]]] = {}
    for p in sorted(pops, key=lambda n: (depth[n], pops.index(n))):
        shape = g.shape(p)
        members = tau_groups(p, g.node(p), shape)
        if members is not None:
            _check_splittable(g, p, paths)
            split[p] = (shape, tuple((f"{p}~{j}", m) for j, m in enumerate(members)))
        for j, (name, idx) in enumerate(split[p][1] if members is not None else [(p, None)]):
            node = g.node(p) if idx is None else subset_node(g.node(p), shape, idx)
            gshape = shape if idx is None else (len(idx),)
            pop, syns, hls = _population(g, p, name, node, gshape, idx, depth[p], paths[p],
                                         dt_s, current, input_message_bits, used, split)
            populations.append(pop)
            synapses += syns
            hosts += hls
    return Deployment("float", float(dt_s) if dt_s is not None else 0.0, g.input_shape,
                      input_mode, int(input_message_bits) if not current else 0,
                      tuple(populations), tuple(synapses), tuple(hosts), out_src, source,
                      groups=split)


def _population(g, p, name, node, shape, idx, depth, paths, dt_s, current, bits, used, split):
    """One Lava population (all of NIR population ``p``, or its group ``idx``), its
    incoming synapses and host layers."""
    nrn = _neuron(p, node, shape, dt_s)
    bias, slow_bias = nrn.leak_bias.copy(), np.zeros(shape)
    synapses, hosts = [], []
    for src, ops in paths:
        lin = fold_path(g, ops)
        if idx is not None:            # a group: its rows only (dense, checked)
            lin.weights, lin.mask = lin.weights[idx], lin.mask[idx]
            lin.bias = None if lin.bias is None else lin.bias.reshape(-1)[idx]
        _apply_gain(ops[-1], lin, nrn.gain, shape)
        syn = ops[-1] if idx is None else f"{ops[-1]}->{name}"
        syn = syn if syn not in used else f"{ops[-1]}->{name}"
        used.add(syn)
        b_full = _bias_full(lin, shape)
        if current and src == g.input:
            hosts.append(HostLayerSpec(syn, lin.kind, name, _host_weights(lin), b_full,
                                       lin.source_shape, lin.stride, lin.padding,
                                       lin.dilation, lin.groups, lin.folded))
            continue
        if src in split:               # the source is split: one synapse per source group
            for sname, sidx in split[src][1]:
                part = replace(lin, weights=lin.weights[:, sidx], mask=lin.mask[:, sidx],
                               source_shape=(len(sidx),), flatten=False)
                synapses.append(_synapse(f"{syn}<{sname}", part, sname, name, g, bits))
        else:
            synapses.append(_synapse(syn, lin, src, name, g, bits))
        if nrn.du < 1.0:         # CubaLIF with a slow current: bias through the current
            slow_bias += b_full
        else:
            bias += b_full
    if np.any(slow_bias != 0):
        synapses.append(SynapseSpec(f"{name}.bias", "dense", SOURCE_CONST, name,
                                    slow_bias.reshape(-1, 1), source_shape=(1,)))
    pop = PopulationSpec(name, _kind(node), shape, depth, nrn.du, nrn.dv, nrn.vth, bias,
                         np.zeros(shape, dtype=np.int64), nrn.v_scale)
    return pop, synapses, hosts


def _check_splittable(g: NirWalk, p: str, paths: dict) -> None:
    """A population with several time constants is split into groups of equal ones: only
    where every synapse into and out of it is an Affine/Linear (rule
    ``uniform-time-constant``)."""
    why = None
    for src, ops in paths[p]:
        if _kind(g.node(ops[-1])) == "Conv2d":
            why = f"it is fed by Conv2d '{ops[-1]}'"
        if src == p:
            why = "it is recurrent"
    for q, ps in paths.items():
        for src, ops in ps:
            if src == p and q != p and _kind(g.node(ops[-1])) == "Conv2d":
                why = f"it feeds Conv2d '{ops[-1]}'"
    if why:
        raise rules.violation("uniform-time-constant", p,
                              f"time constants vary across neurons and {why}: Lava's du/dv "
                              "are one value per population and a conv (per-pixel time "
                              "constants) or recurrent population cannot be split into groups")


def _apply_gain(name: str, lin: FoldedLayer, gain: np.ndarray, shape) -> None:
    """Scale output rows (channels for conv) of ``lin`` and its bias by ``gain``."""
    if lin.kind == "conv":
        if tuple(shape) != tuple(gain.shape) or len(shape) != 3:
            raise GraphError(f"conv '{name}' feeds a population of shape {shape}")
        rules.conv_channel_uniform(name, gain)
        f = gain.reshape(shape[0], -1)[:, 0]
        lin.weights = lin.weights * f[:, None, None, None]
    else:
        f = gain.reshape(-1)
        if f.size != lin.weights.shape[0]:
            raise GraphError(f"'{name}' has {lin.weights.shape[0]} outputs for a population "
                             f"of {f.size} neurons")
        lin.weights = lin.weights * f[:, None]
    if lin.bias is not None:
        lin.bias = lin.bias * f


def _bias_full(lin: FoldedLayer, shape) -> np.ndarray:
    if lin.bias is None:
        return np.zeros(shape)
    if lin.kind == "conv":
        return np.broadcast_to(lin.bias[:, None, None], shape).astype(np.float64)
    return lin.bias.reshape(shape).astype(np.float64)


def _existing(lin: FoldedLayer):
    """A dense layer's synapses that exist (``mask``) as a CSR matrix: no pruned one."""
    rows, cols = np.nonzero(lin.mask)
    return csr_matrix((lin.weights[rows, cols], (rows, cols)), shape=lin.weights.shape)


def _host_weights(lin: FoldedLayer):
    """A host layer's weights: a pruned dense layer as the CSR matrix of its synapses
    (the host multiplies no pruned synapse, as Lava's Sparse holds none); a conv kernel
    or an unpruned dense layer as the array."""
    if lin.kind == "dense" and not bool(lin.mask.all()):
        return _existing(lin)
    return lin.weights


def _synapse(name: str, lin: FoldedLayer, src: str, target: str, g: NirWalk, bits: int) -> SynapseSpec:
    if lin.kind == "conv":
        lin_shape = g.shape(src) if src != g.input else g.input_shape
        if len(lin_shape) != 3:
            raise GraphError(f"conv '{name}' reads a non-(C, H, W) source {lin_shape}")
    pruned = not bool(lin.mask.all())
    kind, weights = lin.kind, lin.weights
    if kind == "dense" and pruned:
        weights, kind = _existing(lin), "sparse"
    elif kind == "conv":
        weights = np.where(lin.mask, lin.weights, 0.0)
    source = SOURCE_INPUT if src == g.input else src
    return SynapseSpec(name, kind, source, target, weights, recurrent=(src == target),
                       num_message_bits=bits if source == SOURCE_INPUT else 0,
                       source_shape=tuple(lin.source_shape),
                       flatten_source=lin.flatten or (kind != "conv" and len(lin.source_shape) > 1),
                       stride=lin.stride, padding=lin.padding, dilation=lin.dilation,
                       groups=lin.groups, folded=lin.folded, pruned=pruned)
