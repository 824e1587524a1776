"""Write lava-dl netx HDF5 (``model.net``) from a NIR graph, through the Loihi quantiser.

The network netx builds from this file (``lava.lib.dl.netx.hdf5.Network``) is the
same fixed-point network the direct NIR -> Lava path runs: both come from
:func:`spikeship.targets.loihi.quantize.quantize`, so the integers are identical.
netx has no floating-point models: ``model.net`` is fixed point only.

What netx can express (else :class:`ExportError` saying why): a feed-forward chain
of CUBA layers, ``input -> [conv]* -> [flatten] -> [dense]*``, each layer one synapse
plus one LIF population; no pools (folded into the next layer by the quantiser, as
netx has no pool block), no recurrence, no bias with a slow current (CubaLIF), no
layer whose weights are all zero. Direct-encoded graphs (``input_mode="current"``):
the first population is netx's ``input`` layer (a CUBA neuron fed straight from
the network input port), and the host layer that computes its input current is
stored beside netx's data in the group ``spikeship_host`` (netx ignores it; the
``lava-netx`` runner reads it).

File layout (as lava-dl's slayer writes it and netx reads it, ``netx/hdf5.py``):
``layer/<i>/{type, shape (C,H,W)|(N,), neuron/{type, iDecay, vDecay, vThMant,
refDelay, gradedSpike}, weight, bias, stride, padding, dilation, groups}``. Neuron:
netx maps ``du = iDecay - 1``, ``dv = vDecay``, ``vth = vThMant``,
``bias_exp = 6``, ``bias_mant = bias``. Conv weights are NIR/torch ``(O, I, kH, kW)``
(netx flips and transposes them for Lava), dense weights ``(out, in)`` with ``in`` in
C-order of the flattened ``(C, H, W)`` (netx flattens with the same
``transpose([2, 1, 0]).flatten()``). Each layer also stores ``name`` (the NIR
population) for per-layer spike counts.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import nir
import numpy as np

from spikeship.errors import ExportError, RuleError
from spikeship.io import atomic_hdf5
from spikeship.targets.loihi.deployment import SOURCE_INPUT, Deployment, PopulationSpec
from spikeship.targets.loihi.quantize import quantize

FORMAT_TAG = "spikeship-netx/1"


def _string(group: h5py.Group, key: str, value: str) -> None:
    group.create_dataset(key, (1,), f"S{max(len(value), 1)}", value.encode("ascii"))


def _neuron(group: h5py.Group, p: PopulationSpec) -> None:
    n = group.create_group("neuron")
    _string(n, "type", "CUBA")
    n.create_dataset("iDecay", data=np.int64(p.du + 1))
    n.create_dataset("vDecay", data=np.int64(p.dv))
    n.create_dataset("vThMant", data=np.int64(p.vth))
    n.create_dataset("refDelay", data=np.int64(1))
    n.create_dataset("gradedSpike", data=False)


def _bias(group: h5py.Group, p: PopulationSpec) -> None:
    b = np.asarray(p.bias_mant, dtype=np.int64)
    if not b.any():
        return
    if len(p.shape) == 3:
        flat = b.reshape(b.shape[0], -1)
        if np.all(flat == flat[:, :1]):
            group.create_dataset("bias", data=flat[:, 0])           # per channel
        else:
            group.create_dataset("bias", data=np.transpose(b))      # Lava (W, H, C) order
    else:
        group.create_dataset("bias", data=b.reshape(-1))


def check_netx(dep: Deployment) -> None:
    """Raise :class:`ExportError` if netx cannot express ``dep`` (see module docstring)."""
    why = []
    if dep.precision != "fixed":
        why.append("netx holds fixed-point networks only")
    pops = list(dep.populations)
    for i, p in enumerate(pops):
        ins = dep.incoming(p.name)
        if p.depth != i + (0 if dep.input_mode == "current" else 1):
            why.append(f"population '{p.name}' is not the next link of a single chain")
        if any(s.recurrent for s in ins):
            why.append(f"'{p.name}' is recurrent (netx's dense_rec resets no synapse between "
                       "samples; not exported)")
        if any(s.source == "const" for s in ins):
            why.append(f"'{p.name}' is a CubaLIF whose bias flows through its current")
        ff = [s for s in ins if not s.recurrent and s.source != "const"]
        if i == 0 and dep.input_mode == "current":
            if ff or len([h for h in dep.host_layers if h.target == p.name]) != 1:
                why.append(f"input population '{p.name}' must be fed by one host layer")
            if np.any(np.asarray(p.bias_mant) != 0):
                why.append(f"netx's input layer has no bias ('{p.name}' has one)")
            continue
        expected = SOURCE_INPUT if i == 0 else pops[i - 1].name
        if len(ff) != 1 or ff[0].source != expected:
            why.append(f"'{p.name}' must read exactly the previous layer '{expected}'")
            continue
        vals = ff[0].weights.data if ff[0].kind == "sparse" else np.asarray(ff[0].weights)
        if not np.any(vals):
            why.append(f"every weight into '{p.name}' is zero (netx cannot size it)")
    if dep.groups:
        why.append(f"{sorted(dep.groups)} have per-neuron time constants (a netx layer has one)")
    if len({p.name for p in pops} - {dep.output}) != len(pops) - 1 or pops[-1].name != dep.output:
        why.append("the output must be the last layer")
    if why:
        raise ExportError("netx cannot express this graph: " + "; ".join(dict.fromkeys(why)))


def _write_host(f: h5py.File, dep: Deployment) -> None:
    if not dep.host_layers:
        return
    (h,) = dep.host_layers
    g = f.create_group("spikeship_host")
    _string(g, "kind", h.kind)
    _string(g, "name", h.name)
    _string(g, "target", h.target)
    # the file holds dense arrays (a pruned synapse is a stored 0, as in netx's blocks)
    w = h.weights.toarray() if hasattr(h.weights, "toarray") else h.weights
    g.create_dataset("weight", data=w)
    g.create_dataset("bias", data=h.bias)
    g.create_dataset("source_shape", data=np.asarray(h.source_shape, dtype=np.int64))
    for key in ("stride", "padding", "dilation"):
        g.create_dataset(key, data=np.asarray(getattr(h, key), dtype=np.int64))
    g.create_dataset("groups", data=np.int64(h.groups))
    g.create_dataset("injection_scale", data=float(h.injection_scale))
    g.create_dataset("injection_max", data=float(h.injection_max))


def write_deployment(dep: Deployment, path: str | Path) -> Path:
    """Write the fixed-point deployment ``dep`` as netx HDF5 to ``path`` (atomically)."""
    check_netx(dep)
    path = Path(path)
    with atomic_hdf5(path) as f:      # built in memory, written atomically
        f.attrs["format"] = FORMAT_TAG
        f.attrs["input_mode"] = dep.input_mode
        f.attrs["input_message_bits"] = int(dep.input_message_bits)
        f.attrs["input_shape"] = np.asarray(dep.input_shape, dtype=np.int64)
        f.attrs["dt_s"] = float(dep.dt_s)
        layers = f.create_group("layer")
        i = 0
        pops = list(dep.populations)
        if dep.input_mode == "spikes":
            g = layers.create_group(str(i))
            _string(g, "type", "input")
            g.create_dataset("shape", data=np.asarray(dep.input_shape, dtype=np.int64))
            i += 1
        for k, p in enumerate(pops):
            if k == 0 and dep.input_mode == "current":
                g = layers.create_group(str(i))
                _string(g, "type", "input")
                g.create_dataset("shape", data=np.asarray(p.shape, dtype=np.int64))
            else:
                (s,) = [s for s in dep.incoming(p.name)]
                if s.kind != "conv" and len(s.source_shape) > 1:
                    _string(layers.create_group(str(i)), "type", "flatten")
                    i += 1
                g = layers.create_group(str(i))
                if s.kind == "conv":
                    _string(g, "type", "conv")
                    g.create_dataset("weight", data=np.asarray(s.weights, dtype=np.int64))
                    for key in ("stride", "padding", "dilation"):
                        g.create_dataset(key, data=np.asarray(getattr(s, key), dtype=np.int64))
                    g.create_dataset("groups", data=np.int64(s.groups))
                else:
                    _string(g, "type", "dense")
                    w = s.weights.toarray() if s.kind == "sparse" else np.asarray(s.weights)
                    g.create_dataset("weight", data=w.astype(np.int64))
                g.create_dataset("shape", data=np.asarray(p.shape, dtype=np.int64))
                _bias(g, p)
            _neuron(g, p)
            _string(g, "name", p.name)
            i += 1
        _write_host(f, dep)
    return path


def write_netx(nir_graph: nir.NIRGraph, path: str | Path, *, dt_s: float | None = None,
               input_mode: str | None = None, input_message_bits: int = 0) -> Path:
    """Quantise ``nir_graph`` for Loihi and write it as lava-dl netx ``model.net``.

    ``input_mode`` defaults as in :func:`~spikeship.targets.loihi.lower.lower`
    (``"current"`` for ``encoding="direct"`` graphs). Raises :class:`ExportError` for
    graphs netx cannot express (including design-rule violations, named).
    """
    try:
        dep = quantize(nir_graph, dt_s=dt_s, input_mode=input_mode,
                       input_message_bits=input_message_bits)
    except RuleError as e:
        raise ExportError(f"netx: the graph breaks a Loihi design rule: {e}") from e
    return write_deployment(dep, path)
