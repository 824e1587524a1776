"""Read deployed artifacts back from disk as :class:`~.vanish.DeployedLayer` lists.

What "stored as a synapse" means per artifact (a pruned synapse is *absent* when
the artifact, read by its own loader, yields no synapse for it):

- ``model.nir``: NIR tensors are dense; spikeship's ``mask`` metadata (True = the
  synapse exists) is the sparsity structure every spikeship loader honours, so an
  entry is stored iff its mask is True (all entries when a node has no mask).
- ``model.onnx``: a dense initializer stores (and ONNX Runtime multiplies) every
  entry; a ``sparse_initializer``, or spikeship's coordinate form
  (``<layer>.weight.values/.indices/.shape``, scattered into zeros at load time),
  stores only its listed entries. Layers and kept
  indices come from the model's ``layers`` metadata (``spikeship-onnx/1``).
- ``model.net`` and the built Lava processes: see :mod:`.lava_artifacts`.
"""

from __future__ import annotations

import json
from pathlib import Path

import nir
import numpy as np
from onnx import numpy_helper

from spikeship.errors import GraphError
from spikeship.nir.categories import SPIKING, SYNAPSES, kind
from spikeship.nir.layers import meta, synaptic_layers
from spikeship.nir.read import read_nir as read_validated
from spikeship.safeopen import load_onnx
from spikeship.energy.vanish import DeployedLayer


def _arange_if_none(v, n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) if v is None else np.asarray(v, dtype=np.int64).ravel()


def read_nir(path: str | Path) -> nir.NIRGraph:
    """The graph of a NIR file, read and validated by spikeship's importer (size limits
    before allocating, NaN/Inf, shapes, edges): named errors only."""
    return read_validated(path).graph


def nir_layers(graph: nir.NIRGraph, fmt: str = "nir") -> list[DeployedLayer]:
    """The synaptic nodes of a NIR graph that name their ``source_layer``."""
    out = []
    for name, node in graph.nodes.items():
        if kind(node) not in SYNAPSES:
            continue
        md = meta(node)
        if md.get("source_layer") is None:
            continue
        w = np.asarray(node.weight)
        mask = md.get("mask")
        stored = np.ones(w.shape, bool) if mask is None else np.asarray(mask).astype(bool)
        if stored.shape != w.shape:
            raise GraphError(f"{fmt} node {name}: mask {stored.shape} vs weight {w.shape}")
        bias = getattr(node, "bias", None)
        out.append(DeployedLayer(
            format=fmt, layer=name, source_layer=str(md["source_layer"]), weight=w,
            stored=stored, bias=None if bias is None else np.asarray(bias),
            kept_out=_arange_if_none(md.get("kept_out"), w.shape[0]),
            kept_in=_arange_if_none(md.get("kept_in"), w.shape[1])))
    return out


def nir_populations(graph: nir.NIRGraph) -> dict[str, tuple[str, np.ndarray]]:
    """Neuron node -> (source_layer of the synaptic layer feeding it, original unit
    index of each channel / neuron along axis 0)."""
    out = {}
    for layer in synaptic_layers(graph):
        post = layer.postsynaptic
        if post is None or layer.source_layer is None or post in out:
            continue
        md = meta(graph.nodes[post])
        kept = md.get("kept")
        if kept is None:
            kept = meta(graph.nodes[layer.name]).get("kept_out")
        kept = _arange_if_none(kept, layer.weight.shape[0])
        out[post] = (layer.source_layer, kept)
    return {k: v for k, v in out.items() if kind(graph.nodes[k]) in SPIKING}


# ---- ONNX ----------------------------------------------------------------------------
def _sparse_to_dense(sp) -> tuple[str, np.ndarray, np.ndarray]:
    dims = tuple(int(d) for d in sp.dims)
    vals = numpy_helper.to_array(sp.values).ravel()
    idx = numpy_helper.to_array(sp.indices)
    dense = np.zeros(dims, dtype=vals.dtype)
    stored = np.zeros(dims, dtype=bool)
    if idx.ndim == 1:                      # linearised indices
        flat_d, flat_s = dense.reshape(-1), stored.reshape(-1)
        flat_d[idx] = vals
        flat_s[idx] = True
    else:                                  # (NNZ, rank) coordinates
        coords = tuple(idx[:, k] for k in range(idx.shape[1]))
        dense[coords] = vals
        stored[coords] = True
    return sp.values.name, dense, stored


def onnx_layers(path: str | Path, fmt: str = "onnx") -> list[DeployedLayer]:
    """Synaptic initializers of a spikeship ONNX export (``layers`` metadata)."""
    model = load_onnx(path)    # size, no external data, only the operators spikeship writes
    props = {p.key: p.value for p in model.metadata_props}
    if "layers" not in props:
        raise GraphError(f"{path}: no spikeship 'layers' metadata; cannot map initializers "
                         f"to training layers")
    try:
        layers = json.loads(props["layers"])
    except json.JSONDecodeError as e:
        raise GraphError(f"{path}: corrupt 'layers' metadata: {e}") from e
    dense = {t.name: (numpy_helper.to_array(t), None) for t in model.graph.initializer}
    for sp in model.graph.sparse_initializer:
        name, d, s = _sparse_to_dense(sp)
        dense[name] = (d, s)
    for name in [n[: -len(".values")] for n in dense if n.endswith(".weight.values")]:
        # spikeship's coordinate form (values + indices + shape, rebuilt by ScatterND):
        # only the listed entries are stored.
        vals = dense[f"{name}.values"][0].ravel()
        idx = dense[f"{name}.indices"][0].astype(np.int64)
        shape = tuple(int(d) for d in dense[f"{name}.shape"][0])
        w, stored = np.zeros(shape, dtype=vals.dtype), np.zeros(shape, dtype=bool)
        coords = tuple(idx[:, k] for k in range(idx.shape[1]))
        w[coords], stored[coords] = vals, True
        dense[name] = (w, stored)
    out = []
    for l in layers:
        if l.get("kind") != "SynapseLayer":
            continue
        name = l["name"]
        if f"{name}.weight" not in dense:
            raise GraphError(f"{path}: layer {name} has no initializer '{name}.weight'")
        w, stored = dense[f"{name}.weight"]
        kout = np.asarray(l["kept_out"], dtype=np.int64)
        kin = np.asarray(l["kept_in"], dtype=np.int64)
        if w.ndim == 2 and w.shape == (kin.size, kout.size) and kin.size != kout.size:
            w = w.T                          # MatMul layout (in, out)
            stored = None if stored is None else stored.T
        b = dense.get(f"{name}.bias", (None, None))[0]
        out.append(DeployedLayer(
            format=fmt, layer=name, source_layer=str(l["source_layer"]), weight=w,
            stored=np.ones(w.shape, bool) if stored is None else stored, bias=b,
            kept_out=kout, kept_in=kin))
    return out
