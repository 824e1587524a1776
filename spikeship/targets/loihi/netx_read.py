"""Read a spikeship ``model.net`` (lava-dl netx HDF5) back into a fixed-point
:class:`~spikeship.targets.loihi.deployment.Deployment`, the inverse of
:mod:`spikeship.targets.loihi.netx` (the file format lives with its chip).

Untrusted input: the file is read by :func:`.netx_file.read_netx_file` (safe open,
declared sizes checked before reading), and every value read is checked against Lava's
fixed-point ranges (the ``fixed-range`` design rule) before anything runs it.

:func:`fixed_deployment` is the same for a NIR graph imported from netx
(:mod:`.netx_import`): the fixed-point deployment with netx's own integers.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import nir
import numpy as np
from scipy.sparse import csr_matrix

from spikeship import ranges
from spikeship.errors import GraphError, RuleError, RunDirError
from spikeship.targets.loihi.deployment import FORMAT as FIXED
from spikeship.targets.loihi.deployment import (SOURCE_INPUT, Deployment, HostLayerSpec,
                                                PopulationSpec, SynapseSpec)
from spikeship.targets.loihi.netx_file import NetxFile, NetxLayer, read_netx_file, text
from spikeship.targets.loihi.netx_import import FORMAT, META
from spikeship.targets.loihi.rules import check_fixed, violation


def read_deployment(path: str | Path) -> Deployment:
    """The fixed-point :class:`Deployment` stored in a spikeship ``model.net``."""
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path} does not exist (run `spikeship export --formats netx`)")
    try:
        nf = read_netx_file(path)
        dep = _deployment(nf)
    except GraphError as e:
        raise GraphError(f"{path} is not a spikeship netx file: {e}") from e
    except (KeyError, ValueError, TypeError, IndexError) as e:
        raise GraphError(f"{path} is not a spikeship netx file: {type(e).__name__}: {e}") from e
    _check_values(dep, path)
    return dep


def _check_values(dep: Deployment, path: Path) -> None:
    """Every weight, threshold, decay and bias of the file in Lava's fixed-point ranges
    (the ``fixed-range`` rule: 8-bit weight mantissas, thresholds >= 1, 12-bit decays,
    13-bit bias mantissas), integer-valued and real: a GraphError naming the file."""
    for s in dep.synapses:
        w = np.asarray(s.weights.data if s.kind == "sparse" else s.weights)
        if w.dtype.kind not in "iuf" or (w.dtype.kind == "f" and not np.all(np.isfinite(w))):
            raise GraphError(f"{path}: layer {s.name} weights of dtype {w.dtype} are not finite "
                             f"real numbers")
        if w.dtype.kind == "f" and np.any(w != np.rint(w)):
            raise GraphError(f"{path}: layer {s.name} weights are not integers (fixed point)")
    try:
        check_fixed(dep)
    except RuleError as e:
        raise GraphError(f"{path}: {e}") from e


def _population(layer: NetxLayer, depth: int) -> PopulationSpec:
    shape, n = layer.shape, layer.neuron
    if n is None:
        raise GraphError(f"layer {layer.index} ({layer.type}) has no neuron")
    bias = np.zeros(shape, dtype=np.int64)
    if layer.bias is not None:
        b = np.asarray(layer.bias, dtype=np.int64)
        if len(shape) == 3 and b.ndim == 1 and b.size == shape[0]:
            bias = np.broadcast_to(b[:, None, None], shape).copy()    # per channel
        else:
            bias = (np.transpose(b) if b.ndim == 3 else b).reshape(shape)
    return PopulationSpec(
        layer.name, "CUBA", shape, depth, int(n["iDecay"]) - 1, int(n["vDecay"]),
        int(n["vThMant"]), bias, np.full(shape, 6, dtype=np.int64), np.ones(shape), 1.0)


def _check_weight(layer: NetxLayer, prev_shape) -> None:
    """The weights map the previous population onto this one: a dense ``(N_out, N_in)``,
    a conv ``(C_out, C_in / groups, kH, kW)`` with a meaningful geometry."""
    w, where = layer.weight, f"layer {layer.index}"
    if w is None:
        raise GraphError(f"{where} ({layer.type}) has no weight")
    if layer.type == "dense":
        want = (int(np.prod(layer.shape)), int(np.prod(prev_shape)))
        if tuple(w.shape) != want:
            raise GraphError(f"{where}: dense weight {list(w.shape)} does not map "
                             f"{want[1]} inputs to {want[0]} neurons; expected {list(want)}")
        return
    if w.ndim != 4 or len(prev_shape) != 3 or w.shape[0] != layer.shape[0]:
        raise GraphError(f"{where}: conv weight {list(w.shape)} does not map "
                         f"{list(prev_shape)} to {list(layer.shape)}")
    ranges.conv_geometry(layer.stride, layer.padding, layer.dilation, layer.groups,
                         prev_shape[0], w.shape, where)


def _synapse(layer: NetxLayer, prev: str, prev_shape, bits: int) -> SynapseSpec | None:
    common = dict(source_shape=prev_shape, num_message_bits=bits if prev == SOURCE_INPUT else 0)
    if layer.type in ("conv", "dense"):
        _check_weight(layer, prev_shape)
    if layer.type == "conv":
        return SynapseSpec(f"layer{layer.index}", "conv", prev, layer.name, layer.weight,
                           stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                           groups=layer.groups, **common)
    if layer.type == "dense":
        return SynapseSpec(f"layer{layer.index}", "dense", prev, layer.name, layer.weight,
                           flatten_source=len(prev_shape) > 1, **common)
    return None


def _host(h: dict) -> HostLayerSpec:
    pairs = {k: tuple(int(v) for v in np.asarray(h[k]).reshape(-1))
             for k in ("source_shape", "stride", "padding", "dilation")}
    return HostLayerSpec(
        text(h["name"]), text(h["kind"]), text(h["target"]), np.asarray(h["weight"]),
        np.asarray(h["bias"]), pairs["source_shape"], pairs["stride"], pairs["padding"],
        pairs["dilation"], int(h["groups"]), injection_scale=float(h["injection_scale"]),
        injection_max=float(h["injection_max"]))


def _deployment(nf: NetxFile) -> Deployment:
    if "input_mode" not in nf.attrs:
        raise GraphError("no 'input_mode' attribute (not written by spikeship)")
    mode = str(nf.attrs["input_mode"])
    bits = int(nf.attrs["input_message_bits"])
    input_shape = ranges.population_shape(nf.attrs["input_shape"], "input_shape")
    pops, syns = [], []
    prev, prev_shape = SOURCE_INPUT, input_shape
    depth = 0 if mode == "current" else 1
    for layer in nf.layers:
        if layer.type == "flatten" or (layer.type == "input" and layer.neuron is None):
            continue
        if layer.name is None:
            raise GraphError(f"layer {layer.index} has no 'name'")
        pops.append(_population(layer, depth))
        syn = _synapse(layer, prev, prev_shape, bits)
        if syn is not None:
            syns.append(syn)
        prev, prev_shape, depth = layer.name, layer.shape, depth + 1
    hosts = [_host(nf.host)] if nf.host is not None else []
    if not pops:
        raise GraphError("the netx file holds no neuron layer")
    return Deployment("fixed", float(nf.attrs.get("dt_s", 0.0)), input_shape, mode, bits,
                      tuple(pops), tuple(syns), tuple(hosts), pops[-1].name, "netx")


# ---- a netx-imported NIR graph: netx's integers from its node metadata ---------------
def is_netx_import(graph: nir.NIRGraph) -> bool:
    """Whether ``graph`` came from :func:`netx_to_nir` (it carries netx integers)."""
    return (graph.metadata or {}).get("format") == FORMAT


def _meta(node, key):
    return (node.metadata or {}).get(f"{META}_{key}")


def fixed_deployment(graph: nir.NIRGraph, dep):
    """The fixed-point :class:`~.deployment.Deployment` of a netx-imported graph: the
    structure of float deployment ``dep`` (:func:`.lower.lower` of ``graph``) with
    netx's integers from the node metadata instead of spikeship's quantiser.

    Populations: ``du = iDecay - 1``, ``dv = vDecay``, ``vth = vThMant``, ``bias_mant``,
    ``bias_exp = 6``; state scale 64 (Lava integer units per float unit of the NIR
    graph). Dense/Sparse: netx's ``optimize_weight_bits`` integers and exponent; Conv:
    the stored integers. The input port: ``a_in`` = the input, unscaled.
    """
    if dep.precision != "float":
        raise ValueError("fixed_deployment expects the float deployment of the graph")
    pops, syns, hosts = [], [], []
    for p in dep.populations:
        node = graph.nodes[p.name]
        pops.append(replace(
            p, du=int(_meta(node, "iDecay")) - 1, dv=int(_meta(node, "vDecay")),
            vth=int(_meta(node, "vThMant")),
            bias_mant=np.asarray(_meta(node, "bias_mant"), dtype=np.int64).reshape(p.shape),
            bias_exp=np.full(p.shape, int(_meta(node, "bias_exp")), dtype=np.int64),
            v_scale=np.full(p.shape, 64.0), state_scale=64.0))
    for s in dep.synapses:
        node = graph.nodes[s.name]
        if s.kind == "conv":
            w = np.rint(np.asarray(node.weight, dtype=np.float64)).astype(np.int64)
            syns.append(replace(s, weights=w, weight_exp=0))
            continue
        q = np.asarray(_meta(node, "weight"), dtype=np.int64)
        if s.kind == "sparse":
            rows, cols = s.weights.nonzero()
            w = csr_matrix((q[rows, cols], (rows, cols)), shape=q.shape)
        else:
            w = q
        syns.append(replace(s, weights=w, weight_exp=int(_meta(node, "weight_exp"))))
    for h in dep.host_layers:
        hosts.append(replace(h, injection_scale=1.0, injection_max=float(FIXED.injection_max)))
    out = replace(dep, precision="fixed", populations=tuple(pops), synapses=tuple(syns),
                  host_layers=tuple(hosts),
                  report={"source": "netx integers (node metadata), not re-quantised"})
    check_netx_fixed(out)
    return out


def check_netx_fixed(dep) -> None:
    """``fixed-range`` for netx integers: what Lava's fixed models take unchanged (netx's
    weights may be odd and carry an exponent; Lava truncates nothing netx made lossless)."""
    for p in dep.populations:
        if not (0 <= p.du <= 4095 and 0 <= p.dv <= 4095):
            raise violation("fixed-range", p.name, f"du={p.du}, dv={p.dv} outside [0, 4095]")
        if not (1 <= p.vth <= 2 ** 17 - 1):
            raise violation("fixed-range", p.name, f"vth={p.vth} outside [1, 2^17 - 1]")
        if np.abs(p.bias_mant).max(initial=0) > 2 ** 12 - 1:
            raise violation("fixed-range", p.name, "bias mantissa outside 13 bits")
    for s in dep.synapses:
        w = s.weights.data if s.kind == "sparse" else np.asarray(s.weights)
        if s.kind != "conv" and w.size and (w.max() > 255 or w.min() < -256):
            raise violation("fixed-range", s.name, "weights outside Lava's 8-bit synapse")
