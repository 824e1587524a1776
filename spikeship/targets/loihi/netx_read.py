"""Read a spikeship ``model.net`` (lava-dl netx HDF5) back into a fixed-point
:class:`~spikeship.targets.loihi.deployment.Deployment`, the inverse of
:mod:`spikeship.targets.loihi.netx` (the file format lives with its chip).

Untrusted input: the file is read by :func:`.netx_file.read_netx_file` (safe open,
declared sizes checked before reading), and every value read is checked against Lava's
fixed-point ranges (the ``fixed-range`` design rule) before anything runs it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeship.errors import GraphError, RuleError, RunDirError
from spikeship.targets.loihi.deployment import (SOURCE_INPUT, Deployment, HostLayerSpec,
                                                PopulationSpec, SynapseSpec)
from spikeship.targets.loihi.netx_file import NetxFile, NetxLayer, read_netx_file, text
from spikeship.targets.loihi.rules import check_fixed


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


def _synapse(layer: NetxLayer, prev: str, prev_shape, bits: int) -> SynapseSpec | None:
    common = dict(source_shape=prev_shape, num_message_bits=bits if prev == SOURCE_INPUT else 0)
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
    input_shape = tuple(int(v) for v in nf.attrs["input_shape"])
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
