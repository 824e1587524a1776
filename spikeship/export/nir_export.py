"""Export a :class:`~spikeship.export.surgery.DeployableNet` to NIR (``model.nir``).

Our own mapping table, not snntorch's ``export_to_nir``, which (snntorch 1.0) hard-codes
``dt = 1e-4`` and ``r = tau/dt``, writes 0-d neuron parameters for scalar ``beta`` (they
fail NIR type checks), keeps the batch dimension, writes ``AvgPool2d.kernel_size`` as
a scalar and always writes ``v_reset = 0`` even for a subtract reset.

The mapping (CONVENTIONS.md "Exported NIR"):

============  =========================================================================
deployable    NIR node
============  =========================================================================
conv          ``Conv2d(input_shape=(H, W), weight, bias, stride, padding, dilation, 1)``
fc            ``Affine(weight, bias)``
pool          ``SumPool2d(kernel_size=[k, k], stride=[s, s], padding=[0, 0])``
flatten       ``Flatten(input_type=(C, H, W), start_dim=0, end_dim=-1)``
lif, beta<1   ``LIF(tau = dt/(1-beta), r = 1, v_leak = 0, v_threshold, v_reset = 0)``,
              per-neuron arrays of the layer's shape; forward Euler with step ``dt``::

                  v[t] = v[t-1] + dt/tau * (v_leak - v[t-1] + r * I[t])    (= beta v + I)
                  z[t] = v[t] > v_threshold;   v[t] = v_reset where z[t]   (DPAP Eq 1-2)
lif, beta=1   ``IF(r = 1, v_threshold, v_reset = 0)``: ``v[t] = v[t-1] + r I[t]``
============  =========================================================================

Graph metadata: ``format="spikeship-nir/1"``, ``dt``, ``reset="zero"``, ``timesteps``,
``encoding``, ``source_run``, ``input_shape``, ``preset``. Node metadata:
``source_layer``, ``kept_out``, ``kept_in``, ``mask``, ``scale_folded``,
``bias_scale_folded`` (synapses); ``source_layer``, ``kept`` (neurons and pools).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import nir
import numpy as np

from spikeship.errors import ExportError
from spikeship.export.surgery import (DeployableNet, FlattenLayer, NeuronLayer, PoolLayer,
                                      SynapseLayer, build_deployable)
from spikeship.io import atomic_path

FORMAT = "spikeship-nir/1"


def _f32(shape, value) -> np.ndarray:
    return np.full(shape, value, dtype=np.float32)


def layer_to_node(layer, dt_s: float) -> nir.NIRNode:
    """The NIR node of one deployable layer (see the module table)."""
    if isinstance(layer, SynapseLayer):
        meta = {"source_layer": layer.source_layer, "kept_out": layer.kept_out,
                "kept_in": layer.kept_in, "mask": layer.mask,
                "scale_folded": float(layer.scale_folded),
                "bias_scale_folded": float(layer.bias_scale_folded)}
        if layer.kind == "conv":
            return nir.Conv2d(input_shape=tuple(layer.in_shape[1:]), weight=layer.weight,
                              stride=layer.stride, padding=layer.padding,
                              dilation=layer.dilation, groups=1, bias=layer.bias, metadata=meta)
        return nir.Affine(weight=layer.weight, bias=layer.bias, metadata=meta)
    if isinstance(layer, NeuronLayer):
        meta = {"source_layer": layer.source_layer, "kept": layer.kept}
        shape = layer.shape
        if layer.beta >= 1.0:
            return nir.IF(r=_f32(shape, 1.0), v_threshold=_f32(shape, layer.threshold),
                          v_reset=_f32(shape, 0.0), metadata=meta)
        return nir.LIF(tau=_f32(shape, dt_s / (1.0 - layer.beta)), r=_f32(shape, 1.0),
                       v_leak=_f32(shape, 0.0), v_threshold=_f32(shape, layer.threshold),
                       v_reset=_f32(shape, 0.0), metadata=meta)
    if isinstance(layer, PoolLayer):
        return nir.SumPool2d(kernel_size=np.array(layer.kernel, dtype=np.int64),
                             stride=np.array(layer.stride, dtype=np.int64),
                             padding=np.array([0, 0], dtype=np.int64),
                             metadata={"source_layer": layer.source_layer,
                                       "avg_scale_folded_into_next": 1.0 / np.prod(layer.kernel)})
    if isinstance(layer, FlattenLayer):
        return nir.Flatten(input_type={"input": np.array(layer.in_shape, dtype=np.int64)},
                           start_dim=0, end_dim=-1,
                           metadata={"source_layer": layer.source_layer})
    raise ExportError(f"no NIR mapping for deployable layer {type(layer).__name__}")


def to_nir(net: DeployableNet) -> nir.NIRGraph:
    """The NIR graph of ``net``: ``input -> <layers> -> output``, type-checked by NIR."""
    nodes: dict[str, nir.NIRNode] = {
        "input": nir.Input(input_type={"input": np.array(net.input_shape, dtype=np.int64)})}
    for layer in net.layers:
        nodes[layer.name] = layer_to_node(layer, net.dt_s)
    nodes["output"] = nir.Output(output_type={"output": np.array(net.output_shape, dtype=np.int64)})
    names = list(nodes)
    edges = list(zip(names[:-1], names[1:]))
    metadata = {"format": FORMAT, "dt": float(net.dt_s), "reset": "zero",
                "timesteps": int(net.timesteps), "encoding": net.encoding,
                "source_run": net.source_run, "preset": net.preset,
                "input_shape": np.array(net.input_shape, dtype=np.int64)}
    try:
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=True)
    except (ValueError, AssertionError) as e:
        raise ExportError(f"the exported NIR graph does not type-check: {e}") from e


def export_nir(model, masks, spec, config=None, *, dt_s: float = 1e-3,
               source_run: str = "") -> nir.NIRGraph:
    """Checkpoint objects -> NIR graph (``build_deployable`` then :func:`to_nir`)."""
    return to_nir(build_deployable(model, masks, spec, config, dt_s=dt_s, source_run=source_run))


def write_nir(graph: nir.NIRGraph, path: str | os.PathLike, *, replace: bool = True) -> Path:
    """Write ``graph`` to ``path`` atomically (a crash never leaves a truncated file);
    ``replace=False``: an existing ``path`` is a RunDirError, left as it is."""
    path = Path(path)
    buf = io.BytesIO()            # assembled in memory: libhdf5 never meets a full disk
    try:
        nir.write(buf, graph)
    except (TypeError, ValueError) as e:
        raise ExportError(f"cannot write NIR file {path}: {e}") from e
    with atomic_path(path, replace=replace) as tmp:
        tmp.write_bytes(buf.getvalue())
    return path
