"""Read the synaptic layers of a deployed NIR graph, with what feeds them.

A *synaptic layer* is a node of :data:`~spikeship.nir.categories.SYNAPSES`. Its
*presynaptic population* is the spiking neuron node (:data:`~.categories.SPIKING`) or
graph ``Input`` reached by :func:`spikeship.nir.graph.walk_back` through pass-through
nodes (``Flatten``, ``SumPool2d``, ``AvgPool2d``); those nodes are the layer's
*stages*. Its *postsynaptic population* is the spiking node it feeds.

The synapses that exist are the node's ``mask`` metadata (spikeship exports: True =
the synapse exists in the deployed graph), or, for a graph without one, its
non-zero weights (said in :attr:`SynapticLayer.mask_source`).

Original (unpruned) shapes come, in this order, from the caller (the checkpoint's
masks), the node's ``original_shape`` metadata, or else the deployed shape itself
(``original_known`` is then False and dense = every entry of the deployed tensor).
"""

from __future__ import annotations

from dataclasses import dataclass

import nir
import numpy as np

from spikeship.errors import GraphError, UnsupportedNodeError
from spikeship.nir.categories import INPUT, PASS_THROUGH, SPIKING, SYNAPSES, kind
from spikeship.nir.geometry import conv_geometry, pair, pool_out_shape
from spikeship.nir.graph import Wiring, topological_order, walk_back, wiring

@dataclass(frozen=True)
class Stage:
    """A shape-only node between the presynaptic population and a synaptic layer."""

    name: str
    kind: str                       # "flatten" | "pool"
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class SynapticLayer:
    """One synaptic node of the deployed graph and its wiring."""

    name: str
    kind: str                       # "conv" | "fc"
    weight: np.ndarray
    bias: np.ndarray | None
    mask: np.ndarray                # bool, weight's shape: the synapses that exist
    mask_source: str                # "metadata" | "nonzero"
    in_shape: tuple[int, ...]       # the layer's input (after the stages)
    out_shape: tuple[int, ...]
    presynaptic: str                # neuron node or input node
    pre_is_input: bool
    pre_shape: tuple[int, ...]
    stages: tuple[Stage, ...]       # presynaptic output -> layer input, in order
    postsynaptic: str | None
    source_layer: str | None
    original_shape: tuple[int, ...]  # original (unpruned) weight shape
    original_known: bool
    stride: tuple[int, int] = (1, 1)
    padding: object = 0
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    @property
    def original_in_shape(self) -> tuple[int, ...]:
        """The layer's input shape in the unpruned architecture."""
        if self.kind == "conv":
            return (self.original_shape[1] * self.groups, *self.in_shape[1:])
        return (self.original_shape[1],)


def meta(node: nir.NIRNode) -> dict:
    """A node's (or graph's) metadata with bytes decoded and 0-d arrays unwrapped."""
    out = {}
    for k, v in (getattr(node, "metadata", None) or {}).items():
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, np.ndarray) and v.ndim == 0:
            v = v.item()
            v = v.decode() if isinstance(v, bytes) else v
        out[k] = v
    return out


def node_shape(node: nir.NIRNode) -> tuple[int, ...] | None:
    """Output shape of a neuron / input node (unbatched), if the graph says it."""
    if kind(node) == INPUT:
        shp = node.input_type.get("input")
    else:
        shp = (node.output_type or {}).get("output")
    if shp is None:
        return None
    return tuple(int(v) for v in np.atleast_1d(np.asarray(shp)))


def _stage(name: str, node, in_shape: tuple[int, ...]) -> Stage:
    if kind(node) == "Flatten":
        return Stage(name, "flatten", in_shape, (int(np.prod(in_shape)),))
    if len(in_shape) != 3:
        raise GraphError(f"pool node {name} needs a (C, H, W) input, got {in_shape}")
    k = pair(node.kernel_size, "kernel_size", name, 1)
    s = pair(node.stride, "stride", name, 1)
    p = pair(node.padding, "padding", name)
    return Stage(name, "pool", in_shape, pool_out_shape(in_shape, k, s, p), k, s, p)


def _walk_back(graph: nir.NIRGraph, wire: Wiring, name: str) -> tuple[str, list[str]]:
    """(presynaptic node, stage node names in forward order) of synaptic node ``name``."""
    def fan_in(node: str, n: int) -> GraphError:
        return GraphError(f"node {node} has {n} inputs; spikeship's synop counter needs "
                          f"exactly one between neurons and a synaptic layer")

    pre, chain = walk_back(graph.nodes, wire, name, through=PASS_THROUGH, fan_in=fan_in)
    node = graph.nodes[pre]
    if kind(node) not in (*SPIKING, INPUT):
        raise UnsupportedNodeError(
            f"node {pre} ({kind(node)}) feeds synaptic layer {name}; the synop counter "
            f"supports {', '.join((*SPIKING, INPUT, *PASS_THROUGH))} there")
    return pre, chain


def existing(name: str, node) -> tuple[np.ndarray, str]:
    """Which synapses of synaptic node ``name`` exist, and how that is known: its ``mask``
    metadata (``"metadata"``), else its non-zero weights (``"nonzero"``)."""
    w = np.asarray(node.weight)
    mask = meta(node).get("mask")
    if mask is None:
        return w != 0, "nonzero"
    mask = np.asarray(mask).astype(bool)
    if mask.shape != w.shape:
        raise GraphError(f"node {name}: mask metadata {mask.shape} does not match "
                         f"weight {w.shape}")
    return mask, "metadata"


def synaptic_layers(graph: nir.NIRGraph,
                    original_shapes: dict[str, tuple[int, ...]] | None = None
                    ) -> list[SynapticLayer]:
    """The synaptic layers of ``graph`` in topological order.

    ``original_shapes`` maps a ``source_layer`` (or node name) to the unpruned
    weight shape; it wins over node metadata.
    """
    original_shapes = original_shapes or {}
    out = []
    wire = wiring(graph.nodes, [(str(a), str(b)) for a, b in graph.edges])
    for name in topological_order(graph):
        node = graph.nodes[name]
        if kind(node) == "NIRGraph":
            raise UnsupportedNodeError(f"node {name} is a nested NIRGraph; flatten it first")
        if kind(node) not in SYNAPSES:
            continue
        out.append(_layer(graph, wire, name, node, original_shapes))
    return out


def _layer(graph, wire: Wiring, name, node, original_shapes) -> SynapticLayer:
    md = meta(node)
    w = np.asarray(node.weight)
    pre, chain = _walk_back(graph, wire, name)
    pre_shape = node_shape(graph.nodes[pre])
    if pre_shape is None:
        raise GraphError(f"the shape of node {pre} (feeding {name}) is unknown")
    stages, shape = [], pre_shape
    for st in chain:
        s = _stage(st, graph.nodes[st], shape)
        stages.append(s)
        shape = s.out_shape
    mask, source = existing(name, node)
    src = md.get("source_layer")
    src = None if src is None else str(src)
    orig = original_shapes.get(src) if src is not None else None
    orig = orig or original_shapes.get(name)
    if orig is None and md.get("original_shape") is not None:
        orig = tuple(int(v) for v in np.atleast_1d(md["original_shape"]))
    known = orig is not None
    orig = tuple(int(v) for v in (orig or w.shape))
    if len(orig) != w.ndim or any(o < d for o, d in zip(orig, w.shape)):
        raise GraphError(f"node {name}: original shape {orig} cannot hold the deployed "
                         f"weight {w.shape}")
    posts = [s for s in wire.succs[name] if kind(graph.nodes[s]) in SPIKING]
    bias = getattr(node, "bias", None)
    common = dict(name=name, weight=w, bias=None if bias is None else np.asarray(bias),
                  mask=mask, mask_source=source, presynaptic=pre,
                  pre_is_input=kind(graph.nodes[pre]) == INPUT,
                  pre_shape=pre_shape, stages=tuple(stages),
                  postsynaptic=posts[0] if posts else None, source_layer=src,
                  original_shape=orig, original_known=known)
    if kind(node) == "Conv2d":
        if len(shape) != 3:
            raise GraphError(f"conv node {name} needs a (C, H, W) input, got {shape}")
        groups = int(np.asarray(node.groups))
        if shape[0] != w.shape[1] * groups:
            raise GraphError(f"conv node {name}: input has {shape[0]} channels, weight "
                             f"{w.shape} with groups={groups} expects {w.shape[1] * groups}")
        (ho, wo), s, _, d = conv_geometry(shape, w.shape[2:], node.stride, node.padding,
                                          node.dilation)
        padding = node.padding
        if isinstance(padding, np.ndarray):
            padding = tuple(int(v) for v in np.broadcast_to(padding, (2,)))
        return SynapticLayer(kind="conv", in_shape=shape, out_shape=(w.shape[0], ho, wo),
                             stride=s, padding=padding, dilation=d, groups=groups, **common)
    if int(np.prod(shape)) != w.shape[1]:
        raise GraphError(f"dense node {name}: input has {int(np.prod(shape))} elements, "
                         f"weight {w.shape} expects {w.shape[1]}")
    return SynapticLayer(kind="fc", in_shape=(w.shape[1],), out_shape=(w.shape[0],), **common)


def neuron_populations(graph: nir.NIRGraph) -> dict[str, tuple[int, ...]]:
    """Spiking neuron nodes and their shapes, in topological order."""
    out = {}
    for name in topological_order(graph):
        node = graph.nodes[name]
        if kind(node) in SPIKING:
            shp = node_shape(node)
            if shp is None:
                raise GraphError(f"the shape of neuron node {name} is unknown")
            out[name] = shp
    return out


def input_nodes(graph: nir.NIRGraph) -> dict[str, tuple[int, ...]]:
    """Graph input nodes and their shapes."""
    return {n: node_shape(v) for n, v in graph.nodes.items() if kind(v) == INPUT}
