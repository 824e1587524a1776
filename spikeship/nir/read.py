"""Read and validate any NIR file (ours or another framework's) before anything runs it.

:func:`read_nir` never trusts the file: it opens the HDF5 file itself, checks the
declared sizes of every array *before reading it* (a file can declare a 10^12-element
tensor in a few bytes), rejects node types we cannot run with
:class:`~spikeship.errors.UnsupportedNodeError` (naming the type and the supported
list), builds the ``nir`` nodes, and then :func:`load_graph` checks the graph:

- edges name existing nodes (no dangling edges), no duplicates;
- exactly one ``Input`` and one ``Output``; every node lies on a path from the input
  to the output;
- every cycle passes through a stateful neuron (``LIF``, ``CubaLIF``, ``IF``, ``LI``;
  :data:`~spikeship.nir.categories.STATEFUL`): a cycle of
  stateless nodes is an algebraic loop with no discrete-time meaning;
- shapes: inferred from the input along the graph, per node type, and compared with
  every declared ``input_type`` / ``output_type`` and parameter shape;
- no NaN / Inf in any parameter; time constants > 0; ``dt`` (graph metadata) > 0.

Recurrent edges are the back edges of a depth-first walk from the input (in the
file's edge order); they carry the *previous* step's output (see
:mod:`spikeship.sim.reference`). The result, :class:`LoadedGraph`, holds the graph,
the execution order, the recurrent edges and every node's shape.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import nir
import numpy as np

from spikeship.errors import GraphError, UnsupportedNodeError
from spikeship.nir.categories import SPIKING, STATEFUL
from spikeship.nir.graph import order_and_back_edges, reach, wiring
from spikeship.nir.shapes import infer_shapes

SUPPORTED = ("Input", "Output", "Affine", "Linear", "Scale", "Conv2d", "AvgPool2d",
             "SumPool2d", "Flatten", "LIF", "CubaLIF", "IF", "LI")


# What h5py raises on a damaged file (a bad B-tree or heap surfaces as RuntimeError,
# KeyError, or a ValueError from a garbled datatype; a corrupt string as a decode error).
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError,
             UnicodeDecodeError)


@dataclass(frozen=True)
class Limits:
    """Size limits checked before any array is read or any state allocated."""

    max_array_elements: int = 1 << 26       # one parameter array (64 Mi elements)
    max_total_elements: int = 1 << 28       # all arrays of the file together
    max_node_elements: int = 1 << 26        # one node's output (neurons / activations)
    max_nodes: int = 10_000


@dataclass
class LoadedGraph:
    """A validated NIR graph, ready for a simulator."""

    graph: nir.NIRGraph
    input: str
    output: str
    order: list[str]                                   # execution order (input first)
    sources: dict[str, list[str]]                      # node -> feed-forward sources
    recurrent: dict[str, list[str]]                    # node -> sources read from step t-1
    in_shape: dict[str, tuple[int, ...]]
    out_shape: dict[str, tuple[int, ...]]
    dt_s: float | None
    metadata: dict = field(default_factory=dict)

    @property
    def nodes(self) -> dict[str, nir.NIRNode]:
        return self.graph.nodes

    def type_of(self, name: str) -> str:
        return type(self.graph.nodes[name]).__name__

    def neuron_nodes(self) -> list[str]:
        """Spiking neuron nodes in execution order."""
        return [n for n in self.order if self.type_of(n) in SPIKING]


def _unsupported(name: str, type_name: str) -> UnsupportedNodeError:
    return UnsupportedNodeError(f"node {name!r} has type {type_name}, which spikeship cannot "
                                f"run; supported node types: {', '.join(SUPPORTED)}")


def _text(v) -> str:
    return v.decode("utf8", "replace") if isinstance(v, bytes) else str(v)


def _prescan(group: h5py.Group, limits: Limits, where: str = "") -> None:
    """Check node types and declared sizes without reading any large array."""
    total = 0

    def visit(name, obj):
        nonlocal total
        if isinstance(obj, h5py.Dataset):
            n = int(np.prod(obj.shape, dtype=np.float64)) if obj.shape else 1
            if n > limits.max_array_elements:
                raise GraphError(f"array {where}/{name} declares {obj.shape} = {n} elements "
                                 f"(limit {limits.max_array_elements}); refusing to read it")
            total += n
            if total > limits.max_total_elements:
                raise GraphError(f"the file declares more than {limits.max_total_elements} "
                                 "elements in total; refusing to read it")

    group.visititems(visit)
    if "nodes" not in group or "edges" not in group:
        raise GraphError("not a NIR graph: the 'node' group has no 'nodes' / 'edges'")
    nodes = group["nodes"]
    if len(nodes) > limits.max_nodes:
        raise GraphError(f"graph has {len(nodes)} nodes (limit {limits.max_nodes})")
    for name, node in nodes.items():
        if not isinstance(node, h5py.Group) or "type" not in node:
            raise GraphError(f"node {name!r} has no 'type'")
        t = _text(node["type"][()])
        if t == "NIRGraph":
            raise UnsupportedNodeError(f"node {name!r} is a nested NIRGraph (subgraph); flatten it "
                                       f"first. Supported node types: {', '.join(SUPPORTED)}")
        if t not in SUPPORTED:
            raise _unsupported(name, t)
        for key in ("shape", "input_type", "input_shape"):
            if key in node and isinstance(node[key], h5py.Dataset):
                _check_declared(name, key, node[key][()], limits)


def _check_declared(name: str, key: str, value, limits: Limits) -> None:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf" or arr.ndim > 1:
        raise GraphError(f"node {name!r}: declared {key} {value!r} is not a list of sizes")
    if np.any(arr < 0) or np.any(arr != np.round(arr)):
        raise GraphError(f"node {name!r}: declared {key} {arr.tolist()} is not a list of sizes")
    if float(np.prod(arr.astype(np.float64))) > limits.max_node_elements:
        raise GraphError(f"node {name!r}: declared {key} {arr.tolist()} exceeds the limit of "
                         f"{limits.max_node_elements} elements; refusing to allocate it")


def read_nir(path: str | os.PathLike, *, limits: Limits = Limits(), prepare=None) -> LoadedGraph:
    """Read, type-check and validate the NIR file at ``path`` (see the module docstring);
    ``prepare(graph) -> graph`` runs before validation (producer conventions)."""
    from spikeship.safeopen import open_hdf5

    path = Path(path)
    with open_hdf5(path, "NIR file") as f:   # regular file, size, links, filters, storage
        try:
            if "node" not in f or not isinstance(f["node"], h5py.Group):
                raise GraphError(f"{path} is HDF5 but not NIR: no 'node' group")
            _prescan(f["node"], limits, "node")
            data = nir.serialization.hdf2dict(f["node"])
        except H5_ERRORS as e:   # a damaged file: HDF5 reports it as any of these
            raise GraphError(f"{path}: cannot read the graph (damaged file?): "
                             f"{type(e).__name__}: {e}") from e
    nodes = {}
    for name, d in data["nodes"].items():
        t = d.get("type")
        try:
            nodes[name] = nir.dict2NIRNode(dict(d))
        except (ValueError, KeyError, TypeError, AssertionError, AttributeError, IndexError,
                ArithmeticError) as e:   # whatever nir's constructors trip over
            raise GraphError(f"node {name!r} ({t}) is malformed: {e or type(e).__name__}") from e
    try:
        edges = [(_text(a), _text(b)) for a, b in np.asarray(data["edges"]).reshape(-1, 2)]
    except ValueError as e:
        raise GraphError(f"{path}: edges are not a list of (source, target) pairs") from e
    meta = {k: (_text(v) if isinstance(v, bytes) else v)
            for k, v in (data.get("metadata") or {}).items()}
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)
    return load_graph(graph if prepare is None else prepare(graph), limits=limits)


def load_graph(graph: nir.NIRGraph, *, limits: Limits = Limits()) -> LoadedGraph:
    """Validate an in-memory NIR graph (see the module docstring)."""
    nodes, edges = graph.nodes, [(str(a), str(b)) for a, b in graph.edges]
    if not nodes:
        raise GraphError("the graph has no nodes")
    for name, node in nodes.items():
        t = type(node).__name__
        if t not in SUPPORTED:
            raise _unsupported(name, t)
    seen = set()
    for a, b in edges:
        for end in (a, b):
            if end not in nodes:
                raise GraphError(f"dangling edge ({a!r} -> {b!r}): node {end!r} does not exist")
        if (a, b) in seen:
            raise GraphError(f"duplicate edge ({a!r} -> {b!r})")
        seen.add((a, b))
    ins = [n for n, v in nodes.items() if isinstance(v, nir.Input)]
    outs = [n for n, v in nodes.items() if isinstance(v, nir.Output)]
    if len(ins) != 1 or len(outs) != 1:
        raise GraphError(f"a graph needs exactly one Input and one Output node, found inputs "
                         f"{ins} and outputs {outs}")
    inp, out = ins[0], outs[0]
    wire = wiring(nodes, edges)
    succ, pred = wire.succs, wire.preds
    if pred[inp]:
        raise GraphError(f"the Input node {inp!r} has incoming edges from {pred[inp]}")
    if succ[out]:
        raise GraphError(f"the Output node {out!r} has outgoing edges to {succ[out]}")
    fwd, bwd = reach(inp, succ), reach(out, pred)
    for n in nodes:
        if n not in fwd or n not in bwd:
            raise GraphError(f"node {n!r} ({type(nodes[n]).__name__}) is not on a path from "
                             f"{inp!r} to {out!r} (unconnected or dead end)")
    _check_stateless_cycles(nodes, edges)
    order, back = order_and_back_edges(nodes, edges, [inp])
    sources = {n: [a for a in pred[n] if (a, n) not in back] for n in nodes}
    recurrent = {n: [a for a in pred[n] if (a, n) in back] for n in nodes}
    for name, node in nodes.items():
        _check_finite(name, node)
    in_shape, out_shape = infer_shapes(nodes, order, sources, recurrent, inp,
                                         limits.max_node_elements)
    dt = graph.metadata.get("dt") if isinstance(graph.metadata, dict) else None
    if dt is not None:
        try:
            dt = float(np.asarray(dt).reshape(()))
        except (TypeError, ValueError) as e:
            raise GraphError(f"graph metadata dt = {dt!r} is not a number") from e
        if not (np.isfinite(dt) and dt > 0):
            raise GraphError(f"graph metadata dt = {dt} must be a positive number of seconds")
    return LoadedGraph(graph=graph, input=inp, output=out, order=order, sources=sources,
                       recurrent=recurrent, in_shape=in_shape, out_shape=out_shape, dt_s=dt,
                       metadata=dict(graph.metadata or {}))


def _check_stateless_cycles(nodes, edges) -> None:
    """Every cycle must contain a stateful neuron: the stateless subgraph is acyclic."""
    stateless = {n: v for n, v in nodes.items() if type(v).__name__ not in STATEFUL}
    sub = [(a, b) for a, b in edges if a in stateless and b in stateless]
    _, back = order_and_back_edges(stateless, sub, [])
    if back:
        w = wiring(stateless, sub)
        loop = sorted({n for a, b in back for n in reach(b, w.succs) & reach(a, w.preds)})
        raise GraphError(f"cycle without a neuron through nodes {loop}: an algebraic loop has "
                         "no discrete-time meaning")


def _check_finite(name: str, node) -> None:
    for key, v in vars(node).items():
        if key in ("input_type", "output_type", "metadata"):
            continue
        if isinstance(v, np.ndarray) and v.dtype.kind not in "biuf":
            raise GraphError(f"node {name!r} ({type(node).__name__}): parameter {key!r} has "
                             f"dtype {v.dtype} ({'complex' if v.dtype.kind == 'c' else 'not real'}"
                             f" numbers); NIR parameters are real numbers")
        if isinstance(v, np.ndarray) and v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            raise GraphError(f"node {name!r} ({type(node).__name__}): parameter {key!r} holds "
                             "NaN or Inf")
    for key in ("tau", "tau_mem", "tau_syn"):
        v = getattr(node, key, None)
        if v is not None and np.any(np.asarray(v) <= 0):
            raise GraphError(f"node {name!r}: time constant {key!r} must be > 0")
    v = getattr(node, "v_threshold", None)
    if v is not None and np.any(np.asarray(v) <= 0):
        raise GraphError(f"node {name!r} ({type(node).__name__}): v_threshold must be > 0 "
                         f"(a neuron at threshold <= 0 fires at rest on every step)")
